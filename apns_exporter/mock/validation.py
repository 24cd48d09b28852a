"""Apple's request checks, one method per step of ``policy.VALIDATION_ORDER``."""

from __future__ import annotations

import json
import re
import string
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from apns_exporter.apns import PushType, Reason
from apns_exporter.mock.devices import DeviceRegistry
from apns_exporter.mock.keys import KeyRegistry, ProviderToken, TokenRejected
from apns_exporter.mock.pki import ProviderIdentity
from apns_exporter.mock.policy import Policy

DEVICE_PATH_PREFIX = "/3/device/"
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_HEX = frozenset(string.hexdigits)
_PRIORITIES = frozenset({"10", "5", "1"})
MAX_COLLAPSE_ID_BYTES = 64


@dataclass
class Request:
    """One complete HTTP/2 request as the server received it."""

    stream_id: int
    headers: list[tuple[str, str]]
    body: bytearray = field(default_factory=bytearray)
    body_length: int = 0

    def first(self, name: str) -> str | None:
        """The first value of header ``name``, or None."""
        return next((v for k, v in self.headers if k == name), None)

    @property
    def method(self) -> str:
        """The ``:method`` pseudo-header."""
        return self.first(":method") or ""

    @property
    def path(self) -> str:
        """The ``:path`` pseudo-header without any query string."""
        return (self.first(":path") or "").partition("?")[0]

    @property
    def device_token(self) -> str:
        """The token part of a /3/device/<token> path, lower-cased ("" if none)."""
        path = self.path
        if not path.startswith(DEVICE_PATH_PREFIX):
            return ""
        return path[len(DEVICE_PATH_PREFIX) :].lower()

    @property
    def push_type(self) -> PushType:
        """The push type, defaulting to alert (also for invalid values, which `headers` rejects)."""
        try:
            return PushType(self.first("apns-push-type") or "alert")
        except ValueError:
            return PushType.ALERT


@dataclass
class TokenState:
    """The provider token most recently accepted by a connection (or a team), and when."""

    token: str | None = None
    accepted_at: float = 0.0


@dataclass
class Session:
    """Authentication state of one connection: what APNs remembers between requests."""

    peer: str
    identity: ProviderIdentity | None = None
    provider_token: ProviderToken | None = None
    team_id: str | None = None
    tokens: TokenState = field(default_factory=TokenState)
    authenticated: bool = False
    wedged: bool = False
    stuck_until: float | None = None


@dataclass(frozen=True)
class Verdict:
    """The answer to one request: accepted (reason None) or a reason, with the 410 timestamp."""

    reason: Reason | None = None
    timestamp_ms: int | None = None
    wedge: bool = False

    @property
    def status(self) -> int:
        """The HTTP status to answer with."""
        return 200 if self.reason is None else self.reason.status


ACCEPTED = Verdict()


