"""The credentials probe: reload changed key or certificate files; a bad one never wins."""

from __future__ import annotations

import logging

from apns_exporter.creds.credential import Loaded, load_credential
from apns_exporter.probes import ProbeResult, ProbeRun, TargetContext

log = logging.getLogger(__name__)


async def run(ctx: ProbeRun) -> ProbeResult:
    """Reload the target's credential if its files changed, and report the one in use."""
    shared = ctx.shared
    if shared.credential is not None and shared.credential.changed():
        loaded, error = load_credential(shared.credential)
        # An expired credential replaces nothing that still works; a broken one nothing at all.
        if loaded is not None and (error is None or shared.loaded is None):
            await use(shared, loaded)
            ctx.log("credential changed on disk: reloaded, new connections use it")
        shared.credential_error = error
        if error is not None and loaded is None:
            ctx.log(f"credential changed on disk but cannot be used: {error}")
            log.error(
                "target %s: new credential rejected, keeping the old: %s", ctx.target.name, error
            )
    error, current = shared.credential_error, shared.loaded
    return ctx.result(
        error is None,
        str(error) if error else "credential loaded",
        error=error.reason if error else None,
        certificate=current.certificate if current else None,
    )


async def use(shared: TargetContext, loaded: Loaded) -> None:
    """Make ``loaded`` the target's credential; new connections present it."""
    old, shared.loaded = shared.loaded, loaded
    shared.token = loaded.token
    shared.credential_ok = True
    for warning in loaded.warnings:
        log.warning("target %s: %s", shared.target.name, warning)
    if old is not None and old.token is loaded.token and loaded.certificate is None:
        return  # the same signing key: the token and the connection stay as they are
    # A new certificate, or a new key (whose token must not follow the old one on the
    # same connection): drain the old connections; the next probe dials with the new one.
    for channel in shared.channels():
        await channel.replace_ssl_context(
            loaded.ssl_context, client_certificate=loaded.certificate is not None
        )
