"""Tests for apns_exporter.config and its helpers (durations, yamlsource)."""

from __future__ import annotations

import os
import re
import shutil
import string
from pathlib import Path
from typing import Any

import pydantic
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apns_exporter import apns, config
from apns_exporter.config.durations import format_duration, parse_duration
from apns_exporter.errors import ConfigError
from apns_exporter.mock.pki import generate_ca

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "config.yaml"
KEY_NAME = "AuthKey_ABC123DEFG.p8"
LOCATION = re.compile(r"apns\.yml:\d+:\d+")

VALID = """\
targets:
  - name: prod
    environment: production
    topic: com.example.app
    auth:
      token:
        key_file: AuthKey_ABC123DEFG.p8
        key_id: ABC123DEFG
        team_id: DEF123GHIJ
"""
TOKEN = "key_file: AuthKey_ABC123DEFG.p8, key_id: ABC123DEFG, team_id: DEF123GHIJ"


def write_p8(path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    write_p8(tmp_path / KEY_NAME)
    return tmp_path


@pytest.fixture(scope="module")
def shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config")
    write_p8(path / KEY_NAME)
    return path


def parse(text: str, base_dir: Path) -> config.Config:
    return config.parse(text, source="apns.yml", base_dir=base_dir)


def problems(text: str, base_dir: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(text, base_dir)
    return [str(issue) for issue in caught.value.issues]


# -- valid configs --------------------------------------------------------------------------


def test_example_config_loads(tmp_path: Path) -> None:
    """examples/config.yaml is valid once the key files it names exist next to it."""
    shutil.copy(EXAMPLE, tmp_path / "config.yaml")
    for name in set(re.findall(r"AuthKey_\w+\.p8", EXAMPLE.read_text())):
        write_p8(tmp_path / name)
    loaded = config.load(tmp_path / "config.yaml")
    assert loaded.global_.scrape_timeout == 10.0
    prod, sandbox = loaded.targets
    assert (prod.name, prod.environment, prod.host, prod.port) == (
        "prod-main",
        apns.Environment.PRODUCTION,
        apns.PRODUCTION_HOST,
        443,
    )
    assert prod.auth.method == "token"
    assert prod.auth.token is not None
    assert prod.auth.token.key_file == tmp_path / KEY_NAME
    assert prod.auth.token.refresh_interval == 3000.0
    assert (prod.ping.interval, prod.ping.timeout) == (60.0, 5.0)
    assert prod.canary is not None
    assert prod.canary.auth_check
    assert prod.canary.payload == {"aps": {"content-available": 1}}
    assert sandbox.host == apns.SANDBOX_HOST
    assert sandbox.canary is not None
    assert sandbox.canary.interval == 900.0


def test_minimal_target_gets_documented_defaults(config_dir: Path) -> None:
    """Keys left out take the defaults docs/configuration.md lists."""
    loaded = parse(VALID, config_dir)
    target = loaded.targets[0]
    assert loaded.global_ == config.GlobalConfig(scrape_timeout=10.0)
    assert target.endpoint is None
    assert target.ca_file is None
    assert target.canary is None
    assert target.ping == config.PingConfig(interval=60.0, timeout=None)
    assert target.auth.token is not None
    assert target.auth.token.refresh_interval == 3000.0


def test_canary_defaults(config_dir: Path) -> None:
    """A canary with only auth_check gets background, priority 5, the silent payload, 5m."""
    canary = parse(VALID + "    canary: {auth_check: true}\n", config_dir).targets[0].canary
    assert canary == config.CanaryConfig(
        interval=300.0,
        timeout=None,
        device_tokens=(),
        auth_check=True,
        push_type=apns.PushType.BACKGROUND,
        priority=5,
        payload={"aps": {"content-available": 1}},
        expiration=0,
    )


def test_device_tokens_are_lowercased_and_long_tokens_accepted(config_dir: Path) -> None:
    """Device tokens are stored lower-case, and 160-digit Live Activity tokens are valid."""
    text = VALID + f"    canary:\n      device_tokens: [{'AB' * 32}, {'cd' * 80}]\n"
    canary = parse(text, config_dir).targets[0].canary
    assert canary is not None
    assert canary.device_tokens == ("ab" * 32, "cd" * 80)


@pytest.mark.parametrize(
    ("endpoint", "host", "port"),
    [
        ("127.0.0.1:8443", "127.0.0.1", 8443),
        ("api.push.apple.com:2197", "api.push.apple.com", 2197),
        ("'[::1]:2197'", "::1", 2197),
    ],
)
def test_endpoint_overrides_host_and_port(
    config_dir: Path, endpoint: str, host: str, port: int
) -> None:
    """An endpoint override, IPv6 in brackets included, replaces the environment's host and 443."""
    target = parse(VALID + f"    endpoint: {endpoint}\n", config_dir).targets[0]
    assert (target.host, target.port) == (host, port)


def test_relative_paths_resolve_from_the_config_files_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """key_file and ca_file are relative to the config file, not the working directory."""
    (tmp_path / "etc" / "keys").mkdir(parents=True)
    write_p8(tmp_path / "etc" / "keys" / KEY_NAME)
    (tmp_path / "etc" / "ca.pem").write_bytes(generate_ca("relative").cert_pem)
    text = VALID.replace(KEY_NAME, f"keys/{KEY_NAME}") + "    ca_file: ca.pem\n"
    (tmp_path / "etc" / "apns.yml").write_text(text)
    monkeypatch.chdir(tmp_path)
    target = config.load(Path("etc/apns.yml")).targets[0]
    assert target.auth.token is not None
    assert target.auth.token.key_file.is_absolute()
    assert target.auth.token.key_file.samefile(tmp_path / "etc" / "keys" / KEY_NAME)
    assert target.ca_file is not None
    assert target.ca_file.samefile(tmp_path / "etc" / "ca.pem")


def test_x_keys_hold_anchors_for_merging(config_dir: Path) -> None:
    """Top-level x- keys are ignored, so targets can share settings through << merges."""
    text = f"""\
x-token: &token
  token: {{{TOKEN}}}
x-target: &target
  environment: production
  topic: com.example.app
  auth: *token
targets:
  - <<: *target
    name: one
  - <<: *target
    name: two
    environment: sandbox
"""
    one, two = parse(text, config_dir).targets
    assert (one.name, one.environment) == ("one", apns.Environment.PRODUCTION)
    assert (two.name, two.environment) == ("two", apns.Environment.SANDBOX)
    assert one.auth == two.auth


def test_config_is_frozen(config_dir: Path) -> None:
    """A loaded config cannot be changed in place."""
    target = parse(VALID, config_dir).targets[0]
    with pytest.raises(pydantic.ValidationError):
        target.name = "other"


# -- invalid configs: exact messages --------------------------------------------------------

HINT = "check the path, relative paths are resolved from the config file's directory"
TOKEN_RULE = "device token must be an even number of hex digits from 64 to 200; this one"
ENDPOINT_RULE = "endpoint must be host:port, e.g. api.push.apple.com:2197 or [::1]:8443"
TARGET_KEYS = (
    "name, environment, endpoint, auth, inventory_only, labels, topic, ca_file, ping, canary, "
    "tls_check, reachability, broadcast, proxy_url, proxy_password_file, max_connection_age"
)
CANARY = VALID + "    canary:\n      auth_check: true\n"

BAD_CONFIGS = [
    pytest.param(
        "",
        [
            "apns.yml:1:1: config file is empty; it needs a targets: list "
            "(see examples/config.yaml)",
        ],
        id="empty",
    ),
    pytest.param(
        "# just a comment\n\n",
        [
            "apns.yml:1:1: config file is empty; it needs a targets: list "
            "(see examples/config.yaml)",
        ],
        id="only-comments",
    ),
    pytest.param(
        "- a\n- b\n",
        [
            "apns.yml:1:1: the top level must be a mapping with a targets: list, not a list",
        ],
        id="top-level-list",
    ),
    pytest.param(
        VALID.replace("    topic: com.example.app", "    topic: [com.example.app"),
        [
            "apns.yml:5:9: invalid YAML: while parsing a flow sequence, expected ',' or ']', "
            "but got ':' (check indentation and quoting)",
        ],
        id="malformed-yaml",
    ),
    pytest.param(
        VALID.replace("    topic", "\ttopic"),
        [
            "apns.yml:4:1: invalid YAML: while scanning for the next token, found character '\\t' "
            "that cannot start any token (indent with spaces, not tabs)",
        ],
        id="tab-indent",
    ),
    pytest.param(
        VALID + "---\n" + VALID,
        [
            "apns.yml:10:1: invalid YAML: expected a single document in the stream, but found "
            "another document (keep one document per file: remove the extra ---)",
        ],
        id="two-documents",
    ),
    pytest.param(
        "targets: []\n",
        [
            "apns.yml:1:1: targets: at least one target is required (or target_files:, or "
            "discover:)",
        ],
        id="no-targets",
    ),
    pytest.param(
        "targets:\n  prod:\n    environment: production\n",
        [
            "apns.yml:1:1: targets: expected a list, got a mapping",
        ],
        id="targets-mapping",
    ),
    pytest.param(
        VALID.replace("targets:", "global: {}\ntarget:"),
        [
            "apns.yml:1:1: targets: at least one target is required (or target_files:, or "
            "discover:)",
            "apns.yml:2:1: unknown key 'target' (did you mean 'targets'? "
            "allowed: global, receipts, target_files, discover, targets)",
        ],
        id="unknown-top-level-key",
    ),
    pytest.param(
        "global:\n  scrape_timeot: 5s\n" + VALID,
        [
            "apns.yml:2:3: global: unknown key 'scrape_timeot' (did you mean 'scrape_timeout'? "
            "allowed: scrape_timeout, credential_check_interval, proxy_url, proxy_password_file, "
            "max_connection_age, required_roots, environment_checks)",
        ],
        id="unknown-global-key",
    ),
    pytest.param(
        VALID + "    pingg: {interval: 5s}\n",
        [
            f"apns.yml:10:5: targets[0]: unknown key 'pingg' (did you mean 'ping'? allowed: "
            f"{TARGET_KEYS})",
        ],
        id="unknown-target-key",
    ),
    pytest.param(
        VALID.replace("      token:", "      certificate: {}\n      token:"),
        [
            "apns.yml:6:7: targets[0].auth.certificate: missing required key 'cert_file'",
        ],
        id="certificate-without-file",
    ),
    pytest.param(
        f"targets:\n  - name: prod\n    auth:\n      token: {{{TOKEN}}}\n",
        [
            "apns.yml:2:5: targets[0]: missing required key 'environment'",
            "apns.yml:2:5: targets[0].topic: required with token auth: the app's bundle ID "
            "(e.g. topic: com.example.app)",
        ],
        id="missing-keys",
    ),
    pytest.param(
        VALID.replace("        team_id: DEF123GHIJ\n", ""),
        [
            "apns.yml:6:7: targets[0].auth.token: missing required key 'team_id'",
        ],
        id="missing-team-id",
    ),
    pytest.param(
        VALID.replace(
            "topic: com.example.app\n", "topic: com.example.app\n    topic: com.example.other\n"
        ),
        [
            "apns.yml:5:5: targets[0]: duplicate key 'topic' (first defined on line 4); "
            "keep only one",
        ],
        id="duplicate-yaml-key",
    ),
    pytest.param(
        VALID + f"  - name: prod\n    environment: sandbox\n    topic: t\n"
        f"    auth: {{token: {{{TOKEN}}}}}\n",
        [
            "apns.yml:10:5: targets[1].name: duplicate target name 'prod' (also targets[0]); "
            "give each target its own name",
        ],
        id="duplicate-target-name",
    ),
    pytest.param(
        VALID.replace("name: prod", "name: prod main"),
        [
            "apns.yml:2:5: targets[0].name: 'prod main' is not a valid target name "
            "(use letters, digits, _ . -)",
        ],
        id="bad-target-name",
    ),
    pytest.param(
        VALID.replace("production", "prod"),
        [
            "apns.yml:3:5: targets[0].environment: must be 'production' or 'sandbox', got 'prod'",
        ],
        id="bad-environment",
    ),
    pytest.param(
        VALID.replace("topic: com.example.app", "topic: !env TOPIC"),
        [
            "apns.yml:4:12: targets[0].topic: cannot read value: unsupported tag !env "
            "(write a plain value)",
        ],
        id="unsupported-tag",
    ),
    pytest.param(
        VALID.replace("production", "2024-13-01"),
        [
            "apns.yml:3:18: targets[0].environment: cannot read '2024-13-01' as !!timestamp: "
            "month must be in 1..12 (quote it if it is meant as text)",
        ],
        id="impossible-date",
    ),
    pytest.param(
        VALID.replace("name: prod", "name: !!int"),
        [
            "apns.yml:2:11: targets[0].name: cannot read '' as !!int "
            "(quote it if it is meant as text)",
        ],
        id="empty-int-tag",
    ),
    pytest.param(
        VALID.replace(KEY_NAME, "keys/missing.p8"),
        [
            "apns.yml:7:9: targets[0].auth.token.key_file: file not found: "
            f"{{dir}}/keys/missing.p8 ({HINT})",
        ],
        id="key-file-missing",
    ),
    pytest.param(
        VALID.replace(KEY_NAME, "."),
        [
            "apns.yml:7:9: targets[0].auth.token.key_file: {dir}: is a directory, not a file "
            "(point at the file inside it)",
        ],
        id="key-file-directory",
    ),
    pytest.param(
        VALID + "    ca_file: missing.pem\n",
        [
            f"apns.yml:10:5: targets[0].ca_file: file not found: {{dir}}/missing.pem ({HINT})",
        ],
        id="ca-file-missing",
    ),
    pytest.param(
        VALID.replace("ABC123DEFG\n", "abc123defg\n").replace(
            "team_id: DEF123GHIJ", "team_id: 1234567890"
        ),
        [
            "apns.yml:8:9: targets[0].auth.token.key_id: must be the 10-character key ID from "
            "Apple: upper-case letters and digits",
            "apns.yml:9:9: targets[0].auth.token.team_id: expected a string, got a number "
            "(put the value in quotes)",
        ],
        id="bad-apple-ids",
    ),
    pytest.param(
        VALID + "        refresh_interval: 10m\n",
        [
            "apns.yml:10:9: targets[0].auth.token.refresh_interval: must be between 20m and 1h "
            "(APNs rejects tokens older than 1h, and new tokens sooner than 20m after the last)",
        ],
        id="refresh-too-often",
    ),
    pytest.param(
        VALID + "        refresh_interval: 61m\n",
        [
            "apns.yml:10:9: targets[0].auth.token.refresh_interval: must be between 20m and 1h "
            "(APNs rejects tokens older than 1h, and new tokens sooner than 20m after the last)",
        ],
        id="refresh-too-rarely",
    ),
    pytest.param(
        VALID.split("    auth:")[0] + "    auth: {}\n",
        [
            "apns.yml:5:5: targets[0].auth: auth needs exactly one of: token, certificate",
        ],
        id="auth-empty",
    ),
    pytest.param(
        VALID + "    ping:\n      interval: 10x\n      timeout: yes\n",
        [
            "apns.yml:11:7: targets[0].ping.interval: invalid duration '10x' "
            "(use 500ms, 10s, 5m, 1h30m, or a number of seconds)",
            "apns.yml:12:7: targets[0].ping.timeout: expected a duration "
            "(500ms, 10s, 5m, 1h30m, or a number of seconds)",
        ],
        id="bad-durations",
    ),
    pytest.param(
        VALID + '    ping: {interval: "10"}\n',
        [
            "apns.yml:10:12: targets[0].ping.interval: invalid duration '10': a number in "
            "quotes is a string, and a duration string needs a unit; write 10s, or 10 without "
            "quotes",
        ],
        id="quoted-number-duration",
    ),
    pytest.param(
        "global:\n  scrape_timeout: 0s\n" + VALID,
        [
            "apns.yml:2:3: global.scrape_timeout: must be greater than zero",
        ],
        id="zero-timeout",
    ),
    pytest.param(
        VALID + "    ping: {interval: 5s, timeout: 10s}\n",
        [
            "apns.yml:10:26: targets[0].ping.timeout: timeout (10s) must not be longer than "
            "interval (5s)",
        ],
        id="timeout-over-interval",
    ),
    pytest.param(
        VALID + "    ping:\n",
        [
            "apns.yml:10:5: targets[0].ping: expected a mapping of keys to values, "
            "got nothing (an empty value)",
        ],
        id="ping-empty",
    ),
    pytest.param(
        VALID + "    endpoint: api.push.apple.com\n",
        [
            f"apns.yml:10:5: targets[0].endpoint: {ENDPOINT_RULE}",
        ],
        id="endpoint-without-port",
    ),
    pytest.param(
        VALID + "    endpoint: ::1:8443\n",
        [
            f"apns.yml:10:5: targets[0].endpoint: {ENDPOINT_RULE} (put IPv6 addresses in brackets)",
        ],
        id="endpoint-bare-ipv6",
    ),
    pytest.param(
        VALID + "    endpoint: https://api.push.apple.com:443\n",
        [
            f"apns.yml:10:5: targets[0].endpoint: {ENDPOINT_RULE} (no scheme or path)",
        ],
        id="endpoint-url",
    ),
    pytest.param(
        VALID + "    endpoint: localhost:70000\n",
        [
            f"apns.yml:10:5: targets[0].endpoint: {ENDPOINT_RULE}",
        ],
        id="endpoint-port-range",
    ),
    pytest.param(
        VALID + "    canary:\n      interval: 5m\n",
        [
            "apns.yml:10:5: targets[0].canary: canary needs device_tokens, auth_check: true, "
            "or both (remove canary to send no canary pushes)",
        ],
        id="canary-sends-nothing",
    ),
    pytest.param(
        CANARY + "      priority: 10\n",
        [
            "apns.yml:12:7: targets[0].canary.priority: background pushes cannot use priority 10 "
            "(APNs answers 400 BadPriority); use 5",
        ],
        id="background-priority-10",
    ),
    pytest.param(
        CANARY + "      push_type: alert\n      priority: 7\n",
        [
            "apns.yml:13:7: targets[0].canary.priority: must be 10 (immediate), "
            "5 (power-considerate) or 1 (low)",
        ],
        id="bad-priority",
    ),
    pytest.param(
        CANARY + "      push_type: silent\n",
        [
            "apns.yml:12:7: targets[0].canary.push_type: must be 'alert', 'background', "
            "'location', 'voip', 'complication', 'fileprovider', 'mdm', 'liveactivity', "
            "'pushtotalk', 'widgets' or 'controls', got 'silent'",
        ],
        id="bad-push-type",
    ),
    pytest.param(
        CANARY + "      push_type: voip\n",
        [
            "apns.yml:10:5: targets[0].canary: push_type voip needs a topic ending in '.voip' "
            "(e.g. topic: com.example.app.voip), or APNs answers BadTopic",
        ],
        id="voip-topic-suffix",
    ),
    pytest.param(
        CANARY + "      auth_check: 'true'\n",
        [
            "apns.yml:12:7: targets[0].canary: duplicate key 'auth_check' (first defined on "
            "line 11); keep only one",
        ],
        id="duplicate-canary-key",
    ),
    pytest.param(
        VALID + "    canary: {auth_check: 'true'}\n",
        [
            "apns.yml:10:14: targets[0].canary.auth_check: expected true or false, got a string",
        ],
        id="auth-check-string",
    ),
    pytest.param(
        VALID
        + "    canary:\n      device_tokens:\n        - abc\n        - "
        + "g" * 64
        + "\n        - "
        + "a" * 65
        + "\n        - "
        + "1" * 64
        + "\n",
        [
            f"apns.yml:12:11: targets[0].canary.device_tokens[0]: {TOKEN_RULE} has 3",
            f"apns.yml:13:11: targets[0].canary.device_tokens[1]: {TOKEN_RULE} has characters "
            "other than 0-9 and a-f",
            f"apns.yml:14:11: targets[0].canary.device_tokens[2]: {TOKEN_RULE} has 65",
            "apns.yml:15:11: targets[0].canary.device_tokens[3]: expected a string, got a number "
            "(put the value in quotes)",
        ],
        id="bad-device-tokens",
    ),
    pytest.param(
        CANARY + "      payload: {aps: {alert: " + "x" * 4100 + "}}\n",
        [
            "apns.yml:12:7: targets[0].canary.payload: payload is 4120 bytes as JSON; APNs accepts "
            "at most 4096 for background pushes",
        ],
        id="payload-too-large",
    ),
    pytest.param(
        CANARY + "      payload: {aps: {alert: 2024-01-01}}\n",
        [
            "apns.yml:12:7: targets[0].canary.payload: payload must be plain JSON: mappings, "
            "lists, strings, numbers, booleans and null (no dates or binary)",
        ],
        id="payload-not-json",
    ),
    pytest.param(
        CANARY + "      expiration: -1\n",
        [
            "apns.yml:12:7: targets[0].canary.expiration: must be 0 (deliver now or never) "
            "or a UNIX time in seconds",
        ],
        id="negative-expiration",
    ),
    pytest.param(
        "targets:\n  - <<: 5\n",
        [
            "apns.yml:2:5: targets[0]: '<<' needs an alias to a mapping, or a list of them "
            "(e.g. <<: *defaults)",
            "apns.yml:2:5: targets[0]: missing required key 'name'",
            "apns.yml:2:5: targets[0]: missing required key 'environment'",
            "apns.yml:2:5: targets[0]: missing required key 'auth'",
        ],
        id="bad-merge",
    ),
]


@pytest.mark.parametrize(("text", "expected"), BAD_CONFIGS)
def test_bad_config_is_reported_exactly(config_dir: Path, text: str, expected: list[str]) -> None:
    """Each broken config yields exactly these one-line messages, with file:line:col and key."""
    assert problems(text, config_dir) == [e.replace("{dir}", str(config_dir)) for e in expected]


def test_all_problems_are_reported_at_once_in_file_order(config_dir: Path) -> None:
    """A file with many mistakes lists every one of them, sorted by position, in one error."""
    text = f"""\
global:
  scrape_timeout: fast
targets:
  - name: prod
    environment: staging
    topic: com.example.app
    auth:
      token:
        key_file: nope.p8
        key_id: SHORT
        team_id: DEF123GHIJ
    canary:
      priority: 3
  - name: prod
    environment: sandbox
    topic: com.example.app
    auth: {{token: {{{TOKEN}}}}}
    ping: {{interval: -1}}
    colour: blue
"""
    reported = problems(text, config_dir)
    keys = [line.split(": ")[1] for line in reported]
    assert keys == [
        "global.scrape_timeout",
        "targets[0].environment",
        "targets[0].auth.token.key_file",
        "targets[0].auth.token.key_id",
        "targets[0].canary.priority",
        "targets[1].name",
        "targets[1].ping.interval",
        "targets[1]",
    ]
    lines = [int(line.split(":")[1]) for line in reported]
    assert lines == sorted(lines)


def test_unreadable_key_file_is_reported(config_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A key file the exporter may not read is a config error that says so."""
    real_open = os.open
    key = config_dir / KEY_NAME

    def guarded_open(name: Any, *args: Any, **kwargs: Any) -> Any:
        if os.fspath(name) == str(key):
            raise PermissionError(13, "Permission denied", str(name))
        return real_open(name, *args, **kwargs)

    # Tests may run as root, where chmod 000 does not stop reads; fail the open directly.
    monkeypatch.setattr(os, "open", guarded_open)
    assert problems(VALID, config_dir) == [
        f"apns.yml:7:9: targets[0].auth.token.key_file: file not readable: {key} "
        "(permission denied; let the exporter's user read it)",
    ]


def test_missing_config_file(tmp_path: Path) -> None:
    """load() on a path that does not exist reports the path and nothing else."""
    path = tmp_path / "apns.yml"
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    assert [str(i) for i in caught.value.issues] == [
        f"{path}: config file not found (check the path)"
    ]


def test_config_file_that_is_a_directory(tmp_path: Path) -> None:
    """load() on a directory reports that it cannot be read."""
    with pytest.raises(ConfigError) as caught:
        config.load(tmp_path)
    assert [str(i) for i in caught.value.issues] == [
        f"{tmp_path}: cannot read config file: is a directory, not a file "
        "(point at the file inside it)"
    ]


def test_config_file_that_is_not_utf8(tmp_path: Path) -> None:
    """A file that is not UTF-8 is reported with the line of the first bad byte."""
    path = tmp_path / "apns.yml"
    path.write_bytes(b"targets:\n  - name: caf\xe9\n")
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    assert [str(i) for i in caught.value.issues] == [
        f"{path}:2: config file is not UTF-8 text; re-save it as UTF-8"
    ]


def test_alias_bomb_is_refused(config_dir: Path) -> None:
    """Aliases that expand to a huge document are refused instead of exhausting memory."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    assert problems("\n".join(lines) + "\n", config_dir) == [
        "apns.yml:1:1: aliases expand to more than 100000 values"
    ]


def test_recursive_alias_is_reported(config_dir: Path) -> None:
    """An anchor that contains itself is reported, not followed forever."""
    reported = problems("x-loop: &loop [*loop]\n" + VALID, config_dir)
    assert reported == [
        "apns.yml:1:9: x-loop[0]: recursive alias (an anchor cannot contain itself)"
    ]


def test_deep_nesting_is_reported(config_dir: Path) -> None:
    """Absurdly deep nesting is reported as a problem, not a RecursionError."""
    reported = problems("targets: " + "[" * 2000 + "]" * 2000 + "\n", config_dir)
    assert len(reported) == 1
    assert reported[0].startswith("apns.yml:")
    assert "nested" in reported[0]


# -- durations ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("500ms", 0.5),
        ("10s", 10.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("1d", 86400.0),
        ("2w", 1209600.0),
        ("1y", 31536000.0),
        ("1m30s500ms", 90.5),
        (90, 90.0),
        (1.5, 1.5),
        (0, 0.0),
    ],
)
def test_durations_parse_to_seconds(value: object, seconds: float) -> None:
    """Prometheus duration strings and plain numbers parse to float seconds."""
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value",
    [
        "",
        "10",
        "1.5s",
        "5 m",
        "30m1h",
        "1h1h",
        "-5s",
        "5M",
        True,
        None,
        [],
        float("inf"),
        float("nan"),
    ],
)
def test_bad_durations_are_rejected(value: object) -> None:
    """Unit-less strings, wrong unit order, booleans and non-finite numbers are not durations."""
    with pytest.raises(ValueError, match=r"duration"):
        parse_duration(value)


