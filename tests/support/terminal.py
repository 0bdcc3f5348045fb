"""Runs a command with its stderr on a pseudo-terminal and returns what it drew there."""

from __future__ import annotations

import os
import pty
import select
import subprocess
from collections.abc import Sequence

from tests.support.bot_helpers import REPO


def run_on_a_terminal(command: Sequence[str], *, columns: int = 100, timeout: float = 120
                      ) -> tuple[subprocess.CompletedProcess[str], bytes]:
    """Run ``command`` from the repository (on its ``PYTHONPATH``, ``COLUMNS`` wide) with
    stdout piped and stderr on a pty, as a user's shell would; return the finished process
    and every byte it drew on the terminal."""
    controller, terminal = pty.openpty()
    env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS=str(columns))
    try:
        try:
            done = subprocess.run(list(command), cwd=REPO, env=env, stdout=subprocess.PIPE,
                                  stderr=terminal, text=True, timeout=timeout, check=False)
        finally:
            os.close(terminal)  # the child's copy is closed too: reading ends at its output
        drawn = b""
        while select.select([controller], [], [], 0.5)[0]:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal's other end is closed: all is read
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        os.close(controller)
    return done, drawn
