"""Fuzz case generators and runners (issue 15, deliverable 5), for the tests and the bench.

Each runner generates ``n`` cases with hypothesis (seeded, no example database), runs each
through the real thing, and returns ``(cases, failures)``: how many cases ran and a list
of one-line descriptions of those that broke the rule. It never raises for a failing case,
so a bench can count at scale; the tests assert ``failures == []``.

* :func:`fuzz_configs` mutates the shipped ``config.yaml`` (wrong types, unknown and
  missing keys, deep nesting, huge integers, odd unicode, duplicate names and YAML keys,
  truncation, foreign bytes, a module with import side effects) and runs
  ``supervisor.host.cli.main(["check-config", path])`` in-process, a few cases through a real
  subprocess. Rule: exit 0 with ``ok (N actors)``, N >= 1, or exit 2 with ``invalid
  configuration in PATH`` and one ``key: reason`` line per problem; no traceback, nothing
  unprintable on stderr, and no foreign module imported.
* :func:`fuzz_control` sends random, malformed, deep and huge request lines to a real
  :class:`~supervisor.host.control.ControlServer` on a real unix socket. Rule: each line gets one
  protocol reply (``{"ok": false, ...}`` unless it happened to be a valid request), no
  thread dies, and ``status`` still works afterwards.
* :func:`fuzz_market` feeds hostile bars (NaN, inf, negative, zero, huge, high < low,
  repeated or backward timestamps, strings) to ``check_bar``, hostile CSV files to the CSV
  replay, and some of those files to a real market actor. Rule: a bad bar is refused with
  a known reason and counted; nothing raises; only good bars, in time order, reach a
  subscriber.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "config.yaml"
Result = tuple[int, list[str]]

__all__ = ["fuzz_configs", "fuzz_control", "fuzz_market"]


def _run_cases(n: int, seed: int, strategy: st.SearchStrategy[Any],
               check: Callable[[Any], str | None]) -> Result:
    """Run ``check`` on ``n`` examples of ``strategy``; ``check`` returns None or what went
    wrong."""
    count = 0
    failures: list[str] = []

    @hypothesis_seed(seed)
    @settings(max_examples=n, database=None, deadline=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def run(case: Any) -> None:
        nonlocal count
        count += 1
        try:
            problem = check(case)
        except Exception as exc:  # the runner's own trouble counts as a failure too
            problem = f"the check raised {type(exc).__name__}: {exc}"
        if problem is not None:
            failures.append(f"{problem} [case: {_short(case)}]")

    if n > 0:
        run()
    return count, failures


def _short(value: Any, limit: int = 300) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


# == configs ==================================================================================
_YamlLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_YamlDumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_LINE = re.compile(r"^  (\S.*?): (.+)$")
_LOCATION = re.compile(r"^(\(file\)|\(top level\)|line \d+, column \d+|\(config translator )")
_MARKER_MODULE = "fuzz_side_effect_"


def _shipped() -> dict[str, Any]:
    raw = yaml.load(SHIPPED.read_text(encoding="utf-8"), Loader=_YamlLoader)
    assert isinstance(raw, dict)
    return raw


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key path in ``node`` (dict keys and list indexes)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*prefix, key)
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield (*prefix, i)
            yield from _paths(value, (*prefix, i))


def _children(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        for child in node.get("children") or []:
            if isinstance(child, dict):
                yield child
                yield from _children(child)


def _parent(raw: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        raw = raw[part]
    return raw


_odd_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12) | st.sampled_from(
    ["", "\x00", "\u202eevil", "\u200b", "e\u0301", "\U0001f600", "-", "a/b", "../x",
     "x" * 300, "\ufeff", "\x1b[31m", "true", "null", "~", "1e999", "0x1F", ".inf"])
_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True) | _odd_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_odd_text, inner, max_size=3),
    max_leaves=6)

_STRUCTURAL = ("wrong_type", "unknown_key", "missing_key", "duplicate_name", "deep",
               "huge_int", "odd_unicode", "foreign_module", "tweak_number")
_TEXTUAL = ("duplicate_line", "truncate", "foreign_bytes")


@st.composite
def config_case(draw: st.DrawFn) -> dict[str, Any]:
    """One config case: ``kind`` and the file's ``data`` (bytes), and ``mutated``, the top
    section a single structural mutation touched (for checking the error names it)."""
    if draw(st.integers(0, 19)) == 0:
        return {"kind": "raw_bytes", "data": draw(st.binary(max_size=400)), "mutated": None}
    raw = _shipped()
    kinds = draw(st.lists(st.sampled_from(_STRUCTURAL), min_size=0, max_size=3))
    placeholders: dict[str, str] = {}
    mutated: set[str] = set()
    for kind in kinds:
        paths = list(_paths(raw))
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = _parent(raw, path)
        if kind == "wrong_type":
            parent[path[-1]] = draw(_values)
        elif kind == "unknown_key":
            target = parent[path[-1]] if isinstance(parent[path[-1]], dict) else parent
            if isinstance(target, dict):
                target[draw(_odd_text.filter(lambda k: not k.startswith("x-")))] = draw(_values)
        elif kind == "missing_key":
            del parent[path[-1]]
        elif kind == "duplicate_name":
            nodes = list(_children(raw.get("tree")))
            if len(nodes) >= 2:
                a, b = draw(st.permutations(nodes))[:2]
                b["name"] = a.get("name")
            mutated.add("tree")
            continue
        elif kind == "deep":
            token = f"__deep{len(placeholders)}__"
            depth = draw(st.sampled_from([65, 100, 1000, 2000, 5000]))
            placeholders[token] = "[" * depth + "]" * depth
            parent[path[-1]] = token
        elif kind == "huge_int":
            token = f"__int{len(placeholders)}__"
            digits = draw(st.sampled_from([30, 400, 4300, 4301, 5000, 20000]))
            placeholders[token] = "9" * digits
            parent[path[-1]] = token
        elif kind == "odd_unicode":
            text = draw(_odd_text)
            if isinstance(path[-1], str) and draw(st.booleans()):
                parent[text] = parent.pop(path[-1])
            else:
                parent[path[-1]] = text
        elif kind == "foreign_module":
            nodes = [n for n in _children(raw.get("tree")) if "actor" in n]
            target = draw(st.sampled_from(["actor", "observer", "fallback"]))
            name = "{module}:" + draw(st.sampled_from(["Thing", "Missing", "thing"]))
            if target == "observer" and isinstance(raw.get("runtime"), dict):
                raw["runtime"]["observer"] = name
                mutated.add("runtime")
            elif nodes:
                node = draw(st.sampled_from(nodes))
                if target == "fallback":
                    node["fallback"] = {"actor": name}
                else:
                    node["actor"] = name
                    node.pop("settings", None)
                mutated.add("tree")
            continue
        elif kind == "tweak_number":
            value = parent[path[-1]]
            if isinstance(value, int | float) and not isinstance(value, bool):
                parent[path[-1]] = draw(st.sampled_from([0, -1, 1, 2, 10**9 + 1, 0.5]))
        mutated.add(str(path[0]))
    try:
        if draw(st.integers(0, 2)):  # JSON is YAML too, and much faster to write
            text = json.dumps(raw, ensure_ascii=False, indent=1, default=str)
        else:
            text = yaml.dump(raw, Dumper=_YamlDumper, allow_unicode=True, sort_keys=False,
                             width=1000)
    except (yaml.YAMLError, ValueError, TypeError, RecursionError):
        text = "tree: {children: [}\n"
    for token, replacement in placeholders.items():
        text = text.replace(token, replacement)
    data = text.encode("utf-8")
    kind = "+".join(kinds) or "shipped"
    if draw(st.integers(0, 4)) == 0:
        textual = draw(st.sampled_from(_TEXTUAL))
        kind += "+" + textual
        lines = data.split(b"\n")
        if textual == "duplicate_line":
            i = draw(st.integers(0, max(len(lines) - 1, 0)))
            lines.insert(i, lines[i])
            data = b"\n".join(lines)
        elif textual == "truncate":
            data = data[: draw(st.integers(0, len(data)))]
        else:
            at = draw(st.integers(0, len(data)))
            data = data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
        mutated = {"?"}
    return {"kind": kind, "data": data,
            "mutated": next(iter(mutated)) if len(kinds) == 1 and len(mutated) == 1 else None}


class _ConfigChecker:
    """Writes each case to a file in ``directory`` and judges ``check-config``'s answer.

    A module named ``fuzz_side_effect_<id>`` that writes a marker file when imported sits
    on ``sys.path``; cases name it, and it must never run during a check.
    """

    def __init__(self, directory: Path, subprocess_every: int) -> None:
        self.directory = directory
        self.module = f"{_MARKER_MODULE}{uuid.uuid4().hex}"
        self.marker = directory / "imported"
        (directory / f"{self.module}.py").write_text(
            f"open({str(self.marker)!r}, 'w').write('ran')\n"
            "from supervisor import SupervisedActor\n"
            "class Thing(SupervisedActor):\n    pass\n", encoding="utf-8")
        self.subprocess_every = subprocess_every
        self.serial = 0

    def __call__(self, case: dict[str, Any]) -> str | None:
        self.serial += 1
        path = self.directory / f"case{self.serial}.yaml"
        path.write_bytes(case["data"].replace(b"{module}", self.module.encode()))
        try:
            if self.subprocess_every and self.serial % self.subprocess_every == 0:
                code, out, err = self._subprocess(path)
            else:
                code, out, err = self._in_process(path)
            return self._judge(path, case, code, out, err)
        finally:
            path.unlink(missing_ok=True)

    def _in_process(self, path: Path) -> tuple[int | str, str, str]:
        from supervisor.host.cli import main

        out, err = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code: int | str = main(["check-config", str(path)])
        except BaseException as exc:  # what a user would see as a traceback
            code = f"raised {type(exc).__name__}: {_short(str(exc), 200)}"
        return code, out.getvalue(), err.getvalue()

    def _subprocess(self, path: Path) -> tuple[int | str, str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(self.directory), str(ROOT)])
        proc = subprocess.run([sys.executable, "-m", "supervisor.host.cli", "check-config",
                               str(path)], capture_output=True, text=True, env=env,
                              timeout=60, check=False, errors="replace")
        return proc.returncode, proc.stdout, proc.stderr

    def _judge(self, path: Path, case: dict[str, Any], code: int | str, out: str,
               err: str) -> str | None:
        if self.marker.exists() or self.module in sys.modules:
            self.marker.unlink(missing_ok=True)
            sys.modules.pop(self.module, None)
            return f"{case['kind']}: check-config imported a foreign module"
        if not isinstance(code, int):
            return f"{case['kind']}: {code}"
        if "Traceback" in out + err:
            return f"{case['kind']}: a traceback: {_short(err)}"
        if any(not (ch.isprintable() or ch == "\n") for ch in out + err):
            return f"{case['kind']}: unprintable characters in the output"
        if code == 0:
            first = out.splitlines()[0] if out else ""
            m = re.fullmatch(re.escape(str(path)) + r": ok \((\d+) actors\)", first)
            if m is None or int(m.group(1)) < 1:
                return f"{case['kind']}: exit 0 without 'ok (N actors)': {_short(out)}"
            return None
        if code != 2:
            return f"{case['kind']}: exit {code}: {_short(err)}"
        lines = err.rstrip("\n").split("\n")
        if lines[0] != f"botvisor: invalid configuration in {path}:" or len(lines) < 2:
            return f"{case['kind']}: exit 2 without the file named: {_short(err)}"
        keys = []
        for line in lines[1:]:
            m = _LINE.match(line)
            if m is None:
                return f"{case['kind']}: a problem line without 'key: reason': {line!r}"
            keys.append(m.group(1))
        section = case.get("mutated")
        if section and section != "?" and not section.startswith("x-") and not any(
                k.split(".")[0].split("[")[0].split(" > ")[0] == section or _LOCATION.match(k)
                or k.startswith(("circuit_breaker", "max_", "position_", "enable_"))
                for k in keys):
            return f"{case['kind']}: no problem names a key under {section!r}: {keys}"
        return None


def fuzz_configs(n: int = 1000, seed: int = 0, *, subprocess_cases: int = 3) -> Result:
    """``n`` mutated configs through ``check-config`` (``subprocess_cases`` of them in a
    real subprocess, spread evenly); returns ``(cases, failures)``."""
    with tempfile.TemporaryDirectory(prefix="botvisor-fuzz-config-") as tmp:
        directory = Path(tmp)
        every = max(n // subprocess_cases, 1) if subprocess_cases else 0
        checker = _ConfigChecker(directory, every)
        sys.path.insert(0, str(directory))
        try:
            return _run_cases(n, seed, config_case(), checker)
        finally:
            with contextlib.suppress(ValueError):
                sys.path.remove(str(directory))
            sys.modules.pop(checker.module, None)


# == the control socket =======================================================================
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | _odd_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_odd_text, inner, max_size=4),
    max_leaves=10)
_COMMANDS = ["ping", "status", "tree", "stop", "start", "restart", "reload", "events",
             "thing", "breaker", "nope"]


@st.composite
def control_line(draw: st.DrawFn) -> bytes:
    """One request line (no newline inside): garbage, JSON, protocol-shaped or hostile."""
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.binary(max_size=300)).replace(b"\n", b"")
    if kind == 1:
        depth = draw(st.integers(1, 32_000))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        return (opener * depth + "1" + closer * depth).encode()
    if kind == 2:
        digits = draw(st.sampled_from([4300, 4301, 5000, 60_000]))
        return ('{"cmd": "events", "args": {"limit": ' + "7" * digits + "}}").encode()
    if kind == 3:
        return b'{"cmd": "' + b"x" * draw(st.integers(65_000, 200_000)) + b'"}'
    if kind == 4:
        return json.dumps(draw(_json_values), ensure_ascii=draw(st.booleans())).encode(
            "utf-8", "surrogatepass")
    args: Any = draw(st.dictionaries(
        st.sampled_from(["name", "actor", "limit", "follow", "command", "args", "reason",
                         "extra"]) | _odd_text, _json_values, max_size=4))
    if kind == 5:
        args = draw(_json_values)
    request: dict[str, Any] = {"cmd": draw(st.sampled_from(_COMMANDS) | _odd_text),
                               "args": args}
    if draw(st.integers(0, 4)) == 0:
        request[draw(_odd_text)] = draw(_json_values)
    if args == {} and request["cmd"] == "events":
        args["follow"] = False
    return json.dumps(request, ensure_ascii=draw(st.booleans())).encode(
        "utf-8", "surrogatepass")


class _ControlChecker:
    """Sends each line on one connection (a new one when the server closed it) and checks
    that one protocol reply comes back; every ``status_every`` cases, ``status`` works."""

    def __init__(self, path: Path, status_every: int = 25) -> None:
        from supervisor.host.control_protocol import LineReader

        self.path = path
        self.status_every = status_every
        self.serial = 0
        self._reader_type = LineReader
        self.sock: socket.socket | None = None
        self.reader: Any = None

    def _connect(self) -> None:
        self.close()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(20.0)
        sock.connect(str(self.path))
        self.sock, self.reader = sock, self._reader_type(sock, 1 << 26)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock = None

    def __call__(self, line: bytes) -> str | None:
        from supervisor.host.control_protocol import ControlClient

        self.serial += 1
        if self.sock is None:
            self._connect()
        assert self.sock is not None
        try:
            self.sock.sendall(line + b"\n")
            reply_line = self.reader.next()
        except OSError as exc:
            self.close()
            return f"no reply: {type(exc).__name__}: {exc}"
        if not isinstance(reply_line, bytes):
            self.close()
            return "no reply line (the server closed the connection)"
        try:
            reply = json.loads(reply_line)
        except ValueError:
            return f"a reply that is not JSON: {_short(reply_line)}"
        if not isinstance(reply, dict) or not isinstance(reply.get("ok"), bool):
            return f"not a protocol reply: {_short(reply)}"
        if not reply["ok"] and not isinstance(reply.get("error"), str):
            return f"an error reply without an error: {_short(reply)}"
        if any(not (ch.isprintable() or ch in " ") for ch in str(reply.get("error", ""))):
            return "an error reply with unprintable characters"
        result = reply.get("result")
        if reply["ok"] and isinstance(result, dict) and result.get("follow"):
            self.close()  # a follower now streams events: start a new connection
        if self.serial % self.status_every == 0:
            status = ControlClient(self.path, timeout=20.0).request("status")
            if status.get("ok") is not True:
                return f"status failed afterwards: {_short(status)}"
        return None


def fuzz_control(n: int = 300, seed: int = 0) -> Result:
    """``n`` request lines to a real ControlServer over a unix socket; returns
    ``(cases, failures)``. A thread that dies with an exception is a failure too."""
    from supervisor import ChildSpec, Runtime, SupervisorSpec
    from supervisor.host.config import ControlModel
    from supervisor.host.control import ControlServer
    from supervisor.host.control_protocol import ControlClient
    from tests.support.fixture_actors import Echo

    died: list[str] = []
    previous_hook = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        died.append(f"a thread died: {args.exc_type.__name__}: {args.exc_value}")

    with tempfile.TemporaryDirectory(prefix="botvisor-fuzz-ctl-") as tmp:
        path = Path(tmp) / "ctl.sock"
        runtime = Runtime(monitor_interval=0)
        runtime.start(SupervisorSpec(children=(
            ChildSpec("w1", factory=lambda: Echo(Echo.Settings(label="w1"))),
            ChildSpec("w2", factory=lambda: Echo(Echo.Settings(label="w2"))),
        )))
        server = ControlServer(ControlModel(targets={"thing": "w1"}), path=path)
        checker = _ControlChecker(path)
        threading.excepthook = hook
        try:
            server.serve(runtime)
            cases, failures = _run_cases(n, seed, control_line(), checker)
            checker.close()
            final = ControlClient(path, timeout=20.0).request("status")
            if final.get("ok") is not True:
                failures.append(f"status failed at the end: {_short(final)}")
        finally:
            threading.excepthook = previous_hook
            checker.close()
            server.close()
            runtime.stop()
    return cases, failures + died


# == market data ==============================================================================
_REASONS = {"not_a_number", "not_finite", "non_positive_price", "price_too_large",
            "negative_volume",
            "high_below_low", "outside_range", "duplicate_timestamp", "out_of_order",
            "missing_field", "unreadable_row"}
_hostile_numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0.5, max_value=2.0),
    st.integers(min_value=-3, max_value=3),
    st.sampled_from([10**400, -(10**400), 1e308, 5e-324, 0.0, -0.0, True, None, "1.0",
                     "nan", b"1", [1.0]]),
)


def usable(bar: Any, last_at: float | None) -> bool:
    """What a usable bar is, written out plainly (the reference for ``check_bar``)."""
    fields = (bar.open, bar.high, bar.low, bar.close, bar.volume, bar.at)
    if any(type(v) not in (int, float) for v in fields):
        return False
    try:
        if any(not math.isfinite(v) for v in fields):
            return False
    except OverflowError:
        return False
    return (min(bar.open, bar.high, bar.low, bar.close) > 0 and bar.volume >= 0
            and max(bar.open, bar.high, bar.low, bar.close) <= 1e12  # no market's price
            and bar.low <= bar.open <= bar.high and bar.low <= bar.close <= bar.high
            and (last_at is None or bar.at > last_at))


def _check_one_bar(case: tuple[tuple[Any, ...], float | None]) -> str | None:
    from actors.market.contract import BadBar, Bar
    from actors.market.data import check_bar

    (o, h, lo, c, v, at), last = case
    bar = Bar("FUZZ/USDT", at, o, h, lo, c, v)
    try:
        check_bar(bar, last)
        accepted = True
    except BadBar as bad:
        if bad.reason not in _REASONS:
            return f"an unknown reason {bad.reason!r}"
        accepted = False
    except Exception as exc:
        return f"check_bar raised {type(exc).__name__}: {exc}"
    if accepted is not usable(bar, last):
        return f"check_bar {'accepted' if accepted else 'refused'} it"
    return None


_cells = st.one_of(
    st.sampled_from(["1", "2", "0.5", "1.5", "10", "", " ", "nan", "NaN", "inf", "-inf",
                     "-1", "0", "1e999", "9" * 5000, "abc", "\x00", "\u202e1", "1,5",
                     '"1"', "0x10", "1_0", "\ufeff1"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=6),
)


@st.composite
def csv_file(draw: st.DrawFn) -> bytes:
    """A CSV file of OHLCV rows, some hostile: bad cells, short and long rows, backward and
    repeated timestamps, foreign bytes."""
    header = draw(st.sampled_from([
        "timestamp,open,high,low,close,volume", "timestamp,open,high,low,close",
        "open,timestamp,high,low,close,volume,extra"]))
    rows = [header]
    t = draw(st.integers(0, 10**6)) * 60_000
    for _ in range(draw(st.integers(0, 12))):
        t += draw(st.sampled_from([60_000, 60_000, 0, -60_000]))
        if draw(st.booleans()):
            rows.append(f"{t},1,2,0.5,1.5,10")
            continue
        cells = [str(t)] + [draw(_cells) for _ in range(draw(st.integers(3, 7)))]
        rows.append(",".join(cells))
    data = "\n".join(rows).encode("utf-8", "surrogatepass") + b"\n"
    if draw(st.integers(0, 4)) == 0:
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\x00", b'"'])) + data[at:]
    return data


class _CsvChecker:
    """Writes each case as ``FUZZ_USDT.csv`` and replays it; every ``actor_every`` cases the
    replay runs in a real market actor whose subscriber must see only good bars."""

    def __init__(self, directory: Path, actor_every: int) -> None:
        self.directory = directory
        self.actor_every = actor_every
        self.serial = 0

    def __call__(self, data: bytes) -> str | None:
        from actors.market.contract import BadBar, Bar
        from actors.market.data import CsvReplay, check_bar

        self.serial += 1
        folder = self.directory / f"csv{self.serial}"
        folder.mkdir()
        (folder / "FUZZ_USDT.csv").write_bytes(data)
        try:
            items = list(CsvReplay(folder))
        except Exception as exc:
            return f"the CSV replay raised {type(exc).__name__}: {exc}"
        last: float | None = None
        good = 0
        for item in items:
            if isinstance(item, BadBar):
                if item.reason not in _REASONS:
                    return f"an unknown reason {item.reason!r}"
                continue
            if not isinstance(item, Bar):
                return f"the replay yielded {type(item).__name__}"
            try:
                check_bar(item, last)
            except BadBar:
                continue
            last = item.at
            good += 1
        if self.actor_every and self.serial % self.actor_every == 0:
            return _market_actor_run(folder, len(items), good)
        return None


def _market_actor_run(folder: Path, items: int, good: int) -> str | None:
    """The CSV replay in a real MarketActor: every item is passed on or counted as
    rejected, and the subscriber sees only good bars, in time order."""
    from actors.market.contract import Bars, GetMarketStats, MarketStats
    from actors.market.feed import MarketActor
    from supervisor import ChildSpec, Runtime, SupervisorSpec
    from tests.support.bot_helpers import wait_until
    from tests.support.position_helpers import Inbox

    try:
        market = MarketActor.Settings(source="csv", csv_dir=str(folder), subscribers=("tape",),
                                      positions="sink", breaker="sink", alerts="sink",
                                      speed=1e9, crash_at_bar=None, clock_file=None)
    except ValueError as exc:  # no *.csv: impossible here
        return f"the market settings were refused: {exc}"
    rt = Runtime(ask_timeout=10.0, monitor_interval=0)
    try:
        rt.start(SupervisorSpec(children=(
            ChildSpec("tape", factory=Inbox),
            ChildSpec("sink", factory=Inbox),
            ChildSpec("market", factory=lambda: MarketActor(market)),
        )))

        def done() -> MarketStats | None:
            stats: MarketStats = rt.ask("market", GetMarketStats())
            return stats if stats.finished else None

        stats = wait_until(done, timeout=20.0, what="the CSV replay to finish")
        bars = [b for m in rt.ask("tape", "get") if isinstance(m, Bars) for b in m.bars]
        restarts = sum(n.restarts for n in (rt.tree() or _no_tree()).walk())
    finally:
        rt.stop()
    if restarts:
        return f"the market restarted {restarts} time(s)"
    if stats.bars != good or stats.bars + sum(stats.rejected.values()) != items:
        return (f"the market passed {stats.bars} and rejected {stats.rejected} of {items} "
                f"items ({good} good)")
    last: float | None = None
    for bar in bars:
        if not usable(bar, last):
            return f"a bad bar reached a subscriber: {bar}"
        last = bar.at
    return None


def _no_tree() -> Any:
    raise AssertionError("the market's tree is gone")


def fuzz_market(n: int = 600, seed: int = 0, *, actor_runs: int = 3) -> Result:
    """``n`` cases: about four in five single hostile bars through ``check_bar`` (against
    :func:`usable`), the rest hostile CSV files through the replay, ``actor_runs`` of those
    in a real market actor; returns ``(cases, failures)``."""
    bar_cases = n - n // 5
    cases, failures = _run_cases(
        bar_cases, seed,
        st.tuples(st.tuples(*[_hostile_numbers] * 6),
                  st.one_of(st.none(), st.floats(min_value=-5, max_value=5))),
        _check_one_bar)
    with tempfile.TemporaryDirectory(prefix="botvisor-fuzz-market-") as tmp:
        csv_cases = n - bar_cases
        every = max(csv_cases // actor_runs, 1) if actor_runs else 0
        more, more_failures = _run_cases(csv_cases, seed + 1, csv_file(),
                                         _CsvChecker(Path(tmp), every))
    return cases + more, failures + more_failures
