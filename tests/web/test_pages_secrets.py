"""What the unauthenticated pages show: nothing a server echoed back, no push magic."""

from __future__ import annotations

import asyncio
import re

import h2.config
import h2.connection
import h2.events

from apns_exporter.mock.pki import CertificateAuthority, generate_ca
from apns_exporter.mock.server import MockAPNs
from tests.functional.test_credentials import _cert_target, _write_pem
from tests.helpers import Workspace
from tests.reliability.support import HostileServer, server_context

JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.[\w-]+")


async def echo_authorization(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """An h2 endpoint answering every push with the request's authorization header echoed."""
    conn = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=False, header_encoding=None)
    )
    conn.initiate_connection()
    writer.write(conn.data_to_send())
    while data := await reader.read(65536):
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.RequestReceived) and event.stream_id:
                sent = {bytes(k): bytes(v) for k, v in event.headers or []}
                echoed = sent.get(b"authorization", b"none")
                conn.send_headers(
                    event.stream_id,
                    [
                        (b":status", b"403"),
                        (b"apns-id", echoed),
                        (b"apns-unique-id", echoed),
                        (b"x-echo", b"authorization: " + echoed),
                        (b"content-type", b"application/json"),
                    ],
                )
                conn.send_data(
                    event.stream_id, b'{"reason":"InvalidProviderToken"}', end_stream=True
                )
        writer.write(conn.data_to_send())
        await writer.drain()


async def test_probes_page_shows_no_echoed_authorization(
    ca: CertificateAuthority, workspace: Workspace, device: str, run_exporter
) -> None:
    """An endpoint echoing the JWT in apns-id and apns-unique-id does not put it on /probes."""
    async with HostileServer(
        echo_authorization, server_context(ca, workspace.path, ["h2"])
    ) as server:
        cfg = workspace.config(workspace.target(server.port, devices=(device,)))
        async with run_exporter(cfg) as running:
            result = await running.wait_canary()
            assert any(JWT.search(line) for line in result.logs), result.logs
            probes = await running.scrape_text("/probes?target=t1")
            landing = await running.scrape_text("/")
    assert "apns-id=<not a UUID, not shown>" in probes
    for page in (probes, landing):
        assert not JWT.search(page)
        assert "bearer ey" not in page.lower()


async def test_config_page_masks_push_magic(
    mock: MockAPNs, workspace: Workspace, device: str, run_exporter
) -> None:
    """/config shows an MDM target's push_magic as <secret>."""
    mdm = generate_ca("pages test provider CA").issue_mdm()
    block = (
        "  canary:\n    interval: 1h\n    push_type: mdm\n"
        f"    push_magic: 7B2E0A44-MAGIC\n"
        f'    device_tokens: ["{device}"]\n'
    )
    path = _write_pem(workspace, mdm, "mdm")
    cfg = workspace.config(_cert_target(workspace, mock.port, path, topic=None, canary_block=block))
    async with run_exporter(cfg) as running:
        page = await running.scrape_text("/config")
    assert "push_magic: <secret>" in page
    assert "7B2E0A44-MAGIC" not in page
