"""The configuration model: frozen, typed settings validated field by field."""

from __future__ import annotations

import datetime
import functools
import ipaddress
import json
import os
import string
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    Field,
    IPvAnyNetwork,
    StrictBool,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from apns_exporter import apns, files
from apns_exporter.config.fields import (
    DeviceToken,
    Endpoint,
    Glob,
    Interval,
    KeyId,
    Labels,
    Model,
    PasswordFile,
    ProxyUrl,
    ReadableFile,
    RefreshInterval,
    SecretFile,
    TargetName,
    TeamId,
    Timed,
    Topic,
    parse_secret,
    read_password,
    split_endpoint,
)
from apns_exporter.errors import FileError
from apns_exporter.files import CERTIFICATE_LIMIT, SECRET_LIMIT

_PRIORITIES = (10, 5, 1)
DEFAULT_MAX_CONNECTION_AGE = 3600.0
# Every auth method a target may use; exactly one must be configured.
_AUTH_METHODS = ("token", "certificate")


class Egress(Model):
    """How a target's connections leave: through which proxy, and how long one is kept."""

    # An http:// CONNECT proxy; overrides HTTPS_PROXY (NO_PROXY still applies).
    proxy_url: ProxyUrl | None = None
    # The proxy password, read from this file: never inline in proxy_url.
    proxy_password_file: PasswordFile | None = None
    # Replace a kept connection after this long (±10 %), so it visits Apple's servers.
    max_connection_age: Interval | None = DEFAULT_MAX_CONNECTION_AGE

    def proxy_password(self) -> str | None:
        """The proxy password from proxy_password_file, without a trailing newline."""
        if self.proxy_password_file is None:
            return None
        return read_password(self.proxy_password_file)


def _password_needs_url(url: str | None, password_file: Path | None) -> None:
    if password_file is not None and url is None:
        raise ValueError(
            "proxy_password_file needs proxy_url beside it (the proxy it is the password "
            "for, with the username: http://user@proxy:3128)"
        )


def _ca_file(path: Path) -> Path:
    """A CA file whose certificates (PEM or DER) can be read: never a crash on first use."""
    try:
        files.ca_data(
            files.read_bytes(path, kind="CA file", limit=CERTIFICATE_LIMIT), path=str(path)
        )
    except FileError as exc:
        raise ValueError(exc.problem) from None
    return path


def _fingerprint(value: str) -> str:
    """A SHA-256 fingerprint as 64 lowercase hex digits; colons and case as openssl prints."""
    digits = value.replace(":", "").strip().lower()
    if len(digits) != 64 or any(c not in string.hexdigits for c in digits):
        raise ValueError(
            "fingerprint_sha256 must be 64 hex digits, colons allowed "
            "(openssl x509 -noout -fingerprint -sha256 -in root.pem)"
        )
    return digits


class RequiredRoot(Model):
    """A root CA the trust store must hold, by name and SHA-256 fingerprint."""

    name: Annotated[str, Field(min_length=1, max_length=128)]
    fingerprint_sha256: Annotated[str, AfterValidator(_fingerprint)]


def _apple_roots() -> tuple[RequiredRoot, ...]:
    return tuple(
        RequiredRoot.model_construct(name=name, fingerprint_sha256=fp)
        for name, fp in apns.REQUIRED_ROOTS
    )


class EnvironmentChecks(Timed):
    """Which root each APNs environment presents, checked process-wide (no credentials)."""

    enabled: StrictBool = True
    interval: Interval = 6 * 3600.0
    timeout: Interval | None = None
    # host:port overrides of each environment's push host (for tests and mocks).
    production: Endpoint | None = None
    sandbox: Endpoint | None = None
    # Extra trust anchors, so a root the system store lacks is still named with its fingerprint.
    ca_file: Annotated[ReadableFile, AfterValidator(_ca_file)] | None = None

    def endpoints(self) -> dict[str, tuple[str, int]]:
        """Each environment's (host, port) to inspect."""
        return {
            str(env): split_endpoint(override)
            if override is not None
            else (env.host, apns.DEFAULT_PORT)
            for env, override in (
                (apns.Environment.SANDBOX, self.sandbox),
                (apns.Environment.PRODUCTION, self.production),
            )
        }


class GlobalConfig(Model):
    """Defaults that apply to every target."""

    scrape_timeout: Interval = 10.0
    # How often credential files are checked for changes (Secret updates, renewals).
    credential_check_interval: Interval = 30.0
    proxy_url: ProxyUrl | None = None
    proxy_password_file: PasswordFile | None = None
    max_connection_age: Interval = DEFAULT_MAX_CONNECTION_AGE
    # Roots every target's trust store must hold; Apple's current notice's by default.
    required_roots: tuple[RequiredRoot, ...] = Field(default_factory=_apple_roots)
    environment_checks: EnvironmentChecks = EnvironmentChecks()

    @model_validator(mode="after")
    def _proxy_password(self) -> GlobalConfig:
        _password_needs_url(self.proxy_url, self.proxy_password_file)
        return self


