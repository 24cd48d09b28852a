"""What the exporter shows people: the landing page, /config and /probes; no secrets, ever."""

from __future__ import annotations

import datetime
import html
import re
import time
from typing import Any
from urllib.parse import quote

import yaml

from apns_exporter import __version__, logs
from apns_exporter.assets import runbook_section, runbook_title
from apns_exporter.config import Config
from apns_exporter.probes import ProbeKind, ProbeResult, PushOutcome
from apns_exporter.probes.results import CanaryResult
from apns_exporter.service.exporter import Exporter, TargetState

# Keys whose values are secrets, wherever they appear; file and env references are not.
# An MDM push_magic lets whoever holds it (with the certificate) wake that device.
_SECRET_KEYS = ("password", "secret", "passphrase", "push_magic")
# What a server's apns-id and apns-unique-id must look like to be shown: a UUID.
_UUID = re.compile(r"[0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}")
_SERVER_ID = re.compile(r"(apns-(?:unique-)?id[= ])(\S+?)([,)]?(?:\s|$))")
# Header or field names whose values are credentials, as a server might echo them back.
_SECRET_FIELD = re.compile(
    r"(?i)\b((?:proxy-)?authorization|(?:set-)?cookie|x-api-key|api[-_]key|password|secret)"
    r"(\"?\s*[:=]\s*)(\"[^\"]*\"|\S+)"
)
_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
    "td,th{padding:.3em .8em;text-align:left;vertical-align:top}"
    "tr:nth-child(even){background:#f4f4f4}.ok{color:#1a7f37}.failed{color:#cf222e}"
)


def landing(exporter: Exporter, telemetry_path: str, runbook_url: str = "") -> str:
    """The HTML landing page: every target, its credential and its latest results."""
    metrics = html.escape(telemetry_path)
    rows = "".join(_target_row(exporter, name, runbook_url) for name in exporter.targets)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>APNs Exporter</title>
