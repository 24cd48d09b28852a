"""Tests for the generated Grafana dashboards (apns_exporter/assets and the JSON in dashboards/)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from apns_exporter.assets import grafana
from apns_exporter.assets.dashboards import dashboards
from tests.helpers import load_script

ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS = ROOT / "dashboards"
PROVISIONING = DASHBOARDS / "provisioning"

alert_tests = load_script("apns_test_alerts_contract", Path(__file__).with_name("test_alerts.py"))
generate = load_script("apns_dashboards_generate", ROOT / "alerts" / "generate.py")

BOARDS: dict[str, dict[str, Any]] = dashboards()
QUERIES = grafana.panel_queries(BOARDS.values())


def _panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def _content_panels() -> Iterator[tuple[str, dict[str, Any]]]:
    for name, board in BOARDS.items():
        for panel in _panels(board):
            if panel["type"] != "row":
                yield f"{name}: {panel['title']}", panel


def test_committed_json_matches_the_generator() -> None:
    """The committed dashboard files are exactly what the package generates."""
    committed = {p.name for p in DASHBOARDS.glob("*.json")}
    assert committed == set(BOARDS)
    for name, board in BOARDS.items():
        text = (DASHBOARDS / name).read_text(encoding="utf-8")
        assert text == grafana.render(board), f"{name} is stale: run python alerts/generate.py"


def test_check_mode_reports_stale_files(tmp_path: Path) -> None:
    """`alerts/generate.py --check` fails on missing files and passes on fresh output."""
    assert generate.main(["--check", "--root", str(tmp_path)]) == 1
    assert generate.main(["--root", str(tmp_path)]) == 0
    assert generate.main(["--check", "--root", str(tmp_path)]) == 0


def test_uids_are_stable_and_unique() -> None:
    """The dashboards keep their fixed uids, which links and bookmarks rely on."""
    assert sorted(b["uid"] for b in BOARDS.values()) == [
        "apns-exporter-overview",
        "apns-exporter-target",
    ]


def test_dashboards_are_read_only_and_current() -> None:
    """Dashboards are code: not editable, schema 39 or newer, tagged and linked to the runbook."""
    for board in BOARDS.values():
        assert board["editable"] is False
        assert board["schemaVersion"] >= 39
        assert "apns-exporter" in board["tags"]
        assert any(link.get("url", "").endswith("runbook.md") for link in board["links"])
        # No invented project address: the only external link is the configurable runbook.
        assert [link["url"] for link in board["links"] if link.get("url")] == [
            "https://runbooks.example.com/apns-exporter/runbook.md"
        ]


def test_template_variables() -> None:
    """Each dashboard has datasource, job, instance, environment, owner and target variables."""
    for board in BOARDS.values():
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert list(variables) == [
            "datasource",
            "job",
            "instance",
            "environment",
            "owner_label",
            "owner",
            "target",
        ]
        assert variables["owner_label"]["type"] == "textbox"
        # Targets without the owner label stay selectable under "All".
        assert variables["owner"]["allValue"] == ".*"
        assert '$owner_label=~"$owner"' in variables["target"]["definition"]
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        # grafana/dashboard-linter's labels: "Data source", then the title-cased name.
        assert variables["datasource"]["label"] == "Data source"
        for name in ("job", "instance", "environment", "owner", "target"):
            var = variables[name]
            assert var["label"] == name.title()
            assert var["type"] == "query"
            assert var["datasource"]["uid"] == "${datasource}"
            assert var["definition"].startswith("label_values(")
            assert var["refresh"] == 2, "refresh on time range change"


def test_every_panel_has_unit_description_and_datasource() -> None:
    """Every panel has a description, a unit and the templated datasource."""
    for where, panel in _content_panels():
        assert panel["description"].strip(), where
        assert panel["fieldConfig"]["defaults"]["unit"], where
        assert panel["datasource"]["uid"] == "${datasource}", where
        assert panel["targets"], where
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", where


def test_rates_use_rate_interval() -> None:
    """Every rate uses [$__rate_interval]; no panel shows counts that change with the zoom."""
    for q in QUERIES:
        assert "increase(" not in q["expr"], q
        for window in re.findall(r"\b(?:rate|irate)\([^\[]*\[([^\]]+)\]", q["expr"]):
            assert window == "$__rate_interval", q


def test_queries_select_job_instance_and_target() -> None:
    """Every selector selects job; per-target ones also instance, environment and target.

    Instance and target values are regex-escaped (${x:regex}): "a.b" must not match "axb".
    """
    exporter_level = {
        "up",
        "apns_exporter_config_last_reload_successful",
        "apns_exporter_config_last_reload_success_timestamp_seconds",
        "apns_environment_root_info",  # process-wide: both environments, no target
    }
    for q in QUERIES:
        selectors = re.findall(r"\b([a-zA-Z_:][\w:]*)(\{(?:[^{}]|\$\{[^}]*\})*\})", q["expr"])
        for name, selector in selectors:
            assert 'job=~"$job"' in selector, q
            if name == "ALERTS" or name.startswith("job_environment:"):
                continue  # fleet alerts and SLO series carry neither instance nor target
            assert 'instance=~"${instance:regex}"' in selector, q
            if name not in exporter_level:
                assert 'target=~"${target:regex}"' in selector, q
                assert 'apns_environment=~"$environment"' in selector, q


def test_dashboards_use_only_contract_metrics() -> None:
    """Dashboard queries only use metrics of the metric contract."""
    for q in QUERIES:
        unknown = {
            m for m in alert_tests.metric_names(q["expr"]) if not alert_tests.contract_metric(m)
        }
        assert unknown == set(), q


def test_panel_queries_lists_every_query() -> None:
    """panel_queries() returns one entry per query of every panel."""
    listed = {(q["dashboard"], q["panel"], q["ref_id"]) for q in QUERIES}
    expected = {
        (board["uid"], panel["title"], t["refId"])
        for board in BOARDS.values()
        for panel in _panels(board)
        for t in panel.get("targets", [])
    }
    assert listed == expected
    assert len(listed) == len(QUERIES)


def test_expand_query_substitutes_every_variable() -> None:
    """expand_query() leaves no template variable in any panel query."""
    for q in QUERIES:
        expanded = grafana.expand_query(q["expr"], target="prod", rate_interval="2m")
        assert "$" not in expanded, expanded
    assert (
        grafana.expand_query('rate(x{target=~"$target"}[$__rate_interval])', target="prod")
        == 'rate(x{target=~"prod"}[1m])'
    )
    with pytest.raises(KeyError, match="unknown dashboard variable"):
        grafana.expand_query('x{a=~"$nope"}')


def test_overview_scales_to_many_targets() -> None:
    """The overview repeats nothing per target: a table sorted by trouble and the alerts."""
    board = BOARDS["apns-exporter-overview.json"]
    assert not any(p.get("repeat") for p in _panels(board))
    titles = [p["title"] for p in _panels(board)]
    assert {"Targets by trouble", "Firing alerts", "Failing for users"} <= set(titles)
    table = next(p for p in _panels(board) if p["title"] == "Targets by trouble")
    assert table["type"] == "table"
    assert table["options"]["sortBy"] == [{"displayName": "trouble", "desc": True}]
    names = {
        prop["value"]
        for override in table["fieldConfig"]["overrides"]
        for prop in override["properties"]
        if prop["id"] == "displayName"
    }
    assert {"trouble", "credential days left", "last canary", "firing alerts"} <= names
    exprs = " ".join(t["expr"] for t in table["targets"])
    assert "apns_failing_layer" in exprs
    alerts = next(p for p in _panels(board) if p["title"] == "Firing alerts")
    assert "ALERTS{" in alerts["targets"][0]["expr"]
    target_var = next(v for v in board["templating"]["list"] if v["name"] == "target")
    assert target_var["multi"]
    assert target_var["includeAll"]


def test_target_dashboard_has_the_detail_panels() -> None:
    """The target dashboard shows canary, connection, TLS and reachability detail."""
    board = BOARDS["apns-exporter-target.json"]
    kinds = {p["title"]: p["type"] for p in _panels(board)}
    assert kinds["Canary state"] == "state-timeline"
    assert kinds["Canary latency"] == "heatmap"
    assert kinds["Canary responses by reason"] == "timeseries"
    assert kinds["Delivery latency"] == "heatmap"
    assert kinds["Deliveries and losses"] == "timeseries"
    assert kinds["PING round trip"] == "timeseries"
    assert kinds["Reconnects and GOAWAYs"] == "timeseries"
    assert kinds["Stream limit"] == "timeseries"
    assert kinds["Server certificate chain"] == "table"
    assert kinds["TCP reachability"] == "state-timeline"
    assert kinds["Failing layer"] == "state-timeline"
    assert kinds["TLS trust"] == "state-timeline"


def test_panels_fit_the_grid_without_overlap() -> None:
    """Panels have unique ids, stay inside 24 columns and do not overlap."""
    for name, board in BOARDS.items():
        panels = list(_panels(board))
        assert len({p["id"] for p in panels}) == len(panels), name
        cells: set[tuple[int, int]] = set()
        for p in panels:
            g = p["gridPos"]
            assert g["x"] >= 0, (name, p["title"])
            assert g["x"] + g["w"] <= 24, (name, p["title"])
            area = {
                (x, y)
                for x in range(g["x"], g["x"] + g["w"])
                for y in range(g["y"], g["y"] + g["h"])
            }
            assert not area & cells, (name, p["title"])
            cells |= area


def test_provisioning_examples() -> None:
    """The provisioning examples are Grafana files for a datasource and the dashboards."""
    datasource = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    assert datasource["apiVersion"] == 1
    assert datasource["datasources"][0]["type"] == "prometheus"
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "apns-exporter.yml").read_text())
    assert provider["apiVersion"] == 1
    assert provider["providers"][0]["type"] == "file"
    assert provider["providers"][0]["options"]["path"]


def test_committed_json_is_valid() -> None:
    """Every committed dashboard parses as JSON with a title and panels."""
    for path in DASHBOARDS.glob("*.json"):
        board = json.loads(path.read_text(encoding="utf-8"))
        assert board["title"]
        assert board["panels"]


def test_no_panel_uses_the_week_rounding_day_unit() -> None:
    """Day counts use a "days" suffix: Grafana's d unit shows 27 days as "3.9 week"."""
    text = json.dumps(BOARDS)
    assert '"unit": "d"' not in text
    assert '"value": "d"' not in text
    assert grafana.DAYS in text


