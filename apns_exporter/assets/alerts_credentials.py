"""Alerts on causes in the credentials and the server's TLS chain: warnings, never pages.

When one of these breaks pushes, the canary fails and ApnsCanaryFailing pages with the
failing layer; these alerts name the cause beside it, in working hours.
"""

from __future__ import annotations

from apns_exporter.apns import AUTH_REASONS, Reason
from apns_exporter.assets.params import Params
from apns_exporter.assets.promql import ON, Rule, alert, count, interval, last, per_target

AUTH = tuple(sorted(r.value for r in AUTH_REASONS))
TOKEN_UPDATES = Reason.TOO_MANY_PROVIDER_TOKEN_UPDATES.value
_AUTH = "|".join(AUTH)


def _in_answers_or_goaways(p: Params, matchers: str, window: str) -> str:
    responses = count(p.select("apns_canary_responses_total", matchers), window)
    goaways = count(p.select("apns_goaway_received_total", matchers), window)
    return f"  sum without (status) ({responses}) > 0\nor\n  sum without () ({goaways}) > 0"


def _days(days: int) -> str:
    return f"{days} * 86400"


def auth_alerts(p: Params) -> list[Rule]:
    """Authentication: rejections, token age at use, token updates, a revoked key, rotation."""
    w = p.canary_window
    auth = 'reason=~"' + _AUTH + '"'
    updates = 'reason="' + TOKEN_UPDATES + '"'
    streak = last(p.select("apns_signing_key_invalid_streak"))
    issued = p.select("apns_provider_token_issued_timestamp_seconds")
    used = p.select("apns_canary_last_attempt_timestamp_seconds")
    due = p.select("apns_signing_key_rotation_due_timestamp_seconds")
    return [
        # A key that worked and now gets InvalidProviderToken is ApnsSigningKeyRevoked's.
        alert(
            p,
            "ApnsAuthenticationFailing",
            f"(\n{_in_answers_or_goaways(p, auth, w)}\n)\nunless {ON} {streak} > 0",
            "warning",
            "APNs rejects the exporter's credentials.",
            """APNs rejected the credentials of target {{ $labels.target }}
            ({{ $labels.apns_environment }}) with 403 {{ $labels.reason }}
            {{ printf "%.0f" $value }} time(s) in the last """
            + w
            + """. {{ if eq $labels.reason "ExpiredProviderToken" }}The provider token is
            older than 60 minutes by APNs' clock: the exporter host's clock is wrong or token
            refresh is stuck.{{ else if eq $labels.reason "InvalidProviderToken" }}The JWT
            does not verify: wrong key_id or team_id, or a key that never worked.{{ else if
            eq $labels.reason "MissingProviderToken" }}Neither a provider token nor a client
            certificate was presented.{{ else if eq $labels.reason "BadCertificate" }}The
            client certificate is expired, revoked or not an APNs certificate.{{ else if eq
            $labels.reason "BadCertificateEnvironment" }}The client certificate is for the
            other APNs environment (sandbox vs production).{{ else if eq $labels.reason
            "Forbidden" }}The credential may not send to this topic.{{ else }}The signing
            key's scope (team-scoped or topic-specific, sandbox or production) does not match
            this connection.{{ end }} Every server using this credential is likely failing
            too; ApnsCanaryFailing pages if the canary fails.""",
            for_="1m",
        ),
        # The token's age when a canary used it: between canaries it is not used, so its
        # age then means nothing. APNs rejects a token older than 60 minutes.
        alert(
            p,
            "ApnsProviderTokenTooOld",
            f"{used} - {ON} {issued} > {p.token_age_at_use_minutes} * 60",
            "warning",
            "The APNs provider token was close to or past its 60-minute lifetime when used.",
            """The last canary of target {{ $labels.target }} ({{ $labels.apns_environment }})
            was signed with a provider token (JWT) issued {{ $value | humanizeDuration }}
            before it; the exporter should mint a new one after refresh_interval (default
            50m), and APNs rejects tokens older than 60 minutes with 403
            ExpiredProviderToken. Likely causes: token refresh failing
            (apns_provider_token_refresh_failures_total, an unreadable .p8 file) or
            refresh_interval set close to 60m.""",
            for_="2m",
        ),
        alert(
            p,
            "ApnsTooManyProviderTokenUpdates",
            _in_answers_or_goaways(p, updates, "1h"),
            "warning",
            "APNs reports provider token updates that are too frequent.",
            """APNs answered 429 TooManyProviderTokenUpdates {{ printf "%.0f" $value }}
            time(s) in the last hour for target {{ $labels.target }} ({{
            $labels.apns_environment }}): it saw a new provider token less than 20 minutes
            after the previous one. Likely causes: frequent exporter restarts (each process
            mints a new token), or other senders minting a new token per request with the
            same signing key.""",
        ),
        # Three consecutive InvalidProviderToken after the key had worked: the streak
        # debounces already, so no for:.
        alert(
            p,
            "ApnsSigningKeyRevoked",
            f"{streak} >= 3",
            "warning",
            "The APNs signing key has probably been revoked.",
            """{{ printf "%.0f" $value }} consecutive canary pushes of target {{
            $labels.target }} ({{ $labels.apns_environment }}) were rejected with 403
            InvalidProviderToken after the signing key{{ range """
            + per_target("apns_signing_key_info{{T}}")
            + """ | query }} {{ .Labels.key_id }} (team {{ .Labels.team_id }}){{ end }} had
            been accepted{{ with """
            + per_target("time() - apns_signing_key_last_verified_timestamp_seconds{{T}} < 1e9")
            + """ | query }} {{ . | first | value | humanizeDuration }} ago{{ end }}. A key
            that worked and now fails was most likely revoked in the Apple Developer account;
            every server signing with it is failing. Create a new key and roll it out.""",
        ),
        alert(
            p,
            "ApnsSigningKeyRotationDue",
            f"{due} - time() < {_days(p.key_rotation_warning_days)}",
            "warning",
            "An APNs signing key is due for rotation.",
            """The signing key of target {{ $labels.target }} ({{ $labels.apns_environment
            }}){{ range """
            + per_target("apns_signing_key_info{{T}}")
            + """ | query }} ({{ .Labels.key_id }}){{ end }} {{ if lt $value 0.0 }}was due
            for rotation {{ $value | humanizeDuration | reReplaceAll "^-" "" }} ago{{ else
            }}is due for rotation in {{ $value | humanizeDuration }}{{ end }}, by the
            rotate_by date in the exporter's configuration. Keys do not expire by themselves;
            this is your own policy's reminder.""",
            for_="15m",
        ),
    ]


