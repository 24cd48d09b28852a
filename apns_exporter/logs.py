"""Logging as Prometheus exporters do it: ``--log.level`` and logfmt or JSON lines.

No level prints a credential: h2's and hpack's debug loggers (which print every header,
JWTs included) stay at info, and every line is redacted on its way out as a second line of
defence: JWTs and bearer tokens are cut to a marker, device tokens (64 or more hex digits)
to their first 8 digits, as ``/config`` shows them. asyncio's "accept() out of system
resource" error, which repeats thousands of times a second when file descriptors run out,
is logged at most once per ACCEPT_ERROR_INTERVAL seconds, without its traceback.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}
FORMATS = ("logfmt", "json")
ACCEPT_ERROR_INTERVAL = 60.0

_JWT = re.compile(r"eyJ[\w-]*\.[\w-]+\.[\w-]*")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[\w.~+/=-]+")
_LONG_HEX = re.compile(r"(?<![0-9A-Fa-f])([0-9A-Fa-f]{8})[0-9A-Fa-f]{56,}(?![0-9A-Fa-f])")
# Third-party loggers whose debug output carries request headers verbatim.
_HEADER_LOGGERS = ("hpack", "h2")


def redact(text: str) -> str:
    """``text`` without JWTs, bearer tokens or full device tokens."""
    text = _JWT.sub("<jwt>", text)
    text = _BEARER.sub(r"\1<redacted>", text)
    return _LONG_HEX.sub(r"\1…", text)


class _AcceptErrorFilter(logging.Filter):
    """Lets asyncio's accept() resource error through once per interval, as one line."""

    def __init__(self) -> None:
        super().__init__()
        self._last: float | None = None
        self._suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.getMessage().startswith("socket.accept() out of system resource"):
            return True
        now = time.monotonic()
        if self._last is not None and now - self._last < ACCEPT_ERROR_INTERVAL:
            self._suppressed += 1
            return False
        self._last = now
        error = record.exc_info[1] if record.exc_info else None
        record.msg = (
            "cannot accept connections: %s (file descriptor limit reached?); "
            "%d more such errors in the last %.0fs not logged"
        )
        record.args = (error, self._suppressed, ACCEPT_ERROR_INTERVAL)
        record.exc_info = None
        record.exc_text = None
        self._suppressed = 0
        return True


class _Formatter(logging.Formatter):
    def __init__(self, fmt: str) -> None:
        super().__init__()
        self._json = fmt == "json"

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        fields = {
            "time": f"{ts}.{int(record.msecs):03d}Z",
            "level": "warn" if record.levelno == logging.WARNING else record.levelname.lower(),
            "source": record.name,
            "msg": redact(record.getMessage()),
        }
        # Structured fields a caller attached (extra={"fields": {...}}), e.g. a failed probe's.
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            for key, value in extra.items():
                fields.setdefault(str(key), redact(str(value)))
        if record.exc_info:
            fields["err"] = redact(self.formatException(record.exc_info))
        if self._json:
            return json.dumps(fields)
        return " ".join(f"{k}={_quote(v)}" for k, v in fields.items())


def _quote(value: str) -> str:
    if value and not any(c in value for c in ' ="\n\\'):
        return value
    return json.dumps(value)


def setup(level: str = "info", fmt: str = "logfmt") -> None:
    """Send every log record to stderr in the chosen format and level."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LEVELS[level])
    # aiohttp's access log would log every scrape; Prometheus exporters keep quiet there.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    for name in _HEADER_LOGGERS:
        logging.getLogger(name).setLevel(max(LEVELS[level], logging.INFO))
    asyncio_log = logging.getLogger("asyncio")
    if not any(isinstance(f, _AcceptErrorFilter) for f in asyncio_log.filters):
        asyncio_log.addFilter(_AcceptErrorFilter())
