"""Issue 15, item 8 (other escapes): a secret file that is not text, not a regular file,
or huge is a SecretError naming the file (never its content), not a traceback or a hang."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from supervisor.host.secrets import MAX_SECRET_BYTES, SecretError, read_secret


def _read(path: Path) -> str | None:
    return read_secret("token", env=None, file=str(path), environ={})[0]


def test_a_secret_file_that_is_not_utf8_is_named_not_shown(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_bytes(b"s3cr\xffet")
    with pytest.raises(SecretError, match="is not UTF-8 text") as caught:
        _read(path)
    assert "s3cr" not in str(caught.value)


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)  # so that opening it to read returns
    try:
        with pytest.raises(SecretError, match="not a regular file"):
            _read(path)
    finally:
        os.close(fd)


def test_a_huge_secret_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big"
    path.write_bytes(b"x" * (MAX_SECRET_BYTES + 1))
    with pytest.raises(SecretError, match="larger than"):
        _read(path)
    path.write_bytes(b"x" * MAX_SECRET_BYTES)
    assert _read(path) == "x" * MAX_SECRET_BYTES
