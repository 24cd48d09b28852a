"""Scale: 100, 1000 and 10 000 targets against one mock (``--scale-sizes`` picks others).

Each target has its own kept connection, PINGs every 10 s and pushes a canary to a device
token every 30 s (above 1000 targets every 60 s, so that the single-process mock keeps up).
One more target is ``inventory_only`` (its credential, no traffic), to count its series.
The exporter runs as ``python -m benchmarks.exporterhost`` (the real CLI plus two measuring
hooks, see there). Every wait is bounded: the 10 000 point takes about 6 minutes at most.

Per size, in this order:

- ``ready_seconds``: process start until /-/ready answers 200.
- first round: until the mock holds N connections and has answered N canary pushes and a
  scrape shows every target's ``apns_up`` at 1, or two canary intervals passed since the
  process started (``first_round_seconds`` counts from there too);
  ``targets_up_after_first_round`` is that scrape's count. Then ``settled_seconds``: until
  the exporter used under half a core for a whole second, or 60 s passed.
- quiet window (two PING intervals and a bit, nobody scrapes): exporter CPU, RSS, how late
  each scheduled probe started by the scheduler's own clock (``schedule_lag_ms``) and the
  lag of a 100 ms heartbeat (``loop_lag_ms``).
- paced scrapes (``QUIET_SCRAPES``, one a second), as Prometheus sends them: wall time
  (``scrape_quiet_seconds``).
- back-to-back scrapes for as long as the quiet window (bounded in count and time), as a
  busy or impatient Prometheus would send them: wall time, exporter CPU, bytes (plain, and
  gzip as Prometheus asks for it), series per target.
- ground truth from the mock, which records each PING's arrival per connection from the
  end of the first round on, at least one PING interval before the quiet window (see
  benchmarks/pings.py): ``ping_gap_*_ms``, grid-free (arrival minus the previous arrival
  plus the interval; median, p99, max and the share over 100 ms), and beside it the
  fixed-grid ``ping_lag_*_ms``. Both for the quiet window and for the back-to-back scrapes,
  with the exporter's own ``schedule_lag*_ms``, the mock's CPU and the machine's load
  average, to tell a late exporter from a starved mock or a busy machine.

The PNG (docs/performance-scale.png) plots these against targets on log-log axes.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from benchmarks import pings as ping_record
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
SIZES = (100, 1000, 10_000)
PLOT = ROOT / "docs" / "performance-scale.png"
LAG_LIMIT_MS = 100.0
SETTLE_SECONDS = 2.0
SETTLE_MAX_SECONDS = 60.0
SCRAPE_LIMIT = 3000
QUIET_SCRAPES = 5
QUIET_SCRAPE_PAUSE = 1.0
INVENTORY = "inventory"


def _intervals(n: int) -> tuple[float, float]:
    """PING and canary interval (s) at ``n`` targets."""
    return (10.0, 30.0) if n <= 1000 else (10.0, 60.0)


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


def _series_of(text: str, target: str) -> int:
    needle = f'target="{target}"'
    return sum(1 for line in text.splitlines() if needle in line and not line.startswith("#"))


def _scrape(exporter: Exporter, *, gzip: bool = False) -> tuple[dict[str, Any], bytes]:
    cpu0 = exporter.proc.cpu()
    t0 = time.monotonic()
    resp = exporter.scrape(gzip=gzip)
    t1 = time.monotonic()
    row = {
        "start": t0,
        "end": t1,
        "seconds": resp.seconds,
        "bytes": len(resp.body),
        "gzip": gzip and resp.headers.get("content-encoding") == "gzip",
        "cpu_seconds": exporter.proc.cpu() - cpu0,
    }
    return row, resp.body


def _first_round(
    exporter: Exporter, mock: Mock, n: int, base: dict[str, int], deadline: float
) -> tuple[float | None, int, dict[str, int]]:
    """Until every target is up (or the deadline): when, targets up, mock counts."""
    up = 0
    while exporter.proc.alive():
        c = mock.count()
        if c["active_connections"] >= n and c["requests"] - base["requests"] >= n:
            _, body = _scrape(exporter)
            up = int(_line_totals(body.decode(), ("apns_up",))["apns_up"])
            if up >= n:
                return time.monotonic(), up, c
        if time.monotonic() > deadline:
            break
        time.sleep(1.0)
    if up == 0 and exporter.proc.alive():
        _, body = _scrape(exporter)
        up = int(_line_totals(body.decode(), ("apns_up",))["apns_up"])
    return None, up, mock.count()


def _one(ws: Workspace, mock: Mock, n: int) -> dict[str, Any]:
    ping, canary = _intervals(n)
    blocks = [
        ws.target_yaml(f"t{i:05d}", mock.port, ping=f"{ping:g}s", canary=f"{canary:g}s")
        for i in range(n)
    ]
    blocks.append(ws.target_yaml(INVENTORY, mock.port, inventory_only=True))
    config = ws.write_config(f"scale-{n}", blocks)
    lag_file = ws.dir / f"lag-{n}.json"
    base = mock.count()
    started = time.monotonic()
    exporter = ws.start_exporter(
        f"exporter-scale-{n}",
        config,
        lag_file=lag_file,
        ready_timeout=min(60 + 0.1 * n, 2 * canary),
    )
    ready_seconds = time.monotonic() - started
    window = 2 * ping + 2.0
    scrapes: list[dict[str, Any]] = []
    try:
        # The budget of two canary intervals counts from process start, start-up included.
        done, up, reached = _first_round(exporter, mock, n, base, started + 2 * canary)
        first_round = done - started if done is not None else None
        # Record from here, so that the first PING of the quiet window has a predecessor
        # on its connection (the gap needs one): at least one PING interval before it.
        mock.tap(True)
        tap_on = time.monotonic()
        settle_budget = time.monotonic() + min(SETTLE_MAX_SECONDS, 20 + 0.03 * n)
        settled: float | None = None
        while time.monotonic() < settle_budget:
            cpu_before = exporter.proc.cpu()
            time.sleep(1.0)
            if exporter.proc.cpu() - cpu_before < 0.5:
                settled = time.monotonic() - started
                break
        time.sleep(max(SETTLE_SECONDS, tap_on + ping - time.monotonic()))
        # Quiet window: probes only, nobody scrapes.
        cpu0, mock_cpu0, quiet_start = exporter.proc.cpu(), mock.proc.cpu(), time.monotonic()
        time.sleep(window)
        quiet_end, mock_cpu1 = time.monotonic(), mock.proc.cpu()
        cpu_window = exporter.proc.cpu() - cpu0
        memory = exporter.proc.memory()
        # Then a few scrapes a second apart, as Prometheus paces them.
        paced = []
        for _ in range(QUIET_SCRAPES):
            paced.append(_scrape(exporter)[0]["seconds"])
            time.sleep(QUIET_SCRAPE_PAUSE)
        busy_start, mock_cpu2 = time.monotonic(), mock.proc.cpu()
        # Then scrapes back to back for as long, as an impatient Prometheus would send them.
        # Only the last body is read, after the window: decoding every one would load the
        # 2 cores the exporter and the mock share with this driver.
        body = b""
        while time.monotonic() - busy_start < window and len(scrapes) < SCRAPE_LIMIT:
            row, body = _scrape(exporter)
            scrapes.append(row)
        busy_end, mock_cpu3 = time.monotonic(), mock.proc.cpu()
        load_1m = os.getloadavg()[0]
        gzip_row, _ = _scrape(exporter, gzip=True)
        text = body.decode()
        del body
        arrivals = mock.pings()
        mock.tap(False)
        probes_page = request(f"{exporter.url}/probes?target=t00000&limit=4").body.decode()
        totals = _line_totals(
            text,
            ("apns_connection_failures_total", "apns_connection_attempts_total", "apns_up"),
        )
        series = _series_of(text, "t00000")
        inventory_series = _series_of(text, INVENTORY)
        del text
    finally:
        exporter.proc.stop(timeout=60)
    if not lag_file.exists():
        raise BenchmarkError(f"{n} targets: the exporter wrote no lag file")
    lags = json.loads(lag_file.read_text())
    sched = [lag for w, lag in lags["schedule"] if quiet_start <= w <= quiet_end]
    sched_busy = [lag for w, lag in lags["schedule"] if busy_start <= w <= busy_end]
    quiet_loop = [lag for w, lag in lags["loop"] if quiet_start <= w <= quiet_end]
    stalls = [
        max((lag for w, lag in lags["loop"] if s["start"] <= w <= s["end"] + 0.5), default=0.0)
        for s in [*scrapes, gzip_row]
    ]
    windows = {"quiet": (quiet_start, quiet_end), "scrapes": (busy_start, busy_end)}
    by_window = ping_record.lags(arrivals, ping, windows)
    gaps = ping_record.gaps(arrivals, ping, windows)
    plain = [s["seconds"] for s in scrapes]
    full_gcs = [(w, sec) for w, gen, sec in lags.get("gc", []) if gen == 2]
    return {
        "targets": n,
        "ping_interval": f"{ping:g}s",
        "canary_interval": f"{canary:g}s",
        "ready_seconds": ready_seconds,
        "first_round_seconds": first_round,
        "first_round_budget_seconds": 2 * canary,
        "targets_up_after_first_round": up,
        "first_round_reached": {
            "connections": reached["active_connections"],
            "pushes": reached["requests"] - base["requests"],
        },
        "settled_seconds": settled,
        "window_seconds": quiet_end - quiet_start,
        "cpu_percent_of_one_core": 100 * cpu_window / (quiet_end - quiet_start),
        "memory": memory,
        "rss_mib": memory["rss_mib"],
        "rss_kib_per_target": 1024 * memory["rss_mib"] / n,
        "scrape_quiet_seconds_median": percentile(paced, 50),
        "scrape_quiet_seconds_max": max(paced),
        "scrapes": len(scrapes),
        "scrape_seconds_median": percentile(plain, 50),
        "scrape_seconds_max": max(plain),
        "scrape_cpu_seconds_median": percentile([s["cpu_seconds"] for s in scrapes], 50),
        "scrape_bytes": scrapes[-1]["bytes"],
        "scrape_bytes_gzip": gzip_row["bytes"] if gzip_row["gzip"] else None,
        "scrape_seconds_gzip": gzip_row["seconds"],
        "series": series * n + inventory_series,
        "series_per_target": series,
        "series_inventory_only_target": inventory_series,
        # The mock keeps at most RECORD_LIMIT (200 000) PINGs: at that count, later ones are lost.
        "ping_records": len(arrivals),
        "ping_gap_quiet_ms": ping_record.gap_summary(gaps["quiet"]),
        "ping_gap_scrapes_ms": ping_record.gap_summary(gaps["scrapes"]),
        "ping_lag_quiet_ms": summary(by_window["quiet"], 1000),
        "ping_lag_scrapes_ms": summary(by_window["scrapes"], 1000),
        "schedule_lag_ms": summary(sched, 1000),
        "schedule_lag_scrapes_ms": summary(sched_busy, 1000),
        # Whether the mock (which stamps the PINGs) or the whole machine was short of CPU.
        "mock_cpu_percent_quiet": 100 * (mock_cpu1 - mock_cpu0) / (quiet_end - quiet_start),
        "mock_cpu_percent_scrapes": 100 * (mock_cpu3 - mock_cpu2) / (busy_end - busy_start),
        "load_average_1m_after_scrapes": load_1m,
        "loop_lag_ms": summary(quiet_loop, 1000),
        "loop_stall_per_scrape_ms": [1000 * x for x in stalls],
        "full_gc_ms_quiet": summary(
            [sec for w, sec in full_gcs if quiet_start <= w <= quiet_end], 1000
        ),
        "full_gc_ms_scrapes": summary(
            [sec for w, sec in full_gcs if busy_start <= w <= busy_end], 1000
        ),
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
        [r.get("ping_gap_scrapes_ms", {}).get("p99", 0) for r in rows],
        "v-.",
        label="PING gap p99 at the mock, back-to-back scrapes",
    )
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
    # Only the documented sizes redraw the documented plot; a quick run leaves it alone.
    image = plot(rows) if tuple(sizes) == SIZES else None
    return {
        "method": {
            "sizes": list(sizes),
            "intervals": {
                str(n): dict(zip(("ping", "canary"), _intervals(n), strict=True)) for n in sizes
            },
            "scrape_window": "two PING intervals plus 2 s, at most 3000 scrapes",
            "quiet_scrapes": f"{QUIET_SCRAPES}, {QUIET_SCRAPE_PAUSE:g} s apart",
            "lag_budget_ms": LAG_LIMIT_MS,
            "gap": "arrival - (previous arrival on the connection + PING interval)",
        },
        "rows": rows,
        "errors": errors,
        "growth": _growth(rows) if len(rows) >= 2 else {},
        "plot": str(image.relative_to(ROOT)) if image else None,
        "lag_budget_met_at_1000": next(
            (
                r["ping_lag_scrapes_ms"].get("p99", 1e9) <= LAG_LIMIT_MS
                for r in rows
                if r["targets"] == 1000
            ),
            None,
        ),
    }
