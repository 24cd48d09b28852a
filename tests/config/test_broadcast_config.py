"""The broadcast block: token auth only, the environment's management endpoint by default."""

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
