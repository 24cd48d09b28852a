"""Alerts on the connection to APNs and the network path: causes, so warnings only."""

from __future__ import annotations

from apns_exporter.assets.params import Params
from apns_exporter.assets.promql import ON, Rule, alert, count, last, per_target, recent

_FAILURES_15M = recent("apns_connection_failures_total", "15m")


def connection_alerts(p: Params) -> list[Rule]:
    """The long-lived HTTP/2 connection: down, flapping, GOAWAYs, stream limit, PING RTT."""
    # While a target's canary fails, ApnsCanaryFailing speaks for its connection too.
    canary_failing = f"{ON} target:apns_canary_failing:bool == 1"
    attempts = count(p.select("apns_connection_attempts_total"), "1h")
    device_pushes = count(p.select("apns_canary_pushes_total", 'kind="device"'), "30m")
    # A new connection starts at one stream; only one that stays open can be stuck.
    reconnects = count(p.select("apns_connection_attempts_total"), "30m")
    return [
        alert(
            p,
            "ApnsConnectionDown",
            f"{last(p.select('apns_connection_up'))} == 0\nunless {canary_failing}",
            "warning",
            "The APNs connection is down.",
            """The exporter's HTTP/2 connection to APNs{{ range """
            + per_target("apns_target_info{{T}}")
            + """ | query }} ({{ .Labels.host }}:{{ .Labels.port }}){{ end }} for target {{
            $labels.target }} ({{ $labels.apns_environment }}) has been down or has not
            answered PINGs for <FOR>. Connection failures in the last 15 minutes, by
            layer: {{ range $i, $s := """
            + _FAILURES_15M
            + """ | query | sortByLabel "reason" }}{{ if $i }}, {{ end }}{{ $s.Labels.reason
            }} ({{ printf "%.0f" $s.Value }}){{ else }}none, so the open connection stopped
            acknowledging PINGs{{ end }}.""",
            for_="5m",
        ),
        alert(
            p,
            "ApnsConnectionFlapping",
            f"{attempts} > {p.reconnects_per_hour}\n"
            f"unless {ON} target:apns_goaway_received:increase1h > {p.goaways_per_hour}\n"
            f"unless {canary_failing}",
            "warning",
            "The APNs connection keeps reconnecting.",
            """The exporter opened {{ printf "%.0f" $value }} connections to APNs for target
            {{ $labels.target }} ({{ $labels.apns_environment }}) in the last hour; a healthy
            connection stays open for hours. Likely causes: a firewall, NAT or proxy idle
            timeout shorter than the PING interval, or TLS errors that make APNs close the
            connection.""",
            for_="15m",
        ),
        alert(
            p,
            "ApnsGoawayRateHigh",
            f"target:apns_goaway_received:increase1h > {p.goaways_per_hour}",
            "warning",
            "APNs sends many GOAWAY frames.",
            """APNs sent {{ printf "%.0f" $value }} GOAWAY frames to the exporter's connection
            for target {{ $labels.target }} ({{ $labels.apns_environment }}) in the last hour
            (threshold """
            + str(p.goaways_per_hour)
            + """). By reason: {{ range $i, $s := """
            + recent("apns_goaway_received_total", "1h")
            + """ | query | sortByLabel "reason" }}{{ if $i }}, {{ end }}{{ $s.Labels.reason
            }} ({{ printf "%.0f" $s.Value }}){{ end }}. A reason names the problem (e.g.
            BadCertificateEnvironment); Shutdown or none means APNs is cycling its servers
            or a middlebox is closing the connection.""",
            for_="15m",
        ),
        # APNs lowers MAX_CONCURRENT_STREAMS to 1 after a rejected request and restores it
        # after an accepted one. Failing canaries are ApnsCanaryFailing's, reconnecting ones
        # (GOAWAYs, flapping) start at 1 every time; this is one connection staying at 1
        # while canaries succeed.
        alert(
            p,
            "ApnsStreamLimitStuckAtOne",
            f"{last(p.select('apns_max_concurrent_streams'))} == 1\n"
            f"and {ON} {last(p.select('apns_up'))} == 1\n"
            f"and {ON} {device_pushes} > 0\n"
            f"unless {ON} {reconnects} > 0",
            "warning",
            "APNs allows only one concurrent stream.",
            """APNs has advertised MAX_CONCURRENT_STREAMS=1 on the connection of target {{
            $labels.target }} ({{ $labels.apns_environment }}) for <FOR>, without a
            reconnect in the last 30 minutes, although its device canaries succeed; a
            healthy connection gets 1000. APNs lowers the limit after rejected requests, so
            requests on this
            connection keep being rejected between canaries, or the connection is wedged.
            Senders on such a connection get one push in flight at a time.""",
            for_="30m",
        ),
        alert(
            p,
            "ApnsPingRttHigh",
            # The median: ten minutes hold about ten PINGs, whose p99 is their maximum
            # stretched to a bucket's upper bound; half of them being slow is a signal.
            'target_quantile:apns_ping_rtt_seconds:histogram_quantile{quantile="0.5"}'
            f" > {p.ping_rtt_seconds:g}",
            "warning",
            "The APNs PING round-trip time is high.",
            """The median HTTP/2 PING round-trip time to APNs for target {{ $labels.target }}
            ({{ $labels.apns_environment }}) was {{ $value | humanizeDuration }} over the last
            10 minutes (threshold """
            + f"{p.ping_rtt_seconds:g}s"
            + """). Likely causes: packet loss or congestion on the path to Apple, an egress
            proxy, or an overloaded exporter host (event loop lag).""",
            for_="15m",
        ),
    ]


def reachability_alerts(p: Params) -> list[Rule]:
    """Where the APNs hosts resolve to, and whether TCP reaches them."""
    return [
        alert(
            p,
            "ApnsAddressOutsideAppleRange",
            f"{last(p.select('apns_address_in_apple_range'))} == 0",
            "warning",
            "An APNs host resolves outside Apple's address ranges.",
            """{{ $labels.host }}, an APNs host of target {{ $labels.target }} ({{
            $labels.apns_environment }}), resolves to at least one address outside Apple's
            17.0.0.0/8 and IPv6 ranges. Likely causes: a DNS override (/etc/hosts,
            split-horizon DNS), a TLS-intercepting proxy or DNS hijacking. Silence it for
            targets that deliberately use an endpoint override such as a mock server.""",
            for_="10m",
        ),
        alert(
            p,
            "ApnsReachabilityLost",
            f"max without (family) ({last(p.select('apns_reachable'))}) == 0",
            "warning",
            "An APNs host is unreachable.",
            """The exporter {{ $labels.instance }} has not been able to open a TCP connection
            to {{ $labels.host }}:{{ $labels.port }} (target {{ $labels.target }}, {{
            $labels.apns_environment }}) over any address family for <FOR>. {{ if eq
            $labels.port "2197" }}Port 2197 is Apple's alternative to 443 and is often blocked
            by default. {{ end }}Likely causes: an egress firewall or network policy not
            allowing 17.0.0.0/8, a required HTTP proxy, or DNS failures.""",
            for_="10m",
        ),
    ]