def certificate_alerts(p: Params) -> list[Rule]:
    """Client certificate expiry bands and credential files that do not load."""
    left = f"{last(p.select('apns_client_certificate_not_after_timestamp_seconds'))} - time()"
    mdm = f"{ON} " + last(p.select("apns_client_certificate_info", 'mdm="true"'))
    production = last(p.select("apns_client_certificate_info", 'apns_environment="production"'))
    canary = f"{ON} {interval(p, 'canary')} > 0"
    description = (
        """{{ $mdm := false }}{{ $cn := "" }}{{ range """
        + per_target("apns_client_certificate_info{{T}}")
        + """ | query }}{{ $cn = .Labels.subject_cn }}{{ if eq .Labels.mdm "true" }}{{ $mdm =
        true }}{{ end }}{{ end }}The {{ if $mdm }}MDM push{{ else }}client{{ end }}
        certificate{{ with $cn }} "{{ . }}"{{ end }} of target {{ $labels.target }} ({{
        $labels.apns_environment }}) {{ if lt $value 0.0 }}expired {{ $value |
        humanizeDuration | reReplaceAll "^-" "" }} ago{{ else }}expires in {{ $value |
        humanizeDuration }}{{ end }}. {{ if $mdm }}Renew it at identity.apple.com with the
        same Apple ID that created it; a newly created certificate gets a new topic and
        forces every enrolled device to re-enrol.{{ else }}An expired certificate fails the
        TLS handshake with APNs for every sender using it; renew it in the Apple Developer
        account and deploy it to the app servers and the exporter.{{ end }}"""
    )
    summary = "An APNs client certificate expires soon."

    def band(expr: str, severity: str, window: int) -> Rule:
        return alert(
            p,
            "ApnsClientCertificateExpiring",
            expr,
            severity,
            summary,
            description,
            for_="15m",
            expiry_window=f"{window}d",
        )

    return [
        band(
            f"{left} < {_days(p.cert_warning_days)}\nunless {mdm}", "warning", p.cert_warning_days
        ),
        band(f"{left} < {_days(p.mdm_info_days)}\nand {mdm}", "info", p.mdm_info_days),
        band(
            f"(\n  {left} < {_days(p.mdm_warning_days)}\n"
            f"  and\n  {left} >= {_days(p.mdm_late_warning_days)}\n)\nand {mdm}",
            "warning",
            p.mdm_warning_days,
        ),
        band(
            f"{left} < {_days(p.mdm_late_warning_days)}\nand {mdm}",
            "warning",
            p.mdm_late_warning_days,
        ),
        # Pages the day before it expires. Once it has expired a canary target's canary
        # fails and ApnsCanaryFailing pages instead: one page for one cause.
        band(
            f"{left} < {_days(p.cert_critical_days)}\n"
            f"and {ON} {production}\nunless ({left} <= 0 and {canary})",
            "critical",
            p.cert_critical_days,
        ),
        alert(
            p,
            "ApnsCredentialLoadFailed",
            f"{last(p.select('apns_credential_up'))} == 0",
            "warning",
            "The APNs exporter cannot load a credential.",
            """The exporter {{ $labels.instance }} cannot load the credential (client
            certificate or .p8 signing key) of target {{ $labels.target }} ({{
            $labels.apns_environment }}). Load errors since the exporter started: {{ range
            $i, $s := """
            + per_target("apns_credential_load_errors_total{{T}} > 0")
            + """ | query | sortByLabel "reason" }}{{ if $i }}, {{ end }}{{ $s.Labels.reason
            }} ({{ printf "%.0f" $s.Value }}){{ else }}none recorded{{ end }}. not_found and
            permission_denied point at the mount or file mode, bad_* at the file's content
            or passphrase, key_mismatch at a certificate and key that do not belong together,
            expired at a certificate past its end date.""",
            for_="5m",
        ),
    ]


