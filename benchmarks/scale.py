"""Scale: 1, 100, 1000 and 5000 targets against one mock.

Each target has its own kept connection, PINGs every 10 s and pushes a canary to a device
token every 30 s (at 5000 targets: PING every 30 s, canary every 300 s, so that the run
stays short and the single-process mock keeps up). The exporter runs as
``python -m benchmarks.exporterhost`` (the real CLI plus two measuring hooks, see there).

Per size:

- ``first_round_seconds``: from process start until the mock holds N connections and has
  answered N canary pushes (every target connected and probed once).
- steady window (until 36 s after start, or at least 15 s): exporter CPU, RSS, and how late
  each scheduled probe fired (``schedule lag``), plus a 100 ms heartbeat's lag. Two scrapes
  of /metrics happen inside the window, 10 s apart, like a Prometheus server would; lag
  samples whose wait overlapped a scrape are reported separately, because the scrape renders
  on the event loop.
- scrapes: wall time, bytes (plain and gzip), series, exporter CPU per scrape.

The PNG (docs/performance-scale.png) plots these against targets on log-log axes.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    ROOT,
    BenchmarkError,
    Exporter,
    Mock,
    Workspace,
    log,
    percentile,
    summary,
    total,
)

NAME = "scale"
SIZES = (1, 100, 1000, 5000)
PLOT = ROOT / "docs" / "performance-scale.png"
LAG_LIMIT_MS = 100.0


def _intervals(n: int) -> tuple[str, str]:
    return ("30s", "300s") if n > 1000 else ("10s", "30s")


def _scrape(exporter: Exporter) -> dict[str, Any]:
    cpu0 = exporter.proc.cpu()
    t0 = time.monotonic()
    resp = exporter.scrape()
    t1 = time.monotonic()
    text = resp.body.decode()
    return {
        "start": t0,
        "end": t1,
        "seconds": resp.seconds,
        "bytes": len(resp.body),
        "series": sum(1 for line in text.splitlines() if line and not line.startswith("#")),
        "cpu_seconds": exporter.proc.cpu() - cpu0,
        "text": text,
    }


def _one(ws: Workspace, mock: Mock, n: int) -> dict[str, Any]:
    ping, canary = _intervals(n)
    blocks = [ws.target_yaml(f"t{i:05d}", mock.port, ping=ping, canary=canary) for i in range(n)]
    config = ws.write_config(f"scale-{n}", blocks)
    lag_file = ws.dir / f"lag-{n}.json"
    base = mock.count()
    started = time.monotonic()
    exporter = ws.start_exporter(
        f"exporter-scale-{n}", config, lag_file=lag_file, ready_timeout=60 + 0.1 * n
    )
    ready_seconds = time.monotonic() - started
    scrapes: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + 60 + 0.03 * n
        while True:
            c = mock.count()
            conns = c["active_connections"]
            pushes = c["requests"] - base["requests"]
            if conns >= n and pushes >= n:
                break
            if time.monotonic() > deadline or not exporter.proc.alive():
                raise BenchmarkError(f"{n} targets: only {conns} connected, {pushes} pushed")
            time.sleep(0.2)
        first_round = time.monotonic() - started
        cpu_first_round = exporter.proc.cpu()
        window_start = time.monotonic()
        window_end = max(started + 36.0, window_start + 15.0)
        for at in (window_start + 5, window_start + 15):
            time.sleep(max(0.0, at - time.monotonic()))
            scrapes.append(_scrape(exporter))
        time.sleep(max(0.0, window_end - time.monotonic()))
        cpu_window = exporter.proc.cpu() - cpu_first_round
        window_seconds = time.monotonic() - window_start
        memory = exporter.proc.memory()
        extra = [_scrape(exporter) for _ in range(3 if n <= 1000 else 1)]
        gzip = exporter.scrape(gzip=True)
        parsed_text = extra[-1]["text"]
    finally:
        exporter.proc.stop(timeout=60)
    if not lag_file.exists():
        raise BenchmarkError(f"{n} targets: the exporter wrote no lag file")
    lags = json.loads(lag_file.read_text())
    all_scrapes = scrapes + extra
    busy = [(s["start"], s["end"]) for s in scrapes]

    def in_window(when: float) -> bool:
        return window_start <= when <= window_end

    def during_scrape(when: float, lag: float) -> bool:
        return any(when - lag - 0.05 <= end and when >= start for start, end in busy)

    sched = [(w, lag) for w, lag in lags["schedule"] if in_window(w)]
    loop = [(w, lag) for w, lag in lags["loop"] if in_window(w)]
    quiet = [lag for w, lag in sched if not during_scrape(w, lag)]
    scraped = [lag for w, lag in sched if during_scrape(w, lag)]
    from benchmarks.common import samples as parse

    parsed = parse(parsed_text)
    scrape_seconds = [s["seconds"] for s in all_scrapes]
    return {
        "targets": n,
        "ping_interval": ping,
        "canary_interval": canary,
        "ready_seconds": ready_seconds,
        "first_round_seconds": first_round,
        "first_round_cpu_seconds": cpu_first_round,
        "window_seconds": window_seconds,
        "cpu_percent_of_one_core": 100 * cpu_window / window_seconds,
        "memory": memory,
        "rss_mib": memory["rss_mib"],
        "scrape_seconds_median": percentile(scrape_seconds, 50),
        "scrape_seconds_max": max(scrape_seconds),
        "scrape_cpu_seconds_median": percentile([s["cpu_seconds"] for s in all_scrapes], 50),
        "scrape_bytes": all_scrapes[-1]["bytes"],
        "scrape_bytes_gzip": len(gzip.body),
        "gzip_encoding": gzip.headers.get("content-encoding", ""),
        "series": all_scrapes[-1]["series"],
        "schedule_lag_ms": summary([lag for _, lag in sched], 1000),
        "schedule_lag_ms_without_scrapes": summary(quiet, 1000),
        "schedule_lag_ms_during_scrapes": summary(scraped, 1000),
        "loop_lag_ms": summary([lag for _, lag in loop], 1000),
        "within_100ms_fraction": (
            sum(1 for _, lag in sched if lag * 1000 <= LAG_LIMIT_MS) / len(sched) if sched else None
        ),
        "connection_failures": total(parsed, "apns_connection_failures_total"),
        "connection_attempts": total(parsed, "apns_connection_attempts_total"),
        "apns_up": total(parsed, "apns_up"),
    }


def _growth(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-target increments between the two largest sizes, and log-log slopes 100 -> max."""
    import math

    a, b = rows[-2], rows[-1]
    dn = b["targets"] - a["targets"]
    out: dict[str, Any] = {
        "bytes_per_target": (b["scrape_bytes"] - a["scrape_bytes"]) / dn,
        "series_per_target": (b["series"] - a["series"]) / dn,
        "rss_kib_per_target": 1024 * (b["rss_mib"] - a["rss_mib"]) / dn,
        "scrape_ms_per_target": 1000 * (b["scrape_seconds_median"] - a["scrape_seconds_median"]) / dn,
    }
    lo = next(r for r in rows if r["targets"] >= 100)
    for key in ("scrape_seconds_median", "scrape_bytes", "rss_mib"):
        if lo[key] > 0 and b[key] > 0 and b["targets"] > lo["targets"]:
            out[f"loglog_slope_{key}"] = math.log(b[key] / lo[key]) / math.log(
                b["targets"] / lo["targets"]
            )
    return out


