"""Alerts on the exporter itself, the canary (the symptom that pages) and delivery receipts.

Paging policy (docs/runbook.md): only ApnsCanaryFailing on production targets and
ApnsFleetFailing page. A canary that fails only because of its own setup (the canary
app was reinstalled, a wrong device token or topic) is a warning, never a page.
"""

from __future__ import annotations

from apns_exporter.assets.params import Params, duration_seconds, format_duration
from apns_exporter.assets.promql import (
    ON,
    Rule,
    alert,
    count,
    interval,
    last,
    per_target,
    recent,
    record,
)

# Canary answers that say the canary itself is set up wrongly, not that APNs is down:
# the device token is gone (410), belongs to another app, or the topic is wrong.
# BadDeviceToken counts only beyond the auth checks, which expect it.
SETUP_REASONS = ("Unregistered", "ExpiredToken", "DeviceTokenNotForTopic", "BadTopic")
BAD_DEVICE_TOKEN = "BadDeviceToken"
_SETUP = "|".join(SETUP_REASONS)

# What each value of apns_failing_layer means, for descriptions.
LAYER_TEXT = {
    "dns": "the APNs host name does not resolve",
    "proxy": "the egress proxy refuses the tunnel to APNs or cannot be reached",
    "tcp": "TCP connections to APNs fail or time out",
    "tls": "the TLS handshake fails: TLS verification of APNs' certificate, or APNs "
    "refusing the client certificate",
    "http2": "the HTTP/2 connection breaks: GOAWAY, stream resets or protocol errors",
    "auth": "APNs rejects the credentials",
    "apns": "APNs answers with errors or not at all",
    "exporter": "the exporter cannot build the request (see its log)",
}


def layer_text(query: str) -> str:
    """A Go template naming the failing layer (``query`` yields apns_failing_layer series)."""
    branches = "".join(
        f'{"if" if i == 0 else "else if"} eq .Labels.layer "{layer}" }}}}{text}{{{{ '
        for i, (layer, text) in enumerate(LAYER_TEXT.items())
    )
    return (
        f"{{{{ range {query} | query }}}}Failing layer: {{{{ .Labels.layer }}}}, "
        f"{{{{ {branches}end }}}}. {{{{ end }}}}"
    )


def _responses(p: Params, matchers: str) -> str:
    return p.select("apns_canary_responses_total", matchers)


def device_bad_tokens(p: Params, window: str) -> str:
    """BadDeviceToken answers beyond the auth checks' (each auth check expects exactly one)."""
    bad = count(_responses(p, 'reason="' + BAD_DEVICE_TOKEN + '"'), window)
    checks = count(p.select("apns_canary_pushes_total", 'kind="auth_check"'), window)
    return f"sum without (status) ({bad})\n  - {ON} group_left sum without (kind) ({checks})\n> 0.5"


