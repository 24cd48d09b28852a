"""A server that answers with pages of text: the result history stays within its byte budget."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from apns_exporter.mock.pki import CertificateAuthority, SigningKeyPair
from apns_exporter.probes import ProbeKind
from apns_exporter.service import journal
from apns_exporter.web.pages import rfc3339
from tests.reliability.support import (
    Gate,
    HostileServer,
    Leaks,
    running_exporter,
    serve_h2,
    server_context,
    target_yaml,
    write_config,
)

SERVER_TEXT = 2 * 1024  # bytes of apns-id on every answer: 4.5 KiB per result, log included
CANARIES = 30  # far more than fit in either budget at this size


async def _verbose(reader: Any, writer: Any) -> None:
    """An h2 server that rejects every push with a 2 KiB apns-id."""
    counter = 0

    async def reject(conn: Any, stream_id: int, _: Any) -> bytes:
        nonlocal counter
        counter += 1
        apns_id = f"{counter:08d}".encode() + b"x" * SERVER_TEXT
        conn.send_headers(stream_id, [(b":status", b"400"), (b"apns-id", apns_id)])
        return b'{"reason":"BadDeviceToken"}'

    await serve_h2(reader, writer, reject)


async def test_long_server_texts_keep_the_history_within_its_byte_budget(
    tmp_path: Path,
    ca: CertificateAuthority,
    signing_key: SigningKeyPair,
    device: str,
    gate: Gate,
) -> None:
    """Canaries failing with 2 KiB of server text stay within budget; /probes shows the last."""
    leaks = Leaks.snapshot()
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    key_file = tmp_path / "AuthKey.p8"
    key_file.write_bytes(signing_key.private_pem)
    async with HostileServer(_verbose, server_context(ca, tmp_path, ["h2"])) as server:
        cfg = write_config(
            tmp_path / "apns.yml",
            target_yaml("t1", server.port, ca_file, key_file, device=device, auth_check=False),
        )
        async with running_exporter(cfg, gate) as rig:
            await rig.wait_canary(ok=False, count=CANARIES)
            await rig.quiesce()  # nothing runs while the journal and the page are read
            book = rig.exporter.journal
            recent_bytes, failure_bytes = book.kept_bytes("t1")
            history, failures = book.history("t1"), book.failures("t1")
            last = next(
                r for r in reversed(rig.results) if r.probe is ProbeKind.CANARY and not r.ok
            )
            async with aiohttp.ClientSession() as session:
                url = f"{rig.url}/probes?target=t1&limit={journal.HISTORY_LIMIT}"
                async with session.get(url) as response:
                    page = await response.text()
            rig.resume()
    leaks.check()
    assert all(len(r.pushes[0].apns_id or "") > SERVER_TEXT for r in failures)
    assert recent_bytes <= journal.HISTORY_BYTES
    assert failure_bytes <= journal.FAILURE_BYTES
    # The byte budget, not the count, is what bounded both windows.
    assert len(history) < journal.HISTORY_LIMIT
    assert 1 <= len(failures) < journal.FAILURES_KEPT
    assert failures[0] is last
    assert f"=== canary at {rfc3339(last.started_at)}: FAILED (layer apns)" in page
