"""Tests for apns_exporter.creds.tokens: .p8 loading and the provider-token refresh schedule."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from apns_exporter import apns
from apns_exporter.creds.tokens import ProviderToken, TokenCache, load_signing_key
from apns_exporter.errors import CredentialError

KEY_ID = "ABC123DEFG"
TEAM_ID = "DEF123GHIJ"
START = 1_700_000_000.25
MINUTE = 60.0


class FakeClock:
    """A wall clock that only moves when told to."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def pkcs8(key: object, password: bytes | None = None) -> bytes:
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(  # type: ignore[attr-defined,no-any-return]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


@pytest.fixture(scope="module")
def signing_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def token(signing_key: ec.EllipticCurvePrivateKey, clock: FakeClock) -> ProviderToken:
    return ProviderToken(
        signing_key, key_id=KEY_ID, team_id=TEAM_ID, refresh_interval=50 * MINUTE, clock=clock
    )


# -- load_signing_key ---------------------------------------------------------------------


def test_load_signing_key_reads_apple_p8(
    tmp_path: Path, signing_key: ec.EllipticCurvePrivateKey
) -> None:
    """A PEM PKCS#8 P-256 key, as Apple issues it, loads as the same private key."""
    path = tmp_path / f"AuthKey_{KEY_ID}.p8"
    path.write_bytes(pkcs8(signing_key))
    loaded = load_signing_key(path)
    assert loaded.private_numbers() == signing_key.private_numbers()


def test_missing_key_file_is_not_found(tmp_path: Path) -> None:
    """A key path that does not exist fails with reason not_found and names the path."""
    path = tmp_path / "missing.p8"
    with pytest.raises(CredentialError) as caught:
        load_signing_key(path)
    assert caught.value.reason == "not_found"
    assert str(caught.value) == f"signing key {path}: file not found (check the path)"


def test_directory_as_key_file_is_not_found(tmp_path: Path) -> None:
    """A directory where the key file should be fails with reason not_found."""
    with pytest.raises(CredentialError) as caught:
        load_signing_key(tmp_path)
    assert caught.value.reason == "not_found"
    assert str(caught.value).startswith(f"signing key {tmp_path}: is a directory")


def test_unreadable_key_file_is_permission_denied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signing_key: ec.EllipticCurvePrivateKey
) -> None:
    """A key file the process may not read fails with reason permission_denied."""
    path = tmp_path / "key.p8"
    path.write_bytes(pkcs8(signing_key))

    real_open = os.open

    def denied(name: Any, *args: Any, **kwargs: Any) -> int:
        if os.fspath(name) == str(path):
            raise PermissionError(13, "Permission denied", str(name))
        return real_open(name, *args, **kwargs)

    # Tests may run as root, where chmod 000 does not stop reads; fail the open directly.
    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(CredentialError) as caught:
        load_signing_key(path)
    assert caught.value.reason == "permission_denied"
    assert str(caught.value) == (
        f"signing key {path}: permission denied (let the exporter's user read it)"
    )


P8_HINT = "the AuthKey_<key ID>.p8 file downloaded from Apple"


def _bad_p8_cases() -> list[tuple[str, bytes, str]]:
    p256 = ec.generate_private_key(ec.SECP256R1())
    return [
        ("garbage", b"SECRET-MARKER not a key\n", f"not a PEM PKCS#8 key (use {P8_HINT})"),
        (
            "sec1",
            p256.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            ),
            f"not a PEM PKCS#8 key (use {P8_HINT})",
        ),
        (
            "corrupt",
            b"-----BEGIN PRIVATE KEY-----\nSECRET-MARKER\n-----END PRIVATE KEY-----\n",
            f"not a valid PEM PKCS#8 key (use {P8_HINT})",
        ),
        (
            "encrypted",
            pkcs8(p256, password=b"hunter2"),
            f"encrypted with a password, but {P8_HINT} is not",
        ),
        (
            "p384",
            pkcs8(ec.generate_private_key(ec.SECP384R1())),
            f"a secp384r1 key, but APNs needs EC P-256 (use {P8_HINT})",
        ),
        (
            "rsa",
            pkcs8(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
            f"a non-EC key, but APNs needs EC P-256 (use {P8_HINT})",
        ),
    ]


