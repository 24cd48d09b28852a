"""A target's credential on disk: loaded once, re-read when its files change, described."""

from __future__ import annotations

import asyncio
import ssl
import stat
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from apns_exporter import config, files
from apns_exporter.client.tls import client_context
from apns_exporter.config import Config, Target
from apns_exporter.config.fleet import Origin
from apns_exporter.config.yamlsource import KeyPath
from apns_exporter.creds.certificates import (
    CertificateSummary,
    ClientCredential,
    load_client_credential,
    mismatches,
    validity,
)
from apns_exporter.creds.tokens import ProviderToken, TokenCache, credential_error
from apns_exporter.errors import ConfigIssue, CredentialError, ExpiredCredential, FileError


def exposed_key_warnings(path: Path) -> tuple[str, ...]:
    """A warning when a private key file is readable by others, or writable by its group.

    Group read is allowed: on Kubernetes it is how ``fsGroup`` with ``defaultMode: 0440``
    lets the exporter read a Secret (whose files cannot be chmod'ed), and elsewhere a group
    that may read the key is a deliberate grant. Anyone else reading it, or a group that may
    replace it, is not.
    """
    try:
        mode = path.stat().st_mode
    except OSError:
        return ()
    if not mode & (stat.S_IRWXO | stat.S_IWGRP):
        return ()
    who = "others" if mode & stat.S_IRWXO else "its group (writable)"
    return (
        f"{path}: the private key is accessible to {who} (mode {stat.S_IMODE(mode):04o}); "
        f"restrict it with: chmod 600 {path} (on Kubernetes: defaultMode: 0440 with fsGroup)",
    )


@dataclass(frozen=True)
class Loaded:
    """A credential that loaded: what connections need and what metrics describe."""

    ssl_context: ssl.SSLContext
    token: ProviderToken | None
    certificate: CertificateSummary | None
    warnings: tuple[str, ...]


class Credential:
    """Loads one target's key or certificate and notices when its files change on disk."""

    def __init__(
        self, target: Target, tokens: TokenCache, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.target = target
        self._tokens = tokens
        self._clock = clock
        self._watch = files.Watch(self.paths)

    @property
    def paths(self) -> tuple[Path, ...]:
        """Every file the credential is read from."""
        auth = self.target.auth
        if auth.token is not None:
            return (auth.token.key_file,)
        assert auth.certificate is not None
        cert = auth.certificate
        return tuple(p for p in (cert.cert_file, cert.key_file, cert.password_file) if p)

    def changed(self) -> bool:
        """Whether any file differs (content swap, symlink swap, removal) since the last load."""
        return self._watch.changed()

    def load(self) -> Loaded:
        """Read the credential files; raises CredentialError with a bounded reason.

        Every file goes through the safe reader (regular, bounded), so a FIFO or a device
        swapped in is refused at once; the CA file is read here too, so a broken one is a
        CredentialError rather than a crash.
        """
        # Remember what was read even if it fails, so a broken file is reported once.
        self._watch.mark()
        target, auth = self.target, self.target.auth
        if auth.token is not None:
            t = auth.token
            token = self._tokens.reload(t.key_file, t.key_id, t.team_id, t.refresh_interval)
            context = self._context(None)
            return Loaded(context, token, None, exposed_key_warnings(t.key_file))
        assert auth.certificate is not None
        cert = auth.certificate
        try:
            password = cert.password()
        except FileError as exc:
            raise credential_error(exc) from None
        client: ClientCredential = load_client_credential(
            cert.cert_file, cert.key_file, password=password
        )
        summary = client.summary
        warnings = mismatches(summary, topic=target.topic, environment=str(target.environment))
        warnings += exposed_key_warnings(cert.key_file or cert.cert_file)
        expired, not_yet = validity(summary, cert.cert_file, self._clock())
        if not_yet:
            warnings.append(not_yet)
        loaded = Loaded(self._context(client.pem()), None, summary, tuple(warnings))
        if expired:
            raise ExpiredCredential(expired, loaded=loaded)
        return loaded

    def _context(self, certificate_pem: bytes | None) -> ssl.SSLContext:
        ca_file = self.target.ca_file
        try:
            return client_context(
                str(ca_file) if ca_file is not None else None, certificate_pem=certificate_pem
            )
        except FileError as exc:
            # A CA file broken after the config was checked.
            raise credential_error(exc) from None

    def topic(self, loaded: Loaded) -> str | None:
        """The apns-topic to send: the configured one, else the certificate's UID (MDM)."""
        if self.target.topic is not None:
            return self.target.topic
        return loaded.certificate.uid if loaded.certificate is not None else None


def load_credential(credential: Credential) -> tuple[Loaded | None, CredentialError | None]:
    """Load a credential: what to use (an expired one still is) and what is wrong with it.

    The one way to load a credential: the probe, the exporter and ``--config.check`` all
    call it.
    """
    try:
        return credential.load(), None
    except ExpiredCredential as exc:
        # Still presented: APNs's TLS alert is the clearest evidence of what is wrong.
        return exc.loaded, exc
    except CredentialError as exc:
        return None, exc


async def load_credential_async(
    credential: Credential,
) -> tuple[Loaded | None, CredentialError | None]:
    """:func:`load_credential` in a worker thread, for a re-check while the loop serves."""
    return await asyncio.to_thread(load_credential, credential)


@dataclass(frozen=True)
class FileCheck:
    """What loading every file a config names found: problems refuse it, warnings do not."""

    problems: tuple[ConfigIssue, ...]
    warnings: tuple[str, ...]
    # The problems again, by the file the target is written in (the main file or a target file).
    by_file: Mapping[str, tuple[ConfigIssue, ...]] = field(default_factory=dict)


def check_files(path: str, cfg: Config, origins: Mapping[str, Origin] | None = None) -> FileCheck:
    """Load every file ``cfg`` names (credentials, CA files, passwords, receipt secrets).

    The one check before a config is used: ``--config.check`` runs it, and a reload runs it
    before applying anything, so a reload is all or nothing. Problems are located in the
    config file at ``path``, or where ``origins`` says each target is written (a target
    file); an expired certificate is a warning (it is still presented).
    """
    by_file: dict[str, list[ConfigIssue]] = {}
    warnings: list[str] = []
    tokens = TokenCache()

    def problem(index: int, target: Target, keys: KeyPath, message: str) -> None:
        origin = (origins or {}).get(target.name)
        file, keys = (path, keys) if origin is None else (origin.file, (*origin.keys, *keys[2:]))
        by_file.setdefault(file, []).append(config.locate(file, keys, message))

    for index, target in enumerate(cfg.targets):
        name = target.name
        extras = _unreadable_extras(index, target)
        for keys, message in extras:
            problem(index, target, keys, f"target {name}: {message}")
        loaded, error = load_credential(Credential(target, tokens))
        if isinstance(error, ExpiredCredential):
            warnings.append(f"target {name}: {error}")
        elif error is not None and (keys := _key_of(index, target, error)) not in dict(extras):
            # (A broken CA file fails the credential too: it is reported once, above.)
            problem(index, target, keys, f"target {name}: {error}")
        warnings += [f"target {name}: {w}" for w in (loaded.warnings if loaded else ())]
    problems = tuple(i for issues in by_file.values() for i in issues)
    return FileCheck(problems, tuple(warnings), {f: tuple(i) for f, i in by_file.items()})


async def check_files_async(
    path: str, cfg: Config, origins: Mapping[str, Origin] | None = None
) -> FileCheck:
    """:func:`check_files` in a worker thread: the event loop keeps serving meanwhile."""
    return await asyncio.to_thread(check_files, path, cfg, origins)


def _unreadable_extras(index: int, target: Target) -> list[tuple[KeyPath, str]]:
    """The files beside the credential: the CA file and the receipt secret."""
    found: list[tuple[KeyPath, str]] = []
    if target.ca_file is not None:
        try:
            client_context(str(target.ca_file))
        except FileError as exc:
            found.append((("targets", index, "ca_file"), str(exc)))
    delivery = target.canary.delivery if target.canary is not None else None
    if delivery is not None:
        try:
            delivery.secret()
        except FileError as exc:
            found.append((("targets", index, "canary", "delivery", "secret_file"), str(exc)))
        except ValueError as exc:
            message = f"receipt secret {delivery.secret_file}: {exc}"
            found.append((("targets", index, "canary", "delivery", "secret_file"), message))
    return found


def _key_of(index: int, target: Target, error: CredentialError) -> KeyPath:
    """The config key of the file ``error`` names, else the one its reason points at."""
    auth: KeyPath = ("targets", index, "auth", target.auth.method)
    named = {
        "key_file": target.auth.token.key_file if target.auth.token else None,
        "ca_file": target.ca_file,
    }
    if target.auth.certificate is not None:
        cert = target.auth.certificate
        named = {"password_file": cert.password_file, "key_file": cert.key_file}
        named |= {"cert_file": cert.cert_file, "ca_file": target.ca_file}
    message = str(error)
    # A file that cannot be read is located at its own key; a content problem where the
    # reason says (a wrong password belongs to password_file, not to the file it opens).
    readable = error.reason in FileError.REASONS
    for key, file in named.items():
        if file is not None and f" {file}:" in message and (readable or key == "ca_file"):
            return ("targets", index, "ca_file") if key == "ca_file" else (*auth, key)
    return config.credential_key(index, target, error.reason)
