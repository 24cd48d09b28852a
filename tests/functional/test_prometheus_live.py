"""End to end with a real Prometheus and Alertmanager: alerts and pages per injected fault.

One Prometheus (Debian's ``prometheus`` binary, on 127.0.0.1) scrapes one exporter
(in-process, on 127.0.0.1) every second, evaluates the shipped rules every second and
sends alerts to one Alertmanager (Debian's ``prometheus-alertmanager``) running the
shipped example config, whose receivers post to a webhook in this test. The rules are
loaded through the documented override ``alerts/fast_rules.py``, which sets every
``for:`` to ``FOR`` and drops ``keep_firing_for``; expressions, labels and annotations
are the shipped ones. Alertmanager's routes, grouping and inhibit rules are the shipped
ones; only its timers are shorter (tests/functional/alertmanager_support.py).

The exporter probes one target per scenario, each against its own mock APNs on
127.0.0.1, with every probe interval at 1s:

==================  ==============================================================
target              scenario
==================  ==============================================================
healthy             token auth, device canary with delivery receipts, auth check,
                    TLS check, reachability (127.0.0.0/8 declared an Apple range),
                    broadcast channel management
healthy-cert        certificate (mTLS) auth, one-year provider certificate
expired-jwt         the mock's clock runs 2h ahead: every JWT is expired
invalid-key         a .p8 key the mock does not know
revoked-key         the key works, then is revoked in the mock
goaway-storm        GOAWAY Shutdown after every response
chain-change        the server switches to a chain under a new (trusted) root
cert-expiring       a provider certificate that expires in 5 days
cert-expired        a provider certificate that expired yesterday
canary-410          the canary app was reinstalled: its device token answers 410
bad-token           auth checks on, plus a device token the mock does not know
(no target)         environment checks: the sandbox mock switches to the new root first
                    (admin API), production stays on the old one
==================  ==============================================================

``EXPECTED`` lists the alerts each must fire, and the test requires exactly those
(none for the healthy targets; for no target, only the environment checks' early
warning). ``NOTIFIED`` lists the
notifications Alertmanager must send for them, critical (pager) and warning (tickets)
apart: one page per cause. Last, every mock starts answering 503: all targets fail, and
exactly one fleet page may arrive, not one per target.

Expression windows (``[15m]``, ``[1h]``) stay as shipped: they bound how far back an alert
looks, not how soon it fires, and every scenario here crosses its threshold (three GOAWAYs,
six reconnects, three rejected canaries) within seconds at 1s intervals. Alerts that need
real elapsed time (a provider token older than 55 minutes, a p99 above 2s, receipts lost
for an hour) are left to the promtool unit tests in alerts/tests.

The dashboard test evaluates every panel query of apns_exporter/assets against this
Prometheus with the variables set to the healthy targets (token and certificate auth, so
the panels of either method have data) and requires each to return a non-empty result.

The tests fail, not skip, when the ``prometheus`` or Alertmanager binary is missing.
(Longer than the usual 400 lines: one module-scoped stack, started once, serves every
test; the Alertmanager and webhook helpers live in alertmanager_support.py.)
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import secrets
import shutil
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import yaml

from apns_exporter import config
from apns_exporter.assets import grafana
from apns_exporter.assets.dashboards import dashboards
from apns_exporter.commands.serve import Listening, serve
from apns_exporter.mock.admin import AdminServer
from apns_exporter.mock.broadcast import ManagementServer
from apns_exporter.mock.faults import ErrorFault, GoAwayFault, Scenario
from apns_exporter.mock.pki import CertificateAuthority, generate_ca, generate_signing_key
from apns_exporter.mock.rollout import NEW_ROOT, OLD_ROOT, OLD_ROOT_NAME, generate_rollout
from apns_exporter.mock.server import MockAPNs
from apns_exporter.service.exporter import Exporter
from tests.functional import alertmanager_support as am
from tests.helpers import KEY_ID, TEAM_ID, TOPIC, load_script

pytestmark = pytest.mark.asyncio(loop_scope="module")

ROOT = Path(__file__).resolve().parents[2]
JOB = "apns-exporter"  # the shipped rules select job="apns-exporter"
FOR = "3s"  # every alert's for: in the fast rule file
# ...but the per-target page, as shipped (10m against the fleet page's 5m), waits longer than
# the fleet page, so a whole fleet failing within a few seconds pages once, for the fleet.
TARGET_PAGE_FOR = "12s"
# Alerts must have settled by then; most fire within 15s of the start.
ALERT_DEADLINE_SECONDS = 90.0
# The firing set must stay as expected this many polls (one per second) in a row.
STABLE_POLLS = 5
PANEL_DEADLINE_SECONDS = 60.0
RATE_INTERVAL = "30s"  # $__rate_interval: comfortably over 4 scrape intervals of 1s
HEALTHY = ("healthy", "healthy-cert")

# (alertname, severity, reason label or ""), per target label ("" = exporter-level alerts).
Alert = tuple[str, str, str]
EXPECTED: dict[str, set[Alert]] = {
    # Four production canary targets of thirteen failing burn the SLO's budget fast; the
    # sandbox mock switches to the new root first (admin API): production will follow.
    "": {
        ("ApnsCanaryErrorBudgetBurn", "warning", ""),
        ("ApnsProductionRootChangeAhead", "warning", ""),
    },
    "healthy": set(),
    "healthy-cert": set(),
    # Rejected canaries page once; the reason is a warning beside the page. The wedged
    # connection's reconnects add nothing while the canary fails.
    "expired-jwt": {
        ("ApnsCanaryFailing", "critical", ""),
        ("ApnsAuthenticationFailing", "warning", "ExpiredProviderToken"),
    },
    "invalid-key": {
        ("ApnsCanaryFailing", "critical", ""),
        ("ApnsAuthenticationFailing", "warning", "InvalidProviderToken"),
    },
    # A key that worked and then fails: the page, and the one warning naming the cause.
    "revoked-key": {
        ("ApnsCanaryFailing", "critical", ""),
        ("ApnsSigningKeyRevoked", "warning", ""),
    },
    # GOAWAYs explain the reconnects: one warning.
    "goaway-storm": {("ApnsGoawayRateHigh", "warning", "")},
    "chain-change": {("ApnsServerCertificateChainChanged", "info", "")},
    # APNs accepts every canary, but the device never confirms one.
    "delivery-lost": {("ApnsCanaryDeliveryLost", "warning", "")},
    # Five days left: a warning; the page comes the day before.
    "cert-expiring": {("ApnsClientCertificateExpiring", "warning", "")},
    # Expired: the canary fails at the TLS layer and pages; the expiry band is a warning.
    "cert-expired": {
        ("ApnsCanaryFailing", "critical", ""),
        ("ApnsClientCertificateExpiring", "warning", ""),
        ("ApnsCredentialLoadFailed", "warning", ""),
    },
    # Canary setup problems: warnings, never a page.
    "canary-410": {("ApnsCanaryDeviceTokenInvalid", "warning", "Unregistered")},
    "bad-token": {("ApnsCanaryDeviceTokenInvalid", "warning", "BadDeviceToken")},
}
# Each (receiver, alertname, severity, target) Alertmanager must notify: grouped by alert
# name, severity, job and environment, so one notification may list several targets.
NOTIFIED: set[am.Notification] = {
    ("tickets", "ApnsCanaryErrorBudgetBurn", "warning", ""),
    *(("pager", "ApnsCanaryFailing", "critical", t) for t in ("expired-jwt", "invalid-key")),
    ("pager", "ApnsCanaryFailing", "critical", "revoked-key"),
    ("pager", "ApnsCanaryFailing", "critical", "cert-expired"),
    ("tickets", "ApnsAuthenticationFailing", "warning", "expired-jwt"),
    ("tickets", "ApnsAuthenticationFailing", "warning", "invalid-key"),
    ("tickets", "ApnsSigningKeyRevoked", "warning", "revoked-key"),
    ("tickets", "ApnsGoawayRateHigh", "warning", "goaway-storm"),
    ("tickets", "ApnsCanaryDeliveryLost", "warning", "delivery-lost"),
    ("tickets", "ApnsClientCertificateExpiring", "warning", "cert-expiring"),
    ("tickets", "ApnsClientCertificateExpiring", "warning", "cert-expired"),
    ("tickets", "ApnsCredentialLoadFailed", "warning", "cert-expired"),
    ("tickets", "ApnsCanaryDeviceTokenInvalid", "warning", "canary-410"),
    ("tickets", "ApnsCanaryDeviceTokenInvalid", "warning", "bad-token"),
    ("tickets", "ApnsProductionRootChangeAhead", "warning", ""),
}
CERTIFICATE_TARGETS = ("healthy-cert", "cert-expiring", "cert-expired")


fast_rules = load_script("apns_fast_rules_live", ROOT / "alerts" / "fast_rules.py")


@dataclass
class Live:
    """The running stack: Prometheus' base URL, the exporter's instance label, the mocks."""

    prometheus: str
    instance: str
    mocks: dict[str, MockAPNs]
    session: aiohttp.ClientSession
    started: float
    log: Path
    alertmanager: str
    webhook: am.Webhook
    sandbox_admin: str  # the sandbox environment mock's admin API

    async def api(self, path: str, **params: str) -> Any:
        """GET a Prometheus HTTP API path and return its ``data``."""
        async with self.session.get(self.prometheus + path, params=params) as resp:
            body = await resp.json()
        assert body["status"] == "success", (path, params, body)
        return body["data"]

    async def query(self, expr: str) -> list[dict[str, Any]]:
        """Evaluate an instant query now and return its result vector."""
        data = await self.api("/api/v1/query", query=expr)
        result = data["result"]
        return result if data["resultType"] == "vector" else [{"value": result}]

    async def firing(self) -> dict[str, set[Alert]]:
        """The firing alerts, grouped by target label."""
        out: dict[str, set[Alert]] = defaultdict(set)
        for alert in (await self.api("/api/v1/alerts"))["alerts"]:
            if alert["state"] == "firing":
                labels = alert["labels"]
                out[labels.get("target", "")].add(
                    (labels["alertname"], labels["severity"], labels.get("reason", ""))
                )
        return {target: set(out.get(target, set())) for target in {*EXPECTED, *out}}

    def prometheus_log(self) -> str:
        """The tail of Prometheus' log, for failure messages."""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])


