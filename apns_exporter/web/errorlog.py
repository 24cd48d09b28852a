"""aiohttp's per-request error log, made safe for requests from hostile clients.

aiohttp logs every malformed request and every client that hangs up mid-request as an
ERROR with a full traceback, whose message quotes the offending bytes (an
``Authorization: Basic`` header among them). Anyone who can connect could so fill the log
and plant credentials in it. These two kinds become one line each, without a traceback or
the request's bytes, at most once per HOSTILE_LOG_INTERVAL seconds with a count of the
lines left out; any other error a handler raises (a bug) keeps its traceback.
"""

from __future__ import annotations

import logging
import time

from aiohttp.http_exceptions import HttpProcessingError

HOSTILE_LOG_INTERVAL = 60.0
_MESSAGES = {
    "malformed": "refused a malformed HTTP request from %s (%s, status %s)",
    "hung up": "a client (%s) hung up or was cut off before its request was complete (%s%s)",
}


class _HostileRequestFilter(logging.Filter):
    """Rewrites aiohttp's error records for bad requests into rate-limited single lines."""

    def __init__(self, interval: float = HOSTILE_LOG_INTERVAL) -> None:
        super().__init__()
        self._interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        detail: tuple[object, ...]
        if isinstance(error, HttpProcessingError):
            kind, detail = "malformed", (type(error).__name__, error.code)
        elif isinstance(error, ConnectionError):
            kind, detail = "hung up", (type(error).__name__, "")
        else:
            return True
        now = time.monotonic()
        last = self._last.get(kind)
        if last is not None and now - last < self._interval:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return False
        self._last[kind] = now
        suppressed = self._suppressed.pop(kind, 0)
        remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        record.msg = _MESSAGES[kind]
        record.args = (remote, *detail)
        if suppressed:
            record.msg += "; %d more such in the last %.0fs not logged"
            record.args += (suppressed, self._interval)
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info = None
        record.exc_text = None
        return True


def install() -> None:
    """Attach the filter to aiohttp's server logger, once per process."""
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, _HostileRequestFilter) for f in server_log.filters):
        server_log.addFilter(_HostileRequestFilter())
