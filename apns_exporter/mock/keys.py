"""Provider signing keys the mock knows, and ES256 provider-token (JWT) verification."""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from apns_exporter.apns import Reason

# Claim checks PyJWT would otherwise apply with the wall clock; APNs rules run on the mock's clock.
_DECODE_OPTIONS: Any = {
    "verify_signature": True,
    "verify_exp": False,
    "verify_iat": False,
    "verify_nbf": False,
    "verify_iss": False,
    "verify_aud": False,
    "verify_sub": False,
    "verify_jti": False,
    "require": [],
}


@dataclass(frozen=True)
class ProviderKey:
    """A registered signing key: who owns it and what it may be used for.

    ``topics`` None is a team-scoped key (any topic of the team); a set is a topic-specific
    key. ``environment`` None is valid for both; otherwise only for that environment.
    ``broadcast`` False is a key the channel-management API refuses (FeatureNotEnabled).
    """

    key_id: str
    team_id: str
    public_key: ec.EllipticCurvePublicKey
    topics: frozenset[str] | None = None
    environment: str | None = None
    broadcast: bool = True

    def related_to(self, other: ProviderKey) -> bool:
        """Whether tokens from both keys may share a connection (Apple's "related key")."""
        if self.key_id == other.key_id:
            return True
        return (
            self.team_id == other.team_id
            and self.topics is None
            and other.topics is None
            and self.environment == other.environment
        )


@dataclass(frozen=True)
class ProviderToken:
    """A provider token whose signature verified against a registered key."""

    raw: str
    key: ProviderKey
    issued_at: float


class TokenRejected(Exception):
    """A provider token that cannot be accepted; ``reason`` is the APNs reason to answer with."""

    def __init__(self, reason: Reason, detail: str) -> None:
        self.reason = reason
        super().__init__(detail)


class KeyRegistry:
    """The signing keys whose tokens the mock accepts, by key ID."""

    def __init__(self) -> None:
        self._keys: dict[str, ProviderKey] = {}

    def add(
        self,
        key_id: str,
        team_id: str,
        public_key: ec.EllipticCurvePublicKey,
        topics: Iterable[str] | None = None,
        environment: str | None = None,
        *,
        broadcast: bool = True,
    ) -> ProviderKey:
        """Register (or replace) a key; ``broadcast`` False denies it channel management."""
        key = ProviderKey(
            key_id,
            team_id,
            public_key,
            frozenset(topics) if topics is not None else None,
            environment,
            broadcast,
        )
        self._keys[key_id] = key
        return key

    def revoke(self, key_id: str) -> None:
        """Forget a key, as Apple does when it is revoked; its tokens become invalid."""
        self._keys.pop(key_id, None)

    def get(self, key_id: str) -> ProviderKey | None:
        """The key with this ID, if registered."""
        return self._keys.get(key_id)

    def __iter__(self) -> Iterator[ProviderKey]:
        return iter(list(self._keys.values()))

    def __len__(self) -> int:
        return len(self._keys)

    def verify(self, raw: str) -> ProviderToken:
        """Check header, signature (raw R||S or DER) and ``iss``; raise TokenRejected if bad.

        Expiry is not judged here: it depends on the clock and on connection state.
        """
        try:
            header = jwt.get_unverified_header(raw)
        except jwt.PyJWTError as exc:
            raise TokenRejected(Reason.INVALID_PROVIDER_TOKEN, f"unparsable token: {exc}") from exc
        if header.get("alg") != "ES256":
            raise TokenRejected(Reason.INVALID_PROVIDER_TOKEN, f"alg {header.get('alg')!r}")
        kid = header.get("kid")
        key = self._keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise TokenRejected(Reason.INVALID_PROVIDER_TOKEN, f"unknown key id {kid!r}")
        claims = _decode(raw, key.public_key)
        if claims.get("iss") != key.team_id:
            raise TokenRejected(
                Reason.INVALID_PROVIDER_TOKEN,
                f"iss {claims.get('iss')!r} is not the team of key {key.key_id}",
            )
        issued_at = _number(claims.get("iat"))
        if issued_at is None:
            raise TokenRejected(Reason.INVALID_PROVIDER_TOKEN, "iat missing or not a number")
        return ProviderToken(raw, key, issued_at)


def _decode(raw: str, public_key: ec.EllipticCurvePublicKey) -> dict[str, Any]:
    try:
        return _decode_once(raw, public_key)
    except jwt.InvalidSignatureError:
        # Java's SHA256withECDSA and old APNSwift sign in DER; APNs accepts those too.
        der_form = _der_to_raw(raw)
        if der_form is None:
            raise TokenRejected(Reason.INVALID_PROVIDER_TOKEN, "bad signature") from None
        try:
            return _decode_once(der_form, public_key)
        except jwt.PyJWTError:
            raise TokenRejected(Reason.INVALID_PROVIDER_TOKEN, "bad signature") from None
    except jwt.PyJWTError as exc:
        raise TokenRejected(Reason.INVALID_PROVIDER_TOKEN, f"undecodable token: {exc}") from exc


def _decode_once(raw: str, public_key: ec.EllipticCurvePublicKey) -> dict[str, Any]:
    claims = jwt.decode(raw, public_key, algorithms=["ES256"], options=_DECODE_OPTIONS)
    if not isinstance(claims, dict):
        raise jwt.DecodeError("claims are not a JSON object")
    return claims


def _der_to_raw(raw: str) -> str | None:
    """Rewrite a token whose signature is DER-encoded into the JWS raw R||S form."""
    head, _, signature = raw.rpartition(".")
    try:
        blob = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
        r, s = decode_dss_signature(blob)
    except ValueError:
        return None
    if r.bit_length() > 256 or s.bit_length() > 256:
        return None
    packed = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return head + "." + base64.urlsafe_b64encode(packed).rstrip(b"=").decode()


def _number(value: object) -> float | None:
    # APNSwift sent iat as a JSON string for years and APNs accepted it.
    if isinstance(value, bool):
        return None
    number: float | None = None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
    return number if number is not None and math.isfinite(number) else None