# ------------------------------------------------------------------------- config


def _token_target(
    name: str, mock: MockAPNs, ca_file: Path, key_file: Path, device: str, **extra: Any
) -> dict[str, Any]:
    target: dict[str, Any] = {
        "name": name,
        "environment": "production",
        "endpoint": f"127.0.0.1:{mock.port}",
        "topic": TOPIC,
        "ca_file": str(ca_file),
        "auth": {"token": {"key_file": str(key_file), "key_id": KEY_ID, "team_id": TEAM_ID}},
        "ping": {"interval": "1s"},
        "canary": {"interval": "1s", "timeout": "1s", "device_tokens": [device]},
        "tls_check": None,
    }
    target.update(extra)
    return target


def _cert_target(
    name: str, mock: MockAPNs, ca_file: Path, cert_file: Path, device: str, **extra: Any
) -> dict[str, Any]:
    target = _token_target(name, mock, ca_file, cert_file, device, **extra)
    target["auth"] = {"certificate": {"cert_file": str(cert_file)}}
    return target


# Watched on every healthy target, so the TLS and reachability panels have data.
OBSERVED = {
    "tls_check": {"interval": "1s"},
    "reachability": {"interval": "1s", "apple_ranges": ["127.0.0.0/8", "17.0.0.0/8"]},
}


