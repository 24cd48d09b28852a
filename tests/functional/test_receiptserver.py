"""The receipt endpoint over real HTTP on loopback: accepted receipts and every rejection."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web

from apns_exporter.receipts.book import (
    SIGNATURE_HEADER,
    Delivery,
    ReceiptBook,
    encode_receipt,
    sign,
)
from apns_exporter.receipts.server import RECEIPT_PATH, make_receipt_app

SECRET = b"fedcba9876543210fedcba9876543210"
WAIT = aiohttp.ClientTimeout(total=10)


@dataclass
class Endpoint:
    """A running receipt app, its book, and what its callbacks saw."""

    url: str
    base: str
    book: ReceiptBook
    deliveries: list[Delivery] = field(default_factory=list)
    rejected: list[tuple[str, str | None]] = field(default_factory=list)


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    book = ReceiptBook({"prod": SECRET})
    seen = Endpoint("", "", book)
    app = make_receipt_app(
        book, seen.deliveries.append, lambda r, t: seen.rejected.append((r, t)), time.time
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    seen.base = f"http://127.0.0.1:{port}"
    seen.url = seen.base + RECEIPT_PATH
    try:
        yield seen
    finally:
        await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=WAIT) as session:
        yield session


async def post(
    http: aiohttp.ClientSession, url: str, body: bytes, signature: str | None
) -> tuple[int, str]:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers[SIGNATURE_HEADER] = signature
    async with http.post(url, data=body, headers=headers) as response:
        return response.status, await response.text()


def signed(canary_id: str = "c1", received_at: float | None = None) -> tuple[bytes, str]:
    body = encode_receipt("prod", canary_id, time.time() if received_at is None else received_at)
    return body, sign(SECRET, body)


async def test_valid_receipt_is_accepted(endpoint: Endpoint, http: aiohttp.ClientSession) -> None:
    """A signed receipt for an awaited canary gets 202 and becomes a delivery."""
    endpoint.book.expect("prod", "c1", time.time() - 1, 60)
    status, _ = await post(http, endpoint.url, *signed())
    assert status == 202
    assert [d.canary_id for d in endpoint.deliveries] == ["c1"]
    assert endpoint.rejected == []


async def test_bad_signature_is_401_without_detail(
    endpoint: Endpoint, http: aiohttp.ClientSession
) -> None:
    """A wrong signature gets 401, a generic body, and is counted with its target."""
    endpoint.book.expect("prod", "c1", time.time() - 1, 60)
    body, _ = signed()
    status, text = await post(http, endpoint.url, body, sign(b"x" * 32, body))
    assert status == 401
    assert text.strip() == "Unauthorized"
    assert endpoint.rejected == [("bad_signature", "prod")]
    assert endpoint.deliveries == []


async def test_missing_signature_is_401(endpoint: Endpoint, http: aiohttp.ClientSession) -> None:
    """A receipt without the signature header is rejected as bad_signature."""
    body, _ = signed()
    status, _ = await post(http, endpoint.url, body, None)
    assert status == 401
    assert endpoint.rejected == [("bad_signature", "prod")]


async def test_replay_is_409(endpoint: Endpoint, http: aiohttp.ClientSession) -> None:
    """Posting the same receipt twice delivers once and answers the second with 409."""
    endpoint.book.expect("prod", "c1", time.time() - 1, 60)
    body, header = signed()
    assert (await post(http, endpoint.url, body, header))[0] == 202
    assert (await post(http, endpoint.url, body, header))[0] == 409
    assert len(endpoint.deliveries) == 1
    assert endpoint.rejected == [("replay", "prod")]


async def test_stale_receipt_is_400(endpoint: Endpoint, http: aiohttp.ClientSession) -> None:
    """A receipt whose received_at is outside the freshness window gets 400."""
    endpoint.book.expect("prod", "c1", time.time() - 3600, 7200)
    status, text = await post(http, endpoint.url, *signed(received_at=time.time() - 3000))
    assert status == 400
    assert text.strip() == "Bad Request"
    assert endpoint.rejected == [("stale", "prod")]


async def test_oversized_body_is_413(endpoint: Endpoint, http: aiohttp.ClientSession) -> None:
    """A body over the size limit gets 413 and is counted as too_large."""
    body = b'{"target":"prod","pad":"' + b"x" * 8192 + b'"}'
    status, _ = await post(http, endpoint.url, body, sign(SECRET, body))
    assert status == 413
    assert endpoint.rejected == [("too_large", None)]


async def test_oversized_chunked_body_is_413(
    endpoint: Endpoint, http: aiohttp.ClientSession
) -> None:
    """Without a Content-Length the limit still holds while reading."""

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b"x" * 1024

    async with http.post(endpoint.url, data=chunks()) as response:
        assert response.status == 413
    assert endpoint.rejected == [("too_large", None)]


async def test_unknown_target_is_404(endpoint: Endpoint, http: aiohttp.ClientSession) -> None:
    """A receipt for a target the exporter does not know gets 404 and no target label."""
    body = encode_receipt("staging", "c1", time.time())
    status, text = await post(http, endpoint.url, body, sign(SECRET, body))
    assert status == 404
    assert text.strip() == "Not Found"
    assert endpoint.rejected == [("unknown_target", None)]


async def test_unknown_canary_is_404(endpoint: Endpoint, http: aiohttp.ClientSession) -> None:
    """A signed receipt for a canary never sent gets 404."""
    status, _ = await post(http, endpoint.url, *signed("never"))
    assert status == 404
    assert endpoint.rejected == [("unknown_canary", "prod")]


async def test_malformed_is_400(endpoint: Endpoint, http: aiohttp.ClientSession) -> None:
    """A body that is not a receipt gets 400."""
    status, _ = await post(http, endpoint.url, b"hello", sign(SECRET, b"hello"))
    assert status == 400
    assert endpoint.rejected == [("malformed", None)]


async def test_deeply_nested_body_is_400_malformed(
    endpoint: Endpoint, http: aiohttp.ClientSession
) -> None:
    """4000 nested brackets, under the size limit, get 400 malformed rather than a 500."""
    body = b"[" * 4000
    status, text = await post(http, endpoint.url, body, None)
    assert (status, text) == (400, "Bad Request\n")
    assert endpoint.rejected == [("malformed", None)]


async def test_received_at_too_big_for_a_float_is_400_malformed(
    endpoint: Endpoint, http: aiohttp.ClientSession
) -> None:
    """An unsigned receipt whose received_at is a 4000-digit number gets 400, not a 500."""
    body = b'{"target": "prod", "canary_id": "c1", "received_at": ' + b"9" * 4000 + b"}"
    status, text = await post(http, endpoint.url, body, None)
    assert (status, text) == (400, "Bad Request\n")
    assert endpoint.rejected == [("malformed", None)]


async def test_only_post_on_the_receipt_path(
    endpoint: Endpoint, http: aiohttp.ClientSession
) -> None:
    """Other methods get 405, other paths 404, and neither counts as a rejected receipt."""
    async with http.get(endpoint.url) as response:
        assert response.status == 405
    async with http.get(endpoint.base + "/metrics") as response:
        assert response.status == 404
    async with http.post(endpoint.base + "/canary/receipts", data=b"{}") as response:
        assert response.status == 404
    assert endpoint.rejected == []
