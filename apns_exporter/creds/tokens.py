"""APNs signing keys (.p8) and the ES256 provider tokens (JWTs) minted from them."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import jwt
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from apns_exporter import apns, files
from apns_exporter.errors import CredentialError, FileError

Clock = Callable[[], float]

_PKCS8_HEADER = b"-----BEGIN PRIVATE KEY-----"
_ENCRYPTED_HEADER = b"-----BEGIN ENCRYPTED PRIVATE KEY-----"
_P8_HINT = "the AuthKey_<key ID>.p8 file downloaded from Apple"


def read_credential_file(path: Path, what: str) -> bytes:
    """A key or certificate file's bytes through the safe reader; CredentialError otherwise."""
    try:
        return files.read_bytes(path, kind=what, limit=files.CERTIFICATE_LIMIT)
    except FileError as exc:
        raise credential_error(exc) from None


def credential_error(exc: FileError) -> CredentialError:
    """The CredentialError for a credential file the reader refused (same one-line message).

    The reader's reason is kept, except that a file with no certificate in it is bad_pem.
    """
    return CredentialError("bad_pem" if exc.reason == "malformed" else exc.reason, str(exc))


def load_signing_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """Load an APNs .p8 signing key; CredentialError names the file, never its contents."""
    data = read_credential_file(path, "signing key")
    if _ENCRYPTED_HEADER in data:
        raise CredentialError(
            "bad_p8", f"signing key {path}: encrypted with a password, but {_P8_HINT} is not"
        )
    if _PKCS8_HEADER not in data:
        raise CredentialError(
            "bad_p8", f"signing key {path}: not a PEM PKCS#8 key (use {_P8_HINT})"
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # The parser's own message is dropped: it adds nothing and might quote the file.
        raise CredentialError(
            "bad_p8", f"signing key {path}: not a valid PEM PKCS#8 key (use {_P8_HINT})"
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        kind = key.curve.name if isinstance(key, ec.EllipticCurvePrivateKey) else "non-EC"
        raise CredentialError(
            "bad_p8", f"signing key {path}: a {kind} key, but APNs needs EC P-256 (use {_P8_HINT})"
        )
    return key


class ProviderToken:
    """One provider token schedule: mints lazily, reuses, and never re-mints within 20 minutes."""

    def __init__(
        self,
        key: ec.EllipticCurvePrivateKey,
        *,
        key_id: str,
        team_id: str,
        refresh_interval: float = 3000.0,
        clock: Clock = time.time,
    ) -> None:
        if not apns.TOKEN_MIN_REFRESH_SECONDS <= refresh_interval <= apns.TOKEN_MAX_AGE_SECONDS:
            raise ValueError(f"refresh_interval {refresh_interval} is outside 1200..3600 seconds")
        self.key_id = key_id
        self.team_id = team_id
        self.refresh_interval = refresh_interval
        self.refreshes = 0
        self._key = key
        self._clock = clock
        self._token: str | None = None
        self._issued_at: float | None = None
        self._minted_at = 0.0
        self._refresh_requested = False

    @property
    def key(self) -> ec.EllipticCurvePrivateKey:
        """The signing key this token schedule uses."""
        return self._key

    @property
    def issued_at(self) -> float | None:
        """The ``iat`` of the token in use, or None before the first ``bearer()``."""
        return self._issued_at

    def bearer(self) -> str:
        """The JWT to send as ``authorization: bearer <token>``, minted when due."""
        if self._token is None or self._due(self._clock()):
            self._mint()
        assert self._token is not None
        return self._token

    def force_refresh(self) -> bool:
        """Ask for a new token (e.g. after ExpiredProviderToken); True if the next bearer() mints.

        APNs answers TooManyProviderTokenUpdates to tokens replaced within 20 minutes, so a
        request made sooner stays pending until the guard allows it.
        """
        self._refresh_requested = True
        return self._token is None or self._due(self._clock())

    def _due(self, now: float) -> bool:
        age = now - self._minted_at
        if age < apns.TOKEN_MIN_REFRESH_SECONDS:
            return False
        return self._refresh_requested or age >= self.refresh_interval

    def _mint(self) -> None:
        # The guard runs on the unrounded mint time so that it never undercounts by the
        # fraction of a second that int() drops from iat.
        self._minted_at = self._clock()
        issued_at = int(self._minted_at)
        # typ=None drops PyJWT's default "typ" header: Apple documents exactly alg and kid.
        self._token = jwt.encode(
            {"iss": self.team_id, "iat": issued_at},
            self._key,
            algorithm="ES256",
            headers={"kid": self.key_id, "typ": None},
        )
        self._issued_at = float(issued_at)
        self._refresh_requested = False
        self.refreshes += 1


class TokenCache:
    """One ProviderToken per (team ID, key ID), so targets sharing a key share one schedule."""

    def __init__(self, *, clock: Clock = time.time) -> None:
        self._clock = clock
        self._tokens: dict[tuple[str, str], ProviderToken] = {}

    def get(
        self, key_file: Path, key_id: str, team_id: str, refresh_interval: float = 3000.0
    ) -> ProviderToken:
        """The shared token for this key, loading the key on first use (may raise CredentialError).

        The first caller's key file and refresh interval win; later callers share its schedule.
        """
        token = self._tokens.get((team_id, key_id))
        if token is None:
            return self.reload(key_file, key_id, team_id, refresh_interval)
        return token

    def reload(
        self, key_file: Path, key_id: str, team_id: str, refresh_interval: float = 3000.0
    ) -> ProviderToken:
        """Read the key file again; a different key gets a new token (may raise CredentialError).

        The same key keeps the token in use: targets sharing a key each notice the file change,
        and re-minting once per target would churn tokens on their connections.
        """
        key = load_signing_key(key_file)
        token = self._tokens.get((team_id, key_id))
        if token is None or _public_bytes(token.key) != _public_bytes(key):
            token = ProviderToken(
                key,
                key_id=key_id,
                team_id=team_id,
                refresh_interval=refresh_interval,
                clock=self._clock,
            )
            self._tokens[team_id, key_id] = token
        return token


def _public_bytes(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
