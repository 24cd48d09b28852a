"""The config file: strict YAML to a frozen, typed Config, or a ConfigError naming every problem."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    StrictBool,
    StrictInt,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from apns_exporter import apns, diagnostics
from apns_exporter.durations import format_duration, parse_duration
from apns_exporter.errors import ConfigError, ConfigIssue
from apns_exporter.yamlsource import KeyPath, Position, YamlSource

_HEX = re.compile(r"[0-9a-fA-F]+")
# Ordinary device tokens are 64 hex digits; Live Activity tokens have been seen at 160, and
# Apple says the length may change, so allow headroom without accepting arbitrary junk.
_DEVICE_TOKEN_LENGTHS = range(64, 201)
_PRIORITIES = (10, 5, 1)
# Every auth method a target may use; exactly one must be configured.
_AUTH_METHODS = ("token",)


def _positive(seconds: float) -> float:
    if seconds <= 0:
        raise ValueError("must be greater than zero")
    return seconds


def _refresh_interval(seconds: float) -> float:
    low, high = apns.TOKEN_MIN_REFRESH_SECONDS, apns.TOKEN_MAX_AGE_SECONDS
    if not low <= seconds <= high:
        raise ValueError(
            f"must be between {format_duration(low)} and {format_duration(high)} (APNs rejects "
            f"tokens older than 1h, and new tokens sooner than 20m after the last)"
        )
    return seconds


def _readable_file(value: object, info: ValidationInfo) -> Path:
    """An existing, readable regular file; relative paths start at the config file's directory."""
    if not isinstance(value, str) or not value:
        raise ValueError("expected a file path")
    path = Path((info.context or {}).get("base_dir", ".")) / value
    hint = "check the path, relative paths are resolved from the config file's directory"
    try:
        mode = path.stat().st_mode
        if stat.S_ISREG(mode):
            with path.open("rb"):
                pass
    except FileNotFoundError:
        raise ValueError(f"file not found: {path} ({hint})") from None
    except PermissionError:
        raise ValueError(
            f"file not readable: {path} (permission denied; let the exporter's user read it)"
        ) from None
    except (OSError, ValueError) as exc:
        # ValueError: an embedded NUL byte; other OSErrors: ENAMETOOLONG, ENOTDIR, ELOOP...
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ValueError(f"cannot open {value!r}: {reason} ({hint})") from None
    if stat.S_ISDIR(mode):
        raise ValueError(f"{path} is a directory; point at the file inside it")
    if not stat.S_ISREG(mode):
        raise ValueError(f"{path} is not a regular file")
    return path


def _must_match(pattern: str, message: str) -> AfterValidator:
    """A validator for strings that fully match ``pattern``; ``message`` may use {value}."""
    regex = re.compile(pattern)

    def check(value: str) -> str:
        if not regex.fullmatch(value):
            raise ValueError(message.format(value=value))
        return value

    return AfterValidator(check)


_APPLE_ID = r"[A-Z0-9]{10}"
_APPLE_ID_RULE = "must be the 10-character {what} from Apple: upper-case letters and digits"
TargetName = Annotated[
    str,
    _must_match(
        r"[A-Za-z0-9_.-]+", "{value!r} is not a valid target name (use letters, digits, _ . -)"
    ),
]
KeyId = Annotated[str, _must_match(_APPLE_ID, _APPLE_ID_RULE.replace("{what}", "key ID"))]
TeamId = Annotated[str, _must_match(_APPLE_ID, _APPLE_ID_RULE.replace("{what}", "team ID"))]
Topic = Annotated[
    str, _must_match(r"\S+", "must be the app's bundle ID, e.g. com.example.app (no spaces)")
]


