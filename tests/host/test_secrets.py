"""supervisor.host.secrets: masking URLs, reading secrets, and the runtime's masker in the logs.

The runtime tests log through real loggers to a real :class:`logging.Handler` on the root
logger (as journald's stderr handler would be) and look at what it formatted. The secret
comes from actors that register it with ``secrets_of(ctx.runtime)``, as the bot's actors do.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from supervisor import (
    Backoff,
    ChildSpec,
    EventKind,
    ManualClock,
    Runtime,
    SupervisedActor,
    SupervisorSpec,
)
from supervisor.host.secrets import (
    MASK,
    SecretError,
    SecretMasker,
    mask_url,
    read_secret,
    secret_fragments,
    secrets_of,
)

SECRET = "s3cr3t-Value-9f2c41"  # must never reach a handler while a runtime guards the logs
OTHER = "0th3r-Value-77ab02"  # the secret of a second runtime in the same process
LOGGER = "tests.secrets.leaky"
WAIT = 10.0


# -- mask_url and secret_fragments ------------------------------------------------------------
@pytest.mark.parametrize(("url", "masked"), [
    ("tgram://123456789:AAHsecretBotToken/987654321", "tgram://***:***/***"),
    ("discord://1234567/webhookTOKENxyz", "discord://***/***"),
    ("mailto://alice:hunter2pass@gmail.com", "mailto://***:***@gmail.com"),
    ("json://127.0.0.1:8080/hook/SECRETtoken?key=val123",
     "json://127.0.0.1:8080/***/***?key=***"),
    ("https://hooks.slack.com/services/T00/B00/XXsecretXX",
     "https://hooks.slack.com/***/***/***/***"),
    ("json://[::1]:9000/a/b", "json://[::1]:9000/***/***"),
    ("https://host.example:notaport/x", "https://host.example:***/***"),
    ("https://example.com/x?weird name=1&flag", "https://example.com/***?***&***"),
    ("not a url", "***"),
])
def test_mask_url_keeps_scheme_and_host_only(url: str, masked: str) -> None:
    assert mask_url(url) == masked
    assert all(frag not in masked for frag in secret_fragments(url) if len(frag) > 3)


def test_secret_fragments_cover_the_pieces_and_their_unquoted_forms() -> None:
    url = "mailto://alice:hunter2%40pass@gmail.com/inbox?token=abcdef123"
    found = secret_fragments(url)
    assert {"hunter2%40pass", "hunter2@pass", "abcdef123", url} <= found
    assert "alice" not in found  # shorter than MIN_SECRET: not masked in free text
    masker = SecretMasker()
    masker.add(found)
    assert masker.scrub(f"login failed for hunter2@pass at {url}", urls=False) == (
        f"login failed for {MASK} at {MASK}")


def test_masker_masks_a_traceback_another_handler_formatted_already() -> None:
    masker = SecretMasker()
    masker.add([SECRET])
    try:
        raise RuntimeError(f"request with {SECRET} failed")
    except RuntimeError:
        record = logging.getLogger(LOGGER).makeRecord(
            LOGGER, logging.ERROR, __file__, 1, "failed: %s", ("quietly",), sys.exc_info())
    formatter = logging.Formatter("%(message)s")
    first = formatter.format(record)  # caches the traceback in record.exc_text
    assert SECRET in first and SECRET in (record.exc_text or "")
    assert masker.filter(record) is True
    again = formatter.format(record)
    assert SECRET not in again
    assert again.startswith("failed: quietly\nTraceback (most recent call last):")
    assert again.endswith(f"RuntimeError: request with {MASK} failed")
    assert (record.exc_info, record.exc_text, record.args) == (None, None, None)


# -- read_secret -------------------------------------------------------------------------------
def test_read_secret_from_the_environment() -> None:
    assert read_secret("token", env="TOK", file=None, environ={"TOK": f"  {SECRET}\n"}) == (
        SECRET, "environment variable TOK")
    assert read_secret("token", env=None, file=None, environ={}) == (None, "none")
    environ = {"OTHER": SECRET, "BLANK": "  "}
    with pytest.raises(SecretError) as info:
        read_secret("token", env="BLANK", file=None, environ=environ)
    assert str(info.value) == "token: environment variable BLANK is empty"
    assert (info.value.source, info.value.problem) == (
        "environment variable BLANK", "environment variable BLANK is empty")
    with pytest.raises(SecretError) as info:
        read_secret("", env="UNSET", file=None, environ=environ)
    assert str(info.value) == "environment variable UNSET is not set"  # no "what": no prefix
    assert isinstance(info.value, ValueError)


def test_read_secret_from_a_file_with_variables_in_its_path(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(SECRET + "\n", encoding="utf-8")
    environ = {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    for spelling in ("${CREDENTIALS_DIRECTORY}/token", "$CREDENTIALS_DIRECTORY/token",
                     str(tmp_path / "token")):
        assert read_secret("token", env=None, file=spelling, environ=environ) == (
            SECRET, f"file {spelling}")


def test_read_secret_failures_name_the_source_never_the_value(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(SECRET, encoding="utf-8")
    (tmp_path / "empty").write_text(" \n", encoding="utf-8")
    environ = {"DIR": str(tmp_path), "LEAK": SECRET}
    cases = {
        "${NOPE}/token": "token: file ${NOPE}/token: environment variable NOPE is not set",
        "$DIR/$NOPE2": "token: file $DIR/$NOPE2: environment variable NOPE2 is not set",
        "${DIR}/absent": f"token: cannot read {tmp_path / 'absent'}: No such file or directory",
        "${DIR}": f"token: cannot read {tmp_path}: Is a directory",
        "$DIR/empty": f"token: {tmp_path / 'empty'} is empty",
    }
    for file, message in cases.items():
        with pytest.raises(SecretError) as info:
            read_secret("token", env=None, file=file, environ=environ)
        assert str(info.value) == message
        assert info.value.source == f"file {file}"
        assert SECRET not in str(info.value) + repr(info.value)
        assert info.value.__context__ is None or info.value.__suppress_context__


# -- the runtime's masker ----------------------------------------------------------------------
class Collector(logging.Handler):
    """A real handler, as the process's stderr handler: keeps what it formatted."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.lines: list[str] = []
        self.records: list[logging.LogRecord] = []
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record)
        with self._guard:
            self.lines.append(line)
            self.records.append(record)

    @property
    def text(self) -> str:
        with self._guard:
            return "\n".join(self.lines)


