"""ReplyFuture behaves as a pykka future: timeouts, exceptions, many waiters, map."""

from __future__ import annotations

import queue
import threading
from concurrent.futures import ThreadPoolExecutor

import pykka
import pytest

from supervisor.future import ReplyFuture


def test_get_times_out_then_gets_the_value_once_set() -> None:
    f: ReplyFuture[int] = ReplyFuture()
    with pytest.raises(pykka.Timeout):
        f.get(timeout=0.01)
    assert not f.done()
    f.set(7)
    assert f.done()
    assert f.get(timeout=0) == 7
    assert f.get() == 7  # again: the value stays


def test_every_waiter_wakes_with_the_value() -> None:
    f: ReplyFuture[str] = ReplyFuture()
    waiting = threading.Barrier(9, timeout=10)

    def wait() -> str:
        waiting.wait()
        return f.get(timeout=10)

    with ThreadPoolExecutor(8) as pool:
        results = [pool.submit(wait) for _ in range(8)]
        waiting.wait()
        f.set("done")
        assert [r.result(timeout=10) for r in results] == ["done"] * 8


def test_exception_is_raised_in_every_getter_and_a_second_set_is_refused() -> None:
    f: ReplyFuture[int] = ReplyFuture()
    err = KeyError("gone")
    f.set_exception((KeyError, err, None))
    for _ in range(2):
        with pytest.raises(KeyError):
            f.get(timeout=1)
    with pytest.raises(queue.Full):
        f.set(1)


def test_map_and_join_work_through_pykka() -> None:
    a: ReplyFuture[int] = ReplyFuture()
    b: ReplyFuture[int] = ReplyFuture()
    doubled = a.map(lambda v: v * 2)
    both = a.join(b)
    a.set(3)
    b.set(4)
    assert doubled.get(timeout=1) == 6
    assert both.get(timeout=1) == [3, 4]
