"""Scale: 1, 100, 1000 and 5000 targets against one mock.

Each target has its own kept connection, PINGs every 10 s and pushes a canary to a device
token every 30 s (at 5000 targets: PING every 20 s, canary every 300 s, so that the run stays
short and the single-process mock keeps up). The exporter runs as
``python -m benchmarks.exporterhost`` (the real CLI plus two measuring hooks, see there).

Per size, in this order:

- ``ready_seconds``: process start until /-/ready answers 200.
- first round: until the mock holds N connections and has answered N canary pushes (every
  target connected and probed once), or a time budget ran out (``first_round_reached``);
  then ``settled_seconds``: until the exporter used under half a core for a whole second
  (other first runs, such as the TLS-chain check, may still be busy), or 90 s passed.
- quiet window (22 s, nobody scrapes): exporter CPU, RSS, how late each scheduled probe
  started (``schedule_lag_ms``: the scheduler's own sleep overshoot, i.e. actual start minus
  planned start) and the lag of a 100 ms heartbeat (``loop_lag_ms``).
- scrapes, one after another: wall time, exporter CPU, bytes (plain, and gzip as Prometheus
  asks for it), series, and ``loop_stall_per_scrape_ms``: the heartbeat's worst lag during
  the scrape. The exporter renders in a thread, but that thread holds the GIL most of the
  time, so this is how late a probe due during a scrape would start.

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
    request,
    summary,
)

NAME = "scale"
SIZES = (1, 100, 1000, 5000)
PLOT = ROOT / "docs" / "performance-scale.png"
LAG_LIMIT_MS = 100.0
FIRST_ROUND_SECONDS = 20.0  # plus 10 ms per target
SETTLE_SECONDS = 2.0
SETTLE_MAX_SECONDS = 90.0
QUIET_SECONDS = 22.0  # covers two PING rounds at 10 s, one at 20 s
SCRAPES = 3


def _intervals(n: int) -> tuple[str, str]:
    return ("20s", "300s") if n > 1000 else ("10s", "30s")


def _line_totals(text: str, names: tuple[str, ...]) -> dict[str, float]:
    """Sum samples by metric name with a plain line scan (the parser is too slow at 100 MB)."""
    sums = dict.fromkeys(names, 0.0)
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in sums:
            sums[name] += float(line.rsplit(" ", 1)[1])
    return sums


def _scrape(exporter: Exporter, *, gzip: bool = False) -> tuple[dict[str, Any], str]:
    cpu0 = exporter.proc.cpu()
    t0 = time.monotonic()
    resp = exporter.scrape(gzip=gzip)
    t1 = time.monotonic()
    text = "" if gzip else resp.body.decode()
    row = {
        "start": t0,
        "end": t1,
        "seconds": resp.seconds,
        "bytes": len(resp.body),
        "gzip": gzip and resp.headers.get("content-encoding") == "gzip",
        "series": sum(1 for line in text.splitlines() if line and not line.startswith("#")),
        "cpu_seconds": exporter.proc.cpu() - cpu0,
    }
    return row, text


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
        # First round: every target connected and its first canary answered (or give up).
        budget = time.monotonic() + FIRST_ROUND_SECONDS + 0.01 * n
        first_round: float | None = None
        while time.monotonic() < budget and exporter.proc.alive():
            c = mock.count()
            conns, pushes = c["active_connections"], c["requests"] - base["requests"]
            if conns >= n and pushes >= n:
                first_round = time.monotonic() - started
                break
            time.sleep(0.2)
        c = mock.count()
        reached = {
            "connections": c["active_connections"],
            "pushes": c["requests"] - base["requests"],
        }
        # Other first runs (the hourly TLS-chain check, for one) may still be busy: wait until
        # the exporter uses less than half a core for a whole second, or give up.
        settle_budget = time.monotonic() + min(SETTLE_MAX_SECONDS, 20 + 0.03 * n)
        settled: float | None = None
        while time.monotonic() < settle_budget:
            cpu_before = exporter.proc.cpu()
            time.sleep(1.0)
            if exporter.proc.cpu() - cpu_before < 0.5:
                settled = time.monotonic() - started
                break
        time.sleep(SETTLE_SECONDS)
        # Quiet window: probes only, nobody scrapes.
        cpu0, window_start = exporter.proc.cpu(), time.monotonic()
        time.sleep(QUIET_SECONDS)
        window_end = time.monotonic()
        cpu_window = exporter.proc.cpu() - cpu0
        memory = exporter.proc.memory()
        # Then scrapes, one after the other, as Prometheus would send them.
        text = ""
        for _ in range(SCRAPES if n <= 1000 else 1):
            row, text = _scrape(exporter)
            scrapes.append(row)
        gzip_row, _ = _scrape(exporter, gzip=True)
        # What the first target's probes said, to explain a first round that did not finish.
        probes_page = request(f"{exporter.url}/probes?target=t00000&limit=4").body.decode()
        totals = _line_totals(
            text,
            ("apns_connection_failures_total", "apns_connection_attempts_total", "apns_up"),
        )
        del text
    finally:
        exporter.proc.stop(timeout=60)
    if not lag_file.exists():
        raise BenchmarkError(f"{n} targets: the exporter wrote no lag file")
    lags = json.loads(lag_file.read_text())
    sched = [lag for w, lag in lags["schedule"] if window_start <= w <= window_end]
    quiet_loop = [lag for w, lag in lags["loop"] if window_start <= w <= window_end]
    # The heartbeat that was due during a scrape fires when the scrape lets go of the loop:
    # its lag is how long the loop stood still, i.e. how late any probe due then would be.
    stalls = [
        max((lag for w, lag in lags["loop"] if s["start"] <= w <= s["end"] + 0.5), default=0.0)
        for s in [*scrapes, gzip_row]
    ]
    plain = [s["seconds"] for s in scrapes]
    return {
        "targets": n,
        "ping_interval": ping,
        "canary_interval": canary,
        "ready_seconds": ready_seconds,
        "first_round_seconds": first_round,
        "first_round_reached": reached,
        "settled_seconds": settled,
        "window_seconds": window_end - window_start,
        "cpu_percent_of_one_core": 100 * cpu_window / (window_end - window_start),
        "memory": memory,
        "rss_mib": memory["rss_mib"],
        "scrape_seconds_median": percentile(plain, 50),
        "scrape_seconds_max": max(plain),
        "scrape_cpu_seconds_median": percentile([s["cpu_seconds"] for s in scrapes], 50),
        "scrape_bytes": scrapes[-1]["bytes"],
        "scrape_bytes_gzip": gzip_row["bytes"] if gzip_row["gzip"] else None,
        "scrape_seconds_gzip": gzip_row["seconds"],
        "series": scrapes[-1]["series"],
        "schedule_lag_ms": summary(sched, 1000),
        "loop_lag_ms": summary(quiet_loop, 1000),
        "loop_stall_per_scrape_ms": [1000 * x for x in stalls],
        "within_100ms_fraction": (
            sum(1 for lag in sched if lag * 1000 <= LAG_LIMIT_MS) / len(sched) if sched else None
        ),
        "connection_failures": totals["apns_connection_failures_total"],
        "connection_attempts": totals["apns_connection_attempts_total"],
        "apns_up": totals["apns_up"],
        "probes_page_first_target": probes_page[:4000],
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
        "scrape_ms_per_target": 1000
        * (b["scrape_seconds_median"] - a["scrape_seconds_median"])
        / dn,
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
    n_gz = [r["targets"] for r in rows if r["scrape_bytes_gzip"]]
    a.plot(n, [1000 * r["scrape_seconds_median"] for r in rows], "o-", label="wall time")
    a.plot(n, [1000 * r["scrape_cpu_seconds_median"] for r in rows], "s--", label="exporter CPU")
    a.set_title("/metrics scrape (ms)")
    b.plot(n, [r["scrape_bytes"] / 2**20 for r in rows], "o-", label="plain text")
    b.plot(
        n_gz,
        [r["scrape_bytes_gzip"] / 2**20 for r in rows if r["scrape_bytes_gzip"]],
        "s--",
        label="gzip",
    )
    b.set_title("bytes per scrape (MiB)")
    c.plot(n, [r["rss_mib"] for r in rows], "o-", label="RSS")
    c.plot(n, [r["cpu_percent_of_one_core"] for r in rows], "s--", label="CPU % of a core")
    c.set_title("exporter RSS (MiB), CPU between scrapes (% of a core)")
    d.plot(n, [r["schedule_lag_ms"].get("p99", 0) for r in rows], "o-", label="p99, no scrape")
    d.plot(n, [r["schedule_lag_ms"].get("max", 0) for r in rows], "s--", label="max, no scrape")
    d.plot(
        n,
        [max(r["loop_stall_per_scrape_ms"]) for r in rows],
        "^:",
        label="loop stall while a scrape renders",
    )
    d.axhline(LAG_LIMIT_MS, color="red", linewidth=0.8, label="100 ms budget")
    d.set_title("how late a probe starts (ms)")
    for ax in (a, b, c, d):
        ax.set_xscale("log")
        ax.set_yscale("symlog", linthresh=1)
        ax.set_ylim(bottom=0)
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
            "intervals": {
                str(n): dict(zip(("ping", "canary"), _intervals(n), strict=True)) for n in sizes
            },
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