@given(st.integers(min_value=0, max_value=10**12))
def test_format_duration_round_trips(millis: int) -> None:
    """format_duration writes any whole number of milliseconds so parse_duration reads it back."""
    assert parse_duration(format_duration(millis / 1000)) == pytest.approx(millis / 1000)


def test_durations_serialise_as_written(config_dir: Path) -> None:
    """In JSON (the /config page) durations read as Prometheus strings, in Python as seconds."""
    (config_dir / "apns.yml").write_text(
        "global: {scrape_timeout: 1500ms}\n" + VALID + "        refresh_interval: 50m\n"
    )
    cfg = config.load(config_dir / "apns.yml")
    dumped = cfg.model_dump(mode="json", by_alias=True)
    assert dumped["global"]["scrape_timeout"] == "1s500ms"
    assert dumped["targets"][0]["auth"]["token"]["refresh_interval"] == "50m"
    assert dumped["targets"][0]["ping"]["interval"] == "1m"
    assert cfg.targets[0].auth.token is not None
    assert cfg.targets[0].auth.token.refresh_interval == 3000.0


# -- robustness -----------------------------------------------------------------------------


def assert_config_error_only(text: str, base_dir: Path) -> None:
    """Parse ``text``; anything but success or a ConfigError of one-line issues fails."""
    try:
        parse(text, base_dir)
    except ConfigError as exc:
        issues = exc.issues
    else:
        return
    assert issues
    for issue in issues:
        assert LOCATION.fullmatch(issue.location), issue
        assert "\n" not in issue.message, issue


