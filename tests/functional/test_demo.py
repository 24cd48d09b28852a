"""`apns-exporter demo` started as a real subprocess and scraped over HTTP."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import urllib.request

from tests.helpers import parse_samples, sample

DEMO_DEADLINE_SECONDS = 15.0  # the promise: a healthy target within 15 s


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


def test_demo_shows_a_healthy_target_within_15_seconds() -> None:
    """The demo prints its URLs and soon serves apns_up 1, latency counts and a JWT timestamp."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "apns_exporter", "demo", "--web.listen-address=127.0.0.1:0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        metrics_url = admin_url = None
        for line in proc.stdout:  # the banner is a handful of lines
            if match := re.search(r"metrics:\s+(http://\S+)", line):
                metrics_url = match.group(1)
            if match := re.search(r"mock admin API:\s+(http://\S+)/stats", line):
                admin_url = match.group(1)
            if "Ctrl-C" in line:
                break
        assert metrics_url, "demo did not print its metrics URL"
        demo = {"target": "demo", "apns_environment": "sandbox"}
        deadline = time.monotonic() + DEMO_DEADLINE_SECONDS
        while True:
            samples = parse_samples(_scrape(metrics_url))
            healthy = (
                sample(samples, "apns_up", **demo) == 1
                and (sample(samples, "apns_canary_duration_seconds_count", **demo) or 0) >= 2
                and (sample(samples, "apns_ping_rtt_seconds_count", **demo) or 0) >= 1
                and (sample(samples, "apns_canary_delivery_duration_seconds_count", **demo) or 0)
                + (sample(samples, "apns_canary_delivery_lost_total", **demo) or 0)
                >= 1
            )
            if healthy or time.monotonic() > deadline:
                break
            time.sleep(0.5)  # polling a real process; the deadline bounds the loop
        assert healthy, "demo target not healthy within 15 s"
        assert sample(samples, "apns_provider_token_issued_timestamp_seconds", **demo) > 0
        # The simulated phone posts receipts, so true delivery latency shows up too.
        delivered = sample(samples, "apns_canary_delivery_duration_seconds_count", **demo) or 0
        lost = sample(samples, "apns_canary_delivery_lost_total", **demo) or 0
        assert delivered + lost >= 1

        # The banner's fault recipe: an expired-token scenario must show up in the metrics.
        assert admin_url, "demo did not print its admin API URL"
        request = urllib.request.Request(admin_url + "/scenarios/expired-token", method="PUT")
        urllib.request.urlopen(request, timeout=5).close()
        expired = {"status": "403", "reason": "ExpiredProviderToken"}
        deadline = time.monotonic() + DEMO_DEADLINE_SECONDS
        while True:
            samples = parse_samples(_scrape(metrics_url))
            seen = sample(samples, "apns_canary_responses_total", **demo, **expired) or 0
            if (seen > 0 and sample(samples, "apns_up", **demo) == 0) or (
                time.monotonic() > deadline
            ):
                break
            time.sleep(0.5)  # polling a real process; the deadline bounds the loop
        assert seen > 0
        assert sample(samples, "apns_up", **demo) == 0
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=5) == 0
    finally:
        proc.kill()
        proc.communicate()