class TokenAuth(Model):
    """Token-based (JWT) authentication with a .p8 signing key."""

    key_file: ReadableFile
    key_id: KeyId
    team_id: TeamId
    refresh_interval: RefreshInterval = 3000.0
    # .p8 keys never expire; this is your own rotation policy, exported for alerting.
    rotate_by: datetime.date | None = None


class CertificateAuth(Model):
    """Certificate (mTLS) authentication: PEM cert and key, one PEM, or a PKCS#12 bundle."""

    cert_file: ReadableFile
    key_file: ReadableFile | None = None
    password_file: SecretFile | None = None
    password_env: str | None = None

    @field_validator("password_env")
    @classmethod
    def _env_is_set(cls, name: str | None) -> str | None:
        if name is not None and name not in os.environ:
            raise ValueError(
                f"environment variable {name} is not set (export it, or use password_file)"
            )
        return name

    @model_validator(mode="after")
    def _one_password_source(self) -> CertificateAuth:
        if self.password_file is not None and self.password_env is not None:
            raise ValueError("use password_file or password_env, not both")
        return self

    def password(self) -> bytes | None:
        """The password from its file or environment variable, if one is configured.

        Raises FileError when the password file cannot be read.
        """
        if self.password_file is not None:
            data = files.read_bytes(self.password_file, kind="password file", limit=SECRET_LIMIT)
            # A trailing newline is an editor's, not part of the password.
            return data.rstrip(b"\r\n")
        if self.password_env is not None:
            return os.environ.get(self.password_env, "").encode()
        return None


class Auth(Model):
    """How a target authenticates to APNs: exactly one method."""

    token: TokenAuth | None = None
    certificate: CertificateAuth | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Auth:
        if sum(getattr(self, m) is not None for m in _AUTH_METHODS) != 1:
            raise ValueError(f"auth needs exactly one of: {', '.join(_AUTH_METHODS)}")
        return self

    @property
    def method(self) -> str:
        """The configured method's key (token or certificate): the ``auth_method`` label."""
        return next(m for m in _AUTH_METHODS if getattr(self, m) is not None)


class PingConfig(Timed):
    """HTTP/2 PINGs on the target's long-lived connection."""

    interval: Interval = 60.0
    timeout: Interval | None = None


def _read_secret(path: Path) -> bytes:
    return parse_secret(files.read_bytes(path, kind="receipt secret", limit=SECRET_LIMIT))


def _receipt_secret(path: Path) -> Path:
    try:
        _read_secret(path)
    except FileError as exc:
        raise ValueError(str(exc)) from None
    except ValueError as exc:
        raise ValueError(f"{path}: {exc} (e.g. openssl rand -hex 32 > {path.name})") from None
    return path


class DeliveryConfig(Model):
    """Delivery receipts: the canary device posts a signed receipt back to the exporter."""

    secret_file: Annotated[SecretFile, AfterValidator(_receipt_secret)]
    # No receipt within this long after the push: counted as lost.
    deadline: Interval = 60.0

    def secret(self) -> bytes:
        """The HMAC key for this target's receipts; FileError or ValueError if now unusable."""
        return _read_secret(self.secret_file)


class ReceiptsConfig(Model):
    """The listener devices post receipts to, separate so /metrics can stay private."""

    listen_address: str = ":10055"


class CanaryConfig(Timed):
    """Periodic canary pushes to real devices and/or a device-less auth check."""

    interval: Interval = 300.0
    timeout: Interval | None = None
    device_tokens: tuple[DeviceToken, ...] = ()
    auth_check: StrictBool = False
    push_type: apns.PushType = apns.PushType.BACKGROUND
    priority: StrictInt = 5
    payload: dict[str, Any] = Field(default_factory=lambda: {"aps": {"content-available": 1}})
    expiration: StrictInt = 0
    # MDM pushes carry {"mdm": PushMagic} from the device's TokenUpdate instead of a payload.
    push_magic: str | None = None
    delivery: DeliveryConfig | None = None

    def body(self) -> dict[str, Any]:
        """The JSON body each canary push sends."""
        if self.push_type is apns.PushType.MDM and self.push_magic is not None:
            return {"mdm": self.push_magic}
        return self.payload

    @functools.cached_property
    def encoded_body(self) -> bytes:
        """The body as sent, compact JSON: encoded once, since every canary sends the same."""
        return json.dumps(self.body(), separators=(",", ":")).encode()

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
    def _mdm_has_push_magic(self) -> CanaryConfig:
        if self.push_type is apns.PushType.MDM and not self.push_magic:
            raise ValueError(
                "push_type mdm needs push_magic: the PushMagic the device sent in its "
                "TokenUpdate check-in"
            )
        return self

    @model_validator(mode="after")
    def _delivery_needs_devices(self) -> CanaryConfig:
        if self.delivery is not None and not self.device_tokens:
            raise ValueError(
                "delivery needs device_tokens: only a real device running your app can send "
                "receipts (the auth check never gets one)"
            )
        return self

    @model_validator(mode="after")
    def _something_to_send(self) -> CanaryConfig:
        if not self.device_tokens and not self.auth_check:
            raise ValueError(
                "canary needs device_tokens, auth_check: true, or both "
                "(remove canary to send no canary pushes)"
            )
        return self


