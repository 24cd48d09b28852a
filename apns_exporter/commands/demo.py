"""``apns-exporter demo``: an embedded mock APNs, throwaway credentials and the exporter."""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import tempfile
from pathlib import Path

from apns_exporter import config
from apns_exporter.commands.serve import Listening, serve
from apns_exporter.errors import ConfigError
from apns_exporter.mock.admin import AdminServer
from apns_exporter.mock.pki import generate_ca, generate_signing_key
from apns_exporter.mock.server import MockAPNs
from apns_exporter.service.exporter import Exporter
from apns_exporter.web import app as web

KEY_ID = "DEMOKEY123"
TEAM_ID = "DEMOTEAM45"
TOPIC = "com.example.demo"
# Short intervals so a first-time user sees data within seconds, not minutes.
CANARY_INTERVAL = "5s"
PING_INTERVAL = "5s"

CONFIG_TEMPLATE = """\
# Written by `apns-exporter demo`; throwaway credentials, loopback mock APNs.
global:
  # Both environments' root checks go to the mock too: the demo never dials Apple.
  environment_checks:
    interval: 1m
    sandbox: 127.0.0.1:{port}
    production: 127.0.0.1:{port}
    ca_file: ca.pem
receipts:
  listen_address: 127.0.0.1:0
targets:
  - name: demo
    environment: sandbox
    endpoint: 127.0.0.1:{port}
    topic: {topic}
    ca_file: ca.pem
    auth:
      token:
        key_file: AuthKey_{key_id}.p8
        key_id: {key_id}
        team_id: {team_id}
    ping:
      interval: {ping_interval}
    canary:
      interval: {canary_interval}
      device_tokens: ["{device}"]
      auth_check: true
      push_type: background
      priority: 5
      delivery:
        secret_file: receipt.key
        deadline: 10s
"""
# The simulated phone answers like a real one: usually within a second or two, sometimes
# not at all, so delivery latency and loss both have something to show.
DEVICE_DELAY = (0.2, 1.5)
DEVICE_LOSS = 0.05


async def run(args: argparse.Namespace, stop: asyncio.Event) -> int:
    """Run the mock and the exporter until ``stop`` is set, printing where to look."""
    try:
        listen = web.parse_listen_address(args.listen_address)
    except ValueError as exc:
        print(f"error: {exc}")
        return 2
    if args.log_level != "debug":
        # The mock logs every request; in the demo that would bury the exporter's own lines.
        logging.getLogger("apns_exporter.mock").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="apns-exporter-demo-") as tmp:
        directory = Path(tmp)
        ca = generate_ca("apns-exporter demo root CA")
        (directory / "ca.pem").write_bytes(ca.cert_pem)
        signing_key = generate_signing_key()
        key_file = directory / f"AuthKey_{KEY_ID}.p8"
        key_file.write_bytes(signing_key.private_pem)
        key_file.chmod(0o600)
        receipt_secret = secrets.token_hex(32).encode()
        (directory / "receipt.key").write_bytes(receipt_secret + b"\n")

        mock = MockAPNs(keypair=ca.issue_server(), environment="sandbox")
        mock.add_signing_key(KEY_ID, TEAM_ID, signing_key.public_key, topics=[TOPIC])
        device = secrets.token_hex(32)
        mock.devices.register(device, TOPIC)
        await mock.start("127.0.0.1", 0)
        admin = AdminServer(mock)
        await admin.start("127.0.0.1", 0)
        try:
            config_file = directory / "apns-exporter.yml"
            config_file.write_text(
                CONFIG_TEMPLATE.format(
                    port=mock.port,
                    topic=TOPIC,
                    key_id=KEY_ID,
                    team_id=TEAM_ID,
                    device=device,
                    canary_interval=CANARY_INTERVAL,
                    ping_interval=PING_INTERVAL,
                )
            )
            cfg = config.load(config_file)

            def announce(url: str) -> None:
                print(
                    f"apns-exporter demo is running.\n"
                    f"  exporter:  {url}/\n"
                    f"  metrics:   {url}{args.telemetry_path}\n"
                    f"  mock APNs: https://127.0.0.1:{mock.port} (HTTP/2, sandbox)\n"
                    f"  mock admin API: http://127.0.0.1:{admin.port}/stats\n"
                    f"  config:    {config_file}\n"
                    f"Inject a fault and watch apns_up and the reason counters change:\n"
                    f"  curl -X PUT http://127.0.0.1:{admin.port}/scenarios/expired-token\n"
                    f"  curl -X PUT http://127.0.0.1:{admin.port}/scenarios/healthy\n"
                    f"Press Ctrl-C to stop.",
                    flush=True,
                )

            def devices_answer(url: str) -> None:
                mock.devices.enable_receipts(
                    device, url, receipt_secret, delay=DEVICE_DELAY, loss=DEVICE_LOSS
                )

            return await serve(
                Exporter(cfg),
                Listening(listen, args.telemetry_path),
                stop,
                on_listening=announce,
                on_receipts=devices_answer,
            )
        except ConfigError as exc:  # the template is ours, so this is a bug, but say it plainly
            print(f"error: demo config is invalid: {exc}")
            return 1
        finally:
            await admin.stop()
            await mock.stop()
