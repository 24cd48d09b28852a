"""``mock-apns`` sub-command: flags, mock.yml, generated credentials, and a full run."""

from __future__ import annotations

import argparse
import asyncio
import json

import aiohttp
import jwt
import pytest
from mock_support import WAIT, push_headers

from apns_exporter.mock import cli, material
from apns_exporter.mock.pki import load_signing_key


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(argv)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:2197", ("127.0.0.1", 2197)),
        ("[::1]:443", ("::1", 443)),
        (":9", ("127.0.0.1", 9)),
    ],
)
def test_parse_listen(value, expected):
    """host:port, [v6]:port and :port are understood (an empty host means loopback)."""
    assert cli.parse_listen(value) == expected


def test_parse_listen_rejects_garbage():
    """A listen address without a numeric port is an error."""
    with pytest.raises(ValueError, match="not host:port"):
        cli.parse_listen("localhost")


async def test_pki_only_writes_reusable_credentials(tmp_path):
    """--pki-only writes the credential directory; a second load returns the same identities."""
    assert await cli.run(parse("--generate-pki", str(tmp_path), "--pki-only")) == 0
    manifest = json.loads((tmp_path / "mock.json").read_text())
    assert (tmp_path / f"AuthKey_{manifest['key_id']}.p8").is_file()
    for name in ("ca.pem", "ca-bundle.pem", "server.pem", "server.key", "provider.p12"):
        assert (tmp_path / name).is_file()
    again = material.load(tmp_path)
    assert (again.key_id, again.team_id) == (manifest["key_id"], manifest["team_id"])


async def test_bad_config_is_one_error_and_exit_2(tmp_path, caplog):
    """A mock.yml with an unknown key fails with exit code 2 and names the key."""
    config = tmp_path / "mock.yml"
    config.write_text("listen: 127.0.0.1:0\nscenaro: healthy\n")
    assert await cli.run(parse("--config", str(config))) == 2
    assert "scenaro" in caplog.text


async def test_unknown_scenario_exits_2(caplog):
    """An unknown --scenario name fails fast with the list of built-ins."""
    assert await cli.run(parse("--scenario", "nope", "--listen", "127.0.0.1:0")) == 2
    assert "goaway-storm" in caplog.text


async def test_full_run_serves_generated_credentials(tmp_path, connect):
    """A run with --generate-pki serves pushes signed by the generated .p8 and an admin API."""
    config = tmp_path / "mock.yml"
    config.write_text("scenario: healthy\npolicy: {authenticated_streams: 10}\n")
    args = parse(
        "--config",
        str(config),
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
        "--generate-pki",
        str(tmp_path / "pki"),
    )
    ready: asyncio.Future = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(cli.run(args, started=lambda m, a: ready.set_result((m, a))))
    try:
        mock, admin = await asyncio.wait_for(asyncio.shield(ready), WAIT)
        files = material.load(tmp_path / "pki")
        key = load_signing_key(files.key_file.read_bytes())
        token = jwt.encode(
            {"iss": files.team_id, "iat": int(mock.clock())},
            key.private_key,
            algorithm="ES256",
            headers={"kid": files.key_id},
        )
        client = await connect(mock, cadata=(tmp_path / "pki" / "ca.pem").read_bytes())
        headers = push_headers(token, apns_topic=files.topic)
        active, gone = files.device_tokens
        assert (await client.request(f"/3/device/{active}", headers=headers)).status == 200
        assert (await client.request(f"/3/device/{gone}", headers=headers)).status == 410
        await client.wait_for(lambda: client.max_streams == 1)
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{admin.port}/stats") as response,
        ):
            assert (await response.json())["requests"] == 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_broadcast_listen_and_certificate_next(tmp_path, connect, unused_tcp_port):
    """--broadcast-listen serves channel management with the .p8; --certificate next its chain."""
    args = parse(
        "--listen",
        "127.0.0.1:0",
        "--broadcast-listen",
        f"127.0.0.1:{unused_tcp_port}",
        "--certificate",
        "next",
        "--generate-pki",
        str(tmp_path / "pki"),
    )
    ready: asyncio.Future = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(cli.run(args, started=lambda m, a: ready.set_result(m)))
    try:
        mock = await asyncio.wait_for(asyncio.shield(ready), WAIT)
        assert mock.current_keypair_name() == "next"
        files = material.load(tmp_path / "pki")
        key = load_signing_key(files.key_file.read_bytes())
        token = jwt.encode(
            {"iss": files.team_id, "iat": int(mock.clock())},
            key.private_key,
            algorithm="ES256",
            headers={"kid": files.key_id},
        )
        management = argparse.Namespace(host="127.0.0.1", port=unused_tcp_port)
        client = await connect(management, cadata=(tmp_path / "pki" / "ca-next.pem").read_bytes())
        response = await client.request(
            f"/1/apps/{files.topic}/all-channels",
            headers=[("authorization", f"bearer {token}")],
            body=b"",
            method="GET",
        )
        assert (response.status, response.json) == (200, {"channels": []})
        assert "apns-request-id" in response.headers
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
