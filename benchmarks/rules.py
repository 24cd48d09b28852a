"""Rule evaluation at scale: the shipped rules over 5 000 failing targets in a real Prometheus.

Every pending or firing alert expands its annotations on every evaluation, and
ApnsCanaryFailing's description runs four queries of its own: an outage of every target
is the worst case. A tiny HTTP server on loopback serves the series 5 000 failing
targets expose (their counters moving with each scrape); Prometheus scrapes it, evaluates
the shipped rules (``for:`` shortened so the alerts reach firing within the run) and
reports ``prometheus_rule_group_last_duration_seconds`` per group, which must stay under
the evaluation interval.

    python -m benchmarks rules              # writes benchmarks/results/rules.json
"""

from __future__ import annotations

import contextlib
import http.server
import importlib.util
import shutil
import threading
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import yaml

from benchmarks.common import (
    ROOT,
    BenchmarkError,
    Mock,
    Workspace,
    free_port,
    get_json,
    log,
    request,
    samples,
    spawn,
    wait_until,
)

NAME = "rules"
TARGETS = 5000
JOB = "apns-exporter"
EVALUATION_SECONDS = 15  # a common evaluation_interval; Prometheus' default is 60
SCRAPE_SECONDS = 15
FOR = "30s"  # every alert's for:, so the outage is firing (and annotated) within the run
MEASURED_EVALUATIONS = 4  # evaluations with every alert firing before reading the figures


def exposition(targets: int, scrape: int, now: float) -> bytes:
    """The series ``targets`` targets expose while every canary fails at the TCP layer."""
    lines = ['apns_exporter_build_info{version="bench",python_version="3"} 1']
    lines += [
        "apns_exporter_config_last_reload_successful 1",
        "apns_exporter_shard_index 0",
        "apns_exporter_shards 1",
        f"apns_exporter_targets_configured {targets}",
        f"apns_exporter_targets_probed {targets}",
    ]
    for i in range(targets):
        env = "production" if i % 5 else "sandbox"
        t = f'target="t{i:05d}",apns_environment="{env}"'
        lines += [
            f'apns_target_info{{{t},host="api.push.apple.com",port="443",topic="com.example.app",'
            'auth_method="token"} 1',
            f"apns_up{{{t}}} 0",
            f"apns_connection_up{{{t}}} 0",
            f"apns_credential_up{{{t}}} 1",
            f'apns_probe_interval_seconds{{{t},probe="canary"}} 60',
            f'apns_probe_interval_seconds{{{t},probe="ping"}} 30',
            f'apns_probe_interval_seconds{{{t},probe="tls"}} 3600',
            f"apns_canary_last_attempt_timestamp_seconds{{{t}}} {now - 5:.3f}",
            f"apns_canary_last_success_timestamp_seconds{{{t}}} {now - 3600:.3f}",
            f'apns_canary_request_errors_total{{{t},error="timeout"}} {scrape}',
            f'apns_connection_failures_total{{{t},reason="connect"}} {scrape}',
            f"apns_connection_attempts_total{{{t}}} {scrape}",
            f'apns_canary_pushes_total{{{t},kind="device"}} {scrape}',
        ]
        lines.append(f'apns_failing_layer{{{t},layer="tcp"}} 1')  # served only while failing
    return ("\n".join(lines) + "\n").encode()


class _Exposition(http.server.BaseHTTPRequestHandler):
    """Serves the generated exposition; each scrape moves the counters by one."""

    scrapes = 0
    lock = threading.Lock()

    def do_GET(self) -> None:
        with _Exposition.lock:
            _Exposition.scrapes += 1
            scrape = _Exposition.scrapes
        body = exposition(TARGETS, scrape, time.time())
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