@contextlib.asynccontextmanager
async def _mocks(
    ca: CertificateAuthority, client_ca: CertificateAuthority, device: str, public_key: Any
) -> AsyncIterator[dict[str, MockAPNs]]:
    scenarios = {
        "expired-jwt": Scenario(name="expired-jwt", clock_skew=7200),
        "goaway-storm": Scenario(
            name="goaway-storm", goaway=GoAwayFault(after_requests=1, reason="Shutdown")
        ),
    }
    mocks: dict[str, MockAPNs] = {}
    try:
        for name in EXPECTED:
            if not name:
                continue
            if name in CERTIFICATE_TARGETS:
                mock = MockAPNs(
                    ca.issue_server(),
                    client_ca_pem=client_ca.cert_pem,
                    require_client_certificate=True,
                )
            else:
                mock = MockAPNs(ca.issue_server(), scenario=scenarios.get(name))
                mock.add_signing_key(KEY_ID, TEAM_ID, public_key, topics=[TOPIC])
            mock.devices.register(device, TOPIC)
            if name == "canary-410":  # the canary app was deleted and installed again
                mock.devices.unregister(device, at=time.time() * 1000)
            await mock.start("127.0.0.1", 0)
            mocks[name] = mock
        yield mocks
    finally:
        for mock in mocks.values():
            await mock.stop()