YAML_PIECES = [
    "targets:",
    "global:",
    "\n",
    "  ",
    "    ",
    "- ",
    "name: ",
    "auth:",
    "token:",
    "canary:",
    "ping:",
    "interval: ",
    "5m",
    "-1",
    "&a ",
    "*a",
    "<<: ",
    "{",
    "}",
    "[",
    "]",
    ", ",
    "!!int ",
    "!!binary ",
    "!env ",
    "'",
    '"',
    ": ",
    "#",
    "---",
    "? ",
    "x-",
    "~",
    "null",
    "yes",
    "1e400",
    "2024-13-01",
    "\t",
    "|\n",
    "key_file: AuthKey_ABC123DEFG.p8",
    "environment: sandbox",
]
CANARY_KEYS = [
    "interval",
    "timeout",
    "device_tokens",
    "auth_check",
    "push_type",
    "priority",
    "payload",
    "expiration",
    "aps",
    "<<",
]
CONFIG_KEYS = [
    "global",
    "scrape_timeout",
    "targets",
    "name",
    "environment",
    "endpoint",
    "topic",
    "auth",
    "token",
    "key_file",
    "key_id",
    "team_id",
    "refresh_interval",
    "ca_file",
    "ping",
    "canary",
    *CANARY_KEYS,
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(
        [
            "production",
            "sandbox",
            "background",
            "voip",
            "5m",
            "0",
            "10",
            "ABC123DEFG",
            "DEF123GHIJ",
            KEY_NAME,
            "a" * 64,
            "127.0.0.1:1",
        ]
    ),
    st.dates(),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(CONFIG_KEYS) | st.text(max_size=8), inner, max_size=6),
    ),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text())
