"""Bad input: hostile HTTP requests to the exporter, secrets that must never leak, and
arbitrary bytes from an HTTP/2 server, which may only ever end in ConnectionLost."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apns_exporter.client.protocol import ClientProtocol
from apns_exporter.errors import ConnectionLost
from apns_exporter.mock.pki import CertificateAuthority, SigningKeyPair
from tests.reliability.support import (
    APPLE_SETTINGS,
    Gate,
    Leaks,
    Rig,
    raw_frame,
    running_exporter,
    start_mock,
    target_yaml,
    write_config,
)


@pytest.fixture
async def rig(
    tmp_path: Path, ca: CertificateAuthority, signing_key: SigningKeyPair, device: str
) -> Rig:
    """An exporter probing a healthy mock, already past its first good canary."""
    leaks = Leaks.snapshot()
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(ca.cert_pem)
    key_file = tmp_path / "AuthKey.p8"
    key_file.write_bytes(signing_key.private_pem)
    mock = await start_mock(ca, signing_key, device)
    # Timeouts far beyond a loopback answer: apns_up must not depend on how busy the machine is.
    target = target_yaml(
        "t1",
        mock.port,
        ca_file,
        key_file,
        device=device,
        interval="1s",
        canary_timeout="1s",
        ping_timeout="1s",
    )
    cfg = write_config(tmp_path / "apns.yml", target)
    try:
        async with running_exporter(cfg, Gate()) as running:
            await running.wait_canary(ok=True)
            yield running
    finally:
        await mock.stop()
    leaks.check()


@pytest.mark.parametrize(
    "path", ["/nope", "/metrics/extra", "/-/", "/config/../../etc/passwd", "/%00", "/probes/t1"]
)
async def test_unknown_paths_are_404(rig: Rig, path: str) -> None:
    """A path the exporter does not serve is a plain 404."""
    status, _ = await rig.get(path)
    assert status == 404
    assert await rig.get("/-/healthy") == (200, "Healthy\n")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/metrics"),
        ("DELETE", "/"),
        ("PUT", "/-/healthy"),
        ("PATCH", "/config"),
        ("GET", "/-/reload"),
        ("DELETE", "/-/reload"),
    ],
)
async def test_wrong_methods_are_405(rig: Rig, method: str, path: str) -> None:
    """A known path with a method it does not accept is a 405."""
    status, _ = await rig.get(path, method=method)
    assert status == 405


@pytest.mark.parametrize("size", [9_000, 100_000, 1_000_000])
async def test_huge_query_strings_are_4xx_and_harmless(rig: Rig, size: int) -> None:
    """A query string far past any sane size is refused with a 4xx; the exporter carries on."""
    for path in ("/metrics", "/probes", "/"):
        try:
            status, _ = await rig.get(f"{path}?target={'x' * size}")
        except aiohttp.ClientError:
            status = 400  # the server may hang up on a request line this long: also a refusal
        assert 400 <= status < 500, (path, status)
    assert await rig.get("/-/healthy") == (200, "Healthy\n")
    assert (await rig.scrape())[
        ("apns_up", frozenset({("target", "t1"), ("apns_environment", "production")}))
    ] == 1


async def test_concurrent_scrapes_during_reloads_all_succeed(rig: Rig, tmp_path: Path) -> None:
    """Scrapes racing with reloads that add and remove a target all answer 200."""
    config_file = Path(rig.exporter.config_file or "")
    original = read(config_file)
    second = original + original.split("targets:\n", 1)[1].replace("name: t1", "name: t2")

    async def reload(text: str) -> int:
        write(config_file, text)
        status, _ = await rig.get("/-/reload", method="POST")
        return status

    async def scrape(path: str) -> int:
        status, _ = await rig.get(path)
        return status

    paths = ["/metrics", "/", "/config", "/probes?target=t1", "/-/ready"] * 8
    jobs = [scrape(p) for p in paths]
    for index in range(6):
        jobs.insert(index * 7, reload(second if index % 2 == 0 else original))
    statuses = await asyncio.gather(*jobs)
    assert statuses == [200] * len(statuses)
    assert await rig.get("/-/healthy") == (200, "Healthy\n")
    await rig.wait_canary("t1", ok=True)


def read(path: Path) -> str:
    """A file's text (a helper, so async tests need no blocking Path calls of their own)."""
    return path.read_text()


def write(path: Path, text: str) -> None:
    """Replace a file's text."""
    path.write_text(text)


def _secret_lines(pem: bytes) -> list[str]:
    """The base64 body of a PEM key: what must never appear anywhere."""
    return [line for line in pem.decode().splitlines() if line and not line.startswith("-----")]


async def test_the_signing_key_never_appears_in_pages_logs_or_errors(
    rig: Rig, signing_key: SigningKeyPair, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """No page, log line or error message ever contains any part of the .p8 key body."""
    caplog.set_level(logging.DEBUG)
    secrets = _secret_lines(signing_key.private_pem)
    seen: list[str] = []
    for path in ("/", "/metrics", "/config", "/probes?target=t1&limit=100", "/-/ready"):
        status, body = await rig.get(path)
        assert status == 200, path
        seen.append(body)
    # A broken key (most of the body, cut short) and a broken config: errors name files only.
    config_file = Path(rig.exporter.config_file or "")
    key_file = tmp_path / "AuthKey.p8"
    write(key_file, signing_key.private_pem[:-40].decode())
    write(config_file, read(config_file).replace("auth:", "auth:\n    bogus: 1"))
    status, body = await rig.get("/-/reload", method="POST")
    assert status == 500
    seen.append(body)
    write(config_file, read(config_file).replace("\n    bogus: 1", "").replace("t1", "t3"))
    status, body = await rig.get("/-/reload", method="POST")
    seen.append(body)
    for path in ("/", "/metrics", "/config", "/probes?target=t3&limit=100"):
        seen.append((await rig.get(path))[1])
    seen += [r.getMessage() for r in caplog.records]
    seen += [str(r.exc_info[1]) for r in caplog.records if r.exc_info]
    seen += [m for r in rig.results for m in (r.message, *r.logs)]
    text = "\n".join(seen)
    leaked = [line for line in secrets if line in text or line[:16] in text]
    assert not leaked, "the .p8 key body appeared in output"


# -- the sans-IO protocol under arbitrary bytes ------------------------------------------------

frames = st.builds(
    lambda t, f, s, p: raw_frame(t, p, flags=f, stream_id=s),
    st.integers(0, 12),
    st.integers(0, 255),
    st.integers(0, 5),
    st.binary(max_size=40),
)
chunks = st.lists(st.one_of(st.binary(max_size=64), frames), max_size=12)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    preface=st.sampled_from([b"", APPLE_SETTINGS]),
    parts=chunks,
    split=st.integers(1, 64),
    push=st.booleans(),
)
def test_arbitrary_server_bytes_only_ever_raise_connection_lost(
    preface: bytes, parts: list[bytes], split: int, push: bool
) -> None:
    """Whatever bytes arrive, in whatever chunks, receive_data raises nothing but ConnectionLost."""
    client = ClientProtocol("api.push.apple.com")
    client.initiate()
    client.data_to_send()
    data = preface + b"".join(parts)
    try:
        for start in range(0, len(data), split):
            client.receive_data(data[start : start + split])
            client.data_to_send()
            if push and client.can_open_stream():
                client.send_request("POST", "/3/device/" + "ab" * 32, [], b"{}")
                push = False
    except ConnectionLost:
        pass