def recording_rules(p: Params) -> list[Rule]:
    """Per-target verdicts the canary alerts and the fleet alert share."""
    w = p.canary_window
    setup = count(_responses(p, 'reason=~"' + _SETUP + '"'), w)
    other = count(
        _responses(p, 'status!="200", reason!~"' + _SETUP + "|" + BAD_DEVICE_TOKEN + '"'), w
    )
    errors = count(p.select("apns_canary_request_errors_total"), w)
    dials = count(p.select("apns_connection_failures_total"), w)
    up = last(p.select("apns_up"))
    canary = interval(p, "canary")
    return [
        # 1 while the canary's failures in the window are only setup problems (absent
        # otherwise).
        record(
            "target:apns_canary_setup_problem:bool",
            f"(\n  (\n    sum without (status, reason) ({setup}) > 0\n"
            f"  or\n    sum without (reason) (\n      {device_bad_tokens(p, w)}\n    )\n  )\n"
            f"  unless {ON} (\n"
            f"    sum without (status, reason) ({other}) > 0\n"
            f"  or\n    sum without (error) ({errors}) > 0\n"
            f"  or\n    sum without (reason) ({dials}) > 0\n  )\n)\n"
            f"> bool 0",
        ),
        # 1 while a target fails for its users: the last canary (or, without a canary, the
        # last PING) failed, and not because of the canary's own setup; 0 otherwise.
        record(
            "target:apns_failing:bool",
            f"  (({up} == bool 0) unless {ON} target:apns_canary_setup_problem:bool == 1)\n"
            f"or\n  0 * {up}\n",
        ),
        # The same for targets with a canary only: PING-only targets never page.
        record(
            "target:apns_canary_failing:bool", f"target:apns_failing:bool\nand {ON} {canary} > 0"
        ),
        # 1 while a job and environment fail fleet-wide (ApnsFleetFailing's condition), else 0.
        record(
            "job_environment:apns_canary_fleet_failing:bool",
            f"({_fleet(p, ANY)}) > bool 0\n"
            "or on (job, apns_environment)\n"
            "0 * count by (job, apns_environment) (target:apns_canary_failing:bool)",
        ),
        # The fleet SLI: the share of canary targets not failing, per job and environment.
        record(
            "job_environment:apns_canary_success:ratio",
            "1 - avg by (job, apns_environment) (target:apns_canary_failing:bool)",
        ),
    ]


def exporter_alerts(p: Params) -> list[Rule]:
    """The exporter is scraped, its configuration loads, and every shard probes."""
    up = p.up()
    matching = p.selector.replace('"', "'") or "the exporter's series"
    shard = (
        '{{ with printf "last_over_time(apns_exporter_shard_index{job=%q,instance=%q}[1d])"'
        " $labels.job $labels.instance | query }}, shard {{ . | first | value }}{{ end }}"
    )
    index = p.select("apns_exporter_shard_index")
    shards = p.select("apns_exporter_shards")
    configured = p.select("apns_exporter_targets_configured")
    probed = p.select("apns_exporter_targets_probed")
    return [
        alert(
            p,
            "ApnsExporterDown",
            f"{up} == 0 or absent({up})",
            p.exporter_down_severity,
            "The APNs exporter is down.",
            """{{ if $labels.instance }}Prometheus has failed to scrape the APNs exporter
            {{ $labels.instance }} (job {{ $labels.job }}"""
            + shard
            + """) for <FOR>{{ else }}Prometheus has no scrape target matching """
            + matching
            + """ for <FOR>{{ end }}, so canaries, PINGs and credential expiry of every
            target it monitors are no longer watched. Likely causes: the exporter crashed
            or is restarting, its listen address or web config changed, service discovery
            lost it, or the rules' selector does not match the scrape job.""",
            for_="5m",
        ),
        alert(
            p,
            "ApnsMonitoringBlind",
            f"max by (job) ({up}) == 0 or absent({up})",
            "critical",
            "Every APNs exporter of a job is down: APNs is not monitored.",
            """No exporter of job {{ $labels.job }} has been scraped for <FOR>: no canary,
            PING or certificate of any target is watched, so an APNs outage would go
            unnoticed. Pages that were firing keep firing on their last known state. Likely
            causes: the exporter's deployment is gone or crash-looping, a network policy
            blocks Prometheus, or service discovery lost every exporter.""",
            for_="15m",
        ),
        alert(
            p,
            "ApnsExporterConfigReloadFailed",
            f"{last(p.select('apns_exporter_config_last_reload_successful'))} == 0",
            "warning",
            "The APNs exporter failed to reload its configuration.",
            """The last configuration reload of the APNs exporter {{ $labels.instance }}
            failed; it keeps running the previous configuration{{ with printf """
            + '"time() - apns_exporter_config_last_reload_success_timestamp_seconds'
            + """{job=%q,instance=%q}" $labels.job $labels.instance | query }}, last loaded
            successfully
            {{ . | first | value | humanizeDuration }} ago{{ end }}. Likely causes: a YAML
            error, an unknown key or an unreadable credential path in the new file;
            `apns-exporter --config.check` prints the error.""",
            for_="5m",
        ),
        alert(
            p,
            "ApnsExporterShardMissing",
            f"count by (job) ({last(index)})\n< max by (job) ({last(shards)})",
            "warning",
            "A shard of the APNs exporter is missing.",
            """Only {{ $value }} exporter(s) of job {{ $labels.job }} report a shard{{ with
            printf "max(apns_exporter_shards{job=%q})" $labels.job |
            query }}, but the targets are split into {{ . | first | value }} shards{{ end
            }}; the targets of the missing shard are not probed. Likely causes: a pending
            or crash-looping StatefulSet pod, or replicas out of step with --targets.shard
            I/N.""",
            for_="15m",
        ),
        alert(
            p,
            "ApnsTargetsUnprobed",
            f"max by (job) ({last(configured)})\n> sum by (job) ({last(probed)})",
            "warning",
            "Configured APNs targets are not probed by any exporter.",
            """Of the {{ with printf "max(apns_exporter_targets_configured{job=%q})"
            $labels.job | query }}{{ . | first | value }}{{ end }} targets configured for
            job {{ $labels.job }}, the exporters probe only {{ with printf
            "sum(apns_exporter_targets_probed{job=%q})" $labels.job | query }}{{ . | first |
            value }}{{ end }}. Likely causes: exporters with different configuration files,
            or shards that disagree on the shard count.""",
            for_="15m",
        ),
    ]


