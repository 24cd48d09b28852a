"""Probe results folded into metrics, read back through the private registry."""

from __future__ import annotations

import dataclasses

import pytest

from apns_exporter.assets.rules import ALERTED_REASONS
from apns_exporter.client.channel import DialReport
from apns_exporter.client.protocol import GoAway, SettingsChanged
from apns_exporter.creds.chain import AddressCheck, ChainReport
from apns_exporter.creds.truststore import RootPresence
from apns_exporter.errors import ProbeError
from apns_exporter.probes import (
    BroadcastResult,
    CanaryResult,
    CredentialsResult,
    PingResult,
    PushOutcome,
    TlsResult,
)
from apns_exporter.service.families import MAX_ROOT_LABELS, root_counts
from apns_exporter.service.metrics import Metrics
from apns_exporter.service.state import TargetStatus
from tests.helpers import add_target, record, run_of

T = {"target": "t1", "apns_environment": "sandbox"}


# The probes of a full target, each with its configured interval (apns_probe_interval_seconds).
_INTERVALS = tuple((kind, 60.0) for kind in ("credentials", "ping", "canary", "tls", "broadcast"))


def _metrics() -> Metrics:
    metrics = Metrics()
    add_target(metrics, "t1", key=("K", "T"), broadcast=True, intervals=_INTERVALS)
    return metrics


def _value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, {**T, **labels})


def test_no_reason_series_exists_before_its_first_event() -> None:
    """A new target has no reason series, not even those rules name: rules count first events."""
    metrics = _metrics()
    store = metrics.exposition.store.families
    for name, reasons in ALERTED_REASONS.items():
        family = next(f for f in metrics.registry.collect() if name.startswith(f.name))
        started = {s.labels["reason"] for s in family.samples if s.name == name}
        if any(f.name == family.name for f in store):
            assert not started, name
        else:  # process-wide: every reason costs one series in all, not one per target
            assert started >= set(reasons), name
    push = PushOutcome("device", False, 0.04, 403, "InvalidProviderToken")
    record(metrics, CanaryResult(run=run_of(), ok=False, message="denied", pushes=(push,)))
    assert (
        _value(metrics, "apns_canary_responses_total", status="403", reason="InvalidProviderToken")
        == 1
    )


def _full_round(metrics: Metrics, target: str) -> None:
    """One result of every probe, as a healthy target produces them."""
    dial = DialReport(True, {"resolve": 0.001, "connect": 0.002, "tls": 0.01})
    chain = ChainReport(
        "api:443", "TLSv1.3", "leaf", "ca", "root", "ff", 2e9, True, True, True, None, ()
    )
    new_root = dataclasses.replace(chain, root_subject="CN=USERTrust")
    run = run_of(target, started_at=1.0)
    pushes = (PushOutcome("device", True, 0.04, 200, None),)
    for result in (
        # A token target: the canary signs with a JWT it minted, which APNs accepts.
        CanaryResult(
            run=run,
            ok=True,
            message="ok",
            dials=(dial,),
            pushes=pushes,
            token_issued_at=1.0,
            token_minted=True,
        ),
        PingResult(run=run, ok=True, message="ok", rtt=0.002, events=(SettingsChanged(1000),)),
        CredentialsResult(run=run, ok=True, message="ok"),
        TlsResult(
            run=run,
            ok=True,
            message="ok",
            chain=chain,
            # A rollout half done: two addresses, two roots, and one required root.
            addresses=(AddressCheck("a", chain), AddressCheck("b", new_root)),
            trust_roots=(RootPresence("USERTrust", "e7" * 32, True),),
        ),
        BroadcastResult(run=run, ok=True, message="ok", status=200, reason="none", channels=3),
    ):
        record(metrics, result, TargetStatus(up=True, key_verified_at=1.0))


def test_series_budget_per_target() -> None:
    """A target with every probe on stays within its budget, an inventory_only one within 15."""
    metrics = _metrics()
    _full_round(metrics, "t1")
    add_target(
        metrics,
        "inv",
        "production",
        host="api.push.apple.com",
        port=443,
        key=("K", "T"),
        rotate_by=0.0,
        inventory_only=True,
    )
    record(metrics, CredentialsResult(run=run_of("inv"), ok=True, message="ok"))
    # docs/metrics.md, "Cardinality": the budget itself, not a sum that grows with features.
    assert metrics.exposition.store.series("t1") <= 50
    assert metrics.exposition.store.series("inv") <= 15


def test_canary_result_moves_responses_latency_and_up() -> None:
    """A failed auth push counts its reason, observes latency and sets apns_up to 0."""
    metrics = _metrics()
    record(
        metrics,
        CanaryResult(
            run=run_of(started_at=1000.0, duration=0.5),
            ok=False,
            message="denied",
            dials=(DialReport(True, {"resolve": 0.001, "connect": 0.002, "tls": 0.01}),),
            pushes=(PushOutcome("device", False, 0.1, 403, "InvalidProviderToken"),),
            token_issued_at=990.0,
            token_minted=True,
        ),
    )
    assert (
        _value(metrics, "apns_canary_responses_total", status="403", reason="InvalidProviderToken")
        == 1
    )
    assert _value(metrics, "apns_canary_duration_seconds_bucket", le="0.25") == 1
    assert _value(metrics, "apns_canary_duration_seconds_bucket", le="0.05") == 0
    assert _value(metrics, "apns_up") == 0
    assert _value(metrics, "apns_canary_last_attempt_timestamp_seconds") == 1000.5
    assert _value(metrics, "apns_canary_last_success_timestamp_seconds") is None
    assert _value(metrics, "apns_connection_attempts_total") == 1
    assert _value(metrics, "apns_connection_last_setup_duration_seconds", phase="tls") == 0.01
    assert _value(metrics, "apns_provider_token_issued_timestamp_seconds") == 990.0
    assert _value(metrics, "apns_provider_token_refreshes_total") == 1


