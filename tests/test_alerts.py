"""Tests for alerts/apns-exporter.rules.yml, its promtool unit tests and docs/runbook.md."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tests.helpers import load_script

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "alerts" / "apns-exporter.rules.yml"
RULE_TESTS = sorted((ROOT / "alerts" / "tests").glob("*.yml"))
RUNBOOK = ROOT / "docs" / "runbook.md"
RUNBOOK_URL = "https://github.com/apns-exporter/apns-exporter/blob/main/docs/runbook.md#"
SEVERITIES = {"critical", "warning", "info"}

# The metric contract (DESIGN.md section 6) plus the metrics the alert issue adds.
# test_contract_metrics_are_served_by_the_exporter checks it against the real registry.
CONTRACT_METRICS = frozenset(
    {
        "apns_exporter_build_info",
        "apns_exporter_config_last_reload_successful",
        "apns_exporter_config_last_reload_success_timestamp_seconds",
        "apns_target_info",
        "apns_up",
        "apns_connection_up",
        "apns_connection_attempts_total",
        "apns_connection_failures_total",
        "apns_connection_last_setup_duration_seconds",
        "apns_goaway_received_total",
        "apns_max_concurrent_streams",
        "apns_ping_rtt_seconds",
        "apns_ping_failures_total",
        "apns_ping_last_success_timestamp_seconds",
        "apns_canary_pushes_total",
        "apns_canary_responses_total",
        "apns_canary_request_errors_total",
        "apns_canary_duration_seconds",
        "apns_canary_last_success_timestamp_seconds",
        "apns_canary_last_attempt_timestamp_seconds",
        "apns_canary_interval_seconds",
        "apns_ping_interval_seconds",
        "apns_client_certificate_not_after_timestamp_seconds",
        "apns_client_certificate_not_before_timestamp_seconds",
        "apns_client_certificate_info",
        "apns_credential_up",
        "apns_credential_load_errors_total",
        "apns_signing_key_info",
        "apns_provider_token_issued_timestamp_seconds",
        "apns_provider_token_refreshes_total",
        "apns_provider_token_refresh_failures_total",
        "apns_server_certificate_not_after_timestamp_seconds",
        "apns_server_certificate_info",
        "apns_server_certificate_verified",
        "apns_tls_version_info",
        "apns_reachable",
        "apns_address_in_apple_range",
        # Beyond section 6, promised by the alerting issue.
        "apns_signing_key_invalid_streak",
        "apns_signing_key_last_verified_timestamp_seconds",
        "apns_server_certificate_chain_changes_total",
        # Promised by the delivery-receipts issue.
        "apns_canary_delivery_duration_seconds",
        "apns_canary_deliveries_total",
        "apns_canary_delivery_lost_total",
        "apns_canary_last_delivery_timestamp_seconds",
    }
)
HISTOGRAMS = frozenset(
    {
        "apns_ping_rtt_seconds",
        "apns_canary_duration_seconds",
        "apns_canary_delivery_duration_seconds",
    }
)
LABEL_NAMES = frozenset({"apns_environment"})


def contract_metric(name: str) -> bool:
    """Whether a series name belongs to the metric contract (histogram series included)."""
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name.removesuffix(suffix) in HISTOGRAMS:
            return True
    return name in CONTRACT_METRICS


def metric_names(promql: str) -> set[str]:
    """Every apns_* name in a PromQL expression or template, label names excluded."""
    without_recorded = re.sub(RECORDED_NAME, " ", promql)
    return set(re.findall(r"\bapns_\w+", without_recorded)) - LABEL_NAMES


RECORDED_NAME = r"\b\w+:\w+:\w+\b"


def _load_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in doc["groups"] for rule in group["rules"]]


RULE_LIST = _load_rules()
ALERTS = [rule for rule in RULE_LIST if "alert" in rule]
ALERT_NAMES = sorted({rule["alert"] for rule in ALERTS})


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is not installed: the alert rules cannot be checked. Install it "
            "(Debian/Ubuntu: apt-get install prometheus; or the promtool binary from "
            "https://prometheus.io/download/) and put it on PATH."
        )
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_promtool(), *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def _anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _runbook_headings() -> list[str]:
    return re.findall(r"^##+ (.+?)\s*$", RUNBOOK.read_text(encoding="utf-8"), flags=re.M)


def _fast_rules() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "apns_fast_rules", ROOT / "alerts" / "fast_rules.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_promtool_check_rules_passes() -> None:
    """`promtool check rules` accepts the rule file without lint findings."""
    result = _run("check", "rules", str(RULES.relative_to(ROOT)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    """Every promtool unit test in alerts/tests passes."""
    assert RULE_TESTS, "no promtool tests found in alerts/tests"
    result = _run("test", "rules", *(str(p.relative_to(ROOT)) for p in RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAILED" not in result.stdout + result.stderr


def test_every_alert_is_tested_positive_and_negative() -> None:
    """Each alert has a promtool case where it fires and one where it stays silent."""
    fired: set[str] = set()
    silent: set[str] = set()
    for path in RULE_TESTS:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        for test in doc["tests"]:
            for case in test.get("alert_rule_test", []):
                (fired if case.get("exp_alerts") else silent).add(case["alertname"])
    assert set(ALERT_NAMES) - fired == set(), "alerts never asserted to fire"
    assert set(ALERT_NAMES) - silent == set(), "alerts never asserted to stay silent"


def test_promtool_cases_assert_full_labels_and_annotations() -> None:
    """Every expected alert in the promtool tests asserts severity and all three annotations."""
    for path in RULE_TESTS:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        for test in doc["tests"]:
            for case in test.get("alert_rule_test", []):
                for alert in case.get("exp_alerts") or []:
                    where = f"{path.name}: {test.get('name')} at {case['eval_time']}"
                    assert alert["exp_labels"]["severity"] in SEVERITIES, where
                    annotations = alert["exp_annotations"]
                    assert set(annotations) == {"summary", "description", "runbook_url"}, where
                    assert annotations["runbook_url"] == RUNBOOK_URL + case["alertname"].lower()


def test_every_alert_has_severity_and_annotations() -> None:
    """Every alert rule carries a severity and summary, description and runbook_url."""
    for rule in ALERTS:
        name = rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, name
        annotations = rule["annotations"]
        assert {"summary", "description", "runbook_url"} <= set(annotations), name
        assert annotations["summary"].endswith("."), name
        assert "{{" not in annotations["summary"], f"{name}: summary must be static"
        assert "$labels" in annotations["description"], name


def test_runbook_urls_point_at_the_alert_section() -> None:
    """Every runbook_url is the runbook address with the lower-cased alert name as anchor."""
    for rule in ALERTS:
        assert rule["annotations"]["runbook_url"] == RUNBOOK_URL + rule["alert"].lower()


def test_every_alert_has_a_runbook_section() -> None:
    """docs/runbook.md has a section whose heading is exactly each alert name."""
    headings = set(_runbook_headings())
    assert set(ALERT_NAMES) - headings == set()


def test_every_runbook_anchor_exists() -> None:
    """Every anchor used by a runbook_url or a link inside the runbook names a heading."""
    anchors = {_anchor(h) for h in _runbook_headings()}
    used = {rule["annotations"]["runbook_url"].rsplit("#", 1)[1] for rule in ALERTS}
    used |= set(re.findall(r"\]\(#([\w-]+)\)", RUNBOOK.read_text(encoding="utf-8")))
    assert used - anchors == set()


def test_runbook_sections_explain_meaning_impact_confirm_and_fix() -> None:
    """Every alert section of the runbook says what it means, its impact, how to confirm and fix."""
    text = RUNBOOK.read_text(encoding="utf-8")
    for name in ALERT_NAMES:
        section = text.split(f"\n## {name}\n", 1)[1].split("\n## ", 1)[0]
        for part in ("**Meaning.**", "**Impact.**", "**Confirm.**", "**Fix"):
            assert part in section, f"{name}: missing {part}"


def test_runbook_sections_match_alerts() -> None:
    """Every Apns* section of the runbook belongs to an existing alert."""
    sections = {h for h in _runbook_headings() if h.startswith("Apns")}
    assert sections - set(ALERT_NAMES) == set()


def test_bands_of_one_alert_differ_in_labels_and_share_summary() -> None:
    """Rules sharing an alertname have distinct labels and the same summary and runbook."""
    bands: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rule in ALERTS:
        bands[rule["alert"]].append(rule)
    for name, rules in bands.items():
        labels = [tuple(sorted(r["labels"].items())) for r in rules]
        assert len(set(labels)) == len(labels), name
        assert len({r["annotations"]["summary"] for r in rules}) == 1, name
        assert len({r["annotations"]["runbook_url"] for r in rules}) == 1, name


def test_rules_use_only_contract_metrics() -> None:
    """Rule expressions and annotation queries only use metrics of the metric contract."""
    for rule in RULE_LIST:
        text = rule["expr"] + " ".join(rule.get("annotations", {}).values())
        unknown = {m for m in metric_names(text) if not contract_metric(m)}
        assert unknown == set(), rule.get("alert") or rule.get("record")


def test_alerts_use_only_recorded_names_that_exist() -> None:
    """Every level:metric:operation name an alert or dashboard uses is recorded in the file."""
    recorded = {rule["record"] for rule in RULE_LIST if "record" in rule}
    for rule in ALERTS:
        assert set(re.findall(RECORDED_NAME, rule["expr"])) <= recorded, rule["alert"]


def test_fast_rules_shortens_every_for(tmp_path: Path) -> None:
    """alerts/fast_rules.py writes a valid rule file with every `for:` shortened."""
    fast_rules = _fast_rules()
    out = tmp_path / "fast.rules.yml"
    fast_rules.shorten_file(RULES, out, for_="5s")
    result = _run("check", "rules", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    rules = [r for g in yaml.safe_load(out.read_text())["groups"] for r in g["rules"]]
    shortened = [r for r in rules if "alert" in r]
    assert len(shortened) == len(ALERTS)
    assert all(r["for"] == "5s" and "keep_firing_for" not in r for r in shortened)
    assert [r["expr"] for r in rules] == [r["expr"] for r in RULE_LIST]


def test_fast_rules_rejects_a_bad_duration() -> None:
    """alerts/fast_rules.py refuses a value that is not a Prometheus duration."""
    with pytest.raises(ValueError, match="not a Prometheus duration"):
        _fast_rules().shorten({"groups": []}, for_="five seconds")


# ------------------------------------------------------------- the real registry


def _exported() -> dict[str, dict[str, set[str]]]:
    """Every sample name the exporter's registry serves, with each label's values.

    Built from apns_exporter.service.metrics.Metrics as the exporter builds it: a token target
    measuring delivery, a certificate target and an MDM certificate target, then one
    representative result of every probe, a GOAWAY with every documented reason (and
    an empty one), a SETTINGS frame and a delivery receipt, received and lost.
    """
    from apns_exporter.apns import Reason
    from apns_exporter.client.channel import DialReport
    from apns_exporter.client.protocol import GoAway, SettingsChanged
    from apns_exporter.creds.certificates import CertificateSummary
    from apns_exporter.creds.chain import ChainReport
    from apns_exporter.probes import ProbeKind, ProbeResult, PushOutcome, Reach
    from apns_exporter.receipts.book import Delivery
    from apns_exporter.service.metrics import Metrics

    metrics = Metrics()
    now = 1_750_000_000.0
    for name, auth, key in (
        ("token", "token", ("ABC123DEFG", "DEF123GHIJ")),
        ("cert", "certificate", None),
        ("mdm", "certificate", None),
    ):
        metrics.add_target(
            name,
            "production",
            host="api.push.apple.com",
            port=443,
            topic="com.example.app",
            auth_method=auth,
            canary_interval=300,
            ping_interval=60,
            key=key,
            rotate_by=now + 86400 if key else None,
            delivery=name == "token",
        )
    dial = DialReport(True, {"resolve": 0.001, "connect": 0.01, "tls": 0.02})
    chain = ChainReport(
        endpoint="api.push.apple.com:443",
        tls_version="TLSv1.3",
        leaf_subject="CN=api.push.apple.com",
        leaf_issuer="CN=Apple Public Server RSA CA 1 - G1",
        root_subject="CN=USERTrust RSA Certification Authority",
        leaf_fingerprint_sha256="ab" * 32,
        earliest_not_after=now + 86400 * 90,
        full_chain=True,
        verified_ca_file=True,
        verified_system=True,
        verify_error=None,
        chain_fingerprints=("ab" * 32, "cd" * 32),
    )
    results = [
        ProbeResult(
            "token",
            ProbeKind.CANARY,
            True,
            now,
            0.1,
            "ok",
            dials=(dial,),
            pushes=(
                PushOutcome("device", True, 0.05, 200, "none"),
                PushOutcome("auth_check", True, 0.05, 400, "BadDeviceToken"),
            ),
            token_issued_at=now,
            token_minted=True,
        ),
        ProbeResult("token", ProbeKind.PING, True, now, 0.01, "ok", rtt=0.01),
        ProbeResult("token", ProbeKind.TLS, True, now, 0.2, "ok", chain=chain, chain_changed=True),
        ProbeResult(
            "token",
            ProbeKind.REACHABILITY,
            True,
            now,
            0.1,
            "ok",
            reaches=(Reach("api.push.apple.com", 443, "ipv4", True, 0.02, True),),
        ),
        ProbeResult("token", ProbeKind.CREDENTIALS, True, now, 0.0, "ok"),
        # Failures: their reason and error series appear on the first event.
        ProbeResult(
            "token",
            ProbeKind.CANARY,
            False,
            now,
            5.0,
            "timeout",
            pushes=(PushOutcome("device", False, 5.0, error="timeout"),),
            token_failed=True,
        ),
        ProbeResult("token", ProbeKind.PING, False, now, 5.0, "timeout", error="timeout"),
        ProbeResult("token", ProbeKind.CREDENTIALS, False, now, 0.0, "bad", error="bad_p8"),
    ]
    for name, is_mdm in (("cert", False), ("mdm", True)):
        certificate = CertificateSummary(
            not_before=now - 86400,
            not_after=now + 86400 * 300,
            subject_cn="Apple Push Services: com.example.app",
            uid="com.example.app",
            team_id="DEF123GHIJ",
            topics=("com.example.app",),
            environments=frozenset({"production", "sandbox"}),
            fingerprint_sha256="ef" * 32,
            serial="01",
            issuer_cn="Apple Worldwide Developer Relations Certification Authority",
            is_mdm=is_mdm,
        )
        results.append(
            ProbeResult(name, ProbeKind.CREDENTIALS, True, now, 0.0, "ok", certificate=certificate)
        )
    for result in results:
        metrics.record(result)
    for reason in Reason:
        if reason is not Reason.UNKNOWN:
            debug = f'{{"reason":"{reason.value}"}}'.encode()
            metrics.observe("token", GoAway(0, 0, debug))
    metrics.observe("token", GoAway(0, 0, b""))
    metrics.observe("token", SettingsChanged(1000))
    metrics.delivered(Delivery("token", "c1", now, now + 1.5, 1.5), now + 1.5)
    metrics.lost("token")

    exported: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for family in metrics.registry.collect():
        for sample in family.samples:
            labels = exported[sample.name]
            for label, value in sample.labels.items():
                labels[label].add(value)
    return exported


EXPORTED = _exported()
# Labels Prometheus adds to every series it scrapes.
SCRAPE_LABELS = frozenset({"job", "instance"})
SELECTOR = re.compile(r"\b(apns_\w+|up|\w+:\w+:\w+)\s*\{([^{}]*)\}")
MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"')


def _dashboard_exprs() -> list[str]:
    generate = load_script("apns_dashboards_contract", ROOT / "dashboards" / "generate.py")
    return [q["expr"] for q in generate.panel_queries()]


def _used_promql() -> list[tuple[str, str]]:
    """(where, text) for every rule expression, annotation and dashboard query."""
    used = []
    for rule in RULE_LIST:
        where = rule.get("alert") or rule["record"]
        used.append((where, rule["expr"]))
        used += [(f"{where} {k}", v) for k, v in rule.get("annotations", {}).items()]
    used += [("dashboard", expr) for expr in _dashboard_exprs()]
    return used


def test_contract_metrics_are_served_by_the_exporter() -> None:
    """Every contract metric is served by the real registry, histograms with their series."""
    missing = set()
    for name in CONTRACT_METRICS:
        wanted = (
            [f"{name}{s}" for s in ("_bucket", "_sum", "_count")] if name in HISTOGRAMS else [name]
        )
        missing |= {w for w in wanted if w not in EXPORTED}
    assert missing == set()


def test_rules_and_dashboards_use_served_metrics() -> None:
    """Every metric a rule, annotation or panel names is served, recorded, or Prometheus' up."""
    recorded = {rule["record"] for rule in RULE_LIST if "record" in rule}
    unknown = set()
    for where, text in _used_promql():
        names = metric_names(text) | set(re.findall(RECORDED_NAME, text))
        unknown |= {(where, n) for n in names if n not in EXPORTED and n not in recorded}
        if re.search(r"\bup\b\s*\{", text):
            assert 'job="apns-exporter"' in text or 'job=~"$job"' in text, where
    assert unknown == set()


def test_selectors_use_labels_and_values_the_exporter_serves() -> None:
    """Each label matcher names a label the metric has, and = values are ones it serves."""
    wrong = set()
    for where, text in _used_promql():
        for name, matchers in SELECTOR.findall(text):
            if name not in EXPORTED:
                continue  # recorded series and `up`: checked elsewhere
            served = EXPORTED[name]
            for label, op, value in MATCHER.findall(matchers):
                if label in SCRAPE_LABELS:
                    continue
                if label not in served:
                    wrong.add((where, name, label, "no such label"))
                elif op == "=" and value not in served[label]:
                    wrong.add((where, name, label, f"never {value!r}"))
                elif op == "=~" and re.fullmatch(r"[\w|]+", value):
                    # An alternation of literal values: each must be one the exporter uses.
                    wrong |= {
                        (where, name, label, f"never {v!r}")
                        for v in value.split("|")
                        if v not in served[label]
                    }
    assert wrong == set()
