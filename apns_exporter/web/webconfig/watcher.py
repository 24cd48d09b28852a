"""The web config in force: re-read when the file or its TLS files change, never weakened live."""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import ssl
import time
from collections.abc import Callable
from pathlib import Path

from cryptography import x509

from apns_exporter import files
from apns_exporter.errors import WebConfigError
from apns_exporter.web.webconfig.servertls import (
    TLSMaterial,
    TLSServerConfig,
    build_context,
    load_chain,
    load_client_cas,
    read_material,
)
from apns_exporter.web.webconfig.settings import WebConfig, load

log = logging.getLogger("apns_exporter.web.webconfig")

# The files are looked at (stat only) at most this often: cheap per request, quick for rotation.
CHECK_INTERVAL_SECONDS = 1.0

_TLSState = tuple[tuple[Path | None, ...], files.Fingerprint]


def _tls_state(tls: TLSServerConfig) -> _TLSState:
    """The TLS file paths and what identifies their versions, to tell when a reload is due."""
    return tls.files, files.fingerprint(tls.files)


class WebConfigWatcher:
    """The current web config, re-read when the file or its TLS files change."""

    def __init__(
        self, path: str | os.PathLike[str], *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.path = Path(path)
        self._clock = clock
        self._file_state = files.fingerprint((self.path,))
        self._config = load(path)
        self._checked_at = clock()
        self._last_error: str | None = None
        self._context: ssl.SSLContext | None = None
        self._listening = False
        # What the listener was started with, and which TLS files (and versions) it holds now.
        self._context_settings: tuple[object, ...] | None = None
        self._loaded: _TLSState = ((), ())
        self._restart_warned: tuple[object, ...] | None = None

    def current(self) -> WebConfig:
        """The config to apply now; looks at the files at most once per second."""
        now = self._clock()
        if now - self._checked_at >= CHECK_INTERVAL_SECONDS:
            self._checked_at = now
            self._check()
        return self._config

    def reload(self) -> WebConfig:
        """Look at the files now (e.g. on SIGHUP), whatever the time since the last look."""
        self._checked_at = self._clock()
        self._check()
        return self._config

    def ssl_context(self) -> ssl.SSLContext | None:
        """The one SSLContext to listen with (None: plain HTTP); rotated certificates go into it."""
        tls = self._config.tls
        if not self._listening:
            if tls is not None:
                material = read_material(tls)
                self._context = build_context(tls, material)
                self._loaded = _tls_state(tls)
                self._warn_if_not_valid_now(tls, material)
            self._listening = True
            self._context_settings = self._restart_warned = (
                None if tls is None else tls.restart_settings()
            )
        return self._context

    async def run(self) -> None:
        """Check the files every second until cancelled, so rotation is noticed without requests."""
        while True:
            await asyncio.sleep(CHECK_INTERVAL_SECONDS)
            self.current()

    def _refuse(self, message: str) -> None:
        # A failed load is retried every check, because it may be a TLS file caught
        # mid-rotation rather than the YAML; each distinct problem is logged once.
        if message != self._last_error:
            self._last_error = message
            log.error("%s; keeping the previous web config", message)

    def _check(self) -> None:
        state = files.fingerprint((self.path,))
        if state != self._file_state:
            try:
                config = load(self.path)
            except WebConfigError as exc:
                self._refuse(str(exc))
            else:
                lost = self._config.protections - config.protections
                if lost:
                    self._refuse(
                        f"{self.path}: the new web config turns off {', '.join(sorted(lost))}; "
                        "that is refused while running (restart the exporter to apply it)"
                    )
                else:
                    self._config, self._file_state, self._last_error = config, state, None
                    log.info("web config %s reloaded", self.path)
        if self._listening:
            self._update_context()

    def _warn_if_not_valid_now(self, tls: TLSServerConfig, material: TLSMaterial) -> None:
        # The files loaded, so TLS works; but clients refuse a certificate out of its dates.
        cert = x509.load_pem_x509_certificates(material.chain_pem)[0]
        now = datetime.datetime.now(datetime.UTC)
        if cert.not_valid_after_utc <= now:
            problem = f"expired at {cert.not_valid_after_utc:%Y-%m-%d %H:%M:%SZ}"
        elif cert.not_valid_before_utc > now:
            problem = f"is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M:%SZ}"
        else:
            return
        log.warning(
            "%s: the certificate in cert_file %s %s; clients will refuse the connection "
            "(replace the certificate)",
            self.path,
            tls.cert_file,
            problem,
        )

    def _update_context(self) -> None:
        tls = self._config.tls
        wanted = None if tls is None else tls.restart_settings()
        if wanted != self._context_settings and wanted != self._restart_warned:
            self._restart_warned = wanted
            log.warning(
                "%s: TLS was turned on, or its versions or client authentication changed; "
                "restart the exporter to apply that",
                self.path,
            )
        if tls is None or self._context is None:
            return
        state = _tls_state(tls)
        (files, states), (old_files, old_states) = state, self._loaded
        chain_changed = (files[:2], states[:2]) != (old_files[:2], old_states[:2])
        ca_changed = tls.client_ca_file is not None and (
            (files[2:], states[2:]) != (old_files[2:], old_states[2:])
        )
        if not chain_changed and not ca_changed:
            return
        # Record even a failed attempt, so it is logged once; the next change retries.
        self._loaded = state
        try:
            # Validate on a scratch context first: a failed load_cert_chain can leave the
            # live context holding a certificate without its key.
            # Each file is read once; the live context is loaded from those same bytes.
            material = read_material(tls)
            build_context(tls, material)
            if chain_changed:
                load_chain(self._context, material)
            if ca_changed:
                # OpenSSL can add trust anchors to a live context but never remove them.
                load_client_cas(self._context, material)
        except (WebConfigError, OSError, ssl.SSLError) as exc:
            log.error(
                "%s: cannot load the changed TLS files: %s; keeping the previous ones",
                self.path,
                exc,
            )
            return
        log.info("%s: loaded the changed TLS certificate files", self.path)
        if chain_changed:
            self._warn_if_not_valid_now(tls, material)
        if ca_changed:
            log.warning(
                "%s: client_ca_file changed; its new CAs are trusted now, but CAs removed "
                "from it stay trusted until the exporter restarts",
                self.path,
            )
