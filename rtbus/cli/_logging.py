"""Logging for the ``rtbus`` command: one structured line per record, on stderr.

Two formats, the same fields: ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``msg``, then the
record's own fields (``extra={"fields": {...}}``, the convention of rtbus's own loggers, or any
plain ``extra`` key; fractional numbers rounded to what a reader needs), then ``exc`` (a
traceback) when there is one.

* ``logfmt`` -- ``key=value`` pairs; values with spaces, quotes or ``=`` are double-quoted with
  backslash escapes, so ``shlex``-style splitting reads them back.
* ``json`` -- one JSON object per line (orjson), for log shippers and ``jq``.

Every line is scrubbed before it is written: the configured secrets (the upstream key, the
HTTP token) and anything shaped like one (``Bearer ...``, ``sk-...``, ``ek_...``) become
``***``, whichever part of the record carried them.
"""

from __future__ import annotations

import logging
import math
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import IO, Any

import orjson

from rtbus.protocol import redact
from rtbus.service import LogSettings

__all__ = ["StructuredFormatter", "configure_logging", "rounded"]

# Anything that looks like a credential, wherever it came from (a server's echo, an exception).
_CREDENTIAL = re.compile(r"(?i)(?<=bearer )[^\s\"',;]+|\b(?:sk|ek)[-_][A-Za-z0-9_\-]{6,}")
_STANDARD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "fields", "taskName"}
)
_NEEDS_QUOTES = re.compile(r'[\s"=\\]')
_REDACTED = "***"


class StructuredFormatter(logging.Formatter):
    """Formats a record as one logfmt or JSON line, with secrets scrubbed out."""

    def __init__(self, format: str, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._render = _RENDERERS[format]
        self._secrets = tuple(s for s in secrets if s)

    def format(self, record: logging.LogRecord) -> str:
        line = self._render(self._fields(record))
        return _CREDENTIAL.sub(_REDACTED, redact(line, self._secrets))

    def _fields(self, record: logging.LogRecord) -> dict[str, object]:
        fields: dict[str, object] = {
            "ts": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields.update(getattr(record, "fields", None) or {})
        fields.update((k, v) for k, v in vars(record).items() if k not in _STANDARD_ATTRIBUTES)
        fields.update((k, rounded(v)) for k, v in fields.items() if isinstance(v, float))
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        return fields


def configure_logging(
    settings: LogSettings, *, secrets: Iterable[str] = (), stream: IO[str] | None = None
) -> logging.Handler:
    """Send every log record, at ``settings.level`` and above, to ``stream`` (stderr) in
    ``settings.format``; replaces the handler a previous call installed. Returns it."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(StructuredFormatter(settings.format, secrets))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h.formatter, StructuredFormatter)]:
        root.removeHandler(old)
    root.addHandler(handler)
    level = settings.level.upper()
    root.setLevel(level)
    for name in _SAID_OTHERWISE:
        # Their lines say what rtbus's own already say (the calls API's requests, hypercorn's
        # second "running on"): kept for warnings and errors, and for --log-level debug.
        logging.getLogger(name).setLevel(level if level == "DEBUG" else "WARNING")
    return handler


#: Libraries whose info lines repeat what rtbus logs itself.
_SAID_OTHERWISE = ("httpx2", "httpx", "rtbus.http.server")


def rounded(value: float) -> float:
    """What a person reads in a log line: ``delay=0.47``, not ``delay=0.4712093857``; two
    significant digits under 1, two decimals above."""
    if not math.isfinite(value) or value == 0:
        return value
    if abs(value) >= 1:
        return round(value, 2)
    return float(f"{value:.2g}")


def _timestamp(created: float) -> str:
    moment = datetime.fromtimestamp(created, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _logfmt(fields: Mapping[str, object]) -> str:
    return " ".join(f"{key}={_logfmt_value(value)}" for key, value in fields.items())


def _logfmt_value(value: object) -> str:
    text = _text(value)
    if text and not _NEEDS_QUOTES.search(text):
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t") + '"'


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def _json(fields: Mapping[str, object]) -> str:
    return orjson.dumps(fields, default=_text, option=orjson.OPT_NON_STR_KEYS).decode()


_RENDERERS: Mapping[str, Callable[[Mapping[str, Any]], str]] = {"logfmt": _logfmt, "json": _json}
