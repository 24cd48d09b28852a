"""``POST /-/reload`` protection: no cross-site requests, and reloads coalesced.

Like blackbox_exporter and Alertmanager, and unlike Prometheus (``--web.enable-lifecycle``),
the endpoint is on by default: reloading only re-reads the file the operator controls. What
a web page must not do is trigger it from a browser, so a request is refused (403) when its
``Host`` is a name the exporter does not answer to (DNS rebinding: an attacker's name made to
resolve to this address, under which the attacker's page is "same-origin"), when the browser
says it is cross-site (``Sec-Fetch-Site``), when its ``Origin`` is not the host it was sent
to, or when it carries a form body type (what an HTML form or a no-preflight ``fetch`` can
send). ``curl -X POST`` to an IP address or ``localhost`` passes; a DNS name needs
``--web.allowed-host``.

Reloads run one at a time; requests arriving while one runs share the single next reload,
so a flood costs at most one reload after another, each parsed off the event loop.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Callable, Collection

from aiohttp import hdrs, web
from yarl import URL

# The body types a browser sends cross-site without a CORS preflight.
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data", "text/plain")


def cross_site(request: web.Request, allowed_hosts: Collection[str] = ()) -> str | None:
    """Why ``request`` looks like it came from another site's page, or None.

    ``allowed_hosts``: host names (lower case, no port) besides IP addresses and localhost.
    """
    # request.host would fall back to a (blocking) DNS lookup of this machine's name.
    host = request.headers.get(hdrs.HOST)
    if host is not None and not _host_allowed(host, allowed_hosts):
        return (
            f"its Host {host[:100]!r} is not an address or name this exporter answers to "
            "(add the name with --web.allowed-host)"
        )
    fetch_site = request.headers.get("Sec-Fetch-Site", "").lower()
    if fetch_site not in ("", "same-origin", "none"):
        return f"the browser marked it {fetch_site}"
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is not None and not _same_origin(origin, request):
        return f"its Origin {origin[:100]!r} is not this server"
    if request.content_type in FORM_TYPES and hdrs.CONTENT_TYPE in request.headers:
        return f"it carries a {request.content_type} body; send POST without a body"
    return None


def _host_allowed(host: str, allowed_hosts: Collection[str]) -> bool:
    try:
        name = URL.build(authority=host).raw_host or ""
    except ValueError:
        return False
    name = name.lower().rstrip(".")
    try:
        ipaddress.ip_address(name.strip("[]"))
        return True  # nobody can rebind an address: the page is really at this one
    except ValueError:
        pass
    return name == "localhost" or name.endswith(".localhost") or name in allowed_hosts


def _same_origin(origin: str, request: web.Request) -> bool:
    try:
        theirs = URL(origin)
        ours = URL.build(scheme=request.scheme, authority=request.host)
    except ValueError:
        return False
    return bool(theirs.host) and (theirs.scheme, theirs.host, theirs.port) == (
        ours.scheme,
        ours.host,
        ours.port,
    )


class ReloadGate:
    """Runs ``reload`` for each caller, at most one at a time, later callers sharing the next."""

    def __init__(self, reload: Callable[[], Awaitable[None]]) -> None:
        self._reload = reload
        self._running: asyncio.Task[None] | None = None
        self._queued: asyncio.Task[None] | None = None

    async def reload(self) -> None:
        """A reload that starts after this call; raises what the reload raised."""
        if self._queued is None:
            self._queued = asyncio.create_task(self._run(self._running))
            # Retrieve the outcome even if every waiter went away.
            self._queued.add_done_callback(lambda t: t.cancelled() or t.exception())
        await asyncio.shield(self._queued)

    async def _run(self, before: asyncio.Task[None] | None) -> None:
        if before is not None:
            await asyncio.wait([before])
        self._running, self._queued = self._queued, None
        await self._reload()