def _fast_rules() -> ModuleType:
    """alerts/fast_rules.py, a repository script rather than a package module."""
    spec = importlib.util.spec_from_file_location("fast_rules", ROOT / "alerts" / "fast_rules.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def _serve() -> Iterator[str]:
    """The exposition on a loopback port; yields its host:port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Exposition)
    thread = threading.Thread(target=server.serve_forever, name="exposition", daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _group_durations(url: str) -> dict[str, float]:
    parsed = samples(request(f"{url}/metrics").body.decode())
    out = {}
    for (name, labels), value in parsed.items():
        if name == "prometheus_rule_group_last_duration_seconds":
            out[dict(labels)["rule_group"].rsplit(";", 1)[-1]] = value
    return out


def run(ws: Workspace, mock: Mock) -> dict[str, Any]:
    """Run Prometheus over the failing fleet and report each rule group's evaluation time."""
    del mock  # the fleet is served as a static exposition, not probed
    binary = shutil.which("prometheus")
    if binary is None:
        raise BenchmarkError("prometheus is not installed (apt-get install prometheus)")
    fast_rules = _fast_rules()
    workdir = ws.dir / NAME
    workdir.mkdir(parents=True, exist_ok=True)
    rules = workdir / "rules.yml"
    fast_rules.shorten_file(fast_rules.RULES_FILE, rules, for_=FOR)
    with _serve() as address:
        return _measure(binary, workdir, rules, address)


def _measure(binary: str, workdir: Any, rules: Any, address: str) -> dict[str, Any]:
    port = free_port()
    config = workdir / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {
                    "scrape_interval": f"{SCRAPE_SECONDS}s",
                    "scrape_timeout": "10s",
                    "evaluation_interval": f"{EVALUATION_SECONDS}s",
                },
                "rule_files": [str(rules)],
                "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": [address]}]}],
            }
        )
    )
    url = f"http://127.0.0.1:{port}"
    proc = spawn(
        "prometheus-rules",
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        workdir,
    )
    try:
        wait_until(lambda: request(f"{url}/-/ready").status == 200, 60, "prometheus ready")

        def firing() -> int:
            data = get_json(
                f"{url}/api/v1/query?query=count(ALERTS%7Balertstate%3D%22firing%22%7D)"
            )
            result = data["data"]["result"]
            return int(float(result[0]["value"][1])) if result else 0

        # Every target's ApnsCanaryFailing firing: 5 000 alerts annotating every evaluation.
        wait_until(lambda: firing() >= TARGETS, 300, f"{TARGETS} alerts firing", interval=2)
        seen: list[dict[str, float]] = []
        for _ in range(MEASURED_EVALUATIONS):
            time.sleep(EVALUATION_SECONDS)
            seen.append(_group_durations(url))
        groups = get_json(f"{url}/api/v1/rules")["data"]["groups"]
        by_alert: dict[str, int] = {}
        slowest = sorted(
            ((r["evaluationTime"], r["name"]) for g in groups for r in g["rules"]), reverse=True
        )[:6]
        for group in groups:
            for rule in group["rules"]:
                if rule["type"] == "alerting":
                    active = sum(1 for a in rule.get("alerts", []) if a["state"] == "firing")
                    by_alert[rule["name"]] = by_alert.get(rule["name"], 0) + active
        worst = {name: max(s[name] for s in seen) for name in seen[-1]}
        result = {
            "targets": TARGETS,
            "series_scraped": len(exposition(TARGETS, 1, time.time()).splitlines()),
            "evaluation_interval_seconds": EVALUATION_SECONDS,
            "alerts_firing": {k: v for k, v in sorted(by_alert.items()) if v},
            "rule_group_last_duration_seconds": {k: round(v, 4) for k, v in worst.items()},
            "under_evaluation_interval": all(v < EVALUATION_SECONDS for v in worst.values()),
            "slowest_rules_seconds": [[name, round(t, 4)] for t, name in slowest],
        }
        durations = result["rule_group_last_duration_seconds"]
        log(f"rule groups at {TARGETS} failing targets: {durations}")
        if not result["under_evaluation_interval"]:
            raise BenchmarkError(f"a rule group takes longer than {EVALUATION_SECONDS}s: {worst}")
        return result
    finally:
        proc.stop()


def main() -> None:
    """Run only this benchmark and write its result."""
    from benchmarks.common import write_result

    ws = Workspace()
    try:
        path = write_result(NAME, run(ws, None))  # type: ignore[arg-type]
        log(f"wrote {path}")
    finally:
        ws.cleanup()


if __name__ == "__main__":
    main()
