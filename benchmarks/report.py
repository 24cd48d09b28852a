"""Render the tables of docs/performance.md from benchmarks/results/*.json.

The document keeps its prose; only the blocks between ``<!-- BEGIN name -->`` and
``<!-- END name -->`` are regenerated, so a new run refreshes every figure in the tables.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, log
from benchmarks.goals import goals
from benchmarks.tables import _f, _load, _table

DOC = ROOT / "docs" / "performance.md"


def machine() -> str:
    data = next((d for n in ("latency", "cost", "scale") if (d := _load(n))), None)
    if data is None:
        return "_no results yet_"
    m = data["machine"]
    versions = data.get("versions") or (_load("latency") or {}).get("versions", {})
    return "\n".join(
        [
            f"- {m['nproc']} CPUs ({m['cpu'] or m['machine']}), Linux {m['kernel']}",
            f"- Python {m['python']}",
            f"- {versions.get('blackbox_exporter') or 'blackbox_exporter: not installed'}",
            f"- {versions.get('h2load') or 'h2load: not installed'}",
            "- results written: "
            + ", ".join(
                f"{n} {d['written_at']}"
                for n in ("latency", "cost", "connection_model", "scale", "render")
                if (d := _load(n))
            ),
        ]
    )


def latency() -> str:
    data = _load("latency")
    if data is None:
        return "_not run_"
    rows = []

    def row(label: str, r: dict[str, Any] | None) -> None:
        if r is None:
            rows.append([label, "not measured", "", "", "", ""])
            return
        e, m = r["error_vs_observed_ms"], r["measured_ms"]
        rows.append(
            [
                label,
                _f(e["median"]),
                _f(e["p90"]),
                _f(e["p99"]),
                _f(r["error_vs_injected_ms"]["median"]),
                _f(m["median"], 1),
            ]
        )

    row("**apns-exporter** `apns_canary_duration_seconds`", data["apns_exporter"])
    bb = data.get("blackbox_exporter") or {}
    row('blackbox_exporter `probe_http_duration_seconds{phase="processing"}`', bb.get("processing"))
    row("blackbox_exporter `probe_duration_seconds`", bb.get("probe_duration"))
    row("h2load, same pacing (floor)", data.get("h2load"))
    row("h2load, back to back, no delay (warm floor)", data.get("h2load_back_to_back"))
    method = data["method"]
    d = method["injected_delay"]
    head = (
        f"{method['pushes_per_client']} pushes per client, one every "
        f"{method['interval_seconds'] * 1000:.0f} ms; injected delay {d['distribution']} "
        f"mean {d['mean'] * 1000:.0f} ms, sd {d['stddev'] * 1000:.0f} ms (seed {d['seed']}). "
        "Error = client figure - server-observed time, per push, in ms."
    )
    table = _table(
        [
            "client and figure",
            "median error",
            "p90",
            "p99",
            "median vs injected",
            "median measured",
        ],
        rows,
    )
    return head + "\n\n" + table


def cost() -> str:
    data = _load("cost")
    if data is None:
        return "_not run_"
    ours = data["apns_exporter"]
    bb, h2 = data.get("blackbox_exporter"), data.get("h2load")
    rows = [
        [
            "**apns-exporter**, canary push, kept connection",
            _f(ours["canary"]["cpu_seconds_per_1000"]),
            _f(ours["canary"]["connections_per_1000"], 0),
            _f(ours["canary"]["mock_cpu_ms_per_probe"]),
            f"{ours['canary']['probes']} pushes in {ours['canary']['window_seconds']:.0f} s",
        ],
        [
            "**apns-exporter**, PING, kept connection",
            _f(ours["ping"]["cpu_seconds_per_1000"]),
            _f(ours["ping"]["connections_per_1000"], 0),
            _f(ours["ping"]["mock_cpu_ms_per_probe"]),
            f"{ours['ping']['probes']} PINGs in {ours['ping']['window_seconds']:.0f} s",
        ],
    ]
    if bb:
        rows.append(
            [
                "blackbox_exporter, same push, new connection per probe",
                _f(bb["cpu_seconds_per_1000"]),
                _f(bb["connections_per_1000"], 0),
                _f(bb["mock_cpu_ms_per_probe"]),
                f"{bb['probes']} probes, {bb['successful']} successful",
            ]
        )
    if h2:
        rows.append(
            [
                "h2load, same push, one connection (floor)",
                _f(h2["cpu_seconds_per_1000"], 3),
                _f(1000 * h2["connections_opened"] / h2["requests"], 1),
                _f(h2["mock_cpu_ms_per_probe"]),
                f"{h2['requests']} requests, unpaced",
            ]
        )
    table = _table(
        [
            "client",
            "CPU s per 1000 probes",
            "connections per 1000",
            "mock CPU ms per probe",
            "sample",
        ],
        rows,
    )
    idle = ours["idle"]
    extra = (
        f"\n\nWith the same {idle['targets']} targets and nothing due, the exporter used "
        f"{_f(idle['idle_cpu_percent_of_one_core'])} % of a core. One scrape of /metrics for "
        f"{idle['targets']} targets cost {_f(idle['cpu_ms_per_scrape'], 1)} ms of CPU and "
        f"{idle['scrape_bytes'] / 1024:.0f} KiB (median {_f(idle['scrape_ms_median'], 1)} ms wall)."
    )
    ratios = data.get("ratios", {})
    if ratios:
        extra += (
            f" Ratios in this run: blackbox_exporter per probe / exporter per canary push = "
            f"{_f(ratios.get('blackbox_per_probe_over_exporter_canary'), 1)}; exporter per push / "
            f"h2load per request = {_f(ratios.get('exporter_canary_over_h2load'), 1)}."
        )
    return table + extra


def connection_model() -> str:
    data = _load("connection_model")
    if data is None:
        return "_not run_"
    rows = []
    for kind in ("canary", "ping"):
        pair = data[kind]
        for mode, label in (("kept", "kept connection"), ("per_probe", "connection per probe")):
            r = pair[mode]
            t = r["exporter_totals"]
            failures = t["apns_canary_request_errors_total"] + t["apns_ping_failures_total"]
            rows.append(
                [
                    f"{kind}, {label}",
                    _f(r["cpu_seconds_per_1000"]),
                    _f(r["connections_per_1000"], 0),
                    _f(r["mock_cpu_ms_per_probe"]),
                    _f(r["connection_setup_ms_mean"], 1) if mode == "per_probe" else "-",
                    _f(failures, 0),
                ]
            )
        rows.append(
            [
                f"*{kind}: per probe ÷ kept*",
                f"*x{_f(pair['cpu_ratio_per_probe_over_kept'], 1)}*",
                "",
                f"*x{_f(pair['mock_cpu_ratio_per_probe_over_kept'], 1)}*",
                "",
                "",
            ]
        )
    return _table(
        [
            "probe, model",
            "exporter CPU s per 1000",
            "connections per 1000",
            "mock CPU ms per probe",
            "ms per dial",
            "failed probes",
        ],
        rows,
    )


def _first_round(r: dict[str, Any]) -> str:
    up = r["targets_up_after_first_round"]
    if r["first_round_seconds"] is not None:
        return f"{up} in {_f(r['first_round_seconds'], 0)} s"
    return f"{up} (budget {r['first_round_budget_seconds']:g} s)"


def _gap_cell(gap: dict[str, Any] | None) -> str:
    if not gap or not gap.get("n"):
        return "n/a"
    return (
        f"{_f(gap['median'], 1)} / {_f(gap['p99'], 1)} / {_f(gap['max'], 0)} "
        f"({gap['over_limit_fraction']:.1%})"
    )


def scale() -> str:
    data = _load("scale")
    if data is None:
        return "_not run_"
    rows = []
    for r in data["rows"]:
        quiet, busy = r["ping_lag_quiet_ms"], r["ping_lag_scrapes_ms"]
        gz = r["scrape_bytes_gzip"]
        rows.append(
            [
                str(r["targets"]),
                f"{r['ping_interval']} / {r['canary_interval']}",
                _f(r["ready_seconds"], 1),
                _first_round(r),
                f"{r['series_per_target']} ({r['series_inventory_only_target']})",
                f"{_f(r['scrape_seconds_median'], 2)} ({_f(r['scrape_seconds_gzip'], 2)})",
                f"{r['scrape_bytes'] / 2**20:.2f} ({gz / 2**20:.2f})"
                if gz
                else f"{r['scrape_bytes'] / 2**20:.2f}",
                f"{_f(r['rss_mib'], 0)} ({_f(r['rss_kib_per_target'], 0)})",
                _f(r["cpu_percent_of_one_core"], 1),
                f"{_f(quiet.get('median'), 1)} / {_f(quiet.get('p99'), 1)}",
                f"{_f(busy.get('median'), 1)} / {_f(busy.get('p99'), 1)} ({r['scrapes']} scrapes)",
                _gap_cell(r.get("ping_gap_quiet_ms")),
                _gap_cell(r.get("ping_gap_scrapes_ms")),
                _f(max(r["loop_stall_per_scrape_ms"]), 0),
                _f(r["connection_failures"], 0),
            ]
        )
    table = _table(
        [
            "targets",
            "PING / canary every",
            "ready s",
            "up after first round",
            "series per target (inventory_only)",
            "scrape s (gzip)",
            "MiB per scrape (gzip)",
            "RSS MiB (KiB per target)",
            "CPU % of a core, no scrape",
            "PING lag median / p99 ms, quiet",
            "PING lag median / p99 ms, back-to-back scrapes",
            "PING gap median / p99 / max ms (share > 100 ms), quiet",
            "PING gap median / p99 / max ms (share > 100 ms), back-to-back scrapes",
            "worst loop stall during a scrape ms",
            "dial failures",
        ],
        rows,
    )
    g = data.get("growth", {})
    if g:
        table += (
            f"\n\nGrowth between the two largest sizes, per added target: "
            f"{g['bytes_per_target'] / 1024:.1f} KiB and {g['series_per_target']:.0f} series per "
            f"scrape, {_f(g['scrape_ms_per_target'], 3)} ms of scrape time, "
            f"{_f(g['rss_kib_per_target'], 0)} KiB of RSS. Log-log slopes from 100 targets up "
            f"(1 = linear): scrape time {_f(g.get('loglog_slope_scrape_seconds_median'))}, "
            f"bytes {_f(g.get('loglog_slope_scrape_bytes'))}, "
            f"RSS {_f(g.get('loglog_slope_rss_mib'))}."
        )
    return table


def render_table() -> str:
    data = _load("render")
    if data is None:
        return "_not run_"
    rows = [
        [
            str(r["targets"]),
            str(r["series_per_target"]),
            f"{r['bytes'] / 2**20:.1f}",
            _f(1000 * r["generate_latest_seconds"], 0),
            _f(1000 * r["cold_render_seconds"], 0),
            _f(1000 * r["warm_render_seconds"], 1),
            _f(1000 * r["changed_render_seconds"], 1),
            f"x{r['speedup_changed_over_generate_latest']:.0f}",
            _f(1000 * r["zlib_whole_body_seconds"], 0),
            _f(1000 * r["gzip_changed_seconds"], 1),
            f"{r['gzip_bytes'] / 2**20:.2f}",
        ]
        for r in data["sizes"]
    ]
    return _table(
        [
            "targets",
            "series per target",
            "MiB",
            "generate_latest ms",
            "cold render ms",
            "unchanged ms",
            f"{data['changed_fraction']:.0%} of targets changed ms",
            "speed-up",
            "zlib of the whole body ms",
            "cached gzip, same change ms",
            "gzip MiB",
        ],
        rows,
    )


def render_loop_table() -> str:
    data = _load("render")
    if data is None or "loop_turns" not in data:
        return "_not run_"
    rows = [
        [
            str(r["targets"]),
            _f(r["joined_identity_longest_turn_ms"], 1),
            _f(r["stream_identity_longest_turn_ms"], 1),
            _f(r["joined_gzip_longest_turn_ms"], 1),
            _f(r["stream_gzip_longest_turn_ms"], 1),
            _f(1000 * r["joined_identity_scrape_seconds"], 0),
            _f(1000 * r["stream_identity_scrape_seconds"], 0),
            _f(1000 * r["joined_gzip_scrape_seconds"], 0),
            _f(1000 * r["stream_gzip_scrape_seconds"], 0),
        ]
        for r in data["loop_turns"]
    ]
    return _table(
        [
            "targets",
            "longest loop turn ms, joined",
            "streamed",
            "gzip joined",
            "gzip streamed",
            "scrape ms, joined",
            "streamed",
            "gzip joined",
            "gzip streamed",
        ],
        rows,
    )


def cost_variants() -> str:
    data = _load("cost")
    variants = (data or {}).get("variants")
    if not data or not variants:
        return "_not run_"
    shipped = data["apns_exporter"]
    bb = data.get("blackbox_exporter")
    rows = [
        [
            "asyncio + h2 (shipped)",
            _f(shipped["canary"]["cpu_ms_per_probe"]),
            "1.00",
            _f(shipped["ping"]["cpu_ms_per_probe"]),
            "1.00",
            _f(data.get("ratios", {}).get("blackbox_per_probe_over_exporter_canary"), 1),
        ]
    ]
    for name, v in variants.items():
        if "skipped" in v:
            rows.append([name, v["skipped"], "", "", "", ""])
            continue
        rows.append(
            [
                f"{v['event_loop']} + {v['http2']}",
                _f(v["canary"]["cpu_ms_per_probe"]),
                _f(v["canary_over_shipped"]),
                _f(v["ping"]["cpu_ms_per_probe"]),
                _f(v["ping_over_shipped"]),
                _f(v.get("blackbox_per_probe_over_canary"), 1),
            ]
        )
    note = f"\n\nblackbox_exporter: {_f(bb['cpu_ms_per_probe'])} ms per probe." if bb else ""
    return (
        _table(
            [
                "event loop + HTTP/2",
                "CPU ms per canary",
                "over shipped",
                "CPU ms per PING",
                "over shipped",
                "blackbox per probe / this per canary",
            ],
            rows,
        )
        + note
    )


def tls_memory() -> str:
    data = _load("tls_memory")
    if data is None:
        return "_not run_"
    rows = [
        [
            r["event_loop"],
            "uvloop's own (256 KiB, malloc)" if r["event_loop"] == "uvloop" else r["read_buffer"],
            _f(r["kib"], 1),
        ]
        for r in data["rows"]
    ]
    table = _table(["event loop", "TLS read buffer", "client RSS KiB per connection"], rows)
    return (
        table + f"\n\n{data['connections']} connections, {data['answer_bytes']} bytes read on each."
    )


SECTIONS: dict[str, Callable[[], str]] = {
    "goals": goals,
    "machine": machine,
    "latency": latency,
    "cost": cost,
    "cost_variants": cost_variants,
    "tls_memory": tls_memory,
    "connection_model": connection_model,
    "scale": scale,
    "render": render_table,
    "render_loop": render_loop_table,
}


def render(text: str) -> str:
    """Replace every generated block in ``text``."""
    for name, make in SECTIONS.items():
        pattern = re.compile(rf"(<!-- BEGIN {name} -->\n).*?(<!-- END {name} -->)", flags=re.DOTALL)
        body = make()

        def replace(match: re.Match[str], body: str = body) -> str:
            return match.group(1) + body + "\n" + match.group(2)

        text = pattern.sub(replace, text)
    return text


def update_docs(path: Path = DOC) -> None:
    """Rewrite the generated tables of docs/performance.md in place."""
    if not path.exists():
        log(f"{path} does not exist: nothing to update")
        return
    path.write_text(render(path.read_text()))
    log(f"updated {path.relative_to(ROOT)}")
    data = _load("scale")
    if data is not None:
        from benchmarks import scale

        scale.plot(data["rows"])  # redrawn from the JSON, so the picture matches the tables
