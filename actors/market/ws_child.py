"""The websocket feed's venue in a child process: ccxt.pro's parsing off the bot's interpreter.

Every websocket message costs ccxt.pro and aiohttp about a tenth of a millisecond of
Python; in the bot's process that is time under its one interpreter lock, which every
actor's thread then waits for (``docs/benchmarks.md``, the live feed). :class:`ChildVenue`
has :class:`~actors.market.ws_venue.CcxtVenue`'s interface and runs one in a child process
(:func:`child_main`), over a pipe:

- parent to child: ``("call", id, name, args)`` (``load_markets``, ``fetch_ohlcv``),
  ``("stream", id)``, ``("cancel", id)``, ``("close",)``;
- child to parent: ``("rows", [(symbol, rows), ...])`` (every update the child took in,
  in order: those of one turn of its loop, or of ``ROWS_GAP`` while they come faster),
  ``("result", id, value)``, ``("error", id, exception)``, ``("log", level, logger,
  text)`` (the child's WARNING and above, logged by the parent).

The parent reads the pipe from its loop (``add_reader``) and hands the rows to
``on_rows`` as they come, so the worker's tracker, checks and messages stay in the parent;
only the exchange is in the child. An exception crosses as itself (ccxt's classes pickle),
so the runtime's error handler classifies it as it would in one process. A child that dies
fails what is under way with ``ccxt.NetworkError``: the worker starts a new session, and the
next call starts a new child. A child whose parent dies reads the end of the pipe and exits.

Children are forked from a ``forkserver`` that has ccxt.pro imported (spawned where there is
no forkserver), so a new child starts in milliseconds after the first. Once the markets are
loaded, the child freezes what is alive out of the collector's walks (as ``botvisor run``
does), so a full collection does not stall the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import multiprocessing as mp
import pickle
import signal
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

from actors.market.ws_venue import CcxtVenue, OnRows
from supervisor.host.gc_freeze import freeze_startup_objects

log = logging.getLogger(__name__)

__all__ = ["ChildVenue", "child_main"]

# seconds between two messages of rows: a busy stream's updates go in fewer, larger ones
# (each costs the bot's threads a wake-up); the first after a quiet gap goes at once
ROWS_GAP = 0.0005
READS_PER_TURN = 64  # pipe messages the parent's loop reads before it lets other work run
CLOSE_WAIT = 2.0  # seconds a closing child has to end before it is killed


def _context() -> Any:
    """The forkserver context, ccxt.pro preloaded (spawn where there is none)."""
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["ccxt.pro", "actors.market.ws_child"])
        return ctx
    return mp.get_context("spawn")


class ChildVenue:
    """Owns the child process and its pipe, and the calls under way (module docstring).
    Used from one asyncio loop."""

    def __init__(self, exchange_id: str, options: dict[str, Any], symbols: Sequence[str],
                 timeframe: str, source: str) -> None:
        self._spec = {"exchange_id": exchange_id, "options": dict(options),
                      "symbols": tuple(symbols), "timeframe": timeframe, "source": source}
        self.source = source
        self._conn: Connection | None = None
        self._proc: Any = None
        self._calls: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._on_rows: OnRows | None = None
        self._stream_id = 0

    @property
    def pid(self) -> int | None:
        """The child process's id while one runs (None before the first call)."""
        proc = self._proc
        return None if proc is None else proc.pid

    async def load_markets(self) -> None:
        await self._call("call", "load_markets", ())

    async def fetch_ohlcv(self, symbol: str, timeframe: str, since: int, limit: int
                          ) -> list[list[Any]]:
        rows: list[list[Any]] = await self._call("call", "fetch_ohlcv",
                                                 (symbol, timeframe, since, limit))
        return rows

    async def stream(self, on_rows: OnRows) -> None:
        self._on_rows = on_rows
        try:
            await self._call("stream")
        finally:
            self._on_rows = None

    async def close(self) -> None:
        conn, proc = self._conn, self._proc
        self._detach()
        if conn is not None:
            with contextlib.suppress(OSError, ValueError):
                conn.send(("close",))
            conn.close()
        if proc is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._end, proc)

    # -- inside ----------------------------------------------------------------------------
    @staticmethod
    def _end(proc: Any) -> None:
        proc.join(CLOSE_WAIT)
        if proc.is_alive():
            proc.kill()
            proc.join(CLOSE_WAIT)

    def _ensure(self) -> Connection:
        if self._conn is not None:
            return self._conn
        ctx = _context()
        parent: Connection
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=child_main, args=(child,), kwargs=self._spec, daemon=True,
                           name=f"market-ws-child-{self._spec['exchange_id']}")
        proc.start()
        child.close()
        self._conn, self._proc = parent, proc
        asyncio.get_running_loop().add_reader(parent.fileno(), self._readable)
        return parent

    async def _call(self, kind: str, *payload: Any) -> Any:
        conn = self._ensure()
        call = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._calls[call] = future
        if kind == "stream":
            self._stream_id = call
        try:
            conn.send((kind, call, *payload))
            return await future
        except (OSError, ValueError) as exc:  # the pipe broke under the send
            self._lost(exc)
            return await future
        finally:
            self._calls.pop(call, None)
            if not future.done() and self._conn is conn:
                with contextlib.suppress(OSError, ValueError):
                    conn.send(("cancel", call))

    def _readable(self) -> None:
        conn = self._conn
        if conn is None:
            return
        for _ in range(READS_PER_TURN):
            try:
                if not conn.poll():
                    return
                message = conn.recv()
            except (EOFError, OSError) as exc:
                self._lost(exc)
                return
            kind = message[0]
            if kind == "rows":
                self._rows(message[1])
            elif kind == "result":
                self._settle(message[1], result=message[2])
            elif kind == "error":
                self._settle(message[1], error=message[2])
            elif kind == "log":
                logging.getLogger(message[2]).log(message[1], "%s", message[3])

    def _rows(self, batch: list[tuple[str, list[list[Any]]]]) -> None:
        on_rows = self._on_rows
        if on_rows is None:
            return
        try:
            for symbol, rows in batch:
                on_rows(symbol, rows)
        except Exception as exc:  # the worker's own failure: it ends the stream
            self._settle(self._stream_id, error=exc)

    def _settle(self, call: int, *, result: Any = None,
                error: BaseException | None = None) -> None:
        future = self._calls.get(call)
        if future is None or future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def _lost(self, exc: BaseException) -> None:
        """The child ended (or its pipe broke): what is under way fails as a network error,
        and the next call starts a new child."""
        import ccxt

        proc = self._proc
        self._detach()
        if proc is not None:
            proc.join(0)
        code = None if proc is None else proc.exitcode
        for future in list(self._calls.values()):
            if not future.done():
                future.set_exception(ccxt.NetworkError(
                    f"market feed {self.source}: the venue's child process ended (exit "
                    f"{code}, {type(exc).__name__})"))

    def _detach(self) -> None:
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(ValueError, OSError, RuntimeError):
                asyncio.get_running_loop().remove_reader(conn.fileno())
        self._conn = self._proc = None