def canary_alerts(p: Params) -> list[Rule]:
    """The canary: failing (the page), fleet-wide failure, staleness, latency, setup."""
    setup = count(_responses(p, 'reason=~"' + _SETUP + '"'), "1h")
    # During a fleet-wide failure this alert is muted (the fleet alert pages) and its
    # per-target queries would run for thousands of alerts on every evaluation: the
    # expression's value (2) says so, and the details are left out without a query.
    fleet = (
        "{{ if eq $value 2.0 }} This target is part of a fleet-wide failure: see "
        "ApnsFleetFailing.{{ else }}"
    )
    head = """Canary pushes for target {{ $labels.target }} ({{ $labels.apns_environment }},
        exporter {{ $labels.instance }}) have failed for at least <FOR>."""
    failing = (
        head
        + fleet
        + """{{ with """
        + per_target("time() - apns_canary_last_success_timestamp_seconds{{T}} < 1e9")
        + """ | query }} The last success was {{ . | first | value | humanizeDuration }}
        ago.{{ end }} """
        + layer_text(per_target("apns_failing_layer{{T}} == 1"))
        + """APNs answers in the last """
        + p.canary_window
        + """: {{ range $i, $s := """
        + recent("apns_canary_responses_total", p.canary_window)
        + """ | query | sortByLabel "reason" }}{{ if $i }}, {{ end }}{{ $s.Labels.status }}{{
        with $s.Labels.reason }}{{ if ne . "none" }} {{ . }}{{ end }}{{ end }} ({{ printf
        "%.0f" $s.Value }}){{ else }}none, so requests got no HTTP response{{ end }}.{{ with
        printf "up{job=%q,instance=%q} == 0" $labels.job $labels.instance | query }} The
        exporter is not being scraped: this is the last state it reported.{{ end }}{{ end
        }}"""
    )
    return [
        *(
            alert(
                p,
                "ApnsCanaryFailing",
                _still_failing(p, env),
                severity,
                "APNs canary pushes are failing.",
                failing,
                for_="10m",
                keep_firing=True,
            )
            for env, severity in (('="production"', "critical"), ('!="production"', "warning"))
        ),
        *(
            alert(
                p,
                "ApnsFleetFailing",
                _fleet(p, env),
                severity,
                "Many APNs targets fail at once.",
                """{{ printf "%.0f" $value }} {{ $labels.apns_environment }} canary targets
                of job {{ $labels.job }} fail at the same time{{ with printf
                "count(target:apns_canary_failing:bool{job=%q,apns_environment=%q})"
                $labels.job $labels.apns_environment | query }} out of {{ . | first | value
                }}{{ end }}. Failing layers: {{ range $i, $s := printf "count by (layer)
                (apns_failing_layer{job=%q,apns_environment=%q} == 1)" $labels.job
                $labels.apns_environment | query | sortByLabel "layer" }}{{ if $i }}, {{ end
                }}{{ $s.Labels.layer }} ({{ $s.Value }}){{ end }}. One credential cannot
                break many targets: this is APNs itself, the network towards Apple (DNS,
                firewall, proxy), a trust store change on the exporter host, or a signing key
                shared by all.""",
                for_="5m",
                keep_firing=True,
            )
            for env, severity in (('="production"', "critical"), ('!="production"', "warning"))
        ),
        alert(
            p,
            "ApnsCanaryStale",
            f"time() - {last(p.select('apns_canary_last_attempt_timestamp_seconds'))}\n"
            f"  > {ON} 3 * {interval(p, 'canary')}\n"
            f"and {ON} {interval(p, 'canary')} > 0",
            "warning",
            "APNs canary pushes are not being attempted.",
            """The exporter {{ $labels.instance }} last attempted a canary push for target
            {{ $labels.target }} ({{ $labels.apns_environment }}) {{ $value | humanizeDuration
            }} ago, more than three canary intervals, so the canary state is stale. Likely
            causes: a canary hanging past its deadline, a blocked event loop or a scheduler
            that stopped after a reload.""",
            for_="5m",
        ),
        alert(
            p,
            "ApnsCanaryLatencyHigh",
            'target_quantile:apns_canary_duration_seconds:histogram_quantile{quantile="0.5"}'
            f" > {p.canary_latency_seconds:g}",
            "warning",
            "APNs canary latency is high.",
            """The median time from canary request to APNs response for target
            {{ $labels.target }} ({{ $labels.apns_environment }}) was {{ $value |
            humanizeDuration }} over the last 30 minutes (threshold """
            + f"{p.canary_latency_seconds:g}s"
            + """): most canaries are slow, not one outlier. Likely causes: network
            congestion or packet loss towards Apple, an overloaded exporter host, or APNs
            degradation (check Apple's system status page).""",
            for_="15m",
        ),
        alert(
            p,
            "ApnsCanaryDeviceTokenInvalid",
            f"  sum without (status) ({setup}) > 0\nor\n  {device_bad_tokens(p, '1h')}",
            "warning",
            "An APNs canary device token is invalid.",
            """APNs answered {{ $labels.reason }} {{ printf "%.0f" $value }} time(s) in the last
            hour to canary pushes of target {{ $labels.target }} ({{ $labels.apns_environment
            }}){{ if eq $labels.reason "BadDeviceToken" }}, beyond the auth checks' expected
            answers. The device token is malformed or belongs to the other APNs environment
            (a development build's token sent to production, or the reverse).{{ else if eq
            $labels.reason "DeviceTokenNotForTopic" }}. The device token belongs to a
            different app than the configured topic.{{ else if eq $labels.reason "BadTopic"
            }}. The configured topic is wrong for this push type.{{ else }}. The device token
            is no longer valid: the canary app was deleted or reinstalled, or the device was
            reset.{{ end }} This is a canary setup problem, not an outage, so it does not
            page; until it is fixed the canary cannot see an outage either.""",
        ),
    ]


