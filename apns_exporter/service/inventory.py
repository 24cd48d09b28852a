"""The inventory: which discovered credential is which target, and the topic each last carried.

The MDM topic trap: a renewed MDM push certificate must carry the topic (UID) of the one it
replaces, or every enrolled device has to re-enrol. The topic is remembered per configured
target, and per file for discovered credentials (whose target name follows the topic, so a
new topic is a new target: the file is what stays the same).
"""

from __future__ import annotations

import logging

from apns_exporter.creds.certificates import CertificateSummary
from apns_exporter.creds.discovery import Discovery, Found

log = logging.getLogger(__name__)


class Inventory:
    """Discovered targets by source, and the last topic seen per credential."""

    def __init__(self) -> None:
        # Per discover source: the targets it lists now, by name.
        self.found: dict[str, dict[str, Found]] = {}
        self._topics: dict[str, tuple[str, bool]] = {}  # identity -> (topic, was MDM)
        self._clashes: set[tuple[str, str]] = set()  # (path, name) reported as taken

    def choose(self, scan: Discovery, found: dict[str, Found], taken: set[str]) -> dict[str, Found]:
        """The targets ``scan`` may list: names already in use elsewhere are refused once."""
        source = scan.source.name
        others = {n for s, names in self.found.items() if s != source for n in names}
        wanted: dict[str, Found] = {}
        for path, item in sorted(found.items()):
            name = item.target.name
            if name in taken or name in others or name in wanted:
                if (path, name) not in self._clashes:
                    self._clashes.add((path, name))
                    message = (
                        f"target name {name!r} is already taken (by the config or another "
                        "file); change the source's name template"
                    )
                    scan.refuse(path, "duplicate_name", message)
                continue
            wanted[name] = item
        return wanted

    def identity(self, target: str) -> str:
        """What stays the same across a renewal: the file of a discovered target, else its name."""
        for found in self.found.values():
            item = found.get(target)
            if item is not None:
                return f"file:{item.path}"
        return f"target:{target}"

    def topic_seen(self, target: str, certificate: CertificateSummary) -> tuple[str, str] | None:
        """Remember the certificate's topic; (previous, new) when an MDM topic changed."""
        topic = certificate.uid
        if not topic:
            return None
        key = self.identity(target)
        before = self._topics.get(key)
        self._topics[key] = (topic, certificate.is_mdm)
        if before is None or before[0] == topic or not (before[1] or certificate.is_mdm):
            return None
        log.error(
            "target %s: the push certificate's topic changed from %s to %s; every MDM-enrolled "
            "device must re-enrol unless the certificate is renewed with the same Apple ID "
            "(see the runbook, ApnsMdmTopicChanged)",
            target,
            before[0],
            topic,
        )
        return before[0], topic