# -- the child ---------------------------------------------------------------------------------
def child_main(conn: Connection, *, exchange_id: str, options: dict[str, Any],
               symbols: Sequence[str], timeframe: str, source: str) -> None:
    """The child process: a CcxtVenue served over ``conn`` until ``("close",)`` or the end
    of the pipe. Ctrl-C is the parent's to handle."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    root = logging.getLogger()
    root.handlers[:] = [_PipeLog(conn)]
    root.setLevel(logging.WARNING)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(conn, lambda: CcxtVenue(exchange_id, options, symbols, timeframe,
                                                   source)))


class _PipeLog(logging.Handler):
    """The child's log records, sent for the parent to log."""

    def __init__(self, conn: Connection) -> None:
        super().__init__(logging.WARNING)
        self._conn = conn

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self._conn.send(("log", record.levelno, record.name, record.getMessage()))


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it pickles (ccxt's exceptions do), else a ccxt.NetworkError naming it."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        import ccxt

        error: BaseException = ccxt.NetworkError(f"{type(exc).__name__}: {exc}")
        return error
    return exc


async def _serve(conn: Connection, make: Callable[[], CcxtVenue]) -> None:
    """Serve the venue ``make`` builds (in this loop: ccxt binds its session to it)."""
    loop = asyncio.get_running_loop()
    venue = make()
    ended: asyncio.Future[None] = loop.create_future()
    tasks: dict[int, asyncio.Task[None]] = {}
    pending: list[tuple[str, list[list[Any]]]] = []

    def send(message: tuple[Any, ...]) -> None:
        try:
            conn.send(message)
        except (OSError, ValueError):  # the parent is gone
            if not ended.done():
                ended.set_result(None)

    flushed = [0.0]  # (the loop's time) when rows were last sent

    def flush() -> None:
        batch = pending[:]
        pending.clear()
        if batch:
            flushed[0] = loop.time()
            send(("rows", batch))

    def on_rows(symbol: str, rows: list[list[Any]]) -> None:
        if not pending:  # at the end of this turn, and at most one message per ROWS_GAP
            loop.call_at(max(loop.time(), flushed[0] + ROWS_GAP), flush)
        pending.append((symbol, rows))

    async def run(call: int, work: Any, *, freeze: bool = False) -> None:
        try:
            result = await work
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            flush()  # the rows before the failure go first
            send(("error", call, _portable(exc)))
        else:
            if freeze:  # the markets are loaded: what is alive now stays, out of gc's walks
                freeze_startup_objects()
            send(("result", call, result))
        finally:
            tasks.pop(call, None)

    def readable() -> None:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            message = ("close",)
        kind = message[0]
        if kind == "call":
            _, call, name, args = message
            tasks[call] = loop.create_task(run(call, getattr(venue, name)(*args),
                                               freeze=name == "load_markets"))
        elif kind == "stream":
            tasks[message[1]] = loop.create_task(run(message[1], venue.stream(on_rows)))
        elif kind == "cancel":
            task = tasks.pop(message[1], None)
            if task is not None:
                task.cancel()
        elif not ended.done():  # close
            ended.set_result(None)

    loop.add_reader(conn.fileno(), readable)
    try:
        await ended
    finally:
        loop.remove_reader(conn.fileno())
        for task in list(tasks.values()):
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        with contextlib.suppress(Exception):
            await venue.close()
