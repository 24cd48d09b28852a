"""Each target's long-lived state, built once per target: credential, channels, probe context."""

from __future__ import annotations

import asyncio
import datetime
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from apns_exporter.client.channel import Channel
from apns_exporter.client.connection import Endpoint
from apns_exporter.client.dial import Resolver
from apns_exporter.client.tls import client_context
from apns_exporter.config import Target
from apns_exporter.creds.credential import Credential, Loaded, load_credential
from apns_exporter.creds.tokens import TokenCache
from apns_exporter.errors import CredentialError, ExpiredCredential
from apns_exporter.probes import TargetContext
from apns_exporter.receipts.book import ReceiptBook
from apns_exporter.service.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass
class TargetState:
    """One configured target and the state every run of its probes shares."""

    config: Target
    context: TargetContext

    @property
    def loaded(self) -> Loaded | None:
        """The credential in use, if one ever loaded."""
        return self.context.loaded

    @property
    def error(self) -> CredentialError | None:
        """Why the credential files on disk cannot be used, if they cannot."""
        return self.context.credential_error

    @property
    def credential_error(self) -> str | None:
        """Why the credential cannot be used, if it cannot."""
        return str(self.error) if self.error is not None else None


def _epoch(day: datetime.date) -> float:
    return datetime.datetime.combine(day, datetime.time(), datetime.UTC).timestamp()


class TargetBuilder:
    """Builds targets from the pieces they share: token cache, dial limit, receipts, metrics."""

    def __init__(
        self,
        metrics: Metrics,
        receipts: ReceiptBook,
        *,
        clock: Callable[[], float] = time.time,
        resolver: Resolver | None = None,
        dial_limit: asyncio.Semaphore | None = None,
    ) -> None:
        self._metrics = metrics
        self._receipts = receipts
        self._clock = clock
        self._resolver = resolver
        self._dials = dial_limit
        self._tokens = TokenCache(clock=clock)

    def build(self, target: Target, default_timeout: float) -> TargetState:
        """Load the target's credential, make its channels and create its series."""
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

        def channel(streams: bool) -> Channel:
            return Channel(
                endpoint,
                ssl_context,
                connect_timeout=default_timeout,
                observer=functools.partial(self._metrics.observe, target.name, streams=streams),
                resolver=self._resolver,
                client_certificate=presents_certificate,
                dial_limit=self._dials,
            )

        # The auth check's stream limit sits at 1 after every (expected) rejection: not the
        # one to graph.
        auth_check = target.canary is not None and target.canary.auth_check
        token = target.auth.token
        topic = credential.topic(loaded) if loaded else target.topic
        measures_delivery = target.canary is not None and target.canary.delivery is not None
        self._metrics.add_target(
            target.name,
            str(target.environment),
            host=target.host,
            port=target.port,
            topic=topic or "",
            auth_method=target.auth.method,
            canary_interval=target.canary.interval if target.canary else None,
            ping_interval=target.ping.interval,
            key=(token.key_id, token.team_id) if token is not None else None,
            rotate_by=_epoch(token.rotate_by) if token and token.rotate_by else None,
            delivery=measures_delivery,
            inventory_only=target.inventory_only,
        )
        context = TargetContext(
            target,
            channel(streams=True),
            loaded.token if loaded else None,
            default_timeout,
            clock=self._clock,
            resolver=self._resolver,
            auth_channel=channel(streams=False) if auth_check else None,
            topic=topic,
            credential_ok=loaded is not None,
            receipts=self._receipts if measures_delivery else None,
            credential=credential,
            loaded=loaded,
            credential_error=error,
        )
        return TargetState(target, context)
