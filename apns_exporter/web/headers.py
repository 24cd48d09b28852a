"""Response headers on both listeners: no ``Server`` banner, and ``nosniff`` on every answer.

aiohttp adds ``Server: Python/… aiohttp/…`` to every response, its own 400s for malformed
requests included, which never pass through an application's middlewares or signals. The
listeners therefore build their requests from a subclass whose prepare hook, which runs
for every response just before its headers are written, takes the banner out.
"""

from __future__ import annotations

import functools

from aiohttp import hdrs, web
from aiohttp.web_server import Server

NOSNIFF = ("X-Content-Type-Options", "nosniff")


class _Request(web.Request):
    """A request whose responses name no server software and forbid content sniffing."""

    async def _prepare_hook(self, response: web.StreamResponse) -> None:
        await super()._prepare_hook(response)
        response.headers.popall(hdrs.SERVER, None)
        response.headers.setdefault(*NOSNIFF)


def harden(server: Server, app: web.Application) -> None:
    """Make ``server`` (``runner.server`` after setup) build requests that harden responses."""
    server.request_factory = functools.partial(app._make_request, _cls=_Request)
