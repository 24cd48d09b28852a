"""How the mock interprets Apple's rules where they are configurable or unknown."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from apns_exporter.apns import TOKEN_MAX_AGE_SECONDS, TOKEN_MIN_REFRESH_SECONDS

# The order among several defects in one request (Apple is silent on most of it; see the
# "defect-order" row of mock.conformance).
# Connection-level checks (client certificate validity and environment) come before all of
# these, at TLS handshake and right after the HTTP/2 preface. Then, per request:
#   method        :method must be POST                             405 MethodNotAllowed
#   path          /3/device/<token>                     404 BadPath, 400 MissingDeviceToken
#   auth          provider token or client certificate  403 ..., 429 TooManyProviderTokenUpdates
#   headers       apns-id, priority, push type, topic, collapse id,
#                 expiration, duplicates                            400 ...
#   device_token  hex, length, registry, topic, still registered    400 BadDeviceToken, ..., 410
#   payload       not empty, within 4096 (5120 for VoIP) bytes      400 PayloadEmpty, 413
#   rate          pushes per device token per window                429 TooManyRequests
# Putting auth before device_token is what makes a fake-token canary prove that auth works.
VALIDATION_ORDER: tuple[str, ...] = (
    "method",
    "path",
    "auth",
    "headers",
    "device_token",
    "payload",
    "rate",
)


@dataclass(frozen=True)
class RateLimit:
    """At most ``pushes`` to one device token per ``per_seconds`` (mock clock), else 429."""

    pushes: int
    per_seconds: float


@dataclass(frozen=True)
class Policy:
    """Apple behaviour knobs; the defaults are the most faithful reading of the evidence."""

    validation_order: tuple[str, ...] = VALIDATION_ORDER
    # MAX_CONCURRENT_STREAMS before the first valid provider token, and after it.
    unauthenticated_streams: int = 1
    authenticated_streams: int = 1000
    # Apple drops the limit to 1 after any rejected push and restores it after an accepted one.
    drop_streams_on_rejection: bool = True
    token_max_age: float = TOKEN_MAX_AGE_SECONDS
    token_min_refresh: float = TOKEN_MIN_REFRESH_SECONDS
    # Where "a different token within 20 minutes" is counted: UNKNOWN at Apple.
    token_update_scope: Literal["connection", "team"] = "connection"
    # After TooManyProviderTokenUpdates, every token is refused for this long (0 = only new ones).
    token_update_cooloff: float = 0.0
    # An iat this far in the future is InvalidProviderToken; None accepts any (UNKNOWN at Apple).
    max_future_iat: float | None = None
    wedge_on_expired_token: bool = True
    # Hex characters; Apple says token length may change and Live Activity tokens are longer.
    device_token_length: tuple[int, int] = (64, 200)
    require_push_type: bool = False
    disallowed_topics: tuple[str, ...] = ()
    rate_limit: RateLimit | None = None

    def __post_init__(self) -> None:
        unknown = set(self.validation_order) - set(VALIDATION_ORDER)
        if unknown:
            raise ValueError(f"unknown validation step(s): {sorted(unknown)}")
        low, high = self.device_token_length
        if not 0 < low <= high:
            raise ValueError(f"device_token_length must be 0 < min <= max, got {low}..{high}")
        if self.unauthenticated_streams < 1 or self.authenticated_streams < 1:
            raise ValueError("stream limits must be at least 1")
