"""The receipt endpoint: ``POST /canary/receipt`` only, meant for its own, device-facing listener.

Devices on the internet reach this app, so it serves nothing else (404 elsewhere, 405 for
other methods), refuses bodies over the size limit without reading them, and answers
rejections with a bare status and phrase: nothing says which check failed beyond the
status, and nothing ever mentions secrets. Status by reason: malformed and stale 400,
bad_signature 401, unknown_target and unknown_canary 404, replay 409, too_large 413; an
accepted receipt gets 202.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from http import HTTPStatus

from aiohttp import web

from apns_exporter.errors import ReceiptRejected
from apns_exporter.receipts.book import SIGNATURE_HEADER, Delivery, ReceiptBook

log = logging.getLogger("apns_exporter.receipts.book")

RECEIPT_PATH = "/canary/receipt"
STATUS = {
    "malformed": 400,
    "stale": 400,
    "bad_signature": 401,
    "unknown_target": 404,
    "unknown_canary": 404,
    "replay": 409,
    "too_large": 413,
}


def _answer(status: int) -> web.Response:
    return web.Response(status=status, text=HTTPStatus(status).phrase + "\n")


def make_receipt_app(
    book: ReceiptBook,
    on_delivery: Callable[[Delivery], None],
    on_rejected: Callable[[str, str | None], None],
    clock: Callable[[], float] = time.time,
) -> web.Application:
    """The receipt application; ``on_rejected`` gets (reason, configured target or None)."""
    # aiohttp enforces the limit while reading, so a lying or absent Content-Length
    # (chunked upload) cannot make it buffer more than this.
    app = web.Application(client_max_size=book.max_body)

    def reject(request: web.Request, reason: str, target: str | None = None) -> web.Response:
        log.debug("receipt from %s rejected: %s", request.remote, reason)
        on_rejected(reason, target)
        return _answer(STATUS[reason])

    async def receive(request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > book.max_body:
            response = reject(request, "too_large")
            # The unread body is still on the wire: close rather than parse it as a request.
            response.force_close()
            return response
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            response = reject(request, "too_large")
            response.force_close()
            return response
        try:
            delivery = book.accept(body, request.headers.get(SIGNATURE_HEADER), clock())
        except ReceiptRejected as exc:
            return reject(request, exc.reason, exc.target)
        on_delivery(delivery)
        return _answer(202)

    app.router.add_post(RECEIPT_PATH, receive)
    return app
