"""Each target's state, built once and changed in one place: :meth:`TargetState.apply`.

Probe runs read a frozen :class:`~apns_exporter.probes.Snapshot` of this state and return
results; applying a result is the only way the state changes, and it yields the target's
:class:`TargetStatus`, the verdicts that metrics, the log and the pages all read.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from apns_exporter.apns import Reason
from apns_exporter.client.channel import Channel
from apns_exporter.client.connection import Endpoint
from apns_exporter.client.dial import Resolver
from apns_exporter.client.proxy import Proxy
from apns_exporter.client.tls import client_context
from apns_exporter.config import Target
from apns_exporter.config.models import Egress
from apns_exporter.creds.chain import ChainReport
from apns_exporter.creds.credential import Credential, Loaded, load_credential
from apns_exporter.creds.tokens import TokenCache
from apns_exporter.errors import ExpiredCredential
from apns_exporter.probes import (
    AUTH_REASON_NAMES,
    CanaryResult,
    CredentialsResult,
    ProbeKind,
    ProbeResult,
    Snapshot,
    TlsResult,
)
from apns_exporter.receipts.book import ReceiptBook

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TargetStatus:
    """A target's verdicts after its latest results: one home for each."""

    up: bool | None = None  # None until the probe that decides it has run
    layer: str | None = None  # the lowest failing layer now; None when healthy
    topic: str | None = None  # the apns-topic its canary sends
    # Consecutive InvalidProviderToken answers since the key last worked (only after it did).
    invalid_streak: int = 0
    key_verified_at: float | None = None  # when APNs last accepted a request signed with it
    # (previous, new) when this result showed an MDM certificate come back with another topic.
    topic_change: tuple[str, str] | None = None


@dataclass
class TargetState:
    """One configured target, its channels and credential, and its latest results."""

    config: Target
    channel: Channel
    default_timeout: float
    credential: Credential
    loaded: Loaded | None
    credential_problem: str | None = None
    credential_reason: str | None = None
    auth_channel: Channel | None = None
    receipts: ReceiptBook | None = None
    clock: Callable[[], float] = time.time
    resolver: Resolver | None = None
    proxy: Proxy | None = None  # the configured proxy; None: HTTPS_PROXY, if set, applies
    last_chain: ChainReport | None = None
    required_roots: tuple[tuple[str, str], ...] = ()  # (name, fingerprint) to find in the store
    latest: dict[ProbeKind, ProbeResult] = field(default_factory=dict)
    status: TargetStatus = field(default_factory=TargetStatus)
    _key_worked: bool = field(default=False, init=False)
    _invalid_streak: int = field(default=0, init=False)
    _key_verified_at: float | None = field(default=None, init=False)

    @property
    def name(self) -> str:
        """The target's name."""
        return self.config.name

    @property
    def topic(self) -> str | None:
        """The apns-topic the canary sends: configured, else the certificate in use's UID."""
        if self.loaded is None:
            return self.config.topic
        return self.credential.topic(self.loaded)

    def snapshot(self) -> Snapshot:
        """What the next probe run may read, frozen now."""
        return Snapshot(
            self.config,
            self.channel,
            self.default_timeout,
            clock=self.clock,
            resolver=self.resolver,
            proxy=self.proxy,
            auth_channel=self.auth_channel,
            credential=self.credential,
            loaded=self.loaded,
            credential_problem=self.credential_problem,
            credential_reason=self.credential_reason,
            last_chain=self.last_chain,
            receipts=self.receipts,
            required_roots=self.required_roots,
        )

    def channels(self) -> tuple[Channel, ...]:
        """Every connection channel the target keeps open."""
        return (self.channel,) if self.auth_channel is None else (self.channel, self.auth_channel)

    async def aclose(self) -> None:
        """Close every connection of the target."""
        for channel in self.channels():
            await channel.aclose()

    async def apply(self, result: ProbeResult) -> TargetStatus:
        """Fold one result into the state; returns the target's status after it."""
        self.latest[result.probe] = result
        if isinstance(result, TlsResult) and result.chain is not None:
            self.last_chain = result.chain
        elif isinstance(result, CredentialsResult):
            self.credential_problem = None if result.ok else result.message
            self.credential_reason = result.error
            if result.adopt is not None:
                await self._use(result.adopt)
        elif isinstance(result, CanaryResult):
            self._judge_key(result)
        self.status = TargetStatus(
            up=self._up(),
            layer=self._layer(),
            topic=self.topic,
            invalid_streak=self._invalid_streak,
            key_verified_at=self._key_verified_at,
        )
        return self.status

    def _up(self) -> bool | None:
        # The canary proves delivery works; without one, the PING speaks for the target.
        kind = ProbeKind.CANARY if self.config.canary is not None else ProbeKind.PING
        result = self.latest.get(kind)
        return result.ok if result is not None else None

    def _layer(self) -> str | None:
        # The canary sees every layer up to APNs itself, so its verdict wins; the PING
        # speaks for targets (or moments) without a failing canary.
        for kind in (ProbeKind.CANARY, ProbeKind.PING):
            result = self.latest.get(kind)
            if result is not None and result.layer is not None:
                return result.layer
        return None

    def _judge_key(self, result: CanaryResult) -> None:
        """Follow the signing key: a key that worked and is now refused looks revoked."""
        if result.token_issued_at is None:
            return
        for push in result.pushes:
            if push.reason == Reason.INVALID_PROVIDER_TOKEN:
                # A key that never worked is a setup error, which the auth alert covers.
                if self._key_worked:
                    self._invalid_streak += 1
            elif push.status is not None and push.reason not in AUTH_REASON_NAMES:
                self._key_worked = True
                self._invalid_streak, self._key_verified_at = 0, result.run.finished_at

    async def _use(self, loaded: Loaded) -> None:
        """Make ``loaded`` the credential in use; new connections present it."""
        old, self.loaded = self.loaded, loaded
        for warning in loaded.warnings:
            log.warning("target %s: %s", self.name, warning)
        if old is not None and old.token is loaded.token and loaded.certificate is None:
            return  # the same signing key: the token and the connection stay as they are
        # A new certificate, or a new key (whose token must not follow the old one on the
        # same connection): drain the old connections; the next probe dials with the new one.
        for channel in self.channels():
            await channel.replace_ssl_context(
                loaded.ssl_context, client_certificate=loaded.certificate is not None
            )