class TlsCheckConfig(Timed):
    """Inspect the APNs server's certificate chain (expiry, root, trust) on its own handshake."""

    interval: Interval = 3600.0
    timeout: Interval | None = None


class ReachabilityConfig(Timed):
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
        pairs = [split_endpoint(h) for h in self.hosts]
        if not pairs:
            pairs = [(target.host, target.port)]
            if target.endpoint is None:
                pairs.append((target.host, apns.ALTERNATE_PORT))
            if target.broadcast is not None:
                pairs.append(target.broadcast.management_endpoint(target))
        if self.courier:
            pairs += [(apns.COURIER_HOST, port) for port in apns.COURIER_PORTS]
        return list(dict.fromkeys(pairs))


class BroadcastConfig(Timed):
    """A read-only channel-management request (list the app's channels) for broadcast push.

    Apple's "Sending channel management requests to APNs": the management host, port 2195
    (sandbox) or 2196 (production), authenticated with the same provider token as pushes.
    """

    interval: Interval = 300.0
    timeout: Interval | None = None
    # The app whose channels are listed; the target's topic when left out.
    bundle_id: Topic | None = None
    # host:port of the channel-management API; the environment's when left out.
    endpoint: Endpoint | None = None

    def management_endpoint(self, target: Target) -> tuple[str, int]:
        """The (host, port) the channel-management requests go to for ``target``."""
        if self.endpoint is not None:
            return split_endpoint(self.endpoint)
        return target.environment.management_endpoint


class Target(Model):
    """One APNs endpoint and credential to probe; ``name`` becomes the ``target`` label.

    ``proxy_url``, ``proxy_password_file`` and ``max_connection_age`` left out here come
    from ``global`` (see :meth:`Config.egress`).
    """

    name: TargetName
    environment: apns.Environment
    endpoint: Endpoint | None = None
    auth: Auth
    # List credentials for their expiry metrics only: no connection, no probes.
    # (Before topic: an inventory-only key needs no topic.)
    inventory_only: StrictBool = False
    # Owner labels (team, customer...), on apns_target_info only; see docs/operations.md.
    labels: Labels = Field(default_factory=dict)
    # For certificate auth the topic may be left out: the certificate's UID is used (MDM).
    topic: Topic | None = Field(default=None, validate_default=True)
    ca_file: Annotated[ReadableFile, AfterValidator(_ca_file)] | None = None
    ping: PingConfig = PingConfig()
    canary: CanaryConfig | None = None
    # On by default: a server CA change (as in 2025) is a top cause of silent outages.
    tls_check: TlsCheckConfig | None = TlsCheckConfig()
    reachability: ReachabilityConfig | None = None
    # Channel management for broadcast push (token auth only); off unless configured.
    broadcast: BroadcastConfig | None = None

    @field_validator("canary")
    @classmethod
    def _topic_suffix(
        cls, canary: CanaryConfig | None, info: ValidationInfo
    ) -> CanaryConfig | None:
        if canary is None or info.data.get("topic") is None:
            return canary
        topic, suffix = info.data["topic"], canary.push_type.topic_suffix
        if not topic.endswith(suffix):
            raise ValueError(
                f"push_type {canary.push_type} needs a topic ending in {suffix!r} "
                f"(e.g. topic: {topic}{suffix}), or APNs answers BadTopic"
            )
        return canary

    # None: as in global. A target's proxy_url replaces the global one (and its password).
    proxy_url: ProxyUrl | None = None
    proxy_password_file: PasswordFile | None = None
    max_connection_age: Interval | None = None

    @model_validator(mode="after")
    def _proxy_password(self) -> Target:
        _password_needs_url(self.proxy_url, self.proxy_password_file)
        return self

    @model_validator(mode="after")
    def _broadcast_needs_token(self) -> Target:
        if self.broadcast is not None and self.auth.token is None:
            raise ValueError(
                "broadcast needs token auth (auth.token): the channel-management probe signs "
                "its requests with the provider token; remove broadcast or use a .p8 key"
            )
        return self

    @property
    def broadcast_bundle_id(self) -> str | None:
        """The app whose broadcast channels are listed: broadcast.bundle_id, else the topic."""
        if self.broadcast is None:
            return None
        return self.broadcast.bundle_id or self.topic

    @field_validator("topic")
    @classmethod
    def _topic_for_tokens(cls, topic: str | None, info: ValidationInfo) -> str | None:
        auth = info.data.get("auth")
        inventory = info.data.get("inventory_only", False)
        if topic is None and auth is not None and auth.token is not None and not inventory:
            raise ValueError(
                "required with token auth: the app's bundle ID (e.g. topic: com.example.app)"
            )
        return topic

    @property
    def host(self) -> str:
        """The host to connect to: the endpoint override, else the environment's APNs host."""
        return split_endpoint(self.endpoint)[0] if self.endpoint else self.environment.host

    @property
    def port(self) -> int:
        """The port to connect to: the endpoint override's, else 443."""
        return split_endpoint(self.endpoint)[1] if self.endpoint else apns.DEFAULT_PORT


