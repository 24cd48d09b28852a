"""/metrics: the kept-rendered exposition, negotiated (text or OpenMetrics), gzip on request.

The body is streamed from cached pieces (only targets with new results are rendered
again), at most :data:`CHUNK` bytes per event-loop turn, so a scrape of any size never holds
the loop for long and probes keep their schedule. gzip runs in a worker thread, where zlib
releases the interpreter lock, piece by piece, reusing the compressed form of every piece
that did not change. Requests the cache does not cover (``name[]`` filters, the dots or
values name escapings) are rendered by prometheus_client from a snapshot taken on the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator

from aiohttp import hdrs, web
from prometheus_client.core import Metric
from prometheus_client.exposition import choose_encoder

from apns_exporter.service.exposition import GZIP_HEADER, PLAIN_ESCAPINGS, Exposition, Gzip
from apns_exporter.service.family import CHUNK, Piece

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


async def serve(exposition: Exposition, request: web.Request) -> web.StreamResponse:
    """The /metrics response for ``request``."""
    encoder, content_type = choose_encoder(request.headers.get(hdrs.ACCEPT, ""))
    names = request.query.getall("name[]", [])
    headers = {hdrs.CONTENT_TYPE: content_type, hdrs.VARY: hdrs.ACCEPT_ENCODING}
    gzip = (
        Gzip(exposition.gzip_level)
        if accepts_gzip(request.headers.get(hdrs.ACCEPT_ENCODING, ""))
        else None
    )
    if gzip is not None:
        headers[hdrs.CONTENT_ENCODING] = "gzip"
    if names or _escaping(content_type) not in PLAIN_ESCAPINGS:
        source = exposition.restricted(names) if names else exposition.registry
        snapshot = _Snapshot(source.collect())
        body = await asyncio.to_thread(encoder, snapshot)
        if gzip is not None:
            body = await asyncio.to_thread(gzip.compress, [Piece(body)])
        return web.Response(body=body, headers=headers)
    response = web.StreamResponse(headers=headers)
    await response.prepare(request)
    if request.method == hdrs.METH_HEAD:
        return response
    steps = exposition.pieces(openmetrics=content_type.startswith(OPENMETRICS))
    try:
        await _stream(response, steps, gzip)
    except ConnectionResetError:
        pass  # the scraper went away; the next scrape starts from the cache again
    finally:
        steps.close()
    return response


async def _stream(
    response: web.StreamResponse, steps: Iterable[Piece | None], gzip: Gzip | None
) -> None:
    """Hand ``steps`` to the transport in batches of at most CHUNK bytes, one per loop turn."""
    if gzip is not None:
        await response.write(GZIP_HEADER)
    batch: list[Piece] = []
    size = 0
    for step in steps:
        if step is not None and size + len(step.text) <= CHUNK:
            batch.append(step)
            size += len(step.text)
            continue
        await _send(response, batch, gzip)
        batch, size = ([step], len(step.text)) if step is not None else ([], 0)
    await _send(response, batch, gzip)
    if gzip is not None:
        await response.write(gzip.trailer())
    await response.write_eof()


async def _send(response: web.StreamResponse, batch: list[Piece], gzip: Gzip | None) -> None:
    """Write one batch, then let the loop run (a write alone does not wait unless paused)."""
    if gzip is not None:
        data = await asyncio.to_thread(gzip.feed, batch) if batch else b""
    else:
        data = b"".join(p.text for p in batch)
    if data:
        await response.write(data)
    await asyncio.sleep(0)
