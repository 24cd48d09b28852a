"""Tests for apns_exporter.receipts.book: the receipt checks, expiry and bounded memory."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from apns_exporter.config.fields import parse_secret
from apns_exporter.errors import ReceiptRejected
from apns_exporter.receipts.book import (
    MAX_BODY,
    PAYLOAD_KEY,
    REASONS,
    Delivery,
    ReceiptBook,
    canary_payload,
    encode_receipt,
    new_canary_id,
    sign,
)

SECRET = b"0123456789abcdef0123456789abcdef"
NOW = 1_750_000_000.0


@pytest.fixture
def book() -> ReceiptBook:
    return ReceiptBook({"prod": SECRET})


def receipt(
    target: str = "prod", canary_id: str = "c1", received_at: float = NOW + 0.5
) -> tuple[bytes, str]:
    body = encode_receipt(target, canary_id, received_at)
    return body, sign(SECRET, body)


def rejection(book: ReceiptBook, body: bytes, header: str | None, now: float = NOW + 1) -> str:
    with pytest.raises(ReceiptRejected) as caught:
        book.accept(body, header, now)
    assert caught.value.reason in REASONS
    return caught.value.reason


def test_valid_receipt_is_a_delivery(book: ReceiptBook) -> None:
    """A signed receipt for an awaited canary yields its delivery with the latency."""
    book.expect("prod", "c1", NOW, 60)
    delivery = book.accept(*receipt(received_at=NOW + 2.5), NOW + 3)
    assert delivery == Delivery("prod", "c1", NOW, NOW + 2.5, 2.5)
    assert book.pending() == 0


def test_signature_matches_a_plain_hmac() -> None:
    """sign() is HMAC-SHA256 over the raw body, hex, prefixed with sha256=."""
    body = b'{"target":"prod"}'
    assert sign(SECRET, body) == "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()


def test_upper_case_hex_signature_is_accepted(book: ReceiptBook) -> None:
    """Hex case does not matter, as some HMAC libraries print upper case."""
    book.expect("prod", "c1", NOW, 60)
    body, header = receipt()
    assert book.accept(body, "sha256=" + header.removeprefix("sha256=").upper(), NOW + 1)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "sha256=",
        "sha1=abc",
        "sha256=" + "0" * 64,
        "sha256=é",
        sign(b"another secret of enough length", encode_receipt("prod", "c1", NOW + 0.5)),
    ],
)
def test_bad_signature(book: ReceiptBook, header: str | None) -> None:
    """A missing, malformed or wrong signature is rejected as bad_signature."""
    book.expect("prod", "c1", NOW, 60)
    body, _ = receipt()
    assert rejection(book, body, header) == "bad_signature"
    assert book.pending("prod") == 1


def test_signature_covers_the_raw_bytes(book: ReceiptBook) -> None:
    """Re-encoding the same JSON differently breaks the signature."""
    book.expect("prod", "c1", NOW, 60)
    body, header = receipt()
    spaced = json.dumps(json.loads(body)).encode()
    assert rejection(book, spaced, header) == "bad_signature"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"[]",
        b'{"canary_id":"c1","received_at":1}',
        b'{"target":"prod","received_at":1}',
        b'{"target":"prod","canary_id":"c1"}',
        b'{"target":1,"canary_id":"c1","received_at":1}',
        b'{"target":"prod","canary_id":"","received_at":1}',
        b'{"target":"prod","canary_id":"a/b","received_at":1}',
        b'{"target":"prod","canary_id":"c1","received_at":"1"}',
        b'{"target":"prod","canary_id":"c1","received_at":true}',
        b'{"target":"prod","canary_id":"c1","received_at":NaN}',
        b'{"target":"prod","canary_id":"c1","received_at":1e999}',
    ],
)
def test_malformed(book: ReceiptBook, body: bytes) -> None:
    """Bodies that are not a receipt object are rejected as malformed, signed or not."""
    assert rejection(book, body, sign(SECRET, body)) == "malformed"


def test_unknown_target(book: ReceiptBook) -> None:
    """A receipt for a target without a secret is rejected, naming no target."""
    body = encode_receipt("staging", "c1", NOW)
    with pytest.raises(ReceiptRejected) as caught:
        book.accept(body, sign(SECRET, body), NOW)
    assert caught.value.reason == "unknown_target"
    assert caught.value.target is None


def test_rejection_names_configured_target_after_lookup(book: ReceiptBook) -> None:
    """Once the target is known to be configured, rejections carry it for per-target counting."""
    body, _ = receipt()
    with pytest.raises(ReceiptRejected) as caught:
        book.accept(body, "sha256=00", NOW)
    assert caught.value.target == "prod"


def test_unknown_canary(book: ReceiptBook) -> None:
    """A signed receipt for a canary that was never sent is rejected as unknown_canary."""
    assert rejection(book, *receipt(canary_id="never")) == "unknown_canary"


def test_replay(book: ReceiptBook) -> None:
    """The second receipt for one canary is a replay, even with a new received_at."""
    book.expect("prod", "c1", NOW, 60)
    body, header = receipt()
    book.accept(body, header, NOW + 1)
    assert rejection(book, body, header, NOW + 2) == "replay"
    assert rejection(book, *receipt(received_at=NOW + 1.5), NOW + 2) == "replay"


def test_stale_when_older_than_the_freshness_window() -> None:
    """received_at further back than the freshness window is stale."""
    book = ReceiptBook({"prod": SECRET}, freshness=300)
    book.expect("prod", "c1", NOW, 3600)
    assert rejection(book, *receipt(received_at=NOW + 10), NOW + 311) == "stale"
    assert book.pending("prod") == 1


def test_stale_when_in_the_future_beyond_clock_skew(book: ReceiptBook) -> None:
    """received_at more than the clock skew ahead of now is stale."""
    book.expect("prod", "c1", NOW, 60)
    assert rejection(book, *receipt(received_at=NOW + 62), NOW + 1) == "stale"


def test_stale_when_before_the_canary_was_sent(book: ReceiptBook) -> None:
    """A receipt claiming arrival well before the send is stale."""
    book.expect("prod", "c1", NOW, 600)
    assert rejection(book, *receipt(received_at=NOW - 120), NOW) == "stale"


def test_small_negative_latency_from_skew_is_clamped(book: ReceiptBook) -> None:
    """A device clock slightly behind gives latency 0, not a negative observation."""
    book.expect("prod", "c1", NOW, 60)
    assert book.accept(*receipt(received_at=NOW - 2), NOW + 1).latency == 0.0


def test_too_large(book: ReceiptBook) -> None:
    """A body over the limit is rejected before it is parsed."""
    body = b"{" + b" " * MAX_BODY + b"}"
    assert rejection(book, body, sign(SECRET, body)) == "too_large"


def test_expire_reports_lost_canaries(book: ReceiptBook) -> None:
    """Canaries past their deadline are reported once as lost; a late receipt is unknown."""
    book.expect("prod", "c1", NOW, 60)
    book.expect("prod", "c2", NOW + 30, 60)
    assert book.next_due() == NOW + 60
    assert book.expire(NOW + 59) == []
    assert book.expire(NOW + 60) == [("prod", "c1")]
    assert book.expire(NOW + 61) == []
    assert rejection(book, *receipt(received_at=NOW + 61), NOW + 62) == "unknown_canary"
    assert book.expire(NOW + 90) == [("prod", "c2")]
    assert book.next_due() is None


def test_discard_stops_awaiting(book: ReceiptBook) -> None:
    """A discarded canary (APNs refused it) is neither delivered nor lost."""
    book.expect("prod", "c1", NOW, 60)
    assert book.discard("prod", "c1")
    assert not book.discard("prod", "c1")
    assert book.expire(NOW + 100) == []


def test_expect_for_a_target_without_secret_is_a_bug(book: ReceiptBook) -> None:
    """Awaiting a receipt that could never be verified raises."""
    with pytest.raises(KeyError, match="no receipt secret"):
        book.expect("staging", "c1", NOW, 60)


def test_pending_is_capped_per_target_and_overflow_is_lost() -> None:
    """Beyond max_pending the oldest canary is given up, and expire() reports it lost."""
    book = ReceiptBook({"prod": SECRET, "dev": SECRET}, max_pending=3)
    for i in range(5):
        book.expect("prod", f"c{i}", NOW + i, 60)
    book.expect("dev", "d0", NOW, 60)
    assert book.pending("prod") == 3
    assert book.pending("dev") == 1
    assert book.expire(NOW) == [("prod", "c0"), ("prod", "c1")]
    assert rejection(book, *receipt(canary_id="c0")) == "unknown_canary"


def test_replay_set_is_bounded() -> None:
    """The replay set keeps at most max_received ids; older ones fall back to unknown_canary."""
    book = ReceiptBook({"prod": SECRET}, max_received=2)
    for i in range(3):
        book.expect("prod", f"c{i}", NOW, 60)
        book.accept(*receipt(canary_id=f"c{i}"), NOW + 1)
    assert rejection(book, *receipt(canary_id="c0")) == "unknown_canary"
    assert rejection(book, *receipt(canary_id="c2")) == "replay"


def test_replay_set_forgets_receipts_once_they_are_stale() -> None:
    """Replays outside the freshness window are stale, so the replay set need not keep them."""
    book = ReceiptBook({"prod": SECRET}, freshness=300)
    book.expect("prod", "c1", NOW, 60)
    body, header = receipt(received_at=NOW + 1)
    book.accept(body, header, NOW + 2)
    assert rejection(book, body, header, NOW + 400) == "stale"
    assert not book._received


def test_set_secrets_forgets_removed_targets(book: ReceiptBook) -> None:
    """On reload a removed target's canaries are dropped, and new targets can be awaited."""
    book.expect("prod", "c1", NOW, 60)
    book.set_secrets({"dev": SECRET})
    assert book.targets == frozenset({"dev"})
    assert book.pending() == 0
    book.expect("dev", "d1", NOW, 60)
    assert book.expire(NOW + 60) == [("dev", "d1")]


def test_empty_secret_is_refused() -> None:
    """An empty HMAC key would accept forgeries; it is a configuration error."""
    with pytest.raises(ValueError, match="empty"):
        ReceiptBook({"prod": b""})


def test_parse_secret_strips_whitespace_and_requires_length() -> None:
    """A secret file's trailing newline is not part of the key, and short keys are refused."""
    assert parse_secret(b"  " + SECRET + b"\n") == SECRET
    with pytest.raises(ValueError, match="at least 16"):
        parse_secret(b"short\n")


def test_canary_payload_adds_the_canary_without_mutating() -> None:
    """canary_payload() adds the apns_exporter object and leaves the configured payload alone."""
    base = {"aps": {"content-available": 1}}
    payload = canary_payload(base, target="prod", canary_id="c1", sent_at=NOW + 0.12345)
    assert payload == {
        "aps": {"content-available": 1},
        PAYLOAD_KEY: {"canary_id": "c1", "sent_at": NOW + 0.123, "target": "prod"},
    }
    assert base == {"aps": {"content-available": 1}}


def test_canary_ids_are_unique_hex() -> None:
    """new_canary_id() gives 32 hex digits, fresh every time."""
    ids = {new_canary_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
