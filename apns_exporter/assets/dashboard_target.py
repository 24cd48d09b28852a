"""The per-target Grafana dashboard: one APNs target in detail.

Canary state and failing layer, latency heatmap, responses by reason (per hour, so the
same at every zoom level), delivery to the device, PING round trip, reconnects and
GOAWAYs, stream limit, credentials, TLS trust and the server chain, reachability.
"""

from __future__ import annotations

from typing import Any

from apns_exporter.assets.grafana import (
    DAYS,
    OK_FAILING,
    ON_TARGET,
    RED_GREEN,
    TARGET,
    UP_DOWN,
    _queries,
    dashboard,
    or_zero,
    panel,
    per_hour,
    per_target,
    query,
    rate,
    row,
    thresholds,
    value_map,
)
from apns_exporter.assets.panels import heatmap, stat, state_timeline, timeseries
from apns_exporter.assets.texts import (
    CANARY_UP,
    CERT_DAYS,
    CONNECTION_UP,
    DAYS_STEPS,
    JWT_AGE,
    JWT_STEPS,
)

TARGET_UID = "apns-exporter-target"


def target_detail(runbook_url: str) -> dict[str, Any]:
    """The per-target dashboard."""
    ping_buckets = rate("apns_ping_rtt_seconds_bucket")
    server_not_after = per_target("apns_server_certificate_not_after_timestamp_seconds")
    panels = [
        row("Canary"),
        state_timeline("Canary state", CANARY_UP, f"apns_up{{{TARGET}}}", "{{target}}", OK_FAILING),
        heatmap(
            "Canary latency",
            "Canary request to APNs response headers (apns_canary_duration_seconds), "
            "canaries per second in each latency bucket. APNs normally answers in 50-300 ms. "
            "Points are exemplars: one canary each, with its apns-id (and apns-unique-id in "
            "sandbox) to look up in the Push Notifications Console or your logs; they need "
            "Prometheus' exemplar storage (--enable-feature=exemplar-storage).",
            "apns_canary_duration_seconds_bucket",
            12,
            "Oranges",
            exemplars=True,
        ),
        timeseries(
            "Canary responses by reason",
            "APNs answers to canaries per hour, by HTTP status and reason, and requests that "
            "got no answer by error. Auth checks expect 400 BadDeviceToken.",
            _queries(
                (
                    f"sum by (status, reason) ({per_hour('apns_canary_responses_total')}) > 0",
                    "{{status}} {{reason}}",
                ),
                (
                    # 0 is data, so no "> 0" filter; a 0 line while no error series exists.
                    or_zero(
                        f"sum by (error) ({per_hour('apns_canary_request_errors_total')})",
                        f"sum({per_hour('apns_canary_pushes_total')})",
                        error="timeout",
                    ),
                    "no response: {{error}}",
                ),
            ),
            "short",
            12,
            draw="line",
        ),
        row("Delivery"),
        heatmap(
            "Delivery latency",
            "Canary sent to the device's signed delivery receipt "
            "(apns_canary_delivery_duration_seconds), receipts per second in each latency bucket. "
            "Empty when delivery receipts are not set up (docs/delivery-receipts.md).",
            "apns_canary_delivery_duration_seconds_bucket",
            8,
            "Blues",
        ),
        timeseries(
            "Delivery latency quantiles",
            "Median and p90 time from sending a canary to the device's receipt over the last "
            "hour (recording rules in alerts/apns-exporter.rules.yml). Alert when the median "
            "stays above 10 s.",
            _queries(
                (
                    "target_quantile:apns_canary_delivery_duration_seconds:histogram_quantile"
                    f'{{{TARGET}, quantile="0.5"}}',
                    "p50",
                ),
                (
                    "target_quantile:apns_canary_delivery_duration_seconds:histogram_quantile"
                    f'{{{TARGET}, quantile="0.9"}}',
                    "p90",
                ),
            ),
            "s",
            8,
            steps=thresholds((None, "green"), (10, "red")),
            threshold_style="line",
        ),
        timeseries(
            "Deliveries and losses",
            "Canaries the device confirmed with a receipt (apns_canary_deliveries_total) and "
            "canaries with no receipt within the deadline (apns_canary_delivery_lost_total), "
            "per hour. Some loss is normal: iOS defers or drops pushes to a sleeping, "
            "offline or Low Power Mode device.",
            _queries(
                (f"sum({per_hour('apns_canary_deliveries_total')})", "delivered"),
                (f"sum({per_hour('apns_canary_delivery_lost_total')})", "lost"),
            ),
            "short",
            8,
            draw="line",
        ),
        state_timeline(
            "Failing layer",
            "The lowest layer at which the target fails (apns_failing_layer), one lane per "
            "layer that failed in the range (dns, proxy, tcp, tls, http2, auth, apns, "
            "exporter), and none, ok while everything works; ApnsCanaryFailing names the "
            "same layer.",
            # The exporter serves a layer only while it fails: none stands for healthy.
            f"apns_failing_layer{{{TARGET}}}\nor {ON_TARGET}\n"
            f'label_replace(0 * apns_up{{{TARGET}}}, "layer", "none", "", "")',
            "{{layer}}",
            value_map(**{"0": ("ok", "green"), "1": ("failing", "red")}),
        ),
        row("Connection"),
        state_timeline(
            "Connection state",
            CONNECTION_UP,
            f"apns_connection_up{{{TARGET}}}",
            "{{target}}",
            UP_DOWN,
        ),
        timeseries(
            "PING round trip",
            "HTTP/2 PING to PING ACK (apns_ping_rtt_seconds), median and p99. Alert when the "
            "p99 stays above 1 s.",
            _queries(
                (
                    f"histogram_quantile(0.5, sum by (le) ({ping_buckets}))",
                    "p50",
                ),
                (
                    f"histogram_quantile(0.99, sum by (le) ({ping_buckets}))",
                    "p99",
                ),
            ),
            "s",
            8,
            steps=thresholds((None, "green"), (1, "red")),
            threshold_style="line",
        ),
        timeseries(
            "Reconnects and GOAWAYs",
            "Connection attempts, failed attempts by reason and GOAWAY frames from APNs by "
            "reason, per hour. A healthy connection stays open for hours.",
            _queries(
                (f"sum({per_hour('apns_connection_attempts_total')})", "connection attempts"),
                (
                    or_zero(
                        f"sum by (reason) ({per_hour('apns_connection_failures_total')})",
                        f"sum({per_hour('apns_connection_attempts_total')})",
                        reason="tls_verify",
                    ),
                    "failed: {{reason}}",
                ),
                (
                    or_zero(
                        f"sum by (reason) ({per_hour('apns_goaway_received_total')})",
                        f"sum({per_hour('apns_connection_attempts_total')})",
                        reason="none",
                    ),
                    "GOAWAY: {{reason}}",
                ),
            ),
            "short",
            8,
            draw="line",
        ),
        timeseries(
            "Stream limit",
            "MAX_CONCURRENT_STREAMS advertised by APNs. Token-authenticated connections start "
            "at 1 and get about 1000 after an accepted request; stuck at 1 means requests are "
            "being rejected.",
            _queries((f"apns_max_concurrent_streams{{{TARGET}}}", "max concurrent streams")),
            "short",
            8,
            steps=thresholds((None, "red"), (2, "green")),
        ),
        row("Credentials"),
        timeseries(
            "Provider token age",
            JWT_AGE,
            _queries(
                (f"time() - apns_provider_token_issued_timestamp_seconds{{{TARGET}}}", "token age")
            ),
            "s",
            12,
            steps=JWT_STEPS,
            threshold_style="line+area",
        ),
        stat(
            "Client certificate expires in",
            CERT_DAYS,
            f"(apns_client_certificate_not_after_timestamp_seconds{{{TARGET}}} - time()) / 86400",
            DAYS,
            6,
            height=8,
            steps=DAYS_STEPS,
            no_value="token auth",
            decimals=1,
            legend="{{instance}}",
        ),
        stat(
            "Credential loaded",
            "Whether the configured certificate, .p12 or .p8 key loads (apns_credential_up).",
            f"apns_credential_up{{{TARGET}}}",
            "bool",
            6,
            height=8,
            legend="{{instance}}",
            mappings=OK_FAILING,
            steps=RED_GREEN,
        ),
        row("Server TLS"),
        state_timeline(
            "TLS trust",
            "Whether the chain APNs presents verifies against each trust store "
            "(apns_server_certificate_verified): effective is what the exporter's connections "
            "use (system store plus ca_file).",
            f"apns_server_certificate_verified{{{TARGET}}}",
            "{{trust_store}}",
            value_map(**{"0": ("not trusted", "red"), "1": ("trusted", "green")}),
        ),
        panel(
            "table",
            "Server certificate chain",
            "The chain APNs presents: leaf subject, issuer and root (since 2025 APNs chains "
            "to USERTrust RSA Certification Authority), whether it verifies against the "
            "trust store the exporter's connections use (system store plus ca_file), and "
            "days until the earliest certificate expires.",
            [
                query(
                    f"apns_server_certificate_info{{{TARGET}}}",
                    "",
                    "A",
                    format="table",
                    instant=True,
                    range=False,
                ),
                query(
                    f'apns_server_certificate_verified{{{TARGET}, trust_store="effective"}}',
                    "",
                    "B",
                    format="table",
                    instant=True,
                    range=False,
                ),
                query(
                    f"({server_not_after} - time()) / 86400",
                    "",
                    "C",
                    format="table",
                    instant=True,
                    range=False,
                ),
            ],
            "none",
            24,
            6,
            overrides=[
                {
                    "matcher": {"id": "byName", "options": "Value #B"},
                    "properties": [
                        {"id": "displayName", "value": "verified"},
                        {"id": "unit", "value": "bool"},
                        {
                            "id": "mappings",
                            "value": value_map(
                                **{"0": ("not verified", "red"), "1": ("verified", "green")}
                            ),
                        },
                        {"id": "custom.cellOptions", "value": {"type": "color-background"}},
                        {"id": "thresholds", "value": RED_GREEN},
                    ],
                },
                {
                    "matcher": {"id": "byName", "options": "Value #C"},
                    "properties": [
                        {"id": "displayName", "value": "expires in"},
                        {"id": "unit", "value": DAYS},
                        {"id": "decimals", "value": 0},
                    ],
                },
            ],
            transformations=[
                {"id": "merge", "options": {}},
                {
                    "id": "organize",
                    "options": {
                        "excludeByName": {
                            "Time": True,
                            "Value #A": True,
                            "__name__": True,
                            "job": True,
                            "instance": True,
                            "trust_store": True,
                        },
                        "indexByName": {
                            "target": 0,
                            "apns_environment": 1,
                            "subject": 2,
                            "issuer": 3,
                            "root": 4,
                            "Value #B": 5,
                            "Value #C": 6,
                            "fingerprint_sha256": 7,
                            "presented": 8,
                        },
                        "renameByName": {},
                    },
                },
            ],
        ),
        row("Reachability"),
        state_timeline(
            "TCP reachability",
            "Whether a TCP connection to each APNs host and port opens, per address family "
            "(apns_reachable). Port 2197 is Apple's alternative to 443.",
            f"apns_reachable{{{TARGET}}}",
            "{{host}}:{{port}} {{family}}",
            value_map(**{"0": ("unreachable", "red"), "1": ("reachable", "green")}),
            width=12,
            height=6,
        ),
        state_timeline(
            "Addresses in Apple's range",
            "Whether every address an APNs host resolves to is in Apple's 17.0.0.0/8 or IPv6 "
            "ranges (apns_address_in_apple_range). Outside means a DNS override, a proxy or "
            "an endpoint override such as a mock server.",
            f"apns_address_in_apple_range{{{TARGET}}}",
            "{{host}}",
            value_map(**{"0": ("outside", "red"), "1": ("Apple", "green")}),
            width=12,
            height=6,
        ),
        row("Broadcast"),
        state_timeline(
            "Channel management",
            "Whether the broadcast channel-management API (ports 2195 sandbox, 2196 "
            "production) answered the exporter's read-only request with 200 "
            "(apns_broadcast_up); only for targets with broadcast configured.",
            f"apns_broadcast_up{{{TARGET}}}",
            "{{target}}",
            OK_FAILING,
            width=24,
            height=4,
        ),
    ]
    return dashboard(
        TARGET_UID,
        "APNs exporter / Target",
        "One APNs target in detail: canaries, connection, credentials, server TLS, network.",
        panels,
        multi_target=False,
        runbook_url=runbook_url,
    )
