"""``apns-exporter mock-apns``: run the mock APNs server on its own, configured by flags or YAML.

The main CLI owns the parser; it calls ``add_arguments`` for the sub-command and awaits ``run``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import signal
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from apns_exporter.mock import material as material_files
from apns_exporter.mock.admin import AdminServer
from apns_exporter.mock.broadcast import ManagementServer
from apns_exporter.mock.faults import BUILTIN_SCENARIOS, Scenario, load_scenario
from apns_exporter.mock.mapping import MappingError, from_mapping
from apns_exporter.mock.policy import Policy
from apns_exporter.mock.server import MockAPNs

log = logging.getLogger("apns_exporter.mock")

DEFAULT_LISTEN = "127.0.0.1:2197"
Environment = Literal["production", "sandbox"]


@dataclass(frozen=True)
class KeyConfig:
    """An extra signing key the mock accepts; ``key_file`` is a .p8 or a public-key PEM."""

    key_id: str
    team_id: str
    key_file: str
    topics: tuple[str, ...] | None = None
    environment: Environment | None = None
    # False: the channel-management API refuses this key (403 FeatureNotEnabled).
    broadcast: bool = True


@dataclass(frozen=True)
class DeviceConfig:
    """An extra simulated device."""

    token: str
    topic: str
    environment: Environment | None = None


@dataclass(frozen=True)
class MockConfig:
    """The mock.yml file; every key is optional and command-line flags win over it."""

    listen: str | None = None
    admin_listen: str | None = None
    environment: Environment = "production"
    pki_dir: str | None = None
    topic: str | None = None
    scenario: str | Scenario | None = None
    policy: Policy | None = None
    keys: tuple[KeyConfig, ...] = ()
    devices: tuple[DeviceConfig, ...] = ()
    client_certificates: Literal["none", "optional", "required"] = "none"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``mock-apns`` flags to ``parser``."""
    names = ", ".join(sorted(BUILTIN_SCENARIOS))
    parser.add_argument("--scenario", help=f"built-in scenario ({names}) or a YAML/JSON file")
    parser.add_argument("--config", type=Path, help="mock.yml with listen, keys, devices, policy")
    parser.add_argument(
        "--listen", help=f"host:port for the APNs endpoint (default {DEFAULT_LISTEN})"
    )
    parser.add_argument("--admin-listen", help="host:port for the admin JSON API (default: off)")
    parser.add_argument(
        "--broadcast-listen",
        help="host:port for the broadcast channel-management API (Apple: 2195 sandbox, "
        "2196 production; default: off)",
    )
    parser.add_argument(
        "--certificate",
        choices=["default", "next"],
        help="which server chain to serve first: default (ca.pem, an old root) or next "
        "(ca-next.pem, a new root); switch later with PUT /certificates/current",
    )
    parser.add_argument(
        "--environment",
        choices=["production", "sandbox"],
        help="which APNs environment to imitate (default production)",
    )
    parser.add_argument(
        "--client-certificates",
        choices=["none", "optional", "required"],
        help="whether TLS asks for a client certificate, for certificate-auth targets "
        "(default none; optional accepts token and certificate clients alike)",
    )
    parser.add_argument(
        "--generate-pki",
        type=Path,
        metavar="DIR",
        help="keep CA, server chains, .p8 key and device tokens in DIR "
        "(generated when missing; default: a temporary directory)",
    )
    parser.add_argument(
        "--pki-only",
        action="store_true",
        help="only write the credentials to --generate-pki DIR, then exit",
    )