class Validator:
    """Runs the validation steps in the configured order; holds cross-connection state."""

    def __init__(
        self,
        keys: KeyRegistry,
        devices: DeviceRegistry,
        clock: Callable[[], float],
        environment: str,
        policy: Policy,
    ) -> None:
        self.keys = keys
        self.devices = devices
        self.clock = clock
        self.environment = environment
        self.policy = policy
        self._team_tokens: dict[str, TokenState] = {}
        self._recent: dict[str, deque[float]] = {}
        self._steps: dict[str, Callable[[Request, Session], Verdict | None]] = {
            "method": self._method,
            "path": self._path,
            "auth": self._auth,
            "headers": self._headers,
            "device_token": self._device_token,
            "payload": self._payload,
            "rate": self._rate,
        }

    def validate(self, request: Request, session: Session) -> Verdict:
        """Run every step; the first rejection wins, else the scripted device answer, else 200."""
        for step in self.policy.validation_order:
            verdict = self._steps[step](request, session)
            if verdict is not None:
                return verdict
        device = self.devices.get(request.device_token)
        if device is not None and device.script:
            reason = device.script.popleft()
            stamp = int(self.clock() * 1000) if reason.status == 410 else None
            return Verdict(reason, stamp)
        return ACCEPTED

    # -- steps -------------------------------------------------------------------------------

    def _method(self, request: Request, session: Session) -> Verdict | None:
        return None if request.method == "POST" else Verdict(Reason.METHOD_NOT_ALLOWED)

    def _path(self, request: Request, session: Session) -> Verdict | None:
        path = request.path
        if path.rstrip("/") == DEVICE_PATH_PREFIX.rstrip("/"):
            return Verdict(Reason.MISSING_DEVICE_TOKEN)
        if not path.startswith(DEVICE_PATH_PREFIX) or "/" in path[len(DEVICE_PATH_PREFIX) :]:
            return Verdict(Reason.BAD_PATH)
        return None

    def _auth(self, request: Request, session: Session) -> Verdict | None:
        header = request.first("authorization")
        if header is None:
            if session.identity is not None:
                session.authenticated = True
                return None
            return Verdict(Reason.MISSING_PROVIDER_TOKEN)
        scheme, _, raw = header.strip().partition(" ")
        raw = raw.strip()
        if scheme.lower() != "bearer" or not raw:
            return Verdict(Reason.INVALID_PROVIDER_TOKEN)
        now = self.clock()
        policy = self.policy
        if session.stuck_until is not None and now < session.stuck_until:
            return Verdict(Reason.TOO_MANY_PROVIDER_TOKEN_UPDATES)
        current = session.provider_token
        if current is not None and current.raw == raw:
            token = current
        else:
            try:
                token = self.keys.verify(raw)
            except TokenRejected as exc:
                return Verdict(exc.reason)
        key = token.key
        if key.environment is not None and key.environment != self.environment:
            return Verdict(Reason.BAD_ENVIRONMENT_KEY_ID_IN_TOKEN)
        if session.team_id is not None and key.team_id != session.team_id:
            return Verdict(Reason.INVALID_PROVIDER_TOKEN)
        if current is not None and not current.key.related_to(key):
            return Verdict(Reason.UNRELATED_KEY_ID_IN_TOKEN)
        if now - token.issued_at > policy.token_max_age:
            return Verdict(Reason.EXPIRED_PROVIDER_TOKEN, wedge=policy.wedge_on_expired_token)
        if policy.max_future_iat is not None and token.issued_at - now > policy.max_future_iat:
            return Verdict(Reason.INVALID_PROVIDER_TOKEN)
        state = (
            self._team_tokens.setdefault(key.team_id, TokenState())
            if policy.token_update_scope == "team"
            else session.tokens
        )
        too_soon = now - state.accepted_at < policy.token_min_refresh
        if state.token is not None and state.token != raw and too_soon:
            if policy.token_update_cooloff > 0:
                session.stuck_until = now + policy.token_update_cooloff
            return Verdict(Reason.TOO_MANY_PROVIDER_TOKEN_UPDATES)
        if state.token != raw:
            state.token, state.accepted_at = raw, now
        session.provider_token = token
        session.team_id = key.team_id
        session.authenticated = True
        return None

    def _headers(self, request: Request, session: Session) -> Verdict | None:
        apns_id = request.first("apns-id")
        if apns_id is not None and not is_uuid(apns_id):
            return Verdict(Reason.BAD_MESSAGE_ID)
        raw_type = request.first("apns-push-type")
        push_type = request.push_type
        priority = request.first("apns-priority")
        if priority is not None and (
            priority not in _PRIORITIES
            or (priority == "10" and (push_type is PushType.BACKGROUND or _silent(request.body)))
        ):
            return Verdict(Reason.BAD_PRIORITY)
        if (raw_type is None and self.policy.require_push_type) or (
            raw_type is not None and raw_type != push_type.value
        ):
            return Verdict(Reason.INVALID_PUSH_TYPE)
        verdict = self._topic(request, session, push_type)
        if verdict is not None:
            return verdict
        collapse_id = request.first("apns-collapse-id")
        if collapse_id is not None and len(collapse_id.encode()) > MAX_COLLAPSE_ID_BYTES:
            return Verdict(Reason.BAD_COLLAPSE_ID)
        expiration = request.first("apns-expiration")
        if expiration is not None and not (expiration.isascii() and expiration.isdigit()):
            return Verdict(Reason.BAD_EXPIRATION_DATE)
        names = [name for name, _ in request.headers if not name.startswith(":")]
        if len(names) != len(set(names)):
            return Verdict(Reason.DUPLICATE_HEADERS)
        return None

    def _topic(self, request: Request, session: Session, push_type: PushType) -> Verdict | None:
        topic = topic_of(request, session)
        if topic is None:
            return Verdict(Reason.MISSING_TOPIC)
        suffix = push_type.topic_suffix
        if suffix and not topic.endswith(suffix):
            return Verdict(Reason.BAD_TOPIC)
        base = topic.removesuffix(suffix) if suffix else topic
        identity = session.identity
        if identity is not None and request.first("authorization") is None:
            certified = topic in identity.topics or (
                push_type not in (PushType.VOIP, PushType.COMPLICATION) and base in identity.topics
            )
            if not certified:
                return Verdict(Reason.BAD_TOPIC)
        token = session.provider_token
        if token is not None and token.key.topics is not None and base not in token.key.topics:
            return Verdict(Reason.TOPIC_DISALLOWED)
        if base in self.policy.disallowed_topics:
            return Verdict(Reason.TOPIC_DISALLOWED)
        return None

    def _device_token(self, request: Request, session: Session) -> Verdict | None:
        token = request.device_token
        low, high = self.policy.device_token_length
        if not low <= len(token) <= high or len(token) % 2 or not _HEX.issuperset(token):
            return Verdict(Reason.BAD_DEVICE_TOKEN)
        device = self.devices.get(token)
        if device is None:
            return Verdict(Reason.BAD_DEVICE_TOKEN)
        if device.environment is not None and device.environment != self.environment:
            return Verdict(Reason.BAD_DEVICE_TOKEN)
        topic = topic_of(request, session)
        if topic is not None:
            suffix = request.push_type.topic_suffix
            base = topic.removesuffix(suffix) if suffix else topic
            if device.topic not in (topic, base):
                return Verdict(Reason.DEVICE_TOKEN_NOT_FOR_TOPIC)
        if device.gone_at is not None:
            return Verdict(device.gone_reason, int(device.gone_at * 1000))
        return None

    def _payload(self, request: Request, session: Session) -> Verdict | None:
        if request.body_length == 0:
            return Verdict(Reason.PAYLOAD_EMPTY)
        if request.body_length > request.push_type.max_payload_bytes:
            return Verdict(Reason.PAYLOAD_TOO_LARGE)
        return None

    def _rate(self, request: Request, session: Session) -> Verdict | None:
        limit = self.policy.rate_limit
        if limit is None:
            return None
        now = self.clock()
        recent = self._recent.setdefault(request.device_token, deque())
        while recent and now - recent[0] >= limit.per_seconds:
            recent.popleft()
        if len(recent) >= limit.pushes:
            return Verdict(Reason.TOO_MANY_REQUESTS)
        recent.append(now)
        return None


def _silent(body: bytes | bytearray) -> bool:
    """Whether a payload's ``aps`` holds only ``content-available`` (no alert, sound or badge).

    Apple: priority 10 "is an error ... for a push notification that contains only the
    content-available key". Keys outside ``aps`` are the app's data and do not count.
    """
    try:
        payload = json.loads(body)
    except ValueError:
        return False
    aps = payload.get("aps") if isinstance(payload, dict) else None
    return isinstance(aps, dict) and set(aps) == {"content-available"}


def is_uuid(value: str) -> bool:
    """Whether ``value`` is a canonical 8-4-4-4-12 UUID, the only form APNs accepts."""
    return _UUID.fullmatch(value) is not None


def topic_of(request: Request, session: Session) -> str | None:
    """The effective topic: the header, else the sole topic of a client certificate."""
    topic = request.first("apns-topic")
    if topic is not None:
        return topic
    identity = session.identity
    if identity is not None and (len(identity.topics) == 1 or request.push_type is PushType.MDM):
        return identity.uid
    return None
