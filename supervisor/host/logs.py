"""Process logging: structured lines to stderr (journald captures them), text or JSON."""

from __future__ import annotations

import json
import logging
import sys
import time

__all__ = ["JsonFormatter", "printable", "setup_logging"]


def printable(value: object, limit: int = 200) -> str:
    """``value`` as text safe for one log line or error message, whoever wrote it.

    Control, format (bidi overrides, zero-width), surrogate, private-use and unassigned
    characters, and line or paragraph separators, are shown as ``\\x..``/``\\u....``
    escapes (so applying it twice changes nothing more); more than ``limit`` characters are
    cut, saying how many more there were.
    """
    text = value if isinstance(value, str) else str(value)
    extra = len(text) - limit
    if extra > 0:
        text = text[:limit]
    out = []
    for ch in text:
        if ch.isprintable():
            out.append(ch)
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else
                       f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    if extra > 0:
        out.append(f"... ({extra} more characters)")
    return "".join(out)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and exception if any."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": round(record.created, 6),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + "Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "thread": record.threadName,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


def setup_logging(level: str = "info", fmt: str = "text",
                  filters: tuple[logging.Filter, ...] = ()) -> None:
    """Send every log record to stderr in the chosen format; replaces earlier handlers.

    ``filters`` are on the new handler before it takes its first record (a secret masker,
    so that no record slips through unmasked while logging is redone).
    """
    handler = logging.StreamHandler(sys.stderr)
    for f in filters:
        handler.addFilter(f)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
        )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("pykka").setLevel(logging.WARNING)
