"""check_files(): every file a config names, loaded before the config is used, located."""

from __future__ import annotations

import datetime as dt
import os
import secrets
import threading
from pathlib import Path
from typing import Any

import pytest

from apns_exporter import config, files
from apns_exporter.creds.credential import (
    Credential,
    check_files,
    load_credential,
    load_credential_async,
)
from apns_exporter.creds.tokens import TokenCache
from apns_exporter.mock.pki import CertificateAuthority
from tests.helpers import TOPIC, Workspace, run_cli


def _certificate_config(ws: Workspace, cert: Path, key: Path, extra: str = "") -> Path:
    return ws.config(
        f"""\
- name: c1
  environment: production
  endpoint: 127.0.0.1:1
  topic: {TOPIC}
  ca_file: {ws.ca_file}
  auth:
    certificate:
      cert_file: {cert}
      key_file: {key}
{extra}"""
    )


def test_an_unloadable_key_is_a_problem_located_at_its_key(workspace: Workspace) -> None:
    """A key file that validates as a file but is no key is a problem at auth.token.key_file."""
    cfg = workspace.config(workspace.target(1, auth_check=True))
    workspace.key_file.write_text("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    checked = check_files(str(cfg), config.load(cfg))
    assert [str(p).split(": ", 1)[0] for p in checked.problems] == [f"{cfg}:11:9"]
    assert "auth.token.key_file: target t1: signing key" in str(checked.problems[0])
    assert "not a valid PEM PKCS#8 key" in str(checked.problems[0])


def test_files_that_turned_bad_after_validation_are_located(
    workspace: Workspace, ca: CertificateAuthority
) -> None:
    """A CA file, receipt secret and password file broken after loading are each located."""
    cert, key = ca.issue_provider(TOPIC).write(workspace.path, "push")
    password = workspace.path / "password"
    password.write_text("pw\n")
    secret = workspace.path / "receipt.key"
    secret.write_text(secrets.token_hex(32))
    delivery = workspace.target(1, name="r1", devices=("ab" * 32,))
    delivery += f"    delivery:\n      secret_file: {secret}\n"
    cfg = workspace.config(
        f"""\
- name: c1
  environment: production
  endpoint: 127.0.0.1:1
  topic: {TOPIC}
  ca_file: {workspace.ca_file}
  auth:
    certificate:
      cert_file: {cert}
      key_file: {key}
      password_file: {password}
"""
        + delivery
    )
    loaded = config.load(cfg)
    # Swapped after the config was validated, as a rotation or an edit would.
    workspace.ca_file.write_bytes(b"\x30\x03junk")
    password.unlink()
    os.mkfifo(password)
    secret.write_text("short")
    problems = [str(p) for p in check_files(str(cfg), loaded).problems]
    assert any(f"{cfg}:8:5: targets[0].ca_file: target c1: CA file" in p for p in problems)
    assert len([p for p in problems if "targets[1].ca_file" in p]) == 1
    assert any("password_file: target c1: password file" in p and "FIFO" in p for p in problems)
    assert any(
        "canary.delivery.secret_file: target r1: receipt secret" in p and "use at least 16" in p
        for p in problems
    )


def test_expiry_and_not_yet_valid_are_warnings(
    workspace: Workspace, ca: CertificateAuthority
) -> None:
    """An expired certificate and one not yet valid are warnings, never problems."""
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=400)
    old = ca.issue_provider(TOPIC, valid_from=past, valid_until=past + dt.timedelta(days=30))
    cfg = _certificate_config(workspace, *old.write(workspace.path, "old"))
    checked = check_files(str(cfg), config.load(cfg))
    assert checked.problems == ()
    assert [w for w in checked.warnings if "expired at" in w]
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=3)
    future = ca.issue_provider(TOPIC, valid_from=soon, valid_until=soon + dt.timedelta(days=30))
    cfg = _certificate_config(workspace, *future.write(workspace.path, "future"))
    checked = check_files(str(cfg), config.load(cfg))
    assert checked.problems == ()
    assert [w for w in checked.warnings if "is not valid before" in w]


def test_config_check_warns_about_a_certificate_not_yet_valid(
    workspace: Workspace, ca: CertificateAuthority
) -> None:
    """--config.check passes a certificate valid from next week but says when it starts."""
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=7)
    future = ca.issue_provider(TOPIC, valid_from=soon, valid_until=soon + dt.timedelta(days=30))
    cert, key = future.write(workspace.path, "future")
    cfg = _certificate_config(workspace, cert, key)
    done = run_cli("--config.check", f"--config.file={cfg}")
    assert done.returncode == 0, done.stderr
    assert f"warning: target c1: certificate {cert}: " in done.stderr
    assert f"is not valid before {soon:%Y-%m-%d}" in done.stderr


def test_a_rotated_fifo_is_refused_and_the_file_watch_sees_it_once(workspace: Workspace) -> None:
    """A key swapped for a FIFO fails to load at once, and is not reported again unchanged."""
    cfg = workspace.config(workspace.target(1, auth_check=True))
    target = config.load(cfg).targets[0]
    credential = Credential(target, TokenCache())
    loaded, error = load_credential(credential)
    assert loaded is not None
    assert error is None
    assert not credential.changed()
    workspace.key_file.unlink()
    os.mkfifo(workspace.key_file)
    assert credential.changed()
    loaded, error = load_credential(credential)
    assert loaded is None
    assert error is not None
    assert error.reason == "not_regular"
    assert str(error) == (
        f"signing key {workspace.key_file}: is a FIFO (named pipe), not a regular file "
        "(point at a regular file)"
    )
    assert not credential.changed()


@pytest.mark.parametrize("mode", [0o440, 0o640])
def test_group_read_of_a_key_is_not_warned(workspace: Workspace, mode: int) -> None:
    """A key readable by its group only (Kubernetes defaultMode 0440) loads with no warning."""
    cfg = workspace.config(workspace.target(1, auth_check=True))
    workspace.key_file.chmod(mode)
    checked = check_files(str(cfg), config.load(cfg))
    assert checked.problems == ()
    assert checked.warnings == ()


async def test_async_load_reads_in_a_worker_thread(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """load_credential_async reads the key file off the event loop's thread."""
    cfg = workspace.config(workspace.target(1, auth_check=True))
    credential = Credential(config.load(cfg).targets[0], TokenCache())
    threads: list[int] = []
    real = files.read_bytes

    def spy(*args: Any, **kwargs: Any) -> bytes:
        threads.append(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(files, "read_bytes", spy)
    loaded, error = await load_credential_async(credential)
    assert error is None
    assert loaded is not None
    assert threads
    assert threading.get_ident() not in threads