def plot(rows: list[dict[str, Any]], path: Path = PLOT) -> Path | None:
    """Draw cost against targets (needs matplotlib, installed by benchmarks/run)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is not installed: no plot")
        return None
    n = [r["targets"] for r in rows]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7.5))
    (a, b), (c, d) = axes
    a.plot(n, [1000 * r["scrape_seconds_median"] for r in rows], "o-", label="wall time")
    a.plot(n, [1000 * r["scrape_cpu_seconds_median"] for r in rows], "s--", label="exporter CPU")
    a.set_title("/metrics scrape (ms)")
    b.plot(n, [r["scrape_bytes"] / 2**20 for r in rows], "o-", label="plain text")
    b.plot(n, [r["scrape_bytes_gzip"] / 2**20 for r in rows], "s--", label="gzip")
    b.set_title("bytes per scrape (MiB)")
    c.plot(n, [r["rss_mib"] for r in rows], "o-", label="RSS")
    c.plot(n, [r["cpu_percent_of_one_core"] for r in rows], "s--", label="CPU % of a core")
    c.set_title("exporter RSS (MiB) and steady CPU (%)")
    d.plot(n, [r["schedule_lag_ms"].get("p99", 0) for r in rows], "o-", label="p99, with scrapes")
    d.plot(
        n,
        [r["schedule_lag_ms_without_scrapes"].get("p99", 0) for r in rows],
        "s--",
        label="p99, no scrape running",
    )
    d.plot(n, [r["schedule_lag_ms"].get("max", 0) for r in rows], "^:", label="max, with scrapes")
    d.axhline(LAG_LIMIT_MS, color="red", linewidth=0.8, label="100 ms budget")
    d.set_title("probe start after its schedule (ms)")
    for ax in (a, b, c, d):
        ax.set_xscale("log")
        ax.set_yscale("symlog", linthresh=1)
        ax.set_xlabel("targets")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("apns-exporter cost against number of targets (mock APNs on loopback)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def run(ws: Workspace, mock: Mock, sizes: tuple[int, ...] = SIZES) -> dict[str, Any]:
    """Every size in turn, on the same mock."""
    mock.scenario({"name": "healthy"})
    rows, errors = [], {}
    for n in sizes:
        log(f"scale: {n} target(s)")
        try:
            rows.append(_one(ws, mock, n))
        except BenchmarkError as exc:
            log(f"scale: {n} targets failed: {exc}")
            errors[str(n)] = str(exc)
        time.sleep(2)  # let the mock see every connection of the last size close
    if not rows:
        raise BenchmarkError(f"every size failed: {errors}")
    image = plot(rows)
    return {
        "method": {
            "sizes": list(sizes),
            "intervals": {str(n): dict(zip(("ping", "canary"), _intervals(n), strict=True)) for n in sizes},
            "lag_budget_ms": LAG_LIMIT_MS,
        },
        "rows": rows,
        "errors": errors,
        "growth": _growth(rows) if len(rows) >= 2 else {},
        "plot": str(image.relative_to(ROOT)) if image else None,
        "lag_budget_met_at_1000": next(
            (
                r["schedule_lag_ms"].get("max", 1e9) <= LAG_LIMIT_MS
                for r in rows
                if r["targets"] == 1000
            ),
            None,
        ),
    }
