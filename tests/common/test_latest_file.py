"""The latest-file writer: the newest content reaches the file whole, off the caller's thread;
a failed write is raised by the owner's next put, naming the file; close writes what waits."""

from __future__ import annotations

import errno
import json
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from actors.common.latest_file import LatestFileWriter

pytestmark = pytest.mark.unit


class _Disk:
    """A rehearsal of a disk (the WriteFaults interface the actors' chaos uses): each write
    first waits for ``gate``; ``full`` makes the next writes fail with ENOSPC."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.full = False
        self.entered = threading.Semaphore(0)

    def before_write(self, path: Path) -> None:
        self.entered.release()
        assert self.gate.wait(10)
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))


def test_contents_put_while_a_write_is_out_are_coalesced_into_the_newest(tmp_path: Path
                                                                         ) -> None:
    path = tmp_path / "feed.json"
    disk = _Disk()
    disk.gate.clear()
    writer = LatestFileWriter(path, disk)
    writer.put(b'{"n": 0}')
    assert disk.entered.acquire(timeout=5)  # the first write is out, held at the disk
    for n in range(1, 50):  # put never waits for it
        writer.put(json.dumps({"n": n}).encode())
    disk.gate.set()
    writer.close()
    assert json.loads(path.read_bytes()) == {"n": 49}
    assert writer.written == 2  # the first, then only the newest of the 49 put meanwhile


def test_a_content_made_by_a_function_is_made_on_the_writer_thread_and_only_when_written(
        tmp_path: Path) -> None:
    path = tmp_path / "feed.json"
    disk = _Disk()
    disk.gate.clear()
    writer = LatestFileWriter(path, disk)
    made: list[tuple[int, str]] = []

    def content(n: int) -> Callable[[], bytes]:
        def make() -> bytes:
            made.append((n, threading.current_thread().name))
            return json.dumps({"n": n}).encode()
        return make

    writer.put(content(0))
    assert disk.entered.acquire(timeout=5)  # the first write is out, held at the disk
    for n in range(1, 50):
        writer.put(content(n))
    disk.gate.set()
    writer.close()
    assert json.loads(path.read_bytes()) == {"n": 49}
    me = threading.current_thread().name
    assert [n for n, _ in made] == [0, 49]  # the 48 replaced meanwhile were never made
    assert all(name != me for _, name in made)


def test_paced_writes_take_what_was_put_meanwhile_and_close_does_not_wait(tmp_path: Path
                                                                          ) -> None:
    path = tmp_path / "feed.json"
    disk = _Disk()
    writer = LatestFileWriter(path, disk, min_interval=3600.0)
    writer.put(b'{"n": 0}')
    assert disk.entered.acquire(timeout=5)  # the first content goes at once
    for n in range(1, 20):
        writer.put(json.dumps({"n": n}).encode())
    assert not disk.entered.acquire(timeout=0.3)  # held for the interval, not written
    writer.close()  # writes what waits now, within close's own timeout
    assert json.loads(path.read_bytes()) == {"n": 19}
    assert writer.written == 2


class _SteppedDisk(_Disk):
    """A disk that lets one write through per ``passes.release()``: each write is at the
    disk (``entered``) and held there until it is given a pass."""

    def __init__(self) -> None:
        super().__init__()
        self.passes = threading.Semaphore(0)

    def before_write(self, path: Path) -> None:
        self.entered.release()
        assert self.passes.acquire(timeout=10)
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))


def test_a_failed_write_is_raised_by_the_next_put_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "feed.json"
    disk = _SteppedDisk()
    writer = LatestFileWriter(path, disk)
    writer.put(b"1")
    assert disk.entered.acquire(timeout=5)
    disk.passes.release()  # "1" is written
    writer.put(b"2")
    assert disk.entered.acquire(timeout=5)  # the write of "2" is at the disk, held
    writer.put(b"3")  # nothing has failed yet
    disk.full = True
    disk.passes.release()  # "2" fails, and is recorded before "3" is taken to the disk
    assert disk.entered.acquire(timeout=5)
    with pytest.raises(OSError, match=r"feed\.json"):
        writer.put(b"4")
    disk.full = False
    disk.passes.release()  # "3" is written
    writer.close()
    assert path.read_bytes() == b"3"  # never the failed content, never a partial one


def test_close_raises_the_failure_of_the_last_write(tmp_path: Path) -> None:
    disk = _Disk()
    disk.full = True
    writer = LatestFileWriter(tmp_path / "feed.json", disk)
    writer.put(b"1")
    with pytest.raises(OSError, match=r"feed\.json"):
        writer.close()
    assert not (tmp_path / "feed.json").exists()


def test_close_writes_what_is_waiting_and_ends_the_thread(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "feed.json"
    writer = LatestFileWriter(path)
    writer.put(b"last")
    writer.close()
    assert path.read_bytes() == b"last"
    with pytest.raises(RuntimeError, match="closed"):
        writer.put(b"after")
