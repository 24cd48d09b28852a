"""The credentials probe: re-read changed key or certificate files; a bad one never wins."""

from __future__ import annotations

from apns_exporter.creds.credential import load_credential_async
from apns_exporter.probes.results import CredentialsResult
from apns_exporter.probes.run import ProbeRun


async def run(ctx: ProbeRun) -> CredentialsResult:
    """Reload the target's credential if its files changed, and report the one in use."""
    shared = ctx.shared
    current, adopt = shared.loaded, None
    problem, reason = shared.credential_problem, shared.credential_reason
    if shared.credential is not None and shared.credential.changed():
        # Off the loop: a slow disk or a big file must not stall every other probe.
        loaded, error = await load_credential_async(shared.credential)
        # An expired credential replaces nothing that still works; a broken one nothing at all.
        if loaded is not None and (error is None or current is None):
            adopt = current = loaded
            ctx.log("credential changed on disk: reloaded, new connections use it")
        problem, reason = (str(error), error.reason) if error is not None else (None, None)
        if error is not None and loaded is None:
            ctx.log(f"credential changed on disk but cannot be used: {error}")
    return CredentialsResult(
        run=ctx.finish(),
        ok=problem is None,
        message=problem or "credential loaded",
        error=reason,
        certificate=current.certificate if current else None,
        adopt=adopt,
    )