<style>{_STYLE}</style></head>
<body><h1>APNs Exporter</h1>
<p>Version {html.escape(__version__)}. Probes run on their own schedule, not per scrape.</p>
<table><thead><tr><th>Target</th><th>Environment</th><th>Endpoint</th><th>Credential</th>
<th>Last canary</th><th>Last PING</th><th>Failing layer</th><th>Details</th></tr></thead>
<tbody>{rows}</tbody></table>
<p><a href="{metrics}">Metrics</a> · <a href="config">Configuration</a> ·
<a href="-/healthy">Health</a> · <a href="-/ready">Readiness</a></p>
</body></html>
"""


def _target_row(exporter: Exporter, name: str, runbook_url: str) -> str:
    state = exporter.targets[name]
    target = state.config
    auth = html.escape(_credential(state))
    if state.credential_problem is not None:
        auth += f' <span class="failed">({html.escape(state.credential_problem)})</span>'
    cells = [
        html.escape(name),
        html.escape(str(target.environment)),
        html.escape(f"{target.host}:{target.port}"),
        auth,
    ]
    for kind in (ProbeKind.CANARY, ProbeKind.PING):
        cells.append(_result_cell(state.latest.get(kind)))
    failing = state.status.layer
    if failing:
        cells.append(f"{html.escape(failing)} ({_runbook_link(failing, runbook_url)})")
    else:
        cells.append("none")
    cells.append(f'<a href="probes?target={quote(name)}">Probe logs</a>')
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def _runbook_link(layer: str, runbook_url: str) -> str:
    # Without --web.runbook-url there is no real address to send anyone to: name the section.
    if not runbook_url:
        return f"runbook: {html.escape(runbook_title(layer))}"
    href = html.escape(runbook_section(layer, runbook_url), quote=True)
    return f'<a href="{href}">runbook</a>'


def _credential(state: TargetState) -> str:
    target = state.config
    if target.auth.token is not None:
        token = state.loaded.token if state.loaded is not None else None
        age = (
            ""
            if token is None or token.issued_at is None
            else (f", JWT {(time.time() - token.issued_at) / 60:.0f} min old")
        )
        return f"token (key {target.auth.token.key_id}{age})"
    cert = state.loaded.certificate if state.loaded is not None else None
    if cert is None:
        return "certificate"
    days = (cert.not_after - time.time()) / 86400
    when = f"expires in {days:.0f} days" if days >= 0 else f"EXPIRED {-days:.0f} days ago"
    return f"certificate {cert.subject_cn}, {when}"


def _result_cell(result: ProbeResult | None) -> str:
    if result is None:
        return "not run"
    age = time.time() - (result.started_at + result.duration)
    css, word = ("ok", "OK") if result.ok else ("failed", "FAILED")
    return (
        f'<span class="{css}">{word}</span> {age:.0f}s ago<br>'
        f"<small>{html.escape(scrub(result.message))}</small>"
    )


def config_yaml(config: Config) -> str:
    """The effective configuration as YAML, defaults filled in, secrets masked."""
    data = config.model_dump(mode="json", by_alias=True)
    return yaml.safe_dump(_mask(data), sort_keys=False, allow_unicode=True)


def _mask(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _mask(v, k) for k, v in value.items()}
    if isinstance(value, list):
        if key == "device_tokens":
            # Device tokens identify people's devices: enough to recognise, not to reuse.
            return [f"{t[:8]}…" for t in value]
        return [_mask(v, key) for v in value]
    if any(word in key for word in _SECRET_KEYS) and not key.endswith(("_file", "_env")):
        return "<secret>"
    return value


def probe_log(exporter: Exporter, target: str, limit: int) -> str:
    """Recent results of one target in blackbox_exporter's ``debug=true`` style, as text.

    The target's last failures follow, kept apart: a burst of successes never hides them.
    """
    results = exporter.journal.history(target)[:limit]
    if not results:
        return f"No probe results yet for target {target}.\n"
    blocks = [_probe_block(result) for result in results]
    shown = {id(r) for r in results}
    earlier = [r for r in exporter.journal.failures(target) if id(r) not in shown]
    if earlier:
        blocks.append(f"##### Earlier failures of {target}, newest first")
        blocks += [_probe_block(result) for result in earlier]
    return "\n\n".join(blocks) + "\n"


def _probe_block(result: ProbeResult) -> str:
    status = "success" if result.ok else f"FAILED (layer {result.layer})"
    pushes = result.pushes if isinstance(result, CanaryResult) else ()
    lines = [
        f"=== {result.probe} at {rfc3339(result.started_at)}: {status}, "
        f"{result.duration * 1000:.1f}ms" + (f", peer {result.peer}" if result.peer else ""),
        f"Message: {scrub(result.message)}",
        *(
            scrub(f"Push: {p.kind} {p.status or p.error} {p.reason or ''}{push_ids(p)}").rstrip()
            for p in pushes
        ),
        "Logs for the probe:",
        *(f"  {line}" for line in log_lines(result)),
    ]
    return "\n".join(lines)


def rfc3339(seconds: float) -> str:
    """A UNIX time as RFC 3339 in UTC with milliseconds: ``2026-11-29T12:41:25.123Z``."""
    moment = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def push_ids(push: PushOutcome) -> str:
    """A push's apns-id and, in sandbox, its apns-unique-id (Push Notifications Console)."""
    ids = [f"apns-id {push.apns_id}"] if push.apns_id else []
    ids += [f"apns-unique-id {push.unique_id}"] if push.unique_id else []
    return f" ({', '.join(ids)})" if ids else ""


def log_lines(result: ProbeResult) -> list[str]:
    """A run's log lines with their UNIX-time stamps written as RFC 3339 UTC, scrubbed."""
    lines = []
    for line in result.logs:
        stamp, _, text = line.partition(" ")
        try:
            lines.append(f"{rfc3339(float(stamp))} {scrub(text)}")
        except ValueError:
            lines.append(scrub(line))
    return lines


def scrub(text: str) -> str:
    """``text`` without credentials a server may have echoed back into it.

    Probe logs quote what the server sent (apns-id, GOAWAY debug data, errors): a hostile
    or broken endpoint that echoes the request's ``authorization`` header would otherwise
    put a live JWT on this unauthenticated page.
    """
    text = logs.redact(text)
    text = _SERVER_ID.sub(
        lambda m: m[0] if _UUID.fullmatch(m[2]) else f"{m[1]}<not a UUID, not shown>{m[3]}",
        text,
    )
    return _SECRET_FIELD.sub(r"\1\2<redacted>", text)