@contextlib.asynccontextmanager
async def _environments() -> AsyncIterator[tuple[dict[str, int], str]]:
    """A sandbox and a production mock on the old root, and the sandbox's admin API."""
    chains = generate_rollout().chains()
    mocks = {
        env: MockAPNs(chains[OLD_ROOT], keypairs=chains, serving=OLD_ROOT, environment=env)
        for env in ("sandbox", "production")
    }
    admin = AdminServer(mocks["sandbox"])
    try:
        for mock in mocks.values():
            await mock.start("127.0.0.1", 0)
        await admin.start("127.0.0.1", 0)
        yield {env: m.port for env, m in mocks.items()}, f"http://127.0.0.1:{admin.port}"
    finally:
        await admin.stop()
        for mock in mocks.values():
            await mock.stop()


@contextlib.asynccontextmanager
async def _management(mock: MockAPNs) -> AsyncIterator[ManagementServer]:
    """The channel-management API of ``mock`` on its own port, as Apple's 2195/2196."""
    server = ManagementServer(mock)
    await server.start("127.0.0.1", 0)
    try:
        yield server
    finally:
        await server.stop()


# ------------------------------------------------------------------------ fixture


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def live(
    tmp_path_factory: pytest.TempPathFactory, ca: CertificateAuthority
) -> AsyncIterator[Live]:
    """Mocks, the exporter and a Prometheus scraping it, with the faults of every scenario."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail(
            "the prometheus binary is not installed: the end-to-end alert test needs it "
            "(Debian/Ubuntu: apt-get install prometheus; or a release binary on PATH)"
        )
    tmp = tmp_path_factory.mktemp("prometheus-live")
    device = secrets.token_hex(32)
    signing_key = generate_signing_key()
    client_ca = generate_ca("live provider CA")
    next_ca = generate_ca("live next root CA")

    ca_file = tmp / "ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    both_roots = tmp / "ca-both.pem"  # trusts the old and the new root, as after a CA update
    both_roots.write_bytes(ca.cert_pem + next_ca.cert_pem)
    key_file = tmp / f"AuthKey_{KEY_ID}.p8"
    key_file.write_bytes(signing_key.private_pem)
    unknown_key = tmp / "AuthKey_unknown.p8"
    unknown_key.write_bytes(generate_signing_key().private_pem)
    secret = secrets.token_hex(32).encode()
    secret_file = tmp / "receipt.secret"
    secret_file.write_bytes(secret)
    now = dt.datetime.now(dt.UTC)
    certs = {
        "healthy-cert": client_ca.issue_provider(TOPIC),
        "cert-expiring": client_ca.issue_provider(
            TOPIC, valid_from=now - dt.timedelta(days=360), valid_until=now + dt.timedelta(days=5)
        ),
        "cert-expired": client_ca.issue_provider(
            TOPIC, valid_from=now - dt.timedelta(days=366), valid_until=now - dt.timedelta(days=1)
        ),
    }
    cert_files = {}
    for name, cert in certs.items():
        cert_files[name] = tmp / f"{name}.pem"
        cert_files[name].write_bytes(cert.cert_pem + cert.key_pem)

    async with (
        _mocks(ca, client_ca, device, signing_key.public_key) as mocks,
        _environments() as (environment_ports, sandbox_admin),
        _management(mocks["healthy"]) as management,
    ):
        healthy = _token_target("healthy", mocks["healthy"], ca_file, key_file, device, **OBSERVED)
        healthy["canary"].update(
            auth_check=True, delivery={"secret_file": str(secret_file), "deadline": "10s"}
        )
        # Broadcast channel management on the healthy mock's own management port.
        healthy["broadcast"] = {"interval": "1s", "endpoint": f"127.0.0.1:{management.port}"}
        lossy = _token_target("delivery-lost", mocks["delivery-lost"], ca_file, key_file, device)
        lossy["canary"]["delivery"] = {"secret_file": str(secret_file), "deadline": "1s"}
        targets = [
            healthy,
            _cert_target(
                "healthy-cert",
                mocks["healthy-cert"],
                ca_file,
                cert_files["healthy-cert"],
                device,
                **OBSERVED,
            ),
            _token_target("expired-jwt", mocks["expired-jwt"], ca_file, key_file, device),
            _token_target("invalid-key", mocks["invalid-key"], ca_file, unknown_key, device),
            _token_target("revoked-key", mocks["revoked-key"], ca_file, key_file, device),
            _token_target("goaway-storm", mocks["goaway-storm"], ca_file, key_file, device),
            _token_target(
                "chain-change",
                mocks["chain-change"],
                both_roots,
                key_file,
                device,
                tls_check={"interval": "1s"},
            ),
            lossy,
            *(
                _cert_target(name, mocks[name], ca_file, cert_files[name], device)
                for name in ("cert-expiring", "cert-expired")
            ),
            _token_target("canary-410", mocks["canary-410"], ca_file, key_file, device),
            _token_target(
                "bad-token", mocks["bad-token"], ca_file, key_file, secrets.token_hex(32)
            ),
        ]
        targets[-1]["canary"]["auth_check"] = True
        config_file = tmp / "apns-exporter.yml"
        config_file.write_text(
            yaml.safe_dump(
                {
                    "global": {
                        "credential_check_interval": "1s",
                        "scrape_timeout": "2s",
                        "environment_checks": {
                            "interval": "1s",
                            "timeout": "1s",
                            **{e: f"127.0.0.1:{p}" for e, p in environment_ports.items()},
                        },
                    },
                    "receipts": {"listen_address": "127.0.0.1:0"},
                    "targets": targets,
                },
                sort_keys=False,
            )
        )

        def on_receipts(url: str) -> None:
            # Before the first canary: the device confirms every canary after 50 ms.
            mocks["healthy"].devices.enable_receipts(device, url, secret, delay=0.05, seed=1)
            mocks["delivery-lost"].devices.enable_receipts(device, url, secret, loss=1.0)

        exporter = Exporter(config.load(config_file), config_file=str(config_file))
        stop = asyncio.Event()
        ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        serving = asyncio.create_task(
            serve(
                exporter,
                Listening(("127.0.0.1", 0)),
                stop,
                on_listening=ready.set_result,
                on_receipts=on_receipts,
            )
        )
        prometheus: asyncio.subprocess.Process | None = None
        session = aiohttp.ClientSession()
        alertmanager = am.running(tmp)
        try:
            alertmanager_url, webhook = await alertmanager.__aenter__()
            async with asyncio.timeout(15):
                waiting: set[asyncio.Future[Any]] = {ready, serving}
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            assert ready.done(), f"exporter exited before listening: {serving.result()}"
            instance = ready.result().removeprefix("http://").rstrip("/")

            rules = tmp / "fast.rules.yml"
            rules.write_text(_page_order_kept(fast_rules.shorten_file(for_=FOR)))
            prometheus_yml = tmp / "prometheus.yml"
            prometheus_yml.write_text(
                yaml.safe_dump(
                    {
                        "global": {
                            "scrape_interval": "1s",
                            "scrape_timeout": "1s",
                            "evaluation_interval": "1s",
                        },
                        "rule_files": [str(rules)],
                        "alerting": {
                            "alertmanagers": [
                                {
                                    "static_configs": [
                                        {"targets": [alertmanager_url.removeprefix("http://")]}
                                    ]
                                }
                            ]
                        },
                        "scrape_configs": [
                            {"job_name": JOB, "static_configs": [{"targets": [instance]}]}
                        ],
                    }
                )
            )
            log = tmp / "prometheus.log"
            port = am.free_port()
            with log.open("wb") as out:
                prometheus = await asyncio.create_subprocess_exec(
                    binary,
                    f"--config.file={prometheus_yml}",
                    f"--storage.tsdb.path={tmp / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--log.level=warn",
                    stdout=out,
                    stderr=asyncio.subprocess.STDOUT,
                    cwd=tmp,
                )
            live = Live(
                f"http://127.0.0.1:{port}",
                instance,
                mocks,
                session,
                time.monotonic(),
                log,
                alertmanager_url,
                webhook,
                sandbox_admin,
            )
            await _wait_ready(live, prometheus)
            await _drive_faults(live, next_ca)
            yield live
        finally:
            if prometheus is not None:
                await am.stop(prometheus)
            await alertmanager.__aexit__(None, None, None)
            await session.close()
            stop.set()
            await serving


async def _wait_ready(live: Live, process: asyncio.subprocess.Process) -> None:
    """Wait until Prometheus serves its API and has scraped the exporter once."""
    for _ in range(150):
        assert process.returncode is None, f"prometheus exited:\n{live.prometheus_log()}"
        with contextlib.suppress(aiohttp.ClientError):
            if await live.query(f'up{{job="{JOB}"}} == 1'):
                return
        await asyncio.sleep(0.2)
    pytest.fail(f"prometheus did not scrape the exporter in 30s:\n{live.prometheus_log()}")


async def _drive_faults(live: Live, next_ca: CertificateAuthority) -> None:
    """Faults that need a healthy start first: a key revoked, a server chain switched."""
    # The key must have been accepted before it is revoked, or it looks merely invalid.
    # The chain switch must come after Prometheus saw the first chain, with no change yet:
    # the change counter then appears at 1, a first event the rule counts.
    for _ in range(60):
        if await live.query(
            'apns_signing_key_last_verified_timestamp_seconds{target="revoked-key"}'
        ) and await live.query(
            'apns_server_certificate_info{target="chain-change"}'
            " unless on (target) apns_server_certificate_chain_changes_total"
        ):
            break
        await asyncio.sleep(0.5)
    else:
        pytest.fail("revoked-key was never accepted, or chain-change never checked, in 30s")
    revoked = live.mocks["revoked-key"]
    revoked.keys.revoke(KEY_ID)
    await revoked.goaway()  # a token already accepted on a connection stays accepted there
    # A new root that the target's ca_file already trusts: a routine, harmless change.
    chain = live.mocks["chain-change"]
    chain.set_keypair(next_ca.issue_server())
    await chain.goaway()  # the long-lived connection moves to the new chain too
    # Apple's order in a CA rollout: the sandbox first, once Prometheus saw both on the old.
    for _ in range(60):
        if len(await live.query(f'apns_environment_root_info{{root="{OLD_ROOT_NAME}"}}')) == 2:
            break
        await asyncio.sleep(0.5)
    else:
        pytest.fail("the environment checks never showed both environments' old root in 30s")
    url = live.sandbox_admin + "/certificates/current"
    async with live.session.put(url, json={"name": NEW_ROOT}) as response:
        assert response.status == 200, await response.text()


# -------------------------------------------------------------------------- tests


async def test_expected_alerts_fire_and_no_others(live: Live) -> None:
    """Each scenario fires exactly its expected alerts, the healthy targets and exporter none."""
    expected = {target: set(alerts) for target, alerts in EXPECTED.items()}
    deadline = live.started + ALERT_DEADLINE_SECONDS
    in_a_row = 0
    firing: dict[str, set[Alert]] = {}
    while time.monotonic() < deadline:
        firing = await live.firing()
        in_a_row = in_a_row + 1 if firing == expected else 0
        if in_a_row >= STABLE_POLLS:
            break
        await asyncio.sleep(1)
    missing = {t: sorted(expected[t] - firing.get(t, set())) for t in expected}
    extra = {t: sorted(firing[t] - expected.get(t, set())) for t in firing}
    report = {
        "missing": {t: a for t, a in missing.items() if a},
        "unexpected": {t: a for t, a in extra.items() if a},
    }
    assert report == {"missing": {}, "unexpected": {}}, (
        f"firing after {time.monotonic() - live.started:.0f}s differs from EXPECTED"
    )
    # Their annotations render: no template errors, no label or query that came back empty.
    alerts = [a for a in (await live.api("/api/v1/alerts"))["alerts"] if a["state"] == "firing"]
    for alert in alerts:
        for key, text in alert["annotations"].items():
            where = f"{alert['labels']['alertname']}/{alert['labels'].get('target')}: {key}"
            assert "error expanding" not in text, (where, text)
            assert "<no value>" not in text, (where, text)


async def test_every_rule_evaluates_without_error(live: Live) -> None:
    """Prometheus loaded every rule of the file and evaluates each without an error."""
    rules: list[dict[str, Any]] = []
    for _ in range(20):  # every rule has been evaluated at least once
        groups = (await live.api("/api/v1/rules"))["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        if rules and all(r["health"] != "unknown" for r in rules):
            break
        await asyncio.sleep(0.5)
    shipped = fast_rules.shorten_file(fast_rules.RULES_FILE)
    expected = sum(len(g["rules"]) for g in yaml.safe_load(shipped)["groups"])
    assert len(rules) == expected
    broken = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert broken == []


async def test_every_dashboard_query_returns_data(live: Live) -> None:
    """Every dashboard panel query, variables set to the healthy targets, returns data."""
    queries = grafana.panel_queries(dashboards().values())
    assert queries
    exprs = {
        (q["dashboard"], q["panel"], q["ref_id"]): grafana.expand_query(
            q["expr"],
            job=grafana.literal(JOB),
            instance=grafana.literal(live.instance),
            target="|".join(grafana.literal(t) for t in HEALTHY),
            rate_interval=RATE_INTERVAL,
        )
        for q in queries
    }
    deadline = time.monotonic() + PANEL_DEADLINE_SECONDS
    pending = dict(exprs)
    while pending and time.monotonic() < deadline:
        for key, expr in list(pending.items()):
            values = [float(s["value"][1]) for s in await live.query(expr)]
            if any(not math.isnan(v) for v in values):
                del pending[key]
        if pending:
            await asyncio.sleep(1)
    assert pending == {}, "panel queries with no data (a broken panel): " + "; ".join(
        f"{d} / {p} / {r}: {e}" for (d, p, r), e in pending.items()
    )


def _page_order_kept(text: str) -> str:
    """The fast rules with ApnsCanaryFailing's for: longer than ApnsFleetFailing's again."""
    rules = yaml.safe_load(text)
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == "ApnsCanaryFailing":
                rule["for"] = TARGET_PAGE_FOR
    return yaml.safe_dump(rules, sort_keys=False, width=1000)


async def _notifications_settle(
    live: Live, expected: set[am.Notification]
) -> list[am.Notification]:
    """Wait until Alertmanager has notified every active alert group, then return all sent.

    Settled means: every group Alertmanager holds as active (not inhibited) now, and every
    expected one, has been notified, for ``STABLE_POLLS`` polls in a row; or the deadline
    passed.
    """
    deadline = time.monotonic() + ALERT_DEADLINE_SECONDS
    in_a_row = 0
    while time.monotonic() < deadline and in_a_row < STABLE_POLLS:
        active = await am.active_groups(live.session, live.alertmanager)
        settled = active | expected <= set(live.webhook.received)
        in_a_row = in_a_row + 1 if settled else 0
        live.webhook.changed.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1):
                await live.webhook.changed.wait()
    return list(live.webhook.received)


async def test_one_notification_per_cause(live: Live) -> None:
    """Every failing canary pages and each cause warns, grouped per alert: nothing else."""
    received = await _notifications_settle(live, NOTIFIED)
    pages = {n for n in received if n[2] == "critical"}
    warnings = {n for n in received if n[2] == "warning"}
    assert pages == {n for n in NOTIFIED if n[2] == "critical"}
    assert warnings == {n for n in NOTIFIED if n[2] == "warning"}
    assert not [n for n in received if n[3] in HEALTHY]
    # Grouping: every notification is about one alert name and severity.
    for _receiver, alerts in live.webhook.posts:
        assert len({(a["labels"]["alertname"], a["labels"]["severity"]) for a in alerts}) == 1


async def test_all_targets_failing_page_once_for_the_fleet(live: Live) -> None:
    """When every mock answers 503, one fleet page arrives instead of one per target."""
    await _notifications_settle(live, NOTIFIED)
    before = len(live.webhook.posts)
    outage = Scenario(name="outage", errors=(ErrorFault(reason="ServiceUnavailable"),))
    for mock in live.mocks.values():
        mock.scenario = outage
    fleet = ("pager", "ApnsFleetFailing", "critical", "")
    await _notifications_settle(live, {*NOTIFIED, fleet})
    new = [(r, a["labels"]) for r, alerts in live.webhook.posts[before:] for a in alerts]
    assert [(r, labels["alertname"]) for r, labels in new] == [("pager", "ApnsFleetFailing")]
