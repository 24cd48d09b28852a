"""A small JSON admin API (aiohttp, its own loopback port) to inspect and steer a running mock.

Endpoints::

    GET    /                               this list
    GET    /stats                          ground-truth counters
    GET    /connections                    one record per open HTTP/2 connection
    GET    /devices                        all simulated devices
    POST   /devices                        {"token", "topic", "environment"?} register a device
    GET    /devices/{token}                one device with every notification it received
    DELETE /devices/{token}                forget a device (pushes get BadDeviceToken)
    POST   /devices/{token}/unregister     {"at"?, "reason"?} 410 Unregistered/ExpiredToken from now
    POST   /devices/{token}/script         {"reason", "count"?} fail the next pushes
    PUT    /devices/{token}/receipts       {"url", "secret", "delay"?, "loss"?, "seed"?} post
                                           signed delivery receipts for exporter canaries
                                           (delay: seconds or [low, high]; loss: 0..1)
    DELETE /devices/{token}/receipts       stop posting receipts
    GET    /scenario                       the active scenario
    PUT    /scenario                       a full scenario as JSON
    GET    /scenarios                      built-in scenario names and descriptions
    PUT    /scenarios/{name}               switch to a built-in scenario
    PUT    /latency                        {"seconds"} extra response delay
    POST   /goaway                         {GoAwayFault fields} GOAWAY on every open connection
    GET    /certificates                   server chains and the one new connections get
    PUT    /certificates/current           {"name"} serve that chain to new connections (a CA
                                           rollout: see apns_exporter.mock.rollout)
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from apns_exporter.apns import Reason
from apns_exporter.mock.faults import (
    BUILTIN_SCENARIOS,
    GoAwayFault,
    scenario_from_dict,
    scenario_to_dict,
)
from apns_exporter.mock.mapping import from_mapping
from apns_exporter.mock.server import MockAPNs

MOCK_KEY: web.AppKey[MockAPNs] = web.AppKey("mock", MockAPNs)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, indent=2))


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    # Bad admin input is the operator's mistake: answer 400 with the reason, never crash.
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except (ValueError, KeyError, TypeError) as exc:
        return _json({"error": str(exc)}, status=400)


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except json.JSONDecodeError as exc:
        raise ValueError(f"request body is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError("request body must be a JSON object")
    return data


def create_app(mock: MockAPNs) -> web.Application:
    """The admin application for one mock."""
    app = web.Application(middlewares=[_errors])
    app[MOCK_KEY] = mock
    routes = web.RouteTableDef()

    @routes.get("/")
    async def index(request: web.Request) -> web.Response:
        return web.Response(text=__doc__ or "", content_type="text/plain")

    @routes.get("/stats")
    async def stats(request: web.Request) -> web.Response:
        return _json(mock.stats.as_dict())

    @routes.get("/connections")
    async def connections(request: web.Request) -> web.Response:
        return _json(mock.connections)

    @routes.get("/devices")
    async def devices(request: web.Request) -> web.Response:
        return _json([d.as_dict() for d in mock.devices])

    @routes.post("/devices")
    async def register(request: web.Request) -> web.Response:
        body = await _body(request)
        device = mock.devices.register(
            str(body["token"]), str(body["topic"]), environment=body.get("environment")
        )
        return _json(device.as_dict(), status=201)

    @routes.get("/devices/{token}")
    async def device(request: web.Request) -> web.Response:
        found = mock.devices.get(request.match_info["token"])
        if found is None:
            raise web.HTTPNotFound(text="no such device")
        return _json(
            {**found.as_dict(), "notifications": [n.as_dict() for n in found.notifications]}
        )

    @routes.delete("/devices/{token}")
    async def remove(request: web.Request) -> web.Response:
        mock.devices.remove(request.match_info["token"])
        return _json({"removed": request.match_info["token"]})

    @routes.post("/devices/{token}/unregister")
    async def unregister(request: web.Request) -> web.Response:
        body = await _body(request)
        at = float(body.get("at", mock.clock()))
        reason = Reason(body.get("reason", Reason.UNREGISTERED.value))
        mock.devices.unregister(request.match_info["token"], at, reason)
        return _json({"token": request.match_info["token"], "gone_at": at, "reason": reason})

    @routes.post("/devices/{token}/script")
    async def script(request: web.Request) -> web.Response:
        body = await _body(request)
        mock.devices.script(
            request.match_info["token"], str(body["reason"]), int(body.get("count", 1))
        )
        return _json({"token": request.match_info["token"], "queued": int(body.get("count", 1))})

    @routes.put("/devices/{token}/receipts")
    async def receipts(request: web.Request) -> web.Response:
        body = await _body(request)
        delay = body.get("delay", 0.0)
        settings = mock.devices.enable_receipts(
            request.match_info["token"],
            str(body["url"]),
            str(body["secret"]).encode(),
            delay=(float(delay[0]), float(delay[1])) if isinstance(delay, list) else float(delay),
            loss=float(body.get("loss", 0.0)),
            seed=None if body.get("seed") is None else int(body["seed"]),
        )
        return _json({"token": request.match_info["token"], **settings.as_dict()})

    @routes.delete("/devices/{token}/receipts")
    async def no_receipts(request: web.Request) -> web.Response:
        mock.devices.disable_receipts(request.match_info["token"])
        return _json({"token": request.match_info["token"], "receipts": None})

    @routes.get("/scenario")
    async def get_scenario(request: web.Request) -> web.Response:
        return _json(scenario_to_dict(mock.scenario))

    @routes.put("/scenario")
    async def put_scenario(request: web.Request) -> web.Response:
        mock.scenario = scenario_from_dict(await _body(request))
        return _json(scenario_to_dict(mock.scenario))

    @routes.get("/scenarios")
    async def scenarios(request: web.Request) -> web.Response:
        return _json({name: s.description for name, s in sorted(BUILTIN_SCENARIOS.items())})

    @routes.put("/scenarios/{name}")
    async def use_builtin(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in BUILTIN_SCENARIOS:
            raise web.HTTPNotFound(text=f"no built-in scenario {name!r}")
        mock.scenario = BUILTIN_SCENARIOS[name]
        return _json(scenario_to_dict(mock.scenario))

    @routes.put("/latency")
    async def latency(request: web.Request) -> web.Response:
        seconds = float((await _body(request))["seconds"])
        if seconds < 0:
            raise ValueError("latency cannot be negative")
        mock.latency = seconds
        return _json({"seconds": mock.latency})

    @routes.post("/goaway")
    async def goaway(request: web.Request) -> web.Response:
        fault = from_mapping(GoAwayFault, await _body(request), "goaway")
        sent = await mock.goaway(fault)
        return _json({"connections": sent, "fault": dataclasses.asdict(fault)})

    @routes.get("/certificates")
    async def certificates(request: web.Request) -> web.Response:
        return _json({"names": mock.keypair_names, "current": mock.current_keypair_name()})

    @routes.put("/certificates/current")
    async def use_certificate(request: web.Request) -> web.Response:
        mock.use_keypair(str((await _body(request))["name"]))
        return _json({"names": mock.keypair_names, "current": mock.current_keypair_name()})

    app.add_routes(routes)
    return app


class AdminServer:
    """Runs the admin application on its own (loopback) port."""

    def __init__(self, mock: MockAPNs) -> None:
        self._runner = web.AppRunner(create_app(mock), access_log=None)
        self._site: web.TCPSite | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Start listening."""
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, host, port)
        await self._site.start()

    @property
    def port(self) -> int:
        """The bound port."""
        addresses = self._runner.addresses
        if not addresses:
            raise RuntimeError("admin server is not running")
        return int(addresses[0][1])

    async def stop(self) -> None:
        """Stop listening and release the runner."""
        await self._runner.cleanup()
