"""The broadcast block, environment_checks and required_roots: defaults and bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from apns_exporter import apns, config
from apns_exporter.errors import ConfigError
from tests.config.test_config import KEY_NAME, TOKEN, write_p8


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A directory with a .p8 key and a certificate file."""
    write_p8(tmp_path / KEY_NAME)
    (tmp_path / "cert.pem").write_text("not read while validating the layout\n")
    return tmp_path


def _parse(text: str, base_dir: Path) -> config.Config:
    return config.parse(text, source="apns.yml", base_dir=base_dir)


def _target(environment: str, extra: str, auth: str = f"{{token: {{{TOKEN}}}}}") -> str:
    return (
        f"targets:\n  - name: t\n    environment: {environment}\n    topic: com.example.app\n"
        f"    auth: {auth}\n{extra}"
    )


@pytest.mark.parametrize(
    ("environment", "endpoint"),
    [
        ("production", (apns.PRODUCTION_MANAGEMENT_HOST, 2196)),
        ("sandbox", (apns.SANDBOX_MANAGEMENT_HOST, 2195)),
    ],
)
def test_management_endpoint_defaults_and_joins_reachability(
    config_dir: Path, environment: str, endpoint: tuple[str, int]
) -> None:
    """Without an override the environment's management host:port is probed and reached."""
    text = _target(environment, "    broadcast: {}\n    reachability: {}\n")
    target = _parse(text, config_dir).targets[0]
    assert target.broadcast is not None
    assert target.broadcast.management_endpoint(target) == endpoint
    assert target.broadcast.interval == 300.0
    assert target.broadcast_bundle_id == "com.example.app"
    assert target.reachability is not None
    assert endpoint in target.reachability.endpoints(target)


def test_reachability_leaves_management_out_without_broadcast(config_dir: Path) -> None:
    """A target without broadcast does not check the management ports."""
    target = _parse(_target("production", "    reachability: {}\n"), config_dir).targets[0]
    assert target.reachability is not None
    assert all(port not in (2195, 2196) for _, port in target.reachability.endpoints(target))


def test_broadcast_with_certificate_auth_is_one_clear_problem(config_dir: Path) -> None:
    """Broadcast on a certificate-auth target is refused, naming the key and what to do."""
    auth = f"{{certificate: {{cert_file: {config_dir / 'cert.pem'}}}}}"
    with pytest.raises(ConfigError) as caught:
        _parse(_target("production", "    broadcast: {}\n", auth=auth), config_dir)
    problems = [str(issue) for issue in caught.value.issues]
    assert len(problems) == 1, problems
    assert "broadcast needs token auth" in problems[0]
    assert "apns.yml:" in problems[0]


def test_environment_checks_default_to_both_apple_hosts_every_six_hours(config_dir: Path) -> None:
    """Without a global block both environments' push hosts are checked, every 6h."""
    checks = _parse(_target("sandbox", ""), config_dir).global_.environment_checks
    assert checks.enabled
    assert checks.interval == 6 * 3600
    assert checks.endpoints() == {
        "sandbox": (apns.SANDBOX_HOST, 443),
        "production": (apns.PRODUCTION_HOST, 443),
    }


def test_required_roots_default_to_apples_notice_and_accept_colons(config_dir: Path) -> None:
    """Apple's USERTrust root is required by default; an override's colons are normalised."""
    default = _parse(_target("production", ""), config_dir)
    assert default.required_roots() == apns.REQUIRED_ROOTS
    fingerprint = ":".join(["AB"] * 32)
    text = f'global:\n  required_roots: [{{name: test, fingerprint_sha256: "{fingerprint}"}}]\n'
    overridden = _parse(text + _target("production", ""), config_dir)
    assert overridden.required_roots() == (("test", "ab" * 32),)


def test_bad_fingerprint_is_one_line_saying_what_to_do(config_dir: Path) -> None:
    """A fingerprint that is not 64 hex digits is refused at its key, with the openssl command."""
    text = "global:\n  required_roots: [{name: test, fingerprint_sha256: abc}]\n"
    with pytest.raises(ConfigError) as caught:
        _parse(text + _target("production", ""), config_dir)
    problems = [str(issue) for issue in caught.value.issues]
    assert len(problems) == 1, problems
    assert "fingerprint_sha256" in problems[0]
    assert "openssl x509" in problems[0]
