"""The channel-management API for broadcast push (iOS 18 Live Activities), without the IO.

Apple's "Sending channel management requests to APNs" defines four requests on the
management host (port 2195 sandbox, 2196 production), authenticated like pushes::

    POST   /1/apps/<bundle-id>/channels      create: body {"message-storage-policy", "push-type"}
                                              -> 201, header apns-channel-id
    GET    /1/apps/<bundle-id>/channels      read one (header apns-channel-id) -> 200, its config
    DELETE /1/apps/<bundle-id>/channels      delete one (header apns-channel-id) -> 204
    GET    /1/apps/<bundle-id>/all-channels  list -> 200 {"channels": [ids]}

Every answer carries ``apns-request-id`` (the request's, else a new UUID); errors are
``{"reason": ...}``. "Sending broadcast push notification requests to APNs" then sends to
a channel with ``POST /4/broadcasts/apps/<bundle-id>`` on the push host. Where Apple is
silent (the order of checks, the status of some reasons, the channel limit) the mock's
choices are rows ``broadcast-*`` of the conformance table (mock/conformance.py).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from apns_exporter.apns import Reason
from apns_exporter.mock.keys import KeyRegistry, TokenRejected

PUSH_TYPE = "LiveActivity"
STORAGE_POLICIES = (0, 1)  # 0: no message storage; 1: keep the most recent message
DEFAULT_CHANNEL_LIMIT = 10_000  # Apple states no number; CannotCreateChannelConfig beyond it
_PATH = re.compile(r"/1/apps/(?P<bundle>[^/]+)/(?P<what>channels|all-channels)")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_ALLOWED = {"channels": ("POST", "GET", "DELETE"), "all-channels": ("GET",)}


@dataclass(frozen=True)
class ChannelConfig:
    """One channel as created: its storage policy and push type."""

    message_storage_policy: int
    push_type: str = PUSH_TYPE

    def as_dict(self) -> dict[str, object]:
        """The channel's configuration as the read request answers it."""
        return {"message-storage-policy": self.message_storage_policy, "push-type": self.push_type}


@dataclass(frozen=True)
class Answer:
    """A response: status, headers beyond ``:status``, and a (possibly empty) body."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    reason: Reason | None = None

    def header(self, name: str) -> str | None:
        """The first value of header ``name``, or None."""
        return next((v for k, v in self.headers if k == name), None)


@dataclass
class ChannelStore:
    """Every channel the mock knows, by bundle ID then channel ID."""

    limit: int = DEFAULT_CHANNEL_LIMIT
    apps: dict[str, dict[str, ChannelConfig]] = field(default_factory=dict)

    def channels(self, bundle_id: str) -> dict[str, ChannelConfig]:
        """The channels of one app (a live view)."""
        return self.apps.setdefault(bundle_id, {})


class ManagementAPI:
    """Answers channel-management requests; the server around it only moves bytes."""

    def __init__(
        self,
        keys: KeyRegistry,
        clock: Callable[[], float],
        environment: str,
        *,
        token_max_age: float = 3600.0,
        store: ChannelStore | None = None,
    ) -> None:
        self.keys = keys
        self.clock = clock
        self.environment = environment
        self.token_max_age = token_max_age
        self.store = store or ChannelStore()

    def handle(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> Answer:
        """Validate (path, method, auth, request id, then the request) and answer."""
        first = {name: value for name, value in reversed(headers)}
        request_id = first.get("apns-request-id")
        echo = request_id if request_id is not None and _UUID.fullmatch(request_id) else None
        answer = self._answer(method, path.partition("?")[0], first, body, request_id)
        return Answer(
            answer.status,
            (("apns-request-id", echo or str(uuid.uuid4())), *answer.headers),
            answer.body,
            answer.reason,
        )

    def _answer(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes,
        request_id: str | None,
    ) -> Answer:
        match = _PATH.fullmatch(path)
        if match is None:
            return _error(Reason.BAD_PATH)
        if method not in _ALLOWED[match["what"]]:
            return _error(Reason.METHOD_NOT_ALLOWED)
        rejected = self._authenticate(headers.get("authorization"), match["bundle"])
        if rejected is not None:
            return _error(rejected)
        if request_id is not None and not _UUID.fullmatch(request_id):
            return _error(Reason.BAD_MESSAGE_ID)
        channels = self.store.channels(match["bundle"])
        if match["what"] == "all-channels":
            return _json(200, {"channels": list(channels)})
        if method == "POST":
            return self._create(channels, body)
        channel_id = headers.get("apns-channel-id")
        if channel_id is None:
            return _error(Reason.MISSING_CHANNEL_ID)
        if not _is_base64(channel_id):
            return _error(Reason.BAD_CHANNEL_ID)
        if channel_id not in channels:
            return _error(Reason.CHANNEL_NOT_REGISTERED)
        if method == "DELETE":
            del channels[channel_id]
            return Answer(204)
        return _json(200, channels[channel_id].as_dict())

    def _authenticate(self, header: str | None, bundle_id: str) -> Reason | None:
        if header is None:
            return Reason.MISSING_PROVIDER_TOKEN
        scheme, _, raw = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not raw.strip():
            return Reason.INVALID_PROVIDER_TOKEN
        try:
            token = self.keys.verify(raw.strip())
        except TokenRejected as exc:
            return exc.reason
        key = token.key
        if key.environment is not None and key.environment != self.environment:
            return Reason.BAD_ENVIRONMENT_KEY_ID_IN_TOKEN
        if self.clock() - token.issued_at > self.token_max_age:
            return Reason.EXPIRED_PROVIDER_TOKEN
        if not key.broadcast:
            return Reason.FEATURE_NOT_ENABLED
        if key.topics is not None and bundle_id not in key.topics:
            return Reason.TOPIC_DISALLOWED
        return None

    def _create(self, channels: dict[str, ChannelConfig], body: bytes) -> Answer:
        if not body:
            return _error(Reason.PAYLOAD_EMPTY)
        try:
            request = json.loads(body)
        except ValueError:
            return _error(Reason.BAD_REQUEST_PAYLOAD)
        if not isinstance(request, dict):
            return _error(Reason.BAD_REQUEST_PAYLOAD)
        push_type = request.get("push-type")
        if push_type is None:
            return _error(Reason.MISSING_PUSH_TYPE)
        if push_type != PUSH_TYPE:
            return _error(Reason.INVALID_PUSH_TYPE)
        policy = request.get("message-storage-policy", 0)
        if isinstance(policy, bool) or policy not in STORAGE_POLICIES:
            return _error(Reason.BAD_REQUEST_PAYLOAD)
        if len(channels) >= self.store.limit:
            return _error(Reason.CANNOT_CREATE_CHANNEL_CONFIG)
        channel_id = base64.b64encode(secrets.token_bytes(16)).decode("ascii")
        channels[channel_id] = ChannelConfig(policy)
        return Answer(201, (("apns-channel-id", channel_id),))


def _is_base64(value: str) -> bool:
    try:
        return bool(value) and base64.b64encode(base64.b64decode(value, validate=True)) == (
            value.encode("ascii")
        )
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return False


def _json(status: int, data: object) -> Answer:
    body = json.dumps(data, separators=(",", ":")).encode()
    return Answer(status, (("content-type", "application/json"),), body)


def _error(reason: Reason) -> Answer:
    answer = _json(reason.status, {"reason": reason.value})
    return Answer(answer.status, answer.headers, answer.body, reason)
