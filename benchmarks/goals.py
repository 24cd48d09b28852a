"""The goals table of docs/performance.md: issue 26's figures before, after, met or not.

"After" is read from this run's results: scale.json (its 10 000-target row, else its
largest), cost.json, latency.json and, once a steady-state benchmark writes it,
steady.json (``kib_per_target``); a figure whose result is missing reads "not measured".
"""

from __future__ import annotations

from typing import Any

from benchmarks.tables import _f, _load, _table

# Issue 26's figures before the work, from the results committed at 81b7410 (scale at 5000
# targets, PING every 20 s; the mock recorded PING arrivals, but the run kept no grid-free
# gap, and no steady-state memory benchmark existed).
BEFORE = {
    "first_round": "5000 of 5000 in 85 s (5000 targets)",
    "gap": "not measured; fixed-grid lag p99 {} ms (5000 targets)",
    "gap_quiet": "244.7",
    "gap_scrapes": "424.1",
    "scrape": "63 ms, max 1.35 s back to back (5000 targets)",
    "rss": "not measured; 262 KiB per target at 5000 (222 per added target)",
    "series": "85 (10) at 1000 targets, 79 at 5000",
    "canary_cpu": "1.33 ms; blackbox 2.66 ms (1/2.0)",
    "ping_cpu": "0.57 ms",
    "latency": "1.58 ms; h2load 1.30 ms (+0.28)",
}
# The goals of issue 26 ("Performance to the floor").
SERIES_BUDGET = 50  # issue 26: at most 50 series for a target with every probe on
GAP_P99_MS = 100.0
SCRAPE_MAX_S = 1.0
CANARY_CPU_SHARE = 5  # at most a fifth of blackbox_exporter's CPU per probe
PING_CPU_MS = 0.15
RSS_KIB_PER_TARGET = 100.0  # with every result history full
STEADY_TARGETS = 10_000
LATENCY_SLACK_MS = 0.5
NOT_MEASURED = "not measured"


def _row(rows: list[dict[str, Any]], n: int) -> dict[str, Any]:
    return next((r for r in rows if r["targets"] == n), {})


def _met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _largest(scale_data: dict[str, Any] | None) -> dict[str, Any]:
    """The 10 000-target row of the scale run (or its largest, labelled with its size)."""
    rows = (scale_data or {}).get("rows") or []
    return _row(rows, 10_000) or (max(rows, key=lambda r: r["targets"]) if rows else {})


def _gap(r: dict[str, Any], window: str) -> tuple[str, str]:
    gap = r.get(f"ping_gap_{window}_ms") or {}
    if not gap.get("n"):
        return NOT_MEASURED, NOT_MEASURED
    lag = r.get(f"ping_lag_{window}_ms", {}).get("p99")
    text = (
        f"median {_f(gap['median'], 1)}, p99 {_f(gap['p99'], 1)}, max {_f(gap['max'], 0)} ms; "
        f"{gap['over_limit_fraction']:.2%} over 100 ms (fixed-grid lag p99 {_f(lag, 1)} ms)"
    )
    return text, _met(gap["p99"] <= GAP_P99_MS)


def _scale_rows(r: dict[str, Any]) -> list[list[str]]:
    at = f" ({r['targets']} targets)" if r else ""
    rows: list[list[str]] = []
    if r:
        done = r["first_round_seconds"]
        up = r["targets_up_after_first_round"]
        after = (
            f"{up} of {r['targets']} in {_f(done, 0)} s"
            if done is not None
            else f"{up} of {r['targets']} after {r['first_round_budget_seconds']:g} s"
        )
        budget = r["first_round_budget_seconds"]
        ok = done is not None and up >= r["targets"] and done <= budget
        rows.append(
            [
                f"all up after start{at}",
                BEFORE["first_round"],
                after + f" from process start, ready after {_f(r['ready_seconds'], 0)} s "
                f"(PING {r['ping_interval']}, canary {r['canary_interval']})",
                f"all within two canary intervals ({budget:g} s) of process start",
                _met(ok),
            ]
        )
    else:
        rows.append(["all up after start", BEFORE["first_round"], NOT_MEASURED, "", NOT_MEASURED])
    for window, label in (("quiet", "quiet"), ("scrapes", "during back-to-back scrapes")):
        after, status = _gap(r, window)
        before = BEFORE["gap"].format(BEFORE[f"gap_{window}"])
        rows.append([f"PING gap, {label}{at}", before, after, "p99 ≤ 100 ms", status])
    if r.get("scrape_quiet_seconds_max") is not None:
        after = (
            f"{1000 * r['scrape_quiet_seconds_median']:.0f} ms, max "
            f"{r['scrape_quiet_seconds_max']:.2f} s paced; back to back "
            f"{1000 * r['scrape_seconds_median']:.0f} ms, max {r['scrape_seconds_max']:.2f} s"
        )
        status = _met(r["scrape_quiet_seconds_max"] <= SCRAPE_MAX_S)
    else:
        after, status = NOT_MEASURED, NOT_MEASURED
    rows.append([f"/metrics scrape{at}", BEFORE["scrape"], after, "≤ 1 s (paced)", status])
    return rows


