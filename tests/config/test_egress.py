"""Egress settings: proxy_url with the password in a file, and max_connection_age."""

from __future__ import annotations

from pathlib import Path

import pytest

from apns_exporter import config
from apns_exporter.client.proxy import Proxy
from apns_exporter.errors import ConfigError
from apns_exporter.web.pages import config_yaml
from tests.config.test_config import KEY_NAME, TOKEN, write_p8

SECRET = "pr0xy-Secret-42"


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A directory with a .p8 key and a proxy password file."""
    write_p8(tmp_path / KEY_NAME)
    (tmp_path / "proxy-password").write_text(SECRET + "\n")
    return tmp_path


def _target(extra: str = "", name: str = "prod") -> str:
    return (
        f"  - name: {name}\n    environment: production\n    topic: com.example.app\n"
        f"    auth: {{token: {{{TOKEN}}}}}\n{extra}"
    )


def _parse(text: str, base_dir: Path) -> config.Config:
    return config.parse(text, source="apns.yml", base_dir=base_dir)


def _problems(text: str, base_dir: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        _parse(text, base_dir)
    return [str(issue) for issue in caught.value.issues]


def test_defaults_are_no_proxy_and_one_hour(config_dir: Path) -> None:
    """Without egress keys a target has no configured proxy and a 1h max_connection_age."""
    cfg = _parse("targets:\n" + _target(), config_dir)
    egress = cfg.egress(cfg.targets[0])
    assert egress.proxy_url is None
    assert egress.proxy_password() is None
    assert egress.max_connection_age == 3600.0


def test_global_proxy_and_per_target_override(config_dir: Path) -> None:
    """A target inherits the global proxy and age unless it sets its own proxy_url or age."""
    text = (
        "global:\n  proxy_url: http://prober@proxy.internal:3128\n"
        "  proxy_password_file: proxy-password\n  max_connection_age: 30m\n"
        "targets:\n"
        + _target()
        + _target(
            "    proxy_url: http://other.internal:8080\n    max_connection_age: 2h\n", name="b"
        )
    )
    cfg = _parse(text, config_dir)
    first, second = (cfg.egress(t) for t in cfg.targets)
    assert first.proxy_url == "http://prober@proxy.internal:3128"
    assert first.proxy_password() == SECRET
    assert first.max_connection_age == 1800.0
    assert second.proxy_url == "http://other.internal:8080"
    assert second.proxy_password() is None  # the global password belongs to the global proxy
    assert second.max_connection_age == 7200.0
    proxy = Proxy.from_url(first.proxy_url, password=first.proxy_password())
    assert (proxy.username, proxy.password, proxy.port) == ("prober", SECRET, 3128)


def test_inline_password_is_a_located_error_naming_proxy_password_file(config_dir: Path) -> None:
    """A password inside proxy_url is refused at its line, pointing at proxy_password_file."""
    text = "targets:\n" + _target("    proxy_url: http://prober:hunter2@proxy.internal:3128\n")
    (problem,) = _problems(text, config_dir)
    assert problem.startswith("apns.yml:6:")
    assert "targets[0].proxy_url" in problem
    assert "proxy_password_file" in problem
    assert "hunter2" not in problem


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("https://proxy:3128", "http:// URL"),
        ("socks5://proxy:1080", "http:// URL"),
        ("http://proxy:99999", "http://[user@]host[:port]"),
        ("http://proxy:3128/path", "must not have a path"),
    ],
)
def test_bad_proxy_urls_are_reported(config_dir: Path, value: str, words: str) -> None:
    """Other proxy schemes, bad ports and paths are refused with what to write instead."""
    text = f"global:\n  proxy_url: {value}\ntargets:\n" + _target()
    (problem,) = _problems(text, config_dir)
    assert "global.proxy_url" in problem
    assert words in problem


def test_password_file_without_url_is_reported(config_dir: Path) -> None:
    """proxy_password_file alone is an error saying proxy_url must sit beside it."""
    text = "targets:\n" + _target("    proxy_password_file: proxy-password\n")
    (problem,) = _problems(text, config_dir)
    assert "proxy_password_file needs proxy_url" in problem


def test_missing_password_file_is_reported(config_dir: Path) -> None:
    """A proxy_password_file that does not exist is reported at its key."""
    text = (
        "global:\n  proxy_url: http://u@proxy:3128\n  proxy_password_file: nope\ntargets:\n"
        + _target()
    )
    (problem,) = _problems(text, config_dir)
    assert "global.proxy_password_file" in problem
    assert "file not found" in problem


def test_config_page_never_shows_the_proxy_password(config_dir: Path) -> None:
    """/config's YAML shows the proxy URL and the password file's path, never the password."""
    text = (
        "global:\n  proxy_url: http://prober@proxy.internal:3128\n"
        "  proxy_password_file: proxy-password\ntargets:\n" + _target()
    )
    shown = config_yaml(_parse(text, config_dir))
    assert "proxy_url: http://prober@proxy.internal:3128" in shown
    assert "proxy-password" in shown
    assert SECRET not in shown


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "on one line"),
        (b"first\nsecond\n", "on one line"),
        (b"\xff\xfe" + SECRET.encode(), "not UTF-8"),
        (b"x" * 2000, "larger than 1 KiB"),
    ],
)
def test_bad_password_file_is_a_located_error(config_dir: Path, content: bytes, words: str) -> None:
    """An empty, multi-line, binary or oversized password file is reported at its key."""
    (config_dir / "proxy-password").write_bytes(content)
    text = (
        "global:\n  proxy_url: http://u@proxy:3128\n  proxy_password_file: proxy-password\n"
        "targets:\n" + _target()
    )
    (problem,) = _problems(text, config_dir)
    assert problem.startswith("apns.yml:3:")
    assert "global.proxy_password_file" in problem
    assert words in problem
    assert SECRET not in problem
