"""/metrics over real HTTP: negotiation, gzip and filters give prometheus_client's bytes."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.exposition import choose_encoder

from apns_exporter.service.exposition import Exposition, Store, openmetrics_latest
from apns_exporter.web import scrape

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


@pytest.fixture
def exposition() -> Exposition:
    """A static family and a store with two targets."""
    static = CollectorRegistry()
    Gauge("build_info", "Build.", ["version"], registry=static).labels("1").set(1)
    store = Store()
    gauge = store.gauge("apns_up", 'Up "now".', ["target", "apns_environment"])
    gauge.labels("a", "production").set(1)
    gauge.labels('b"\\', "sandbox").set(float("nan"))
    store.histogram("apns_rtt_seconds", "RTT.", ["target"], [0.1, 1]).labels("a").observe(0.2)
    return Exposition(static, store)


@pytest.fixture
async def url(exposition: Exposition) -> AsyncIterator[str]:
    """The exposition served on 127.0.0.1 by the real handler."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return await scrape.serve(exposition, request)

    app = web.Application()
    app.router.add_get("/metrics", handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("/metrics"))
    finally:
        await server.close()


async def _get(url: str, **headers: str) -> tuple[bytes, aiohttp.ClientResponse]:
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.get(url, headers={"Accept-Encoding": "identity", **headers}) as response,
    ):
        return await response.read(), response


async def test_plain_text_is_prometheus_clients_exposition(
    url: str, exposition: Exposition
) -> None:
    """Without an Accept header the body is the 0.0.4 text format, as generate_latest writes it."""
    body, response = await _get(url)
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert body == generate_latest(exposition.registry)


async def test_openmetrics_is_negotiated(url: str, exposition: Exposition) -> None:
    """An OpenMetrics Accept header gets OpenMetrics, ending in # EOF, as upstream writes it."""
    body, response = await _get(url, Accept=OPENMETRICS)
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    assert body == openmetrics_latest(exposition.registry)
    assert body.endswith(b"# EOF\n")


async def test_gzip_is_one_valid_member_before_and_after_a_change(
    url: str, exposition: Exposition
) -> None:
    """gzip scrapes inflate to the plain body, also after one target changed (cached pieces)."""
    for value in (1.0, 0.0):
        exposition.store.families[0].labels("a", "production").set(value)  # type: ignore[attr-defined]
        body, response = await _get(url, **{"Accept-Encoding": "gzip, deflate"})
        assert response.headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(body) == generate_latest(exposition.registry)


async def test_head_answers_headers_without_a_body(url: str) -> None:
    """HEAD /metrics gets the negotiated headers and no body."""
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.head(url, headers={"Accept": OPENMETRICS}) as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("application/openmetrics-text")
        assert await response.read() == b""


async def test_gzip_refused_with_q0_is_not_used(url: str) -> None:
    """A client that refuses gzip (q=0) gets the plain body."""
    _, response = await _get(url, **{"Accept-Encoding": "gzip;q=0"})
    assert "Content-Encoding" not in response.headers


async def test_name_filter_matches_upstream(url: str, exposition: Exposition) -> None:
    """name[] keeps only the named samples, as prometheus_client's restricted registry does."""
    body, _ = await _get(url + "?name[]=apns_rtt_seconds_count&name[]=build_info")
    assert b"apns_rtt_seconds_count" in body
    assert b"apns_up" not in body
    assert b"apns_rtt_seconds_sum" not in body
    assert b"build_info" in body


async def test_other_escapings_fall_back_to_upstream(url: str, exposition: Exposition) -> None:
    """The dots escaping, which renames metrics, is rendered by prometheus_client itself."""
    accept = "text/plain; version=1.0.0; escaping=dots"
    body, response = await _get(url, Accept=accept)
    encoder, content_type = choose_encoder(accept)
    assert response.headers["Content-Type"] == content_type
    assert body == encoder(exposition.registry)
    assert b"apns__up" in body


def test_accept_encoding_parsing() -> None:
    """gzip is chosen when listed (or by *), and not when refused with q=0."""
    check = scrape.accepts_gzip
    assert check("gzip")
    assert check("br, GZIP;q=0.5")
    assert check("*")
    assert not check("identity")
    assert not check("gzip; q=0")
    assert not check("")