def _split_endpoint(endpoint: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` to its parts; ValueError with an example otherwise."""
    usage = f"endpoint must be host:port, e.g. {apns.PRODUCTION_HOST}:2197 or [::1]:8443"
    if "/" in endpoint:
        raise ValueError(f"{usage} (no scheme or path)")
    if endpoint.startswith("["):
        host, sep, port = endpoint[1:].partition("]:")
    else:
        host, sep, port = endpoint.rpartition(":")
        if ":" in host:
            raise ValueError(f"{usage} (put IPv6 addresses in brackets)")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(usage)
    return host, int(port)


def _endpoint(value: str) -> str:
    return _split_endpoint(value) and value


def _device_token(value: str) -> str:
    problem = ""
    if not _HEX.fullmatch(value):
        problem = "has characters other than 0-9 and a-f"
    elif len(value) % 2 or len(value) not in _DEVICE_TOKEN_LENGTHS:
        problem = f"has {len(value)}"
    if problem:
        raise ValueError(
            f"device token must be an even number of hex digits from 64 to 200; this one {problem}"
        )
    return value.lower()


Interval = Annotated[float, BeforeValidator(parse_duration), AfterValidator(_positive)]
ReadableFile = Annotated[Path, BeforeValidator(_readable_file)]
DeviceToken = Annotated[str, AfterValidator(_device_token)]
Endpoint = Annotated[str, AfterValidator(_endpoint)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Timed(_Model):
    """A probe with an interval and an optional deadline."""

    @field_validator("timeout", check_fields=False)
    @classmethod
    def _timeout_within_interval(cls, timeout: float | None, info: ValidationInfo) -> float | None:
        interval = info.data.get("interval")
        if timeout is not None and interval is not None and timeout > interval:
            raise ValueError(
                f"timeout ({format_duration(timeout)}) must not be longer than interval "
                f"({format_duration(interval)})"
            )
        return timeout


class GlobalConfig(_Model):
    """Defaults that apply to every target."""

    scrape_timeout: Interval = 10.0


class TokenAuth(_Model):
    """Token-based (JWT) authentication with a .p8 signing key."""

    key_file: ReadableFile
    key_id: KeyId
    team_id: TeamId
    refresh_interval: Annotated[
        float, BeforeValidator(parse_duration), AfterValidator(_refresh_interval)
    ] = 3000.0


class Auth(_Model):
    """How a target authenticates to APNs: exactly one method."""

    token: TokenAuth | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Auth:
        if sum(getattr(self, m) is not None for m in _AUTH_METHODS) != 1:
            raise ValueError(f"auth needs exactly one of: {', '.join(_AUTH_METHODS)}")
        return self

    @property
    def method(self) -> str:
        """The configured method's key ("token"), used as the ``auth_method`` label."""
        return next(m for m in _AUTH_METHODS if getattr(self, m) is not None)


class PingConfig(_Timed):
    """HTTP/2 PINGs on the target's long-lived connection."""

    interval: Interval = 60.0
    timeout: Interval | None = None


class CanaryConfig(_Timed):
    """Periodic canary pushes to real devices and/or a device-less auth check."""

    interval: Interval = 300.0
    timeout: Interval | None = None
    device_tokens: tuple[DeviceToken, ...] = ()
    auth_check: StrictBool = False
    push_type: apns.PushType = apns.PushType.BACKGROUND
    priority: StrictInt = 5
    payload: dict[str, Any] = Field(default_factory=lambda: {"aps": {"content-available": 1}})
    expiration: StrictInt = 0

    @field_validator("priority")
    @classmethod
    def _check_priority(cls, priority: int, info: ValidationInfo) -> int:
        if priority not in _PRIORITIES:
            raise ValueError("must be 10 (immediate), 5 (power-considerate) or 1 (low)")
        if priority == 10 and info.data.get("push_type") is apns.PushType.BACKGROUND:
            raise ValueError(
                "background pushes cannot use priority 10 (APNs answers 400 BadPriority); use 5"
            )
        return priority

    @field_validator("payload")
    @classmethod
    def _check_payload(cls, payload: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        try:
            body = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
        except (TypeError, ValueError):
            raise ValueError(
                "payload must be plain JSON: mappings, lists, strings, numbers, "
                "booleans and null (no dates or binary)"
            ) from None
        push_type = info.data.get("push_type", apns.PushType.BACKGROUND)
        if len(body) > push_type.max_payload_bytes:
            raise ValueError(
                f"payload is {len(body)} bytes as JSON; APNs accepts at most "
                f"{push_type.max_payload_bytes} for {push_type} pushes"
            )
        return payload

    @field_validator("expiration")
    @classmethod
    def _check_expiration(cls, expiration: int) -> int:
        if expiration < 0:
            raise ValueError("must be 0 (deliver now or never) or a UNIX time in seconds")
        return expiration

    @model_validator(mode="after")
    def _something_to_send(self) -> CanaryConfig:
        if not self.device_tokens and not self.auth_check:
            raise ValueError(
                "canary needs device_tokens, auth_check: true, or both "
                "(remove canary to send no canary pushes)"
            )
        return self


class TlsCheckConfig(_Timed):
    """Inspect the APNs server's certificate chain (expiry, root, trust) on its own handshake."""

    interval: Interval = 3600.0
    timeout: Interval | None = None


class ReachabilityConfig(_Timed):
    """Resolve and TCP-connect the hosts push depends on, and check Apple's address ranges."""

    interval: Interval = 300.0
    timeout: Interval | None = None
    # host:port pairs; empty means the target's own endpoint and the alternative port 2197.
    hosts: tuple[Endpoint, ...] = ()
    # Also check a device-side courier host (MDM and device network checks) on 5223 and 443.
    courier: StrictBool = False
    apple_ranges: tuple[IPvAnyNetwork, ...] = tuple(
        ipaddress.ip_network(n) for n in apns.APPLE_NETWORKS
    )

    def endpoints(self, target: Target) -> list[tuple[str, int]]:
        """The (host, port) pairs to check for ``target``."""
        pairs = [_split_endpoint(h) for h in self.hosts]
        if not pairs:
            pairs = [(target.host, target.port)]
            if target.endpoint is None:
                pairs.append((target.host, apns.ALTERNATE_PORT))
        if self.courier:
            pairs += [(apns.COURIER_HOST, port) for port in apns.COURIER_PORTS]
        return list(dict.fromkeys(pairs))


class Target(_Model):
    """One APNs endpoint and credential to probe; ``name`` becomes the ``target`` label."""

    name: TargetName
    environment: apns.Environment
    endpoint: Endpoint | None = None
    topic: Topic
    auth: Auth
    ca_file: ReadableFile | None = None
    ping: PingConfig = PingConfig()
    canary: CanaryConfig | None = None
    # On by default: a server CA change (as in 2025) is a top cause of silent outages.
    tls_check: TlsCheckConfig | None = TlsCheckConfig()
    reachability: ReachabilityConfig | None = None

    @field_validator("canary")
    @classmethod
    def _topic_suffix(
        cls, canary: CanaryConfig | None, info: ValidationInfo
    ) -> CanaryConfig | None:
        if canary is None or "topic" not in info.data:
            return canary
        topic, suffix = info.data["topic"], canary.push_type.topic_suffix
        if not topic.endswith(suffix):
            raise ValueError(
                f"push_type {canary.push_type} needs a topic ending in {suffix!r} "
                f"(e.g. topic: {topic}{suffix}), or APNs answers BadTopic"
            )
        return canary

    @property
    def host(self) -> str:
        """The host to connect to: the endpoint override, else the environment's APNs host."""
        return _split_endpoint(self.endpoint)[0] if self.endpoint else self.environment.host

    @property
    def port(self) -> int:
        """The port to connect to: the endpoint override's, else 443."""
        return _split_endpoint(self.endpoint)[1] if self.endpoint else apns.DEFAULT_PORT


class Config(_Model):
    """The whole validated config file."""

    global_: GlobalConfig = Field(default_factory=GlobalConfig, alias="global")
    targets: tuple[Target, ...]

    @field_validator("targets")
    @classmethod
    def _at_least_one(cls, targets: tuple[Target, ...]) -> tuple[Target, ...]:
        if not targets:
            raise ValueError("at least one target is required")
        return targets


# A problem found while parsing: where, which key, what.
_Found = tuple[Position, KeyPath, str]


def load(path: str | os.PathLike[str]) -> Config:
    """Read and validate a config file; raises ConfigError listing every problem."""
    source = os.fspath(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError([ConfigIssue(source, "config file not found (check the path)")]) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError([ConfigIssue(source, f"cannot read config file: {reason}")]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        message = "config file is not UTF-8 text; re-save it as UTF-8"
        raise ConfigError([ConfigIssue(f"{source}:{line}", message)]) from None
    return parse(text, source=source, base_dir=Path(path).parent.absolute())


def parse(text: str, *, source: str, base_dir: Path) -> Config:
    """Validate config text; ``source`` names it in messages, relative paths start at base_dir."""
    document = YamlSource(text)
    if document.empty:
        message = "config file is empty; it needs a targets: list (see examples/config.yaml)"
        raise ConfigError([ConfigIssue(f"{source}:1:1", message)])
    found: list[_Found] = [(p.position, p.path, p.message) for p in document.problems]
    config = None
    if isinstance(document.data, dict):
        found += _duplicate_names(document)
        # As in docker-compose, top-level x- keys are a home for YAML anchors, not settings.
        data = {k: v for k, v in document.data.items() if not k.startswith("x-")}
        try:
            config = Config.model_validate(data, context={"base_dir": base_dir})
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                if not any(error["loc"][: len(p)] == p for p in document.unreadable):
                    path, message = diagnostics.describe(error, Config)
                    found.append((document.position(error["loc"]), path, message))
    elif not found:
        kind = diagnostics.kind(document.data)
        message = f"the top level must be a mapping with a targets: list, not {kind}"
        found.append((document.position(()), (), message))
    if found or config is None:
        found.sort(key=lambda item: (item[0].line, item[0].column))
        raise ConfigError([_issue(source, *item) for item in found])
    return config


def _issue(source: str, where: Position, path: Sequence[str | int], message: str) -> ConfigIssue:
    key = diagnostics.dotted(path)
    return ConfigIssue(
        f"{source}:{where.line}:{where.column}", f"{key}: {message}" if key else message
    )


def _duplicate_names(document: YamlSource) -> list[_Found]:
    targets = document.data.get("targets")
    found: list[_Found] = []
    first: dict[str, int] = {}
    for index, target in enumerate(targets if isinstance(targets, list) else []):
        name = target.get("name") if isinstance(target, dict) else None
        if not isinstance(name, str):
            continue
        if name in first:
            path = ("targets", index, "name")
            found.append(
                (
                    document.position(path),
                    path,
                    f"duplicate target name {name!r} "
                    f"(also targets[{first[name]}]); give each target its own name",
                )
            )
        first.setdefault(name, index)
    return found