def tls_alerts(p: Params) -> list[Rule]:
    """The chain APNs presents: trust and changes."""
    verified = last(p.select("apns_server_certificate_verified", 'trust_store="effective"'))
    verify_failures = count(
        p.select("apns_connection_failures_total", 'reason="tls_verify"'), p.canary_window
    )
    changes = count(p.select("apns_server_certificate_chain_changes_total"), "1h")
    chain = per_target("apns_server_certificate_info{{T}}")
    return [
        alert(
            p,
            "ApnsServerCertificateUntrusted",
            f"max without (trust_store) ({verified}) == 0\n"
            f"or\nsum without (reason) ({verify_failures}) > 0",
            "warning",
            "The APNs server certificate chain does not verify.",
            """TLS verification failed: the certificate chain APNs presents to target {{
            $labels.target }} ({{ $labels.apns_environment }}) does not verify against the
            exporter's trust store{{ range """
            + chain
            + """ | query }} (issuer "{{ .Labels.issuer }}", root "{{ .Labels.root }}"){{ end
            }}. Apple moved APNs to the USERTrust RSA Certification Authority root in 2025
            (sandbox January 20, production February 24); hosts with an old or pinned CA
            bundle fail here, and app servers built from the same image fail the same way.
            Other causes: a TLS-intercepting proxy, or a wrong ca_file.""",
            for_="5m",
        ),
        alert(
            p,
            "ApnsServerCertificateChainChanged",
            f"{changes} > 0",
            "info",
            "The APNs server certificate chain changed.",
            """The certificate chain APNs presents to target {{ $labels.target }} ({{
            $labels.apns_environment }}) changed {{ printf "%.0f" $value }} time(s) in the
            last hour{{ range """
            + chain
            + """ | query }}; it is now issued by "{{ .Labels.issuer }}" under root "{{
            .Labels.root }}"{{ end }}. A routine leaf renewal needs nothing; a new root must
            be in the trust store of every server that talks to APNs.""",
        ),
    ]
