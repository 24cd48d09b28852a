"""Alerts ahead of a server CA rollout, and on broadcast channel management: warnings only.

Apple moved APNs to a new server root in 2025, the sandbox five weeks before production
(Apple Developer News, "Apple Push Notification service server certificate update").
These rules turn that lead into a warning: a root the sandbox presents and production does
not yet, and a trust store that lacks a root Apple's notice names.
"""

from __future__ import annotations

from apns_exporter.assets.params import Params
from apns_exporter.assets.promql import ON, Rule, alert, count, recent

FEATURE_NOT_ENABLED = "FeatureNotEnabled"


def rollout_alerts(p: Params) -> list[Rule]:
    """The production root change on its way, and trust-store readiness for it."""
    sandbox = p.select("apns_environment_root_info", 'apns_environment="sandbox"')
    production = p.select("apns_environment_root_info", 'apns_environment="production"')
    checked = p.select("apns_environment_check_success", 'apns_environment="production"')
    return [
        alert(
            p,
            "ApnsProductionRootChangeAhead",
            # Only while production was checked: an unanswered check is not a missing root.
            f"{sandbox}\nunless on (job, instance, root) {production}\n"
            f"and on (job, instance) ({checked} == 1)",
            "warning",
            "The APNs sandbox presents a server root that production does not yet.",
            """The APNs sandbox presents a server certificate chain ending in root {{
            $labels.root }} (SHA-256 {{ if $labels.fingerprint_sha256 }}{{
            $labels.fingerprint_sha256 }}{{ else }}unknown: no trust store of the exporter
            verified it{{ end }}), which production does not present yet. Apple changes the
            sandbox first (five weeks ahead in 2025): production will follow. Make sure every
            app server's trust store holds this root before it does.""",
            for_="30m",
        ),
        alert(
            p,
            "ApnsTrustStoreMissingRoot",
            f"{p.select('apns_trust_store_root_present')} == 0",
            "warning",
            "The trust store lacks a root Apple's server-certificate notice names.",
            """The trust store target {{ $labels.target }} ({{ $labels.apns_environment }})
            verifies APNs with (the system store plus its ca_file) does not hold root {{
            $labels.root }} (SHA-256 {{ $labels.fingerprint_sha256 }}), which Apple's
            server-certificate notice names. Connections fail with tls_verify as soon as
            APNs presents a chain ending in it; app servers built from the same image fail
            the same way. Add the root to the trust store (or ca_file).""",
            for_="10m",
        ),
    ]


def broadcast_alerts(p: Params) -> list[Rule]:
    """The channel-management API of broadcast push: refused key, or failing requests."""
    refused = count(
        p.select("apns_broadcast_responses_total", f'reason="{FEATURE_NOT_ENABLED}"'), "30m"
    )
    return [
        alert(
            p,
            "ApnsBroadcastFeatureNotEnabled",
            f"{refused} > 0",
            "warning",
            "The signing key may not manage broadcast channels.",
            """APNs answered 403 FeatureNotEnabled to the channel-management requests of
            target {{ $labels.target }} ({{ $labels.apns_environment }}) {{ printf "%.0f"
            $value }} time(s) in the last 30 minutes: the key (or the app) does not have
            broadcast push enabled. Enable the Broadcast capability for the app ID and use a
            key of the same team, or remove broadcast from the target.""",
        ),
        alert(
            p,
            "ApnsBroadcastManagementFailing",
            f"{p.select('apns_broadcast_up')} == 0\nunless {ON} ({refused} > 0)",
            "warning",
            "Broadcast channel management requests fail.",
            """The channel-management API (broadcast push) has not answered the exporter's
            read-only request for target {{ $labels.target }} ({{ $labels.apns_environment
            }}) with 200 for 15 minutes. Answers in the last 30 minutes: {{ range $i, $s := """
            + recent("apns_broadcast_responses_total", "30m")
            + """ | query | sortByLabel "reason" }}{{ if $i }}, {{ end }}{{ $s.Labels.status
            }} {{ $s.Labels.reason }} ({{ printf "%.0f" $s.Value }}){{ else }}none, so the
            management host or port (2195 sandbox, 2196 production) is unreachable{{ end
            }}. See /probes for the failing layer.""",
            for_="15m",
        ),
    ]