def parse_listen(value: str) -> tuple[str, int]:
    """Split ``host:port`` (``[v6]:port`` for IPv6; empty host means loopback)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"listen address {value!r} is not host:port")
    return host.strip("[]") or "127.0.0.1", int(port)


def load_config(path: Path) -> MockConfig:
    """Read and validate a mock.yml file."""
    data = yaml.safe_load(path.read_text()) or {}
    return from_mapping(MockConfig, data, str(path))


def _public_key(path: Path) -> ec.EllipticCurvePublicKey:
    pem = path.read_bytes()
    if b"PRIVATE KEY" in pem:
        private = serialization.load_pem_private_key(pem, password=None)
        if isinstance(private, ec.EllipticCurvePrivateKey):
            return private.public_key()
    else:
        public = serialization.load_pem_public_key(pem)
        if isinstance(public, ec.EllipticCurvePublicKey):
            return public
    raise ValueError(f"{path}: not an EC key")


def _scenario(args: argparse.Namespace, config: MockConfig) -> Scenario:
    choice = args.scenario or config.scenario or "healthy"
    return choice if isinstance(choice, Scenario) else load_scenario(choice)


async def run(
    args: argparse.Namespace,
    *,
    started: Callable[[MockAPNs, AdminServer | None], None] | None = None,
) -> int:
    """Run the mock until SIGINT/SIGTERM (or cancellation); returns the exit code."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        config = load_config(args.config) if args.config else MockConfig()
        host, port = parse_listen(args.listen or config.listen or DEFAULT_LISTEN)
        admin_listen = args.admin_listen or config.admin_listen
        admin_address = parse_listen(admin_listen) if admin_listen else None
        broadcast_listen = getattr(args, "broadcast_listen", None)
        broadcast_address = parse_listen(broadcast_listen) if broadcast_listen else None
        scenario = _scenario(args, config)
        extra_keys = [(k, _public_key(Path(k.key_file))) for k in config.keys]
    except (OSError, ValueError, MappingError, yaml.YAMLError) as exc:
        log.error("mock-apns: %s", exc)
        return 2
    pki_dir = args.generate_pki or (Path(config.pki_dir) if config.pki_dir else None)
    with contextlib.ExitStack() as stack:
        if pki_dir is None:
            pki_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mock-apns-")))
        material = material_files.load_or_generate(
            pki_dir, config.topic or material_files.DEFAULT_TOPIC
        )
        if args.pki_only:
            for name, value in material.summary().items():
                log.info("mock-apns %s: %s", name, value)
            return 0
        if args.client_certificates:
            config = dataclasses.replace(config, client_certificates=args.client_certificates)
        mock = _build(material, config, args.environment or config.environment, extra_keys)
        mock.use_keypair(getattr(args, "certificate", None) or "default")
        try:
            mock.scenario = scenario
        except (KeyError, ValueError) as exc:
            log.error("mock-apns: scenario %s: %s", scenario.name, exc)
            return 2
        management = ManagementServer(mock) if broadcast_address else None
        return await _serve(
            mock, material, (host, port), admin_address, started, (management, broadcast_address)
        )
    return 0  # pragma: no cover - the with-block always returns


def _build(
    material: material_files.MockMaterial,
    config: MockConfig,
    environment: str,
    extra_keys: list[tuple[KeyConfig, ec.EllipticCurvePublicKey]],
) -> MockAPNs:
    mock = MockAPNs(
        material.server,
        keypairs={"next": material.server_next},
        environment=environment,
        policy=config.policy or Policy(),
        client_ca_pem=material.client_ca_pem if config.client_certificates != "none" else None,
        require_client_certificate=config.client_certificates == "required",
    )
    mock.add_signing_key(material.key_id, material.team_id, material.signing_key.public_key)
    for key, public in extra_keys:
        mock.add_signing_key(
            key.key_id,
            key.team_id,
            public,
            key.topics,
            environment=key.environment,
            broadcast=key.broadcast,
        )
    active, *gone = material.device_tokens
    mock.devices.register(active, material.topic)
    for token in gone:  # a second token that answers 410 Unregistered, for drills
        mock.devices.register(token, material.topic)
        mock.devices.unregister(token, at=mock.clock())
    for device in config.devices:
        mock.devices.register(device.token, device.topic, environment=device.environment)
    return mock


async def _serve(
    mock: MockAPNs,
    material: material_files.MockMaterial,
    address: tuple[str, int],
    admin_address: tuple[str, int] | None,
    started: Callable[[MockAPNs, AdminServer | None], None] | None,
    broadcast: tuple[ManagementServer | None, tuple[str, int] | None] = (None, None),
) -> int:
    try:
        await mock.start(*address)
    except OSError as exc:
        log.error("mock-apns: cannot listen on %s:%d: %s", *address, exc)
        return 1
    admin = AdminServer(mock) if admin_address else None
    management, management_address = broadcast
    try:
        if admin is not None and admin_address is not None:
            await admin.start(*admin_address)
            log.info("mock-apns admin API on http://%s:%d/", admin_address[0], admin.port)
        if management is not None and management_address is not None:
            await management.start(*management_address)
            log.info(
                "mock-apns channel management on https://%s:%d", management.host, management.port
            )
        log.info(
            "mock-apns %s on https://%s:%d (scenario %s)",
            mock.environment,
            mock.host,
            mock.port,
            mock.scenario.name,
        )
        for name, value in material.summary().items():
            log.info("mock-apns %s: %s", name, value)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)
        if started is not None:
            started(mock, admin)
        try:
            await stop.wait()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.remove_signal_handler(sig)
    except OSError as exc:
        log.error("mock-apns: cannot start the admin or channel-management API: %s", exc)
        return 1
    finally:
        if management is not None:
            await management.stop()
        if admin is not None:
            await admin.stop()
        await mock.stop()
    log.info("mock-apns stopped")
    return 0
