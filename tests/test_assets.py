"""The shipped-assets generator (apns_exporter/assets) and the `assets` subcommand."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from apns_exporter import assets
from apns_exporter.apns import Reason
from apns_exporter.assets.params import Params, duration_seconds, format_duration, with_settings
from apns_exporter.assets.rules import ALERTED_REASONS, groups
from apns_exporter.commands import assets as command
from apns_exporter.receipts.book import REASONS as RECEIPT_REASONS
from tests.helpers import load_script, run_cli

ROOT = Path(__file__).resolve().parents[1]
generate = load_script("apns_assets_generate", ROOT / "alerts" / "generate.py")


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not installed (Debian/Ubuntu: apt-get install prometheus)")
    return path


def _promtool_run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def _write(out: Path, *extra: str) -> int:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    lines: list[str] = []
    code = command.run(parser.parse_args(["--out", str(out), *extra]), lines.append)
    return code


def _alerts(text: str) -> list[dict[str, Any]]:
    doc = yaml.safe_load(text)
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


def test_repository_copies_match_the_generator(tmp_path: Path) -> None:
    """alerts/, dashboards/ and the PrometheusRule are the generator's default output."""
    assert generate.stale() == [], "run python alerts/generate.py"
    generate.write(tmp_path)
    (tmp_path / "alerts" / "apns-exporter.rules.yml").write_text("edited\n")
    assert generate.stale(tmp_path) == ["alerts/apns-exporter.rules.yml"]