# Multi-window burn rates, as the kubernetes-mixin pairs them: (long, short, factor, for).
BURN_WINDOWS = (
    ("1h", "5m", 14.4, "2m"),
    ("6h", "30m", 6.0, "15m"),
    ("1d", "2h", 3.0, "1h"),
    ("3d", "6h", 1.0, "3h"),
)
SLI = "job_environment:apns_canary_success:ratio"
FLEET = "job_environment:apns_canary_fleet_failing:bool"
ANY = '=~".+"'


def slo_rules() -> list[Rule]:
    """The canary error ratio of every burn-rate window, per job and environment."""
    windows = sorted({w for long, short, _, _ in BURN_WINDOWS for w in (long, short)})
    return [
        record(f"job_environment:apns_canary_error:ratio_avg{w}", f"1 - avg_over_time({SLI}[{w}])")
        for w in windows
    ]


def slo_alerts(p: Params) -> list[Rule]:
    """The error budget of the fleet SLO burning fast (hours) or slowly (days)."""
    budget = 1 - p.canary_slo
    rules = []
    for long, short, factor, for_ in BURN_WINDOWS:
        ratio = "job_environment:apns_canary_error:ratio_avg"
        rules.append(
            alert(
                p,
                "ApnsCanaryErrorBudgetBurn",
                f"{ratio}{long} > ({factor:g} * {budget:.6g})\n"
                f"and\n{ratio}{short} > ({factor:g} * {budget:.6g})",
                "warning",
                "The APNs canary SLO's error budget is burning.",
                """{{ $value | humanizePercentage }} of the canary targets of job {{
                $labels.job }} ({{ $labels.apns_environment }}) have been failing on average
                over the last """
                + long
                + f""", {factor:g} times the rate that spends the whole error budget of the
                {p.canary_slo:.4g} canary SLO in 30 days, and the last """
                + short
                + """ agree. Failing targets page on their own (ApnsCanaryFailing); this
                says the fleet's availability is eroding, through many short or partial
                failures as well.""",
                for_=for_,
                long=long,
                short=short,
            )
        )
    return rules


