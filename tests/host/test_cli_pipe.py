"""`botvisor` writing into a pipe whose reader has gone (``botvisor ... | head``): exit 1,
no traceback."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO


def test_a_closed_pipe_on_stdout_ends_the_command_without_a_traceback() -> None:
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first byte: every write fails (EPIPE)
    try:
        done = subprocess.run(
            [sys.executable, "-c", "import sys\nfrom supervisor.host.cli import main\n"
             "raise SystemExit(main(sys.argv[1:]))", "strategies"],
            cwd=REPO, stdout=write, stderr=subprocess.PIPE, text=True, timeout=60,
            check=False)
    finally:
        os.close(write)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr
