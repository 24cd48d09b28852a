"""Credential discovery: every push certificate and .p8 key under some globs, as inventory.

A :class:`Discovery` scans its source's globs (blocking: run it in a worker thread), reads
each candidate once per version through the safe reader (a version is the stat fingerprint
of the file, its key sibling and a Kubernetes ``..data`` link beside it) and turns what it
can parse into an ``inventory_only`` target named from what the credential says. A file it
cannot use is reported once per version, with its path and why.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from apns_exporter import files
from apns_exporter.config import DiscoverSource, Target
from apns_exporter.config.fleet import expand
from apns_exporter.creds.certificates import load_client_credential
from apns_exporter.creds.tokens import load_signing_key
from apns_exporter.errors import CredentialError, DiscoveryRefused, FileError

log = logging.getLogger(__name__)

CERTIFICATE_SUFFIXES = (".pem", ".crt", ".cer", ".der")
PKCS12_SUFFIXES = (".p12", ".pfx")
KEY_SUFFIX = ".p8"
# Why a found file is not listed: a credential error's reason, or one of these.
REASONS = DiscoveryRefused.REASONS
_KEY_ID = re.compile(r"AuthKey_([A-Z0-9]{10})\.p8")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True)
class Found:
    """A credential file listed as a target; ``topic`` is a certificate's UID."""

    path: str
    target: Target
    topic: str | None = None


def _key_sibling(path: Path) -> Path | None:
    """The PEM key beside a certificate (``push.crt`` and ``push.key``; ``tls.crt``...)."""
    sibling = path.with_suffix(".key")
    return sibling if sibling.exists() else None


class Discovery:
    """One discover source: what its globs hold now, parsed once per file version."""

    def __init__(
        self, source: DiscoverSource, failed: Callable[[str, str], None] | None = None
    ) -> None:
        self.source = source
        self._failed = failed or (lambda source, reason: None)
        self._seen: dict[str, tuple[files.Fingerprint, Found | None]] = {}

    def scan(self) -> dict[str, Found]:
        """Every listable credential under the globs now, by path (blocks: use a thread)."""
        now: dict[str, Found] = {}
        seen: dict[str, tuple[files.Fingerprint, Found | None]] = {}
        for name in expand(self.source.paths):
            path = Path(name)
            suffix = path.suffix.lower()
            if suffix not in (*CERTIFICATE_SUFFIXES, *PKCS12_SUFFIXES, KEY_SUFFIX):
                continue
            key = _key_sibling(path) if suffix in CERTIFICATE_SUFFIXES else None
            fingerprint = files.fingerprint([path, key])
            before = self._seen.get(name)
            if before is not None and before[0] == fingerprint:
                found = before[1]
            else:
                found = self._read(path, key)
            seen[name] = (fingerprint, found)
            if found is not None:
                now[name] = found
        self._seen = seen
        return now

    def refuse(self, path: str, reason: str, message: str) -> None:
        """Report a found file that cannot be listed: counted, and logged with why."""
        log.error("discover %s: %s: %s", self.source.name, path, message)
        self._failed(self.source.name, reason)

    def _read(self, path: Path, key: Path | None) -> Found | None:
        try:
            return self._parse(path, key)
        except DiscoveryRefused as exc:
            self.refuse(str(path), exc.reason, str(exc))
        except CredentialError as exc:
            self.refuse(str(path), exc.reason, str(exc))
        return None

    def _parse(self, path: Path, key: Path | None) -> Found:
        source = self.source
        if path.suffix.lower() == KEY_SUFFIX:
            match = _KEY_ID.fullmatch(path.name)
            if match is None:
                raise DiscoveryRefused(
                    "no_key_id", "a .p8 key must be named AuthKey_<KEYID>.p8 (rename it)"
                )
            if source.team_id is None:
                raise DiscoveryRefused(
                    "no_team_id", "set team_id on the discover source to list .p8 keys"
                )
            load_signing_key(path)
            key_id = match.group(1)
            fields = self._fields(path, key_id=key_id, team_id=source.team_id)
            auth: dict[str, Any] = {
                "token": {"key_file": str(path), "key_id": key_id, "team_id": source.team_id}
            }
            return Found(str(path), self._target(source.key_name, fields, auth))
        password = None
        if path.suffix.lower() in PKCS12_SUFFIXES and source.password_file is not None:
            try:
                data = files.read_bytes(
                    source.password_file, kind="password file", limit=files.SECRET_LIMIT
                )
            except FileError as exc:
                raise DiscoveryRefused("unreadable", str(exc)) from None
            password = data.rstrip(b"\r\n")
        summary = load_client_credential(path, key, password=password).summary
        topic = summary.uid or (summary.topics[0] if summary.topics else "")
        fields = self._fields(path, topic=topic, serial=summary.serial, team_id=summary.team_id)
        certificate: dict[str, Any] = {"cert_file": str(path)}
        if key is not None:
            certificate["key_file"] = str(key)
        if password is not None:
            certificate["password_file"] = str(source.password_file)
        target = self._target(source.certificate_name, fields, {"certificate": certificate})
        return Found(str(path), target, topic or None)

    def _fields(self, path: Path, **values: str | None) -> dict[str, str]:
        fields = {"source": self.source.name, "stem": path.stem, "topic": "", "serial": ""}
        fields |= {"key_id": "", "team_id": ""}
        return fields | {k: v or "" for k, v in values.items()}

    def _target(self, template: str, fields: dict[str, str], auth: dict[str, Any]) -> Target:
        name = _UNSAFE.sub("_", template.format(**fields)).strip("_") or fields["stem"]
        try:
            return Target.model_validate(
                {
                    "name": name,
                    "environment": str(self.source.environment),
                    "auth": auth,
                    "inventory_only": True,
                    "labels": dict(self.source.labels),
                }
            )
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            raise DiscoveryRefused("invalid", f"cannot list it: {first['msg']}") from None