def _still_failing(p: Params, env: str) -> str:
    """A canary target failing now, or failing when its exporter stopped being scraped.

    A page in progress must not resolve because the exporter died: its last recorded
    verdict stands for an hour while no exporter of that job and instance is up.
    """
    failing = f"target:apns_canary_failing:bool{{apns_environment{env}}}"
    # The value: 2 while the target's job and environment fail fleet-wide, else 1.
    return (
        f"  ({failing} == 1)\n"
        f"  + on (job, apns_environment) group_left {FLEET}\n"
        f"or\n  ({failing} == 1) + 0\n"
        f"or\n  last_over_time({failing}[1h]) == 1\n"
        f"  unless on (job, instance) {p.up()} == 1"
    )


def _fleet(p: Params, env: str) -> str:
    """Canary targets of one job and environment failing at once, by share and number."""
    failing = f"target:apns_canary_failing:bool{{apns_environment{env}}}"
    by = "count by (job, apns_environment)"
    return (
        f"{by} ({failing} == 1) >= {p.fleet_min_targets}\n"
        f"and\n{by} ({failing} == 1) / {by} ({failing}) >= {p.fleet_failing_ratio}"
    )


def delivery_alerts(p: Params) -> list[Rule]:
    """Delivery receipts from the canary device (docs/delivery-receipts.md)."""
    lost = p.select("apns_canary_delivery_lost_total")
    return [
        alert(
            p,
            "ApnsCanaryDeliveryLost",
            f"target:apns_canary_delivery_lost:ratio1h > {p.delivery_lost_ratio:g}\n"
            f"and {ON} {count(lost, '1h')} >= 2",
            "warning",
            "APNs canaries are not reaching the canary device.",
            """{{ $value | humanizePercentage }} of the canaries APNs accepted for target
            {{ $labels.target }} ({{ $labels.apns_environment }}, exporter
            {{ $labels.instance }}) got no delivery receipt from the device within the
            deadline over the last hour{{ with """
            + per_target("time() - apns_canary_last_delivery_timestamp_seconds{{T}} < 1e9")
            + """ | query }}; the last receipt arrived {{ . | first | value | humanizeDuration
            }} ago{{ end }}. Likely causes: the canary device is off, offline or in Low Power
            Mode, the app was force-quit or deleted, the device cannot reach the receipt
            endpoint, or APNs is not delivering.""",
            for_="15m",
        ),
        alert(
            p,
            "ApnsCanaryDeliveryLatencyHigh",
            "target_quantile:apns_canary_delivery_duration_seconds:histogram_quantile"
            f'{{quantile="0.5"}} > {p.delivery_p50_seconds:g}',
            "warning",
            "APNs canaries reach the canary device late.",
            """The median time from sending a canary to the device's delivery receipt for
            target {{ $labels.target }} ({{ $labels.apns_environment }}) was {{ $value |
            humanizeDuration }} over the last hour (threshold """
            + f"{p.delivery_p50_seconds:g}s"
            + """). Likely causes: APNs delivery delays (check Apple's system status page), a
            canary device on a poor network or in Low Power Mode, or background pushes held
            back by iOS.""",
            for_="30m",
        ),
        alert(
            p,
            "ApnsCanaryReceiptForged",
            count(p.select("apns_canary_receipts_rejected_total", 'reason="bad_signature"'), "1h")
            + " > 0",
            "warning",
            "The receipt listener got receipts with a bad signature.",
            """The receipt listener of exporter {{ $labels.instance }} refused {{ printf "%.0f"
            $value }} receipt(s) with a bad signature in the last hour. Either a canary device
            still signs with an old receipt secret, or someone who knows the listener's
            address is posting forged receipts to make lost canaries look delivered.""",
        ),
    ]


