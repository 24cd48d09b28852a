"""Two server chains under two roots, to rehearse a CA rollout like Apple's in 2025.

Apple moved the APNs servers from a chain ending in "AAA Certificate Services" to one
ending in "SHA-2 Root: USERTrust RSA Certification Authority" (sandbox on 21 January 2025,
production on 24 February 2025), and asked providers to trust both roots meanwhile
(Apple Developer News, "Apple Push Notification service server certificate update").
These roots only borrow the names, with a marker, so they cannot be mistaken for the real
ones: each is a throwaway CA issuing one intermediate and the server certificate.

A mock serves either chain (:data:`OLD_ROOT` or :data:`NEW_ROOT`) and switches at run
time (``MockAPNs.use_keypair`` or the admin API's ``PUT /certificates/current``); two
mocks started with different chains behind one name make a half-rolled-out host.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from apns_exporter.mock.pki import DEFAULT_HOSTNAMES, CertificateAuthority, Keypair, generate_ca

OLD_ROOT = "old-root"
NEW_ROOT = "new-root"
MARK = " (apns-exporter mock)"
OLD_ROOT_NAME = "AAA Certificate Services" + MARK
NEW_ROOT_NAME = "USERTrust RSA Certification Authority" + MARK
_INTERMEDIATE = "mock APNs CA under {root}"  # a CN holds at most 64 characters


@dataclass(frozen=True)
class RootRollout:
    """The old and the new root CA of a server-chain rollout."""

    old: CertificateAuthority
    new: CertificateAuthority

    def chains(self, hostnames: Sequence[str] = DEFAULT_HOSTNAMES) -> dict[str, Keypair]:
        """A server chain (leaf and intermediate) under each root, by name."""
        return {
            name: ca.issue_intermediate(_INTERMEDIATE.format(root=root)).issue_server(hostnames)
            for name, ca, root in (
                (OLD_ROOT, self.old, "AAA Certificate Services"),
                (NEW_ROOT, self.new, "USERTrust RSA Certification Authority"),
            )
        }

    @property
    def bundle_pem(self) -> bytes:
        """Both roots: the trust store Apple asked providers to have during the change."""
        return self.old.cert_pem + self.new.cert_pem


def generate_rollout() -> RootRollout:
    """Two fresh root CAs named after the roots of Apple's 2025 APNs server change."""
    return RootRollout(old=generate_ca(OLD_ROOT_NAME), new=generate_ca(NEW_ROOT_NAME))