@pytest.fixture
def collector() -> Iterator[Collector]:
    handler = Collector()
    root = logging.getLogger()
    leaky = logging.getLogger(LOGGER)
    level = leaky.level
    leaky.setLevel(logging.DEBUG)
    # First of the root's handlers: it sees each record before any other handler (pytest's
    # own among them) has formatted its traceback into ``exc_text``.
    root.handlers.insert(0, handler)
    yield handler
    root.removeHandler(handler)
    leaky.setLevel(level)


class Leaky(SupervisedActor):
    """Registers its secret with the runtime, then logs it every way it can."""

    def __init__(self, secret: str, fail_first_start: threading.Event | None = None) -> None:
        super().__init__()
        self.secret = secret
        self.fail_first_start = fail_first_start

    def on_start(self) -> None:
        secrets_of(self.ctx.runtime).add([self.secret])
        if self.fail_first_start is not None and not self.fail_first_start.is_set():
            self.fail_first_start.set()
            raise ConnectionError(f"could not log in with {self.secret}")

    def on_receive(self, message: Any) -> Any:
        log = logging.getLogger(LOGGER)
        if message == "log":
            for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR,
                          logging.CRITICAL):
                log.log(level, "using %s (level %d)", self.secret, level)
            log.info(f"inline {self.secret}")
            try:
                raise RuntimeError(f"request with {self.secret} failed")
            except RuntimeError:
                log.exception("the request failed")
            return "logged"
        return None


def start(*children: ChildSpec) -> Runtime:
    """A started runtime; used as a context manager, which stops it."""
    rt = Runtime(clock=ManualClock(), ask_timeout=WAIT, monitor_interval=0)
    rt.start(SupervisorSpec(backoff=Backoff(initial=0, jitter=0), children=children))
    return rt


