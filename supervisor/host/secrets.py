"""Secrets: reading them from the environment or a file, and keeping them out of logs.

:func:`read_secret` reads one from an environment variable or a file (``$VAR`` and
``${VAR}`` expanded in the path); :class:`SecretError` names the source of a failure, never
the value. :func:`mask_url` leaves a URL only its scheme, host and port;
:func:`secret_fragments` lists the parts of a URL that may be secret. :class:`SecretMasker`,
a logging filter, replaces every registered secret (and every URL, in the loggers it is
told to) by :data:`MASK`. :func:`secrets_of` gives each runtime its own, as a runtime
extension: installed on the root logger's handlers at its first use, removed when the
runtime stops. Actors register theirs with ``secrets_of(self.ctx.runtime).add(...)``.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import threading
import traceback
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import unquote

from supervisor.extensions import HasExtensions

__all__ = [
    "MASK",
    "MAX_SECRET_BYTES",
    "MIN_SECRET",
    "SecretError",
    "SecretMasker",
    "mask_url",
    "read_secret",
    "secret_fragments",
    "secrets_of",
]

MASK = "***"
MIN_SECRET = 6  # shorter URL fragments are not masked in free text (URLs always are)
MAX_SECRET_BYTES = 64 * 1024  # a secret file larger than this is refused, not read

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")
_HOST = re.compile(
    r"^(localhost|\d{1,3}(\.\d{1,3}){3}|\[[0-9A-Fa-f:.]+\]"
    r"|([A-Za-z0-9-]+\.)+[A-Za-z][A-Za-z0-9-]*)$"
)
_PARAM = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


# -- reading ---------------------------------------------------------------------------------
class SecretError(ValueError):
    """A secret could not be read; the message names its source, never its value.

    ``what`` is the caller's name for the secret (may be empty), ``source`` where it was
    looked for ("environment variable X", "file PATH"), ``problem`` what went wrong.
    """

    def __init__(self, what: str, source: str, problem: str) -> None:
        super().__init__(f"{what}: {problem}" if what else problem)
        self.what = what
        self.source = source
        self.problem = problem


def read_secret(
    what: str, *, env: str | None, file: str | None, environ: Mapping[str, str]
) -> tuple[str | None, str]:
    """(value, source description) of the secret in ``env`` or else in ``file``.

    ``env`` names an environment variable of ``environ``; ``file`` a file whose path may
    use ``$VAR``/``${VAR}`` of ``environ``. The value is stripped. Neither given:
    ``(None, "none")``. Unset, empty or unreadable: :class:`SecretError`.
    """
    if env is not None:
        source = f"environment variable {env}"
        value = environ.get(env, "").strip()
        if not value:
            state = "empty" if env in environ else "not set"
            raise SecretError(what, source, f"{source} is {state}")
        return value, source
    if file is None:
        return None, "none"
    source = f"file {file}"
    missing: list[str] = []

    def expand(match: re.Match[str]) -> str:
        var = match.group(1) or match.group(2)
        if var in environ:
            return environ[var]
        missing.append(var)
        return match.group(0)

    path = Path(_VAR.sub(expand, file)).expanduser()
    if missing:
        raise SecretError(what, source,
                          f"{source}: environment variable {missing[0]} is not set")
    try:
        with open(path, "rb", buffering=0) as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise SecretError(what, source, f"{path} is not a regular file")
            data = handle.read(MAX_SECRET_BYTES + 1)
    except OSError as exc:
        raise SecretError(what, source, f"cannot read {path}: "
                          f"{exc.strerror or type(exc).__name__}") from None
    if len(data) > MAX_SECRET_BYTES:
        raise SecretError(what, source, f"{path} is larger than {MAX_SECRET_BYTES} bytes")
    try:
        value = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise SecretError(what, source, f"{path} is not UTF-8 text") from None
    if not value:
        raise SecretError(what, source, f"{path} is empty")
    return value, source


# -- masking URLs ----------------------------------------------------------------------------
def _split_port(hostport: str) -> tuple[str, str]:
    if hostport.startswith("["):
        end = hostport.find("]")
        if end != -1:
            rest = hostport[end + 1 :]
            return hostport[: end + 1], rest[1:] if rest.startswith(":") else rest
        return hostport, ""
    host, _, port = hostport.partition(":")
    return host, port


def _parts(url: str) -> tuple[str, str, str, str, str, str, str] | None:
    """(scheme, userinfo, at, host, port, path, query) of a URL, or None."""
    scheme, sep, rest = url.strip().partition("://")
    if not sep or not _SCHEME.match(scheme):
        return None
    rest, _, query = rest.partition("?")
    netloc, slash, path = rest.partition("/")
    userinfo, at, hostport = netloc.rpartition("@")
    host, port = _split_port(hostport)
    return scheme, userinfo, at, host, port, slash + path, query


def mask_url(url: str) -> str:
    """``url`` with its scheme, host name and numeric port kept and everything else masked.

    User, password, path segments and query values are replaced by ``***``; so is a host
    that is not a host name (notification URLs put bot tokens and webhook ids there, e.g.
    ``tgram://123:ABC/456`` becomes ``tgram://***:***/***``).
    """
    parts = _parts(url)
    if parts is None:
        return MASK
    scheme, userinfo, at, host, port, path, query = parts
    out = f"{scheme}://"
    if at:
        out += f"{MASK}:{MASK}@" if ":" in userinfo else f"{MASK}@"
    if host:
        out += host if _HOST.match(host) else MASK
    if port:
        out += ":" + (port if port.isdigit() else MASK)
    if path:
        out += "/".join(MASK if seg else "" for seg in path.split("/"))
    if query:
        params = []
        for param in query.split("&"):
            name, eq, _ = param.partition("=")
            params.append(f"{name}={MASK}" if eq and _PARAM.match(name) else MASK)
        out += "?" + "&".join(params)
    return out


def secret_fragments(url: str) -> set[str]:
    """The pieces of ``url`` that may be secret, as they could appear in a log line."""
    text = url.strip()
    found = {text}
    parts = _parts(text)
    if parts is not None:
        _, userinfo, at, host, port, path, query = parts
        found.add(text.partition("://")[2])
        if at:
            found.add(userinfo)
            found.update(userinfo.split(":", 1))
        if host and not _HOST.match(host):
            found.add(host)
            if port:
                found.add(f"{host}:{port}")
        if port and not port.isdigit():
            found.add(port)
        if path:
            found.add(path)
            found.add(path.lstrip("/"))
            found.update(path.split("/"))
        for param in query.split("&"):
            name, eq, value = param.partition("=")
            found.add(value if eq else name)
    found |= {unquote(f) for f in found}
    return {f for f in found if len(f) >= MIN_SECRET}


def _mask_match(match: re.Match[str]) -> str:
    text = match.group(0)
    stripped = text.rstrip(".,;:)]}")
    return mask_url(stripped) + text[len(stripped) :]


# -- masking log records ---------------------------------------------------------------------
class SecretMasker(logging.Filter):
    """Owns the secrets registered with it; masks them in text and in log records.

    As a filter (on a logger or a handler) it rewrites a record before any handler emits
    it: every registered secret, in the message or the exception text, becomes ``***``;
    in the records of the loggers named to :meth:`mask_urls_of` (and those below them)
    every URL is masked too. A record with nothing to mask is left as it is (its
    ``exc_info`` too); one with something to mask gets the masked traceback appended to its
    message and loses ``exc_info``, so no formatter can print the original.

    It installs itself where it is told (:meth:`guard_root_handlers`, :meth:`guard_loggers`)
    and :meth:`close` removes it from all of those, after which it installs nothing more.
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._fragments: tuple[str, ...] = ()  # longest first
        self._url_loggers: tuple[str, ...] = ()
        self._guard_lock = threading.Lock()
        self._guarded: list[logging.Filterer] = []  # loggers and handlers given this filter
        self._guard_closed = False

    def add(self, fragments: Iterable[str], *, min_length: int = MIN_SECRET) -> None:
        """Mask each of ``fragments`` from now on (those shorter than ``min_length`` not)."""
        least = max(1, min_length)
        with self._lock:
            merged = set(self._fragments) | {f for f in fragments if len(f) >= least}
            self._fragments = tuple(sorted(merged, key=len, reverse=True))

    def mask_urls_of(self, logger_names: Iterable[str]) -> None:
        """Also mask every URL in the records of these loggers and of those below them."""
        with self._lock:
            self._url_loggers = tuple(dict.fromkeys((*self._url_loggers, *logger_names)))

    # -- where it is installed ---------------------------------------------------------------
    def guard_root_handlers(self) -> None:
        """Install this filter on the root logger's handlers as they are now, so every
        record that propagates to the root is masked."""
        with self._guard_lock:
            for handler in list(logging.getLogger().handlers):
                self._guard(handler)

    def guard_loggers(self, names: Iterable[str]) -> None:
        """Install this filter on the loggers ``names`` (idempotent, undone by :meth:`close`).

        Their records, and those of the loggers below them, also have every URL masked.
        After :meth:`close` this installs nothing.
        """
        wanted = tuple(names)
        self.mask_urls_of(wanted)
        with self._guard_lock:
            for name in wanted:
                self._guard(logging.getLogger(name))

    def _guard(self, target: logging.Filterer) -> None:
        """Add this filter to ``target``'s filters; the caller holds the guard lock."""
        if not self._guard_closed and self not in target.filters:
            target.addFilter(self)
            self._guarded.append(target)

    def close(self) -> None:
        """Remove this filter from everything it was installed on (only this one)."""
        with self._guard_lock:
            self._guard_closed = True
            for target in self._guarded:
                target.removeFilter(self)
            self._guarded.clear()

    def masks_urls_of(self, logger_name: str) -> bool:
        return any(logger_name == n or logger_name.startswith(n + ".")
                   for n in self._url_loggers)

    def scrub(self, text: str, *, urls: bool = True) -> str:
        """``text`` with every registered secret (and, if ``urls``, every URL) masked."""
        if urls and "://" in text:
            text = _URL_IN_TEXT.sub(_mask_match, text)
        for fragment in self._fragments:
            if fragment in text:
                text = text.replace(fragment, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to logging's own error path
            return True
        urls = self.masks_urls_of(record.name)
        trace = record.exc_text or ""
        if not trace and record.exc_info and record.exc_info[0] is not None:
            trace = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        text = message + "\n" + trace if trace else message
        clean = self.scrub(text, urls=urls)
        if clean != text:
            record.msg = clean
            record.args = None
            record.exc_info = None
            record.exc_text = None
        if record.stack_info:
            record.stack_info = self.scrub(record.stack_info, urls=urls)
        return True


def _runtime_masker() -> SecretMasker:
    masker = SecretMasker()
    masker.guard_root_handlers()
    return masker


def secrets_of(runtime: HasExtensions) -> SecretMasker:
    """The secret masker of ``runtime`` (one per runtime): installed on the root logger's
    handlers when first asked for, removed from every logger and handler when the runtime
    stops."""
    return runtime.extensions.get(_runtime_masker)