def test_stat_panels_have_thresholds_and_name_their_exporter() -> None:
    """No stat falls back to Grafana's red-at-80; stats with a legend show whose value it is."""
    for where, panel in _content_panels():
        if panel["type"] != "stat":
            continue
        assert panel["fieldConfig"]["defaults"]["thresholds"]["steps"], where
        if panel["targets"][0]["legendFormat"] != "__auto":
            assert panel["options"]["textMode"] == "value_and_name", where
    for name, title in (
        ("apns-exporter-overview.json", "Config loaded"),
        ("apns-exporter-target.json", "Client certificate expires in"),
        ("apns-exporter-target.json", "Credential loaded"),
    ):
        stat = next(p for p in _panels(BOARDS[name]) if p["title"] == title)
        assert stat["targets"][0]["legendFormat"] == "{{instance}}", title
        assert stat["options"]["textMode"] == "value_and_name", title


def test_targets_table_links_to_the_target_dashboard_and_keys_on_every_target() -> None:
    """The trouble table links each row to its target and keeps inventory-only targets."""
    from apns_exporter.assets.dashboard_target import TARGET_UID

    board = BOARDS["apns-exporter-overview.json"]
    table = next(p for p in _panels(board) if p["title"] == "Targets by trouble")
    links = [
        prop["value"]
        for o in table["fieldConfig"]["overrides"]
        if o["matcher"]["options"] == "target"
        for prop in o["properties"]
        if prop["id"] == "links"
    ]
    (link,) = links[0]
    assert link["url"].startswith(f"/d/{TARGET_UID}?")
    assert "var-target=${__data.fields.target}" in link["url"]
    trouble = table["targets"][0]["expr"]
    assert "apns_target_info" in trouble