class DiscoverSource(Model):
    """A directory scan that lists every push certificate and .p8 key in it as inventory."""

    name: TargetName  # the source label of the discovery counters, and {source} below
    paths: tuple[Glob, ...] = Field(min_length=1)
    environment: apns.Environment = apns.Environment.PRODUCTION
    # .p8 files carry no team: keys found here sign for this team.
    team_id: TeamId | None = None
    # The password of the PKCS#12 bundles found here.
    password_file: SecretFile | None = None
    certificate_name: str = "{topic}-{serial}"
    key_name: str = "{team_id}-{key_id}"
    labels: Labels = Field(default_factory=dict)
    # How often the paths are scanned again for files that appear, change or disappear.
    interval: Interval = 60.0

    @field_validator("certificate_name", "key_name")
    @classmethod
    def _template(cls, template: str) -> str:
        sample = dict.fromkeys(TEMPLATE_FIELDS, "x")
        try:
            template.format(**sample)
        except (KeyError, IndexError, ValueError) as exc:
            fields = ", ".join("{" + f + "}" for f in TEMPLATE_FIELDS)
            raise ValueError(f"bad name template ({exc}); use the fields {fields}") from None
        return template


# What a discovered credential's name template may use.
TEMPLATE_FIELDS = ("source", "topic", "serial", "key_id", "team_id", "stem")


class Config(Model):
    """The whole validated config file."""

    global_: GlobalConfig = Field(default_factory=GlobalConfig, alias="global")
    receipts: ReceiptsConfig = Field(default_factory=ReceiptsConfig)
    # Globs of files (or a conf.d directory) each holding a list of targets.
    target_files: tuple[Glob, ...] = ()
    discover: tuple[DiscoverSource, ...] = ()
    # (After the two above, which its check reads.)
    targets: tuple[Target, ...] = Field(default=(), validate_default=True)

    def receipt_secrets(self) -> dict[str, bytes]:
        """The receipt key of every target that measures delivery."""
        return {
            t.name: t.canary.delivery.secret()
            for t in self.targets
            if t.canary is not None and t.canary.delivery is not None
        }

    def required_roots(self) -> tuple[tuple[str, str], ...]:
        """(name, SHA-256 fingerprint) of each root every trust store must hold."""
        return tuple((r.name, r.fingerprint_sha256) for r in self.global_.required_roots)

    def egress(self, target: Target) -> Egress:
        """The proxy and connection age ``target`` uses: its own, else the global ones."""
        source: Target | GlobalConfig = target if target.proxy_url is not None else self.global_
        # Built from validated values: no second validation (files were checked on load).
        return Egress.model_construct(
            proxy_url=source.proxy_url,
            proxy_password_file=source.proxy_password_file,
            max_connection_age=target.max_connection_age or self.global_.max_connection_age,
        )

    @field_validator("targets")
    @classmethod
    def _at_least_one(cls, targets: tuple[Target, ...], info: ValidationInfo) -> tuple[Target, ...]:
        if not {"target_files", "discover"} <= info.data.keys():
            return targets  # one of them is broken: its own error says enough
        if not (targets or info.data["target_files"] or info.data["discover"]):
            raise ValueError("at least one target is required (or target_files:, or discover:)")
        return targets

    @field_validator("discover")
    @classmethod
    def _unique_sources(cls, sources: tuple[DiscoverSource, ...]) -> tuple[DiscoverSource, ...]:
        names = [s.name for s in sources]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"discover source name {name!r} is used twice; rename one")
        return sources