def test_unknown_status_stays_bounded() -> None:
    """A status APNs never sends becomes "other"; the server cannot add series at will."""
    metrics = _metrics()
    record(
        metrics,
        CanaryResult(
            run=run_of(),
            ok=False,
            message="odd",
            pushes=(PushOutcome("device", False, 0.01, 418, "unknown"),),
        ),
    )
    assert _value(metrics, "apns_canary_responses_total", status="other", reason="unknown") == 1


def test_every_raised_request_error_is_counted_under_its_own_reason() -> None:
    """Each reason a request can raise is its own label: none is rewritten to another."""
    metrics = _metrics()
    for reason in sorted(ProbeError.REASONS):
        push = PushOutcome("device", False, 0.01, error=reason)
        record(metrics, CanaryResult(run=run_of(), ok=False, message=reason, pushes=(push,)))
    for reason in sorted(ProbeError.REASONS):
        assert _value(metrics, "apns_canary_request_errors_total", error=reason) == 1, reason


def test_a_reason_no_error_class_raises_is_refused_where_the_result_is_made() -> None:
    """A result whose error is not a raised reason fails at construction, not in metrics."""
    with pytest.raises(ValueError, match="weird"):
        PingResult(run=run_of(), ok=False, message="odd", error="weird")


def test_failed_dial_counts_its_layer() -> None:
    """A failed connection attempt increments the failure counter for its reason."""
    metrics = _metrics()
    record(
        metrics,
        PingResult(
            run=run_of(),
            ok=False,
            message="nope",
            error="tls_verify",
            dials=(DialReport(False, reason="tls_verify"),),
        ),
    )
    assert _value(metrics, "apns_connection_failures_total", reason="tls_verify") == 1
    assert _value(metrics, "apns_connection_up") == 0
    assert _value(metrics, "apns_ping_failures_total", reason="tls_verify") == 1


def test_goaway_and_settings_events() -> None:
    """GOAWAYs a run carries are counted by form, and its SETTINGS set the stream-limit gauge."""
    metrics = _metrics()
    events = (
        GoAway(0, 0, b'{"reason":"Shutdown"}'),
        GoAway(0, 0, b'{"reason":"SomethingNew"}'),
        GoAway(0, 0, b"plain words"),
        GoAway(0, 0, b""),
        SettingsChanged(1),
    )
    record(metrics, PingResult(run=run_of(), ok=True, message="ok", rtt=0.01, events=events))
    for reason in ("Shutdown", "unknown", "text", "none"):
        assert _value(metrics, "apns_goaway_received_total", reason=reason) == 1
    assert _value(metrics, "apns_max_concurrent_streams") == 1


def test_forget_removes_every_series_of_one_target_and_only_that_target() -> None:
    """Forgetting a target drops all its series, info series included; others stay."""
    metrics = _metrics()
    add_target(metrics, "t2")
    for name in ("t1", "t2"):
        events = (SettingsChanged(1000),)
        result = PingResult(run=run_of(name), ok=True, message="ok", rtt=0.01, events=events)
        record(metrics, result)

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


def test_canary_latency_carries_the_push_ids_as_an_exemplar_never_as_labels() -> None:
    """A sandbox canary's apns-id and apns-unique-id mark its latency bucket in OpenMetrics."""
    metrics = _metrics()
    apns_id, unique_id = (
        "8F2B0D4E-1C8A-4F4B-9C7E-2B1A3D4C5E6F",
        "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9",
    )
    push = PushOutcome("device", True, 0.04, 200, None, apns_id=apns_id, unique_id=unique_id)
    bogus = PushOutcome("device", True, 0.3, 200, None, apns_id="x" * 500)
    record(metrics, CanaryResult(run=run_of(), ok=True, message="ok", pushes=(push, bogus)))
    om = metrics.exposition.render(openmetrics=True).decode()
    (line,) = [
        x
        for x in om.splitlines()
        if x.startswith("apns_canary_duration_seconds_bucket{") and 'le="0.05"' in x
    ]
    assert f'# {{apns_id="{apns_id}",apns_unique_id="{unique_id}"}} 0.04 ' in line
    # An ID that is no UUID is dropped, not rendered past OpenMetrics' bound.
    assert "x" * 37 not in om
    assert apns_id not in metrics.exposition.render().decode()
    labels = {k for f in metrics.registry.collect() for s in f.samples for k in s.labels}
    assert not labels & {"apns_id", "apns_unique_id"}


def test_root_labels_are_capped_and_the_rest_summed_as_other() -> None:
    """A server presenting many roots costs at most four named root series plus other."""
    counts = {f"root{i}": 1 for i in range(6)} | {"main": 3}
    bounded = root_counts(counts)
    assert len(bounded) == MAX_ROOT_LABELS + 1
    assert bounded["main"] == 3
    assert bounded["other"] == 3
    assert sum(bounded.values()) == sum(counts.values())