def staleness_alerts(p: Params) -> list[Rule]:
    """Probes that stopped running: their last result would otherwise look current."""
    window = 3 * duration_seconds(p.reachability_interval)
    stale = format_duration(window)
    connect = p.select("apns_reachability_connect_seconds")
    ping_age = f"time() - {last(p.select('apns_ping_last_success_timestamp_seconds'))}"
    tls_age = f"time() - {last(p.select('apns_tls_check_last_attempt_timestamp_seconds'))}"

    def stale_alert(probe: str, expr: str, reads: str) -> Rule:
        # A rule's own labels are not in $labels when annotations are rendered: name the
        # probe here.
        description = f"""The {probe} probe of target {{{{ $labels.target }}}}
            ({{{{ $labels.apns_environment }}}}, exporter {{{{ $labels.instance }}}}) has
            produced no new result for more than three of its intervals, yet {reads}.
            Likely causes: a hung scheduler or probe, a blocked event loop, or a reload
            that stopped the probe's task."""
        summary = "An APNs probe has stopped producing results."
        return alert(
            p, "ApnsProbeStale", expr, "warning", summary, description, for_="5m", probe=probe
        )

    return [
        stale_alert(
            "ping",
            f"{last(p.select('apns_connection_up'))} == 1\nand {ON}\n"
            f"{ping_age} > {ON} 3 * {interval(p, 'ping')}",
            "apns_connection_up still reads 1",
        ),
        # The connect time of a reachable host changes with every run (it is measured in
        # nanoseconds); unchanged for three intervals means no run happened. A range cannot
        # follow each target's interval: targets probed less often than
        # reachability_interval are not judged.
        stale_alert(
            "reachability",
            f"{p.select('apns_reachable')} == 1\n"
            f"and changes({connect}[{stale}]) == 0\n"
            f"and {connect} offset {stale}\n"
            f"and {ON} 3 * {interval(p, 'reachability')} <= {window}",
            "apns_reachable still reads 1",
        ),
        stale_alert(
            "tls_check",
            f"{tls_age} > {ON} 3 * {interval(p, 'tls')}",
            "the server certificate series still read as they did at its last run",
        ),
    ]