@pytest.mark.parametrize(
    ("content", "message"), [c[1:] for c in _bad_p8_cases()], ids=[c[0] for c in _bad_p8_cases()]
)
def test_bad_key_content_is_bad_p8(tmp_path: Path, content: bytes, message: str) -> None:
    """Anything but an unencrypted PEM PKCS#8 P-256 key fails as bad_p8, without its content."""
    path = tmp_path / "key.p8"
    path.write_bytes(content)
    with pytest.raises(CredentialError) as caught:
        load_signing_key(path)
    assert caught.value.reason == "bad_p8"
    assert str(caught.value) == f"signing key {path}: {message}"
    assert "SECRET-MARKER" not in str(caught.value)
    assert caught.value.__cause__ is None


# -- ProviderToken --------------------------------------------------------------------------


def test_token_has_apple_header_and_claims_signed_by_the_key(
    token: ProviderToken, signing_key: ec.EllipticCurvePrivateKey
) -> None:
    """The JWT header is exactly alg ES256 and kid, and the claims iss and integer iat verify."""
    bearer = token.bearer()
    assert jwt.get_unverified_header(bearer) == {"alg": "ES256", "kid": KEY_ID}
    claims = jwt.decode(bearer, signing_key.public_key(), algorithms=["ES256"])
    assert claims == {"iss": TEAM_ID, "iat": int(START)}
    assert token.issued_at == float(int(START))


def test_token_is_minted_lazily(token: ProviderToken) -> None:
    """No token exists, and none is counted, until bearer() is first called."""
    assert token.issued_at is None
    assert token.refreshes == 0
    token.bearer()
    assert token.refreshes == 1


def test_token_is_reused_until_refresh_interval(token: ProviderToken, clock: FakeClock) -> None:
    """The same JWT is returned until it is refresh_interval old."""
    first = token.bearer()
    clock.advance(50 * MINUTE - 0.001)
    assert token.bearer() == first
    assert token.refreshes == 1


def test_token_is_reminted_at_refresh_interval(token: ProviderToken, clock: FakeClock) -> None:
    """Once the token is refresh_interval old, bearer() mints a new one with the current iat."""
    first = token.bearer()
    clock.advance(50 * MINUTE)
    second = token.bearer()
    assert second != first
    assert token.issued_at == float(int(START + 50 * MINUTE))
    assert token.refreshes == 2


def test_force_refresh_within_twenty_minutes_is_deferred(
    token: ProviderToken, clock: FakeClock
) -> None:
    """force_refresh() sooner than 20 minutes after a mint returns False and changes nothing."""
    first = token.bearer()
    clock.advance(20 * MINUTE - 1)
    assert token.force_refresh() is False
    assert token.bearer() == first
    assert token.refreshes == 1


def test_deferred_force_refresh_mints_once_the_guard_allows(
    token: ProviderToken, clock: FakeClock
) -> None:
    """A refresh asked for too early is kept, and the first bearer() after 20 minutes mints."""
    first = token.bearer()
    clock.advance(5 * MINUTE)
    token.force_refresh()
    clock.advance(15 * MINUTE)
    assert token.bearer() != first
    assert token.refreshes == 2
    assert token.issued_at == float(int(START + 20 * MINUTE))


def test_force_refresh_after_twenty_minutes_mints_on_next_bearer(
    token: ProviderToken, clock: FakeClock
) -> None:
    """force_refresh() 20 minutes or more after a mint returns True and the next bearer() mints."""
    first = token.bearer()
    clock.advance(20 * MINUTE)
    assert token.force_refresh() is True
    second = token.bearer()
    assert second != first
    clock.advance(1)
    assert token.bearer() == second
    assert token.refreshes == 2