def test_a_registered_secret_never_reaches_a_root_handler(
    collector: Collector, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    failed_once = threading.Event()
    with start(ChildSpec("leaky", factory=lambda: Leaky(SECRET, failed_once))) as rt:
        assert rt.ask("leaky", "log") == "logged"  # waits in the mailbox for the replacement
        failed = [e.actor for e in rt.events.recent() if e.kind is EventKind.START_FAILED]
    assert failed_once.is_set() and failed == ["leaky"]

    text = collector.text
    assert SECRET not in text
    assert SECRET not in "\n".join(r.getMessage() for r in collector.records)
    assert SECRET not in caplog.text  # pytest's handlers on the root are guarded too
    assert f"request with {MASK} failed" in caplog.text
    for level in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        assert f"{level} {LOGGER}: using {MASK} (level " in text
    assert f"inline {MASK}" in text
    # the tracebacks are still there, masked: the handler's own exception...
    assert "the request failed\nTraceback (most recent call last):" in text
    assert f"RuntimeError: request with {MASK} failed" in text
    # ...and the runtime's report of the failed start
    assert "leaky failed to start\nTraceback" in text
    assert f"ConnectionError: could not log in with {MASK}" in text
    assert all(r.exc_info is None for r in collector.records if "Traceback" in r.getMessage())


def test_records_without_secrets_are_left_alone(collector: Collector) -> None:
    log = logging.getLogger(LOGGER)
    with start(ChildSpec("leaky", factory=lambda: Leaky(SECRET))) as rt:
        [masker] = collector.filters  # installed when the actor registered its secret
        assert masker is secrets_of(rt)
        try:
            raise KeyError("nothing secret")
        except KeyError:
            log.exception("metrics on %s", "http://127.0.0.1:9100/metrics")
    [record] = [r for r in collector.records if r.name == LOGGER]
    assert record.exc_info is not None  # untouched: formatters still see the exception
    assert record.args == ("http://127.0.0.1:9100/metrics",)
    assert "metrics on http://127.0.0.1:9100/metrics\nTraceback" in collector.text


def test_stop_removes_only_the_filters_of_that_runtime(collector: Collector) -> None:
    log = logging.getLogger(LOGGER)
    with (start(ChildSpec("one", factory=lambda: Leaky(SECRET))) as first,
          start(ChildSpec("two", factory=lambda: Leaky(OTHER))) as second):
        for rt in (first, second):
            secrets_of(rt).guard_loggers([LOGGER])
            secrets_of(rt).guard_loggers([LOGGER, LOGGER])  # idempotent
        assert collector.filters == [secrets_of(first), secrets_of(second)]
        assert log.filters == [secrets_of(first), secrets_of(second)]
        log.warning("both: %s %s", SECRET, OTHER)

        first.stop()
        assert collector.filters == [secrets_of(second)]
        assert log.filters == [secrets_of(second)]
        log.warning("after the first stopped: %s %s", SECRET, OTHER)

        second.stop()
        assert collector.filters == [] and log.filters == []
        secrets_of(second).guard_loggers([LOGGER])  # a stopped runtime installs nothing any more
        assert log.filters == []
        log.warning("after both stopped: %s", OTHER)

    assert collector.lines[-3:] == [
        f"WARNING {LOGGER}: both: {MASK} {MASK}",
        f"WARNING {LOGGER}: after the first stopped: {SECRET} {MASK}",
        f"WARNING {LOGGER}: after both stopped: {OTHER}",
    ]


def test_guarded_loggers_mask_urls_and_secrets_even_without_propagation() -> None:
    own = Collector()  # a handler of the guarded logger only: no root handler sees these
    guarded = logging.getLogger("tests.secrets.guarded")
    guarded.addHandler(own)
    guarded.propagate = False
    guarded.setLevel(logging.DEBUG)
    try:
        with start(ChildSpec("leaky", factory=lambda: Leaky(SECRET))) as rt:
            secrets_of(rt).guard_loggers(["tests.secrets.guarded"])
            guarded.debug("POST https://user:pw@hooks.example.com/T00/%s?key=abc", SECRET)
        guarded.debug("after stop: %s", SECRET)
    finally:
        guarded.removeHandler(own)
        guarded.propagate = True
        guarded.setLevel(logging.NOTSET)
    assert own.lines == [
        "DEBUG tests.secrets.guarded: POST https://***:***@hooks.example.com/***/***?key=***",
        f"DEBUG tests.secrets.guarded: after stop: {SECRET}",
    ]
    assert secrets_of(rt).masks_urls_of("tests.secrets.guarded.child")
    assert not secrets_of(rt).masks_urls_of("tests.secrets.guardedness")


def test_a_run_masks_the_root_handlers_from_the_start_and_unmasks_them_at_its_end(
    collector: Collector, tmp_path: Path
) -> None:
    from supervisor.host.config import parse_config
    from supervisor.host.session import RunSession, SessionService

    config, spec = parse_config({
        "runtime": {"state_dir": str(tmp_path)},
        "tree": {"children": [{"name": "echo", "actor": "tests.support.fixture_actors:Echo"}]},
    })
    runtime = Runtime(monitor_interval=0)
    session = RunSession(config, spec, runtime, config_path=tmp_path / "bot.yaml")
    seen: list[Any] = []

    class Look(SessionService):
        """Looks at the root's handler once the tree is up, before anyone asked for secrets."""

        def start(self, session: RunSession) -> None:
            seen.extend(collector.filters)
            secrets_of(session.runtime).add([SECRET])
            logging.getLogger(LOGGER).warning("from the run: %s", SECRET)
            session.request_stop("seen")

    session.services.append(Look())
    assert session.run() == 0
    assert seen == [secrets_of(runtime)]
    assert collector.filters == []
    assert f"WARNING {LOGGER}: from the run: {MASK}" in collector.lines
