"""Probe results folded into metrics, read back through the private registry."""

from __future__ import annotations

from apns_exporter.apns import Reason
from apns_exporter.client.channel import DialReport
from apns_exporter.client.protocol import GoAway, SettingsChanged
from apns_exporter.probes import ProbeKind, ProbeResult, PushOutcome
from apns_exporter.service.metrics import Metrics, response_labels

T = {"target": "t1", "apns_environment": "sandbox"}


def _metrics() -> Metrics:
    metrics = Metrics()
    metrics.add_target(
        "t1",
        "sandbox",
        host="127.0.0.1",
        port=2197,
        topic="com.example.app",
        auth_method="token",
        canary_interval=300,
        ping_interval=60,
        key=("K", "T"),
    )
    return metrics


def _value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, {**T, **labels})


def test_every_documented_reason_starts_at_zero() -> None:
    """Each (status, reason) pair APNs documents exists at 0 before any push."""
    metrics = _metrics()
    pairs = response_labels()
    assert len(pairs) == len(Reason)  # every reason but unknown, plus (200, none)
    for status, reason in pairs:
        assert _value(metrics, "apns_canary_responses_total", status=status, reason=reason) == 0
    assert ("403", "TooManyProviderTokenUpdates") not in pairs
    assert ("429", "TooManyProviderTokenUpdates") in pairs


def test_canary_result_moves_responses_latency_and_up() -> None:
    """A failed auth push counts its reason, observes latency and sets apns_up to 0."""
    metrics = _metrics()
    metrics.record(
        ProbeResult(
            "t1",
            ProbeKind.CANARY,
            False,
            1000.0,
            0.5,
            "denied",
            dials=(DialReport(True, {"resolve": 0.001, "connect": 0.002, "tls": 0.01}),),
            pushes=(PushOutcome("device", False, 0.04, 403, "InvalidProviderToken"),),
            token_issued_at=990.0,
            token_minted=True,
        )
    )
    assert (
        _value(metrics, "apns_canary_responses_total", status="403", reason="InvalidProviderToken")
        == 1
    )
    assert _value(metrics, "apns_canary_duration_seconds_bucket", le="0.05") == 1
    assert _value(metrics, "apns_up") == 0
    assert _value(metrics, "apns_canary_last_attempt_timestamp_seconds") == 1000.5
    assert _value(metrics, "apns_canary_last_success_timestamp_seconds") is None
    assert _value(metrics, "apns_connection_attempts_total") == 1
    assert _value(metrics, "apns_connection_setup_duration_seconds_count", phase="tls") == 1
    assert _value(metrics, "apns_provider_token_issued_timestamp_seconds") == 990.0
    assert _value(metrics, "apns_provider_token_refreshes_total") == 1


def test_unknown_status_and_error_labels_stay_bounded() -> None:
    """A status APNs never sends becomes "other" and an unexpected error "protocol"."""
    metrics = _metrics()
    metrics.record(
        ProbeResult(
            "t1",
            ProbeKind.CANARY,
            False,
            0.0,
            0.1,
            "odd",
            pushes=(
                PushOutcome("device", False, 0.01, 418, "unknown"),
                PushOutcome("device", False, 0.01, error="weird"),
            ),
        )
    )
    assert _value(metrics, "apns_canary_responses_total", status="other", reason="unknown") == 1
    assert _value(metrics, "apns_canary_request_errors_total", error="protocol") == 1


def test_failed_dial_counts_its_layer() -> None:
    """A failed connection attempt increments the failure counter for its reason."""
    metrics = _metrics()
    metrics.record(
        ProbeResult(
            "t1",
            ProbeKind.PING,
            False,
            0.0,
            0.1,
            "nope",
            error="tls_verify",
            dials=(DialReport(False, reason="tls_verify"),),
        )
    )
    assert _value(metrics, "apns_connection_failures_total", reason="tls_verify") == 1
    assert _value(metrics, "apns_connection_up") == 0
    assert _value(metrics, "apns_ping_failures_total", reason="tls_verify") == 1


def test_goaway_and_settings_events() -> None:
    """GOAWAY reasons are counted by form and SETTINGS set the stream-limit gauge."""
    metrics = _metrics()
    metrics.observe("t1", GoAway(0, 0, b'{"reason":"Shutdown"}'))
    metrics.observe("t1", GoAway(0, 0, b'{"reason":"SomethingNew"}'))
    metrics.observe("t1", GoAway(0, 0, b"plain words"))
    metrics.observe("t1", GoAway(0, 0, b""))
    metrics.observe("t1", SettingsChanged(1))
    for reason in ("Shutdown", "unknown", "text", "none"):
        assert _value(metrics, "apns_goaway_received_total", reason=reason) == 1
    assert _value(metrics, "apns_max_concurrent_streams") == 1


def test_forget_removes_every_series_of_one_target_and_only_that_target() -> None:
    """Forgetting a target drops all its series, info series included; others stay."""
    metrics = _metrics()
    metrics.add_target(
        "t2",
        "sandbox",
        host="127.0.0.1",
        port=2197,
        topic="com.example.app",
        auth_method="token",
        canary_interval=300,
        ping_interval=60,
    )
    for name in ("t1", "t2"):
        metrics.record(ProbeResult(name, ProbeKind.PING, True, 0.0, 0.1, "ok", rtt=0.01))
        metrics.observe(name, SettingsChanged(1000))

    def targets() -> set[str]:
        return {
            s.labels["target"]
            for family in metrics.registry.collect()
            for s in family.samples
            if "target" in s.labels
        }

    assert targets() == {"t1", "t2"}
    metrics.forget("t1")
    assert targets() == {"t2"}
    assert _value(metrics, "apns_ping_rtt_seconds_count") is None
    assert (
        metrics.registry.get_sample_value(
            "apns_ping_rtt_seconds_count", {"target": "t2", "apns_environment": "sandbox"}
        )
        == 1
    )
