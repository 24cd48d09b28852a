"""/metrics: the kept-rendered exposition, negotiated (text or OpenMetrics), gzip on request.

The body is assembled on the event loop from cached pieces (only targets with new results
are rendered again); gzip runs in a worker thread, where zlib releases the interpreter
lock, and reuses the compressed form of every piece that did not change. Requests the
cache does not cover (``name[]`` filters, the dots or values name escapings) are rendered
by prometheus_client from a snapshot taken on the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator

from aiohttp import hdrs, web
from prometheus_client.core import Metric
from prometheus_client.exposition import choose_encoder

from apns_exporter.service.exposition import PLAIN_ESCAPINGS, Exposition

OPENMETRICS = "application/openmetrics-text"


class _Snapshot:
    """Metric families collected on the loop, for an encoder running in a worker thread."""

    def __init__(self, metrics: Iterable[Metric]) -> None:
        self._metrics = list(metrics)

    def collect(self) -> Iterator[Metric]:
        """The families as collected."""
        return iter(self._metrics)


def _escaping(content_type: str) -> str:
    for part in content_type.split(";"):
        key, _, value = part.strip().partition("=")
        if key == "escaping":
            return value
    return "underscores"


def accepts_gzip(accept_encoding: str) -> bool:
    """Whether the client listed gzip in Accept-Encoding (and did not refuse it with q=0)."""
    for item in accept_encoding.split(","):
        coding, *params = (p.strip() for p in item.split(";"))
        if coding.lower() in ("gzip", "*"):
            return not any(p.replace(" ", "") in ("q=0", "q=0.0", "q=0.00") for p in params)
    return False


async def serve(exposition: Exposition, request: web.Request) -> web.Response:
    """The /metrics response for ``request``."""
    encoder, content_type = choose_encoder(request.headers.get(hdrs.ACCEPT, ""))
    names = request.query.getall("name[]", [])
    if names or _escaping(content_type) not in PLAIN_ESCAPINGS:
        source = exposition.restricted(names) if names else exposition.registry
        snapshot = _Snapshot(source.collect())
        pieces = [await asyncio.to_thread(encoder, snapshot)]
    else:
        pieces = exposition.pieces(openmetrics=content_type.startswith(OPENMETRICS))
    headers = {hdrs.CONTENT_TYPE: content_type, hdrs.VARY: hdrs.ACCEPT_ENCODING}
    if accepts_gzip(request.headers.get(hdrs.ACCEPT_ENCODING, "")):
        body = await asyncio.to_thread(exposition.gzip.compress, pieces)
        headers[hdrs.CONTENT_ENCODING] = "gzip"
    else:
        body = b"".join(pieces)
    return web.Response(body=body, headers=headers)