def _steady_row(r: dict[str, Any]) -> list[str]:
    steady = _load("steady") or {}
    kib = steady.get("kib_per_target")
    beside = f" (scale run: {_f(r['rss_kib_per_target'], 0)})" if r else ""
    size = steady.get("method", {}).get("targets")
    at = f" at {size} targets" if size else ""
    after = f"{_f(kib, 0)} KiB per target{at}{beside}" if kib is not None else NOT_MEASURED
    if kib is None:
        status = NOT_MEASURED
    else:
        status = _met(kib <= RSS_KIB_PER_TARGET and size == STEADY_TARGETS)
    goal = f"≤ {RSS_KIB_PER_TARGET:g} KiB per target at {STEADY_TARGETS}"
    return ["steady-state RSS per target", BEFORE["rss"], after, goal, status]


def _series_row(r: dict[str, Any]) -> list[str]:
    if not r:
        return ["series per full target (inventory_only)", BEFORE["series"], NOT_MEASURED, "", ""]
    full, inventory = r["series_per_target"], r["series_inventory_only_target"]
    return [
        "series per full target (inventory_only)",
        BEFORE["series"],
        f"{full} ({inventory})",
        f"≤ {SERIES_BUDGET}",
        _met(full <= SERIES_BUDGET),
    ]


def _cost_rows(cost_data: dict[str, Any] | None) -> list[list[str]]:
    ours = (cost_data or {}).get("apns_exporter") or {}
    bb = (cost_data or {}).get("blackbox_exporter") or {}
    canary, ping = ours.get("canary", {}).get("cpu_ms_per_probe"), ours.get("ping", {})
    rows = []
    if canary and bb.get("cpu_ms_per_probe"):
        b = bb["cpu_ms_per_probe"]
        after = f"{canary:.2f} ms; blackbox {b:.2f} ms (1/{b / canary:.1f})"
        status = _met(canary * CANARY_CPU_SHARE <= b)
    else:
        after, status = NOT_MEASURED, NOT_MEASURED
    row = ["CPU per canary, kept connection", BEFORE["canary_cpu"], after, "≤ 1/5 of blackbox"]
    rows.append([*row, status])
    per_ping = ping.get("cpu_ms_per_probe")
    rows.append(
        [
            "CPU per PING, kept connection",
            BEFORE["ping_cpu"],
            f"{per_ping:.2f} ms" if per_ping is not None else NOT_MEASURED,
            f"≤ {PING_CPU_MS} ms",
            _met(per_ping <= PING_CPU_MS) if per_ping is not None else NOT_MEASURED,
        ]
    )
    return rows


def _latency_row(latency_data: dict[str, Any] | None) -> list[str]:
    ours = ((latency_data or {}).get("apns_exporter") or {}).get("error_vs_observed_ms", {})
    floor = ((latency_data or {}).get("h2load") or {}).get("error_vs_observed_ms", {})
    row = ["canary latency error, median", BEFORE["latency"]]
    if "median" not in ours or "median" not in floor:
        return [*row, NOT_MEASURED, "within 0.5 ms of h2load paced", NOT_MEASURED]
    exp, h2 = ours["median"], floor["median"]
    return [
        *row,
        f"{exp:.2f} ms; h2load {h2:.2f} ms ({exp - h2:+.2f})",
        "within 0.5 ms of h2load paced",
        _met(abs(exp - h2) <= LATENCY_SLACK_MS),
    ]


def goals() -> str:
    """Issue 26's figures: before (81b7410), this run, the goal, met or not."""
    r = _largest(_load("scale"))
    table = [
        *_scale_rows(r),
        _steady_row(r),
        _series_row(r),
        *_cost_rows(_load("cost")),
        _latency_row(_load("latency")),
    ]
    return _table(["figure", "before", "after (this run)", "goal", ""], table)
