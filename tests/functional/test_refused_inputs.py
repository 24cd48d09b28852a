"""Operator files that look valid but would stall or weaken the exporter, refused by the CLI
in one located line: a PKCS#12 with a huge iteration count, a receipt secret of one byte."""

from __future__ import annotations

import time

import pytest

from apns_exporter.mock.pki import CertificateAuthority
from tests.functional.test_credentials import _cert_target
from tests.helpers import TOPIC, Workspace, run_cli

PASSWORD = b"export password"


def _tlv(tag: int, content: bytes) -> bytes:
    """One DER element."""
    if len(content) < 0x80:
        return bytes([tag, len(content)]) + content
    size = (len(content).bit_length() + 7) // 8
    return bytes([tag, 0x80 | size]) + len(content).to_bytes(size, "big") + content


def _items(data: bytes) -> list[tuple[int, bytes]]:
    """The DER elements one after another in ``data``: (tag, content)."""
    out, pos = [], 0
    while pos < len(data):
        tag, length = data[pos], data[pos + 1]
        pos += 2
        if length & 0x80:
            size = length & 0x7F
            length = int.from_bytes(data[pos : pos + size], "big")
            pos += size
        out.append((tag, data[pos : pos + length]))
        pos += length
    return out


def with_mac_iterations(pfx: bytes, iterations: int) -> bytes:
    """``pfx`` with its MacData iteration count replaced (the MAC no longer matches)."""
    [(_, body)] = _items(pfx)
    version, auth_safe, (_, mac_data) = _items(body)
    digest, salt, _ = _items(mac_data)
    count = iterations.to_bytes((iterations.bit_length() + 8) // 8, "big")
    mac = _tlv(0x30, b"".join(_tlv(t, c) for t, c in (digest, salt, (0x02, count))))
    return _tlv(0x30, _tlv(*version) + _tlv(*auth_safe) + mac)


def test_pkcs12_with_a_huge_mac_iteration_count_is_refused_quickly(
    ca: CertificateAuthority, workspace: Workspace, device: str
) -> None:
    """--config.check refuses a .p12 with 2**31-1 MAC iterations at once, naming the file."""
    p12 = workspace.path / "push.p12"
    p12.write_bytes(with_mac_iterations(ca.issue_provider(TOPIC).pkcs12(PASSWORD), 2**31 - 1))
    (workspace.path / "push.pass").write_bytes(PASSWORD)
    cfg = workspace.config(
        _cert_target(
            workspace,
            443,
            p12,
            device=device,
            extra_auth=f"password_file: {workspace.path / 'push.pass'}",
        )
    )
    started = time.monotonic()
    done = run_cli("--config.check", f"--config.file={cfg}")
    assert time.monotonic() - started < 20
    assert done.returncode == 1, done.stderr
    assert f"PKCS#12 {p12}: 2147483647 key derivation iterations" in done.stderr
    assert "more than the 1000000 allowed" in done.stderr
    assert "Traceback" not in done.stderr


def test_pkcs12_with_the_usual_iteration_count_still_loads(
    ca: CertificateAuthority, workspace: Workspace, device: str
) -> None:
    """The same file with OpenSSL's usual 2048 iterations passes --config.check."""
    p12 = workspace.path / "push.p12"
    p12.write_bytes(ca.issue_provider(TOPIC).pkcs12(PASSWORD))
    (workspace.path / "push.pass").write_bytes(PASSWORD)
    cfg = workspace.config(
        _cert_target(
            workspace,
            443,
            p12,
            device=device,
            extra_auth=f"password_file: {workspace.path / 'push.pass'}",
        )
    )
    done = run_cli("--config.check", f"--config.file={cfg}")
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("secret", "weak"),
    [
        (b"\0" * 32, True),
        (b"a" * 64 + b"\n", True),
        (b"ab" * 32, True),
        (b"0123456789abcdef" * 2, False),
    ],
    ids=["32-nul", "one-letter", "two-letters", "hex"],
)
def test_trivially_weak_receipt_secret_is_refused(
    workspace: Workspace, device: str, secret: bytes, weak: bool
) -> None:
    """A receipt secret of one repeated byte (or two) is refused in one line naming the key."""
    secret_file = workspace.path / "receipt.key"
    secret_file.write_bytes(secret)
    target = workspace.target(443, devices=(device,))
    target += f"    delivery: {{secret_file: {secret_file}}}\n"
    cfg = workspace.config(target)
    done = run_cli("--config.check", f"--config.file={cfg}")
    if not weak:
        assert done.returncode == 0, done.stderr
        return
    assert done.returncode == 1, done.stderr
    located = [line for line in done.stderr.splitlines() if "different byte value" in line]
    assert len(located) == 1, done.stderr
    assert located[0].startswith(f"error: {cfg}:"), located
    assert "canary.delivery.secret_file" in located[0]
    assert "openssl rand -hex 32" in located[0]