def test_arbitrary_text_gives_config_error_only(shared_dir: Path, text: str) -> None:
    """Any text at all either loads or raises ConfigError with one-line, located issues."""
    assert_config_error_only(text, shared_dir)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pieces=st.lists(st.sampled_from(YAML_PIECES), max_size=40))
def test_yaml_like_text_gives_config_error_only(shared_dir: Path, pieces: list[str]) -> None:
    """YAML-ish token soup (anchors, tags, merges, tabs) never escapes as another exception."""
    assert_config_error_only("".join(pieces), shared_dir)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=VALUES)
def test_arbitrary_structures_give_config_error_only(shared_dir: Path, data: Any) -> None:
    """Any YAML structure, built from real key names and odd values, fails only as ConfigError."""
    assert_config_error_only(yaml.safe_dump(data), shared_dir)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    target=st.fixed_dictionaries(
        {
            "name": st.text(string.ascii_letters, min_size=1, max_size=5),
            "environment": st.sampled_from(["production", "sandbox"]),
            "topic": st.just("com.example.app"),
            "auth": st.just(
                {"token": {"key_file": KEY_NAME, "key_id": "ABC123DEFG", "team_id": "DEF123GHIJ"}}
            ),
        },
        optional={
            "canary": st.dictionaries(st.sampled_from(CANARY_KEYS), VALUES, max_size=6),
            "ping": st.dictionaries(st.sampled_from(["interval", "timeout"]), VALUES),
            "endpoint": VALUES,
            "ca_file": VALUES,
        },
    )
)
def test_near_valid_targets_give_config_error_only(shared_dir: Path, target: Any) -> None:
    """Valid targets with random canary, ping and endpoint settings load or fail cleanly."""
    assert_config_error_only(yaml.safe_dump({"targets": [target]}), shared_dir)


def test_every_key_is_documented() -> None:
    """docs/configuration.md mentions every key a config file can contain."""
    docs = (REPO / "docs" / "configuration.md").read_text()
    models: list[type[pydantic.BaseModel]] = [
        config.Config,
        config.GlobalConfig,
        config.Target,
        config.Auth,
        config.TokenAuth,
        config.PingConfig,
        config.CanaryConfig,
        config.BroadcastConfig,
        config.EnvironmentChecks,
        config.RequiredRoot,
    ]
    keys = {f.alias or n for m in models for n, f in m.model_fields.items()}
    assert sorted(k for k in keys if f"`{k}`" not in docs) == []


def test_thousands_of_written_out_targets_are_not_an_alias_bomb(config_dir: Path) -> None:
    """3000 targets written out in full load: only values added by aliases are capped."""
    auth = f"    auth: {{token: {{{TOKEN}}}}}\n"
    text = "targets:\n" + "".join(
        f"  - name: t{i}\n    environment: production\n    topic: com.example.app\n"
        + auth
        + "    canary: {auth_check: true}\n"
        for i in range(3000)
    )
    loaded = config.parse(text, source="apns.yml", base_dir=config_dir)
    assert len(loaded.targets) == 3000