def _epoch(day: datetime.date) -> float:
    return datetime.datetime.combine(day, datetime.time(), datetime.UTC).timestamp()


@dataclass(frozen=True)
class TargetInfo:
    """What metrics need to create a target's series, decided once when it is built."""

    name: str
    environment: str
    host: str
    port: int
    topic: str
    auth_method: str
    canary_interval: float | None
    ping_interval: float
    key: tuple[str, str] | None = None
    rotate_by: float | None = None
    delivery: bool = False
    inventory_only: bool = False
    intervals: tuple[tuple[str, float], ...] = ()  # (probe kind, seconds) of each probe it runs
    broadcast: bool = False  # the broadcast (channel-management) probe runs
    labels: Mapping[str, str] = field(default_factory=dict)  # owners, on apns_target_info


def describe(state: TargetState, intervals: Mapping[ProbeKind, float]) -> TargetInfo:
    """The static facts about a built target that its series carry."""
    target = state.config
    token = target.auth.token
    return TargetInfo(
        target.name,
        str(target.environment),
        host=target.host,
        port=target.port,
        topic=state.topic or "",
        auth_method=target.auth.method,
        canary_interval=target.canary.interval if target.canary else None,
        ping_interval=target.ping.interval,
        key=(token.key_id, token.team_id) if token is not None else None,
        rotate_by=_epoch(token.rotate_by) if token and token.rotate_by else None,
        delivery=state.receipts is not None,
        inventory_only=target.inventory_only,
        intervals=tuple((str(kind), seconds) for kind, seconds in intervals.items()),
        broadcast=target.broadcast is not None,
        labels=dict(target.labels),
    )


class TargetBuilder:
    """Builds targets from the pieces they share: token cache, dial limit and receipts."""

    def __init__(
        self,
        receipts: ReceiptBook,
        *,
        clock: Callable[[], float] = time.time,
        resolver: Resolver | None = None,
        dial_limit: asyncio.Semaphore | None = None,
    ) -> None:
        self._receipts = receipts
        self._clock = clock
        self._resolver = resolver
        self._dials = dial_limit
        self._tokens = TokenCache(clock=clock)

    def build(
        self,
        target: Target,
        default_timeout: float,
        egress: Egress,
        required_roots: tuple[tuple[str, str], ...] = (),
    ) -> TargetState:
        """Load the target's credential and make its channels (leaving through ``egress``).

        ``required_roots`` are the (name, fingerprint) its tls_check looks for in its store.
        """
        credential = Credential(target, self._tokens, clock=self._clock)
        loaded, error = load_credential(credential)
        if isinstance(error, ExpiredCredential):
            log.error("target %s: %s", target.name, error)
        elif error is not None:
            log.error("target %s: %s; its canary waits until the file is fixed", target.name, error)
        for warning in loaded.warnings if loaded else ():
            log.warning("target %s: %s", target.name, warning)
        ca_file = str(target.ca_file) if target.ca_file is not None else None
        ssl_context = loaded.ssl_context if loaded else client_context(ca_file)
        endpoint = Endpoint(target.host, target.port)
        presents_certificate = loaded is not None and loaded.certificate is not None
        proxy = None
        if egress.proxy_url is not None:
            # Validated when the config loaded, password file included.
            proxy = Proxy.from_url(egress.proxy_url, password=egress.proxy_password())

        def channel() -> Channel:
            return Channel(
                endpoint,
                ssl_context,
                connect_timeout=default_timeout,
                resolver=self._resolver,
                client_certificate=presents_certificate,
                dial_limit=self._dials,
                max_age=egress.max_connection_age,
                proxy=proxy,
            )

        auth_check = target.canary is not None and target.canary.auth_check
        measures_delivery = target.canary is not None and target.canary.delivery is not None
        return TargetState(
            target,
            channel(),
            default_timeout,
            credential,
            loaded,
            credential_problem=str(error) if error is not None else None,
            credential_reason=error.reason if error is not None else None,
            auth_channel=channel() if auth_check else None,
            receipts=self._receipts if measures_delivery else None,
            clock=self._clock,
            resolver=self._resolver,
            proxy=proxy,
            required_roots=required_roots,
        )
