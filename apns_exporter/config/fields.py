"""Validated field types shared by the config models: durations, files, IDs, endpoints."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated
from urllib.parse import SplitResult, urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    ValidationInfo,
    field_validator,
)

from apns_exporter import apns, files
from apns_exporter.config.durations import format_duration, parse_duration
from apns_exporter.errors import FileError

_HEX = re.compile(r"[0-9a-fA-F]+")
# Ordinary device tokens are 64 hex digits; Live Activity tokens have been seen at 160, and
# Apple says the length may change, so allow headroom without accepting arbitrary junk.
_DEVICE_TOKEN_LENGTHS = range(64, 201)


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


def _readable(kind: str, limit: int) -> BeforeValidator:
    """A validator for an existing regular file the reader would read (``files.check``)."""

    def readable(value: object, info: ValidationInfo) -> Path:
        # Relative paths start at the config file's directory.
        if not isinstance(value, str) or not value:
            raise ValueError("expected a file path")
        path = Path((info.context or {}).get("base_dir", ".")) / value
        hint = "check the path, relative paths are resolved from the config file's directory"
        try:
            files.check(path, kind=kind, limit=limit)
        except FileError as exc:
            if exc.reason == "not_found":
                raise ValueError(f"file not found: {path} ({hint})") from None
            if exc.reason == "permission_denied":
                raise ValueError(
                    f"file not readable: {path} (permission denied; let the exporter's user "
                    "read it)"
                ) from None
            raise ValueError(f"{path}: {exc.problem}") from None
        return path

    return BeforeValidator(readable)


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


def split_endpoint(endpoint: str) -> tuple[str, int]:
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
    return split_endpoint(value) and value


def _proxy_url(value: str) -> str:
    """An ``http://[user@]host[:port]`` proxy URL, never with a password in it."""
    text = value.strip()
    parts = urlsplit(text if "://" in text else "http://" + text)
    if parts.password is not None:
        user = parts.username or "user"
        raise ValueError(
            "the proxy URL holds a password; remove it (http://"
            f"{user}@{parts.hostname or 'proxy'}:{_safe_port(parts) or 3128}) and put the "
            "password in a file named by proxy_password_file"
        )
    if parts.scheme.lower() != "http":
        raise ValueError(
            f"proxy_url must be an http:// URL (CONNECT over plain HTTP), not {parts.scheme}://"
        )
    if not parts.hostname or _safe_port(parts) == -1:
        raise ValueError("proxy_url must be http://[user@]host[:port], e.g. http://proxy:3128")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("proxy_url must not have a path or query: http://[user@]host[:port]")
    return text


# A proxy password is a line of text; anything bigger is the wrong file.
MAX_PASSWORD_BYTES = 1024


def read_password(path: Path) -> str:
    """The password in ``path``: UTF-8, one line (a trailing newline is dropped), non-empty."""
    try:
        raw = files.read_bytes(path, kind="proxy password file", limit=MAX_PASSWORD_BYTES)
    except FileError as exc:
        raise ValueError(str(exc)) from None
    try:
        text = raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text; write the password as plain text") from None
    if not text or "\n" in text:
        raise ValueError(f"{path} must hold the password on one line, and nothing else")
    return text


def _password_file(path: Path) -> Path:
    read_password(path)
    return path


def _safe_port(parts: SplitResult) -> int | None:
    try:
        return parts.port
    except ValueError:
        return -1


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


# In JSON (what /config shows) a duration is spelled as in the file ("50m"), not in seconds.
_AS_WRITTEN = PlainSerializer(format_duration, return_type=str, when_used="json")
Interval = Annotated[float, BeforeValidator(parse_duration), AfterValidator(_positive), _AS_WRITTEN]
# Key, certificate and CA files; password and receipt secret files have a smaller bound.
ReadableFile = Annotated[Path, _readable("file", files.CERTIFICATE_LIMIT)]
SecretFile = Annotated[Path, _readable("secret file", files.SECRET_LIMIT)]
DeviceToken = Annotated[str, AfterValidator(_device_token)]
ProxyUrl = Annotated[str, AfterValidator(_proxy_url)]
PasswordFile = Annotated[
    Path, _readable("proxy password file", MAX_PASSWORD_BYTES), AfterValidator(_password_file)
]
Endpoint = Annotated[str, AfterValidator(_endpoint)]
RefreshInterval = Annotated[
    float, BeforeValidator(parse_duration), AfterValidator(_refresh_interval), _AS_WRITTEN
]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# Labels every target series already carries, or Prometheus adds: an owner label of the
# same name would replace them in a group_left join.
RESERVED_LABELS = frozenset(
    {"target", "apns_environment", "host", "port", "topic", "auth_method", "job", "instance"}
)


def _label_names(labels: dict[str, str]) -> dict[str, str]:
    for name in labels:
        if not _LABEL_NAME.fullmatch(name) or name.startswith("__"):
            raise ValueError(
                f"{name!r} is not a valid label name (letters, digits and _, not starting "
                "with a digit or __)"
            )
        if name in RESERVED_LABELS:
            raise ValueError(
                f"label {name!r} is reserved (every target already has it); pick another "
                "name, e.g. owner or team"
            )
    return labels


# Owner labels (team, customer...): exported on apns_target_info only.
Labels = Annotated[dict[str, str], AfterValidator(_label_names)]


def _glob(value: str, info: ValidationInfo) -> str:
    """A glob, made absolute from the config file's directory; a directory means its YAML."""
    if not value.strip():
        raise ValueError("must be a path or a glob, e.g. conf.d/*.yaml")
    path = Path((info.context or {}).get("base_dir", ".")) / value
    return str(path)


Glob = Annotated[str, AfterValidator(_glob)]


class Timed(Model):
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


# Receipt secrets shorter than this are guessable.
MIN_SECRET_BYTES = 16
# Fewer different byte values than this is a pattern, not a secret (hex has 16).
MIN_SECRET_SYMBOLS = 4
_WHITESPACE = b" \t\r\n\x0b\x0c"


def parse_secret(raw: bytes) -> bytes:
    """The HMAC key from a secret file's contents: surrounding whitespace removed."""
    secret = raw.strip(_WHITESPACE)
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(
            f"the receipt secret is {len(secret)} bytes; use at least {MIN_SECRET_BYTES}"
        )
    if len(set(secret)) < MIN_SECRET_SYMBOLS:
        # 32 NUL bytes, or "aaaa…": long enough, yet anyone could guess it.
        raise ValueError(
            f"the receipt secret uses only {len(set(secret))} different byte value(s), so it "
            "can be guessed; use random bytes"
        )
    return secret