def test_assets_command_writes_checkable_files_with_the_users_parameters(tmp_path: Path) -> None:
    """`assets` writes rules promtool accepts, valid dashboards and the Alertmanager example."""
    code = _write(
        tmp_path,
        "--selector",
        'job="apns"',
        "--runbook-url",
        "https://wiki.example.org/apns/runbook.md",
        "--set",
        "cert_warning_days=21",
        "--for",
        "ApnsCanaryFailing=15m",
    )
    assert code == 0
    rules = tmp_path / "apns-exporter.rules.yml"
    result = _promtool_run("check", "rules", str(rules), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    text = rules.read_text()
    assert 'job="apns-exporter"' not in text
    assert 'up{job="apns"}' in text
    alerts = _alerts(text)
    assert all(
        a["annotations"]["runbook_url"]
        == f"https://wiki.example.org/apns/runbook.md#{a['alert'].lower()}"
        for a in alerts
    )
    assert {a["for"] for a in alerts if a["alert"] == "ApnsCanaryFailing"} == {"15m"}
    assert any("21 * 86400" in a["expr"] for a in alerts)
    for name in ("apns-exporter-overview.json", "apns-exporter-target.json"):
        board = json.loads((tmp_path / "dashboards" / name).read_text())
        assert "https://wiki.example.org/apns/runbook.md" in json.dumps(board["links"])
    manifest = yaml.safe_load((tmp_path / "prometheusrule.yaml").read_text())
    assert manifest["spec"]["groups"] == yaml.safe_load(text)["groups"]
    assert (tmp_path / "alertmanager.yml").read_text() == assets.alertmanager_example()
    assert _write(tmp_path, "--check", "--selector", 'job="apns"') == 1
    assert _write(tmp_path, "--selector", 'job="apns"') == 0
    assert _write(tmp_path, "--check", "--selector", 'job="apns"') == 0


@pytest.mark.parametrize(
    "flags",
    [
        ["--set", "nope=1"],
        ["--set", "cert_warning_days=soon"],
        ["--set", "canary_window=fifteen"],
        ["--for", "ApnsCanaryFailing"],
        ["--for", "ApnsCanaryFailing=later"],
        ["--runbook-url", ""],
        ["--set", "cert_warning_days=-5"],
        ["--set", "fleet_failing_ratio=2"],
        ["--for", "NoSuchAlert=5m"],
        ["--label", "bad-name=x"],
    ],
)
def test_assets_command_rejects_bad_parameters(tmp_path: Path, flags: list[str]) -> None:
    """A bad --set, --for or runbook URL exits 2 and writes nothing."""
    assert _write(tmp_path, *flags) == 2
    assert list(tmp_path.iterdir()) == []


def test_keep_firing_for_can_be_left_out_for_old_operators() -> None:
    """--set keep_firing_for= drops the field that prometheus-operator < v0.66 rejects."""
    text = assets.render_all(with_settings(Params(), {"keep_firing_for": ""}))
    assert "keep_firing_for" not in json.dumps(_alerts(text["apns-exporter.rules.yml"]))
    assert "keep_firing_for" in json.dumps(_alerts(assets.render_all()["apns-exporter.rules.yml"]))


def test_durations_round_trip() -> None:
    """Durations parse to seconds and format back to their shortest form."""
    assert duration_seconds("1h30m") == 5400
    assert format_duration(3 * duration_seconds("5m")) == "15m"
    assert format_duration(90061) == "1d1h1m1s"
    with pytest.raises(ValueError, match="not a Prometheus duration"):
        duration_seconds("5 minutes")


def _named_reasons() -> dict[str, set[str]]:
    """Reason values each counter is selected by, by name, in any rule."""
    named: dict[str, set[str]] = {}
    for group in groups(Params()):
        for rule in group["rules"]:
            for metric, matchers in re.findall(r"\b(apns_\w+_total)\{([^}]*)\}", rule["expr"]):
                for value in re.findall(r'\breason=~?"([^"]+)"', matchers):
                    named.setdefault(metric, set()).update(value.split("|"))
    return named


def test_alerted_reasons_list_every_reason_the_rules_name() -> None:
    """ALERTED_REASONS holds exactly the reasons rules select by name (none start at 0)."""
    named = _named_reasons()
    assert named == {metric: set(values) for metric, values in ALERTED_REASONS.items()}
    apns = {r.value for r in Reason}
    assert set(ALERTED_REASONS["apns_canary_responses_total"]) <= apns
    assert set(ALERTED_REASONS["apns_goaway_received_total"]) <= apns
    assert set(ALERTED_REASONS["apns_canary_receipts_rejected_total"]) <= set(RECEIPT_REASONS)


def test_reason_counts_catch_a_series_first_seen_at_one() -> None:
    """Every reason count goes through count(): a new series counts whole, an unseen one not.

    A series counts by its whole value only when it is missing from some of the window's
    successful scrapes (new), never merely because Prometheus has no sample a window ago.
    """
    for group in groups(Params()):
        for rule in group["rules"]:
            expr = rule["expr"]
            for selector in re.findall(r"apns_\w+_total\{[^}]*reason[^}]*\}", expr):
                windows = re.findall(re.escape(selector) + r"\[(\w+)\]", expr)
                for window in windows:
                    new = (
                        f"or {selector} and count_over_time({selector}[{window}]) < "
                        f"on (job, instance) group_left sum_over_time(up[{window}])"
                    )
                    assert new in expr, (rule, selector)
                    assert f"or {selector})" not in expr, (rule, selector)


def test_no_rule_or_panel_uses_the_setup_duration_histogram() -> None:
    """The setup-phase histogram is being replaced (issue 15): nothing may build on it."""
    for text in assets.render_all().values():
        assert "apns_connection_setup_duration" not in text


# --------------------------------------------------------------- promtool scenarios


def _series(name: str, values: str, target: str | None = "demo", **labels: str) -> dict[str, str]:
    base = {"job": "apns-exporter", "instance": "exporter:10054"}
    if target is not None:
        base |= {"target": target, "apns_environment": "sandbox"}
    inside = ",".join(f'{k}="{v}"' for k, v in (base | labels).items())
    return {"series": f"{name}{{{inside}}}", "values": values}


def _healthy_demo(steps: int) -> list[dict[str, str]]:
    """The demo's target at 5 s steps: device canary with receipts and auth check, PINGs."""
    n = steps
    lost = " ".join(str(i // 20) for i in range(n + 1))  # one canary in twenty unconfirmed
    delivered = " ".join(str(i - i // 20) for i in range(n + 1))
    series = [
        _series("up", f"1x{n}", target=None),
        _series("apns_exporter_config_last_reload_successful", f"1x{n}", target=None),
        _series(
            "apns_canary_receipts_rejected_total", f"0x{n}", target=None, reason="bad_signature"
        ),
        _series("apns_up", f"1x{n}"),
        _series("apns_connection_up", f"1x{n}"),
        _series("apns_probe_interval_seconds", f"5x{n}", probe="canary"),
        _series("apns_probe_interval_seconds", f"5x{n}", probe="ping"),
        _series("apns_canary_last_attempt_timestamp_seconds", f"0+5x{n}"),
        _series("apns_canary_last_success_timestamp_seconds", f"0+5x{n}"),
        _series("apns_ping_last_success_timestamp_seconds", f"0+5x{n}"),
        _series("apns_provider_token_issued_timestamp_seconds", f"0x{n}"),
        _series("apns_signing_key_invalid_streak", f"0x{n}"),
        _series("apns_credential_up", f"1x{n}"),
        _series("apns_max_concurrent_streams", f"1000x{n}"),
        _series("apns_connection_attempts_total", f"1x{n}"),
        _series("apns_canary_pushes_total", f"0+1x{n}", kind="device"),
        _series("apns_canary_pushes_total", f"0+1x{n}", kind="auth_check"),
        _series("apns_canary_responses_total", f"0+1x{n}", status="200", reason="none"),
        _series("apns_canary_responses_total", f"0+1x{n}", status="400", reason="BadDeviceToken"),
        _series("apns_canary_deliveries_total", delivered),
        _series("apns_canary_delivery_lost_total", lost),
        _series("apns_server_certificate_verified", f"1x{n}", trust_store="effective"),
        _series("apns_server_certificate_chain_changes_total", f"0x{n}"),
    ]
    for le, count in (("0.05", "0+1"), ("+Inf", "0+1")):
        series.append(_series("apns_canary_duration_seconds_bucket", f"{count}x{n}", le=le))
        series.append(_series("apns_ping_rtt_seconds_bucket", f"{count}x{n}", le=le))
    for le in ("2.5", "+Inf"):
        series.append(_series("apns_canary_delivery_duration_seconds_bucket", delivered, le=le))
    for reason in ("none", "Shutdown"):
        series.append(_series("apns_goaway_received_total", f"0x{n}", reason=reason))
    return series


def _run_tests(tmp_path: Path, rules_text: str, tests: list[dict[str, Any]]) -> str:
    (tmp_path / "rules.yml").write_text(rules_text)
    doc = {"rule_files": ["rules.yml"], "evaluation_interval": "30s", "tests": tests}
    (tmp_path / "test.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    result = _promtool_run("test", "rules", "test.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_healthy_demo_fires_nothing_for_ten_minutes(tmp_path: Path) -> None:
    """Ten minutes of the demo's healthy metrics, shipped for: durations: no alert fires."""
    rules = assets.render_all()["apns-exporter.rules.yml"]
    names = sorted({a["alert"] for a in _alerts(rules)})
    cases = [
        {"eval_time": t, "alertname": name, "exp_alerts": []}
        for t in ("5m", "10m", "12m")
        for name in names
    ]
    steps = 12 * 60 // 5
    tests = [{"interval": "5s", "input_series": _healthy_demo(steps), "alert_rule_test": cases}]
    _run_tests(tmp_path, rules, tests)


def test_absent_exporter_alert_follows_the_configured_selector(tmp_path: Path) -> None:
    """ApnsExporterDown's absent() looks for the user's job, not a hard-coded name."""
    rules = assets.render_all(Params(selector='job="apns"'))["apns-exporter.rules.yml"]
    up = {"series": 'up{job="apns",instance="e:1"}', "values": "1x20"}
    tests = [
        {
            "interval": "1m",
            "input_series": [up],
            "alert_rule_test": [
                {"eval_time": "10m", "alertname": "ApnsExporterDown", "exp_alerts": []}
            ],
        },
        {
            "interval": "1m",
            "input_series": [
                {"series": 'up{job="apns-exporter",instance="e:1"}', "values": "1x20"}
            ],
            "alert_rule_test": [
                {
                    "eval_time": "10m",
                    "alertname": "ApnsExporterDown",
                    "exp_alerts": [
                        {
                            "exp_labels": {"severity": "warning", "job": "apns"},
                            "exp_annotations": {
                                "summary": "The APNs exporter is down.",
                                "description": re.sub(
                                    r"\s+",
                                    " ",
                                    "Prometheus has no scrape target matching job='apns' for 5 "
                                    "minutes, so canaries, PINGs and credential expiry of every "
                                    "target it monitors are no longer watched. Likely causes: the "
                                    "exporter crashed or is restarting, its listen address or web "
                                    "config changed, service discovery lost it, or the rules' "
                                    "selector does not match the scrape job.",
                                ),
                                "runbook_url": assets.DEFAULT_RUNBOOK_URL + "#apnsexporterdown",
                            },
                        }
                    ],
                }
            ],
        },
    ]
    _run_tests(tmp_path, rules, tests)


def test_alertmanager_example_passes_amtool(tmp_path: Path) -> None:
    """The shipped Alertmanager example is a valid Alertmanager configuration."""
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.fail("amtool is missing: apt-get install prometheus-alertmanager")
    path = tmp_path / "alertmanager.yml"
    path.write_text(assets.alertmanager_example())
    result = subprocess.run(
        [amtool, "check-config", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_alertmanager_routes_critical_to_the_pager_and_drops_info() -> None:
    """Routing: critical pages, info goes nowhere, one notification per alert and environment."""
    config = yaml.safe_load(assets.alertmanager_example())
    route = config["route"]
    assert route["group_by"] == ["alertname", "severity", "job", "apns_environment"]
    by_severity = {r["matchers"][0]: r["receiver"] for r in route["routes"]}
    assert by_severity == {"severity = info": "blackhole", "severity = critical": "pager"}
    receivers = {r["name"]: r for r in config["receivers"]}
    assert list(receivers["blackhole"]) == ["name"]
    sources = {r["source_matchers"][0] for r in config["inhibit_rules"]}
    assert "alertname = ApnsFleetFailing" in sources


def test_assets_is_a_subcommand_of_the_cli(tmp_path: Path) -> None:
    """`apns-exporter assets --out DIR` writes every asset; a bad setting exits 2."""
    from apns_exporter import cli

    assert cli.main(["assets", "--out", str(tmp_path / "a")]) == 0
    written = {str(p.relative_to(tmp_path / "a")) for p in (tmp_path / "a").rglob("*.*")}
    assert written == set(assets.render_all())
    assert cli.main(["assets", "--out", str(tmp_path / "b"), "--set", "nope=1"]) == 2


def test_runbook_has_a_section_for_every_failing_layer() -> None:
    """Each layer the landing page can link to has its '### Failing layer' runbook section."""
    from apns_exporter.assets.alerts_canary import LAYER_TEXT
    from apns_exporter.probes import LAYERS

    assert set(LAYER_TEXT) == set(LAYERS)
    runbook = (ROOT / "docs" / "runbook.md").read_text(encoding="utf-8")
    for layer in LAYERS:
        assert f"\n### Failing layer {layer}\n" in runbook
        assert assets.runbook_section(layer, "x").endswith(f"#failing-layer-{layer}")


# ------------------------------------------------------ assets --out, through the CLI


def _one_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    """Exit 2 with exactly one line naming the problem, and no traceback."""
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert result.returncode == 2, result.stdout + result.stderr
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: "), lines
    assert all(w in lines[0] for w in words), lines[0]


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--runbook-url", "https://wiki.example.org/a\nb"], ("runbook_url", "CR, LF or NUL")),
        (["--runbook-url", "https://wiki.example.org/a\rb"], ("runbook_url", "CR, LF or NUL")),
        (["--for", "NoSuchAlert=5m"], ("NoSuchAlert", "no such alert")),
        (["--set", "cert_warning_days=-5"], ("cert_warning_days=-5", "out of range")),
        (["--label", "team=a\nb"], ("label team", "CR, LF or NUL")),
    ],
)
def test_assets_cli_refuses_bad_values_in_one_line(
    tmp_path: Path, flags: list[str], words: tuple[str, ...]
) -> None:
    """A newline in a URL or label, an unknown alert or an out-of-range value: one line, exit 2."""
    _one_error(run_cli("assets", "--out", str(tmp_path / "out"), *flags), *words)
    assert not (tmp_path / "out").exists()


def test_assets_cli_never_writes_through_a_symlink_out_of_dir(tmp_path: Path) -> None:
    """A symlinked dashboards/ or output file is refused before anything is written."""
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "dashboards").symlink_to(outside)
    _one_error(run_cli("assets", "--out", str(out)), "dashboards", "symbolic link")
    assert list(outside.iterdir()) == []
    assert [p.name for p in out.iterdir()] == ["dashboards"]
    (out / "dashboards").unlink()
    victim = outside / "victim"
    victim.write_text("keep\n")
    (out / "alertmanager.yml").symlink_to(victim)
    _one_error(run_cli("assets", "--out", str(out)), "alertmanager.yml", "not a regular file")
    assert victim.read_text() == "keep\n"


def test_assets_cli_does_not_hang_on_a_fifo_named_like_an_output(tmp_path: Path) -> None:
    """A FIFO in place of the rules file is refused at once, when writing and when checking."""
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / "apns-exporter.rules.yml")
    for extra in ((), ("--check",)):
        _one_error(run_cli("assets", "--out", str(out), *extra), "not a regular file")


@pytest.mark.parametrize("kind", ["file", "under-a-file"])
def test_assets_cli_reports_an_unusable_out_without_a_traceback(tmp_path: Path, kind: str) -> None:
    """--out naming a file, or a path under a file, is one error line, not a traceback."""
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    out = blocker if kind == "file" else blocker / "sub"
    _one_error(run_cli("assets", "--out", str(out)), str(out))


def test_an_empty_selector_does_not_watch_every_scrape_target(tmp_path: Path) -> None:
    """--selector '' alerts on a down exporter, never on another job's down target."""
    rules = assets.render_all(Params(selector=""))["apns-exporter.rules.yml"]
    assert "up{}" not in rules
    series = [
        {"series": 'up{job="node",instance="host:9100"}', "values": "0x20"},
        {"series": 'up{job="apns",instance="e:1"}', "values": "1 1 0x20"},
        {"series": 'apns_exporter_build_info{job="apns",instance="e:1"}', "values": "1 1"},
    ]
    down = re.sub(
        r"\s+",
        " ",
        "Prometheus has failed to scrape the APNs exporter e:1 (job apns) for 5 minutes, so "
        "canaries, PINGs and credential expiry of every target it monitors are no longer "
        "watched. Likely causes: the exporter crashed or is restarting, its listen address or "
        "web config changed, service discovery lost it, or the rules' selector does not match "
        "the scrape job.",
    )
    expected = {
        "exp_labels": {"severity": "warning", "job": "apns", "instance": "e:1"},
        "exp_annotations": {
            "summary": "The APNs exporter is down.",
            "description": down,
            "runbook_url": assets.DEFAULT_RUNBOOK_URL + "#apnsexporterdown",
        },
    }
    case = {"eval_time": "10m", "alertname": "ApnsExporterDown", "exp_alerts": [expected]}
    _run_tests(
        tmp_path, rules, [{"interval": "1m", "input_series": series, "alert_rule_test": [case]}]
    )


def test_for_overrides_change_the_duration_descriptions_state(tmp_path: Path) -> None:
    """--for ApnsCanaryFailing=15m makes the description say 15 minutes, not the default 10."""
    params = with_settings(Params(), {}, {"ApnsCanaryFailing": "15m", "ApnsExporterDown": "90s"})
    alerts = _alerts(assets.render_all(params)["apns-exporter.rules.yml"])
    canary = {a["annotations"]["description"] for a in alerts if a["alert"] == "ApnsCanaryFailing"}
    assert all("have failed for at least 15 minutes" in d for d in canary)
    assert not any("10 minutes" in d for d in canary)
    down = next(a for a in alerts if a["alert"] == "ApnsExporterDown")
    assert "for 90 seconds" in down["annotations"]["description"]
    assert "5 minutes" not in down["annotations"]["description"]


def test_extra_labels_and_grafana_url_reach_every_alert() -> None:
    """--label adds to every alert's labels; --grafana-url links each to its dashboard."""
    params = with_settings(
        dataclasses.replace(Params(), grafana_url="https://grafana.example.org/"),
        {},
        labels={"team": "push"},
    )
    alerts = _alerts(assets.render_all(params)["apns-exporter.rules.yml"])
    assert all(a["labels"]["team"] == "push" for a in alerts)
    urls = {a["alert"]: a["annotations"]["dashboard_url"] for a in alerts}
    assert urls["ApnsCanaryFailing"].startswith(
        "https://grafana.example.org/d/apns-exporter-target?"
    )
    assert "var-target={{ $labels.target }}" in urls["ApnsCanaryFailing"]
    assert urls["ApnsFleetFailing"].startswith(
        "https://grafana.example.org/d/apns-exporter-overview?"
    )
    assert "dashboard_url" not in json.dumps(
        _alerts(assets.render_all()["apns-exporter.rules.yml"])
    )


def test_a_for_override_is_what_the_fired_alert_says_in_promtool(tmp_path: Path) -> None:
    """Under --for ApnsExporterDown=7m the alert fires after 7 minutes and says 7 minutes."""
    params = with_settings(Params(), {}, {"ApnsExporterDown": "7m"})
    rules = assets.render_all(params)["apns-exporter.rules.yml"]
    up = {"series": 'up{job="apns-exporter",instance="e:1"}', "values": "1 1 0x20"}
    text = (
        "Prometheus has failed to scrape the APNs exporter e:1 (job apns-exporter) for 7 "
        "minutes, so canaries, PINGs and credential expiry of every target it monitors are no "
        "longer watched. Likely causes: the exporter crashed or is restarting, its listen "
        "address or web config changed, service discovery lost it, or the rules' selector "
        "does not match the scrape job."
    )
    fired = {
        "exp_labels": {"severity": "warning", "job": "apns-exporter", "instance": "e:1"},
        "exp_annotations": {
            "summary": "The APNs exporter is down.",
            "description": text,
            "runbook_url": assets.DEFAULT_RUNBOOK_URL + "#apnsexporterdown",
        },
    }
    cases = [
        {"eval_time": "8m", "alertname": "ApnsExporterDown", "exp_alerts": []},
        {"eval_time": "10m", "alertname": "ApnsExporterDown", "exp_alerts": [fired]},
    ]
    _run_tests(
        tmp_path, rules, [{"interval": "1m", "input_series": [up], "alert_rule_test": cases}]
    )
