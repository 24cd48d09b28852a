"""Where device receipts arrive: the receipt book, its listener's address and URL, and expiry.

The service wires the desk's outcomes (a delivery, a rejection, a canary lost) to metrics;
the process entry point starts the listener and tells the desk the URL it listens on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from apns_exporter.receipts.book import Delivery, ReceiptBook

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReceiptOutcomes:
    """What the desk reports, and to whom: each a callable the service provides."""

    delivered: Callable[[Delivery], None]
    rejected: Callable[[str], None]  # a ReceiptRejected reason
    lost: Callable[[str], None]  # the target whose canary's receipt never came


class ReceiptDesk:
    """The receipt book, the listener's address and URL, and the expiry of awaited receipts."""

    def __init__(
        self,
        secrets: Mapping[str, bytes],
        listen_address: str,
        outcomes: ReceiptOutcomes,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.book = ReceiptBook(secrets)
        # The listener starts with the process, so it keeps the address it started on.
        self.listen_address = listen_address
        self.url: str | None = None  # set once the listener runs
        self.outcomes = outcomes
        self.clock = clock

    @property
    def wanted(self) -> bool:
        """Whether any target waits for device receipts (so the listener must run)."""
        return bool(self.book.targets)

    def listening(self, base_url: str, path: str) -> str:
        """Note that the listener runs at ``base_url``; returns where devices post receipts."""
        self.url = base_url + path
        log.info("receiving canary receipts on %s", self.url)
        return self.url

    def received(self, delivery: Delivery) -> None:
        """A device confirmed a canary."""
        self.outcomes.delivered(delivery)

    def rejected(self, reason: str, target: str | None) -> None:
        """The listener refused a request, for ``reason`` (a ReceiptRejected reason)."""
        self.outcomes.rejected(reason)
        log.debug("receipt rejected (%s) for target %s", reason, target or "?")

    def restart_notes(self, secrets: Mapping[str, bytes], listen_address: str) -> list[str]:
        """What a new config asks of the listener that only a restart applies."""
        notes = []
        if secrets and self.url is None:
            notes.append(
                "a target now measures delivery, but the receipt listener only starts with "
                "the exporter: restart it so devices can post receipts"
            )
        if self.url is not None and listen_address != self.listen_address:
            notes.append(
                f"receipts.listen_address is now {listen_address}, but the receipt listener "
                f"stays on {self.listen_address} until a restart"
            )
        return notes

    async def expire_forever(self) -> None:
        """Count every canary whose receipt missed its deadline as lost; runs until cancelled."""
        while True:
            now = self.clock()
            for target, canary_id in self.book.expire(now):
                self.outcomes.lost(target)
                log.info(
                    "target %s: no receipt for canary %s before its deadline", target, canary_id
                )
            due = self.book.next_due()
            # Wake at the next deadline, but at least once a second for newly sent canaries.
            await asyncio.sleep(max(0.05, min(1.0, (due - now) if due is not None else 1.0)))