def test_time_series_have_a_minimum_interval_and_latency_shows_exemplars() -> None:
    """Sparse counters do not spike at short zoom; the canary latency panel shows exemplars."""
    for where, panel in _content_panels():
        if panel["type"] in ("timeseries", "heatmap"):
            assert panel["interval"] == "1m", where
    board = BOARDS["apns-exporter-target.json"]
    latency = next(p for p in _panels(board) if p["title"] == "Canary latency")
    assert latency["targets"][0]["exemplar"] is True


def test_overview_has_the_fleet_trend_and_slo_panels() -> None:
    """Failing targets by layer over time, and the fleet SLO, are on the overview."""
    board = BOARDS["apns-exporter-overview.json"]
    panels = {p["title"]: p for p in _panels(board)}
    trend = panels["Failing targets by layer"]
    assert trend["type"] == "timeseries"
    assert "sum by (layer)" in trend["targets"][0]["expr"]
    assert "job_environment:apns_canary_success:ratio" in panels["Canary SLO"]["targets"][0]["expr"]


def test_expand_query_fills_regex_formatted_variables() -> None:
    """${target:regex} is substituted like $target (the value passed is already a regex)."""
    expr = 'x{target=~"${target:regex}", instance=~"${instance:regex}"}'
    assert grafana.expand_query(expr, target=grafana.literal("a.b")) == (
        'x{target=~"a\\\\.b", instance=~".+"}'
    )