def test_force_refresh_before_first_token_reports_a_mint(token: ProviderToken) -> None:
    """Before any token exists, force_refresh() says the next bearer() mints."""
    assert token.force_refresh() is True
    token.bearer()
    assert token.refreshes == 1


def test_clock_stepping_back_does_not_remint(token: ProviderToken, clock: FakeClock) -> None:
    """A wall clock stepped backwards never counts as the token getting older."""
    first = token.bearer()
    clock.advance(-2 * 3600)
    assert token.force_refresh() is False
    assert token.bearer() == first


@pytest.mark.parametrize("seconds", [1199.0, 3601.0])
def test_refresh_interval_outside_apple_limits_is_rejected(
    signing_key: ec.EllipticCurvePrivateKey, seconds: float
) -> None:
    """ProviderToken refuses a refresh interval outside 20..60 minutes."""
    with pytest.raises(ValueError, match=r"outside 1200\.\.3600"):
        ProviderToken(signing_key, key_id=KEY_ID, team_id=TEAM_ID, refresh_interval=seconds)


@settings(max_examples=200, deadline=None)
@given(
    refresh_interval=st.floats(apns.TOKEN_MIN_REFRESH_SECONDS, apns.TOKEN_MAX_AGE_SECONDS),
    steps=st.lists(st.tuples(st.floats(0, 4000, allow_nan=False), st.booleans()), max_size=40),
)
def test_schedule_never_mints_within_twenty_minutes_or_serves_stale_tokens(
    signing_key: ec.EllipticCurvePrivateKey,
    refresh_interval: float,
    steps: list[tuple[float, bool]],
) -> None:
    """Whatever the timing of calls, mints are 20+ minutes apart and tokens are served fresh."""
    clock = FakeClock()
    token = ProviderToken(
        signing_key,
        key_id=KEY_ID,
        team_id=TEAM_ID,
        refresh_interval=refresh_interval,
        clock=clock,
    )
    mints: list[float] = []
    for advance, force in steps:
        clock.advance(advance)
        if force:
            token.force_refresh()
        before = token.refreshes
        token.bearer()
        if token.refreshes != before:
            mints.append(clock.now)
        assert token.issued_at is not None
        assert clock.now - token.issued_at < refresh_interval + 1
    gaps = [b - a for a, b in itertools.pairwise(mints)]
    assert all(gap >= apns.TOKEN_MIN_REFRESH_SECONDS for gap in gaps)


# -- TokenCache ----------------------------------------------------------------------------


def test_token_cache_shares_one_schedule_per_team_and_key(
    tmp_path: Path, signing_key: ec.EllipticCurvePrivateKey
) -> None:
    """Targets naming the same team and key get the same ProviderToken; other keys get their own."""
    path = tmp_path / "key.p8"
    path.write_bytes(pkcs8(signing_key))
    clock = FakeClock()
    cache = TokenCache(clock=clock)
    shared = cache.get(path, KEY_ID, TEAM_ID, 3000.0)
    assert cache.get(path, KEY_ID, TEAM_ID, 2400.0) is shared
    other = cache.get(path, "XYZ987WVUT", TEAM_ID, 3000.0)
    assert other is not shared
    assert shared.bearer() == cache.get(path, KEY_ID, TEAM_ID).bearer()
    assert shared.refreshes == 1
    assert shared.issued_at == float(int(clock.now))


def test_token_cache_raises_credential_error_for_bad_key(tmp_path: Path) -> None:
    """A key that cannot be loaded raises CredentialError from get() and is not cached."""
    cache = TokenCache()
    path = tmp_path / "missing.p8"
    with pytest.raises(CredentialError):
        cache.get(path, KEY_ID, TEAM_ID)
    path.write_bytes(pkcs8(ec.generate_private_key(ec.SECP256R1())))
    assert cache.get(path, KEY_ID, TEAM_ID).bearer()
