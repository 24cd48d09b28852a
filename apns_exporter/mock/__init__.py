"""A mock of Apple's APNs provider API over real HTTP/2 and TLS, for tests, demos and drills.

It is an independent server-side implementation: it never imports the exporter's client code
(protocol, connection, probes, tokens), so client bugs show up as test failures instead of
being mirrored. See docs/mock-apns.md.
"""

from apns_exporter.mock.devices import Device, DeviceRegistry, Notification
from apns_exporter.mock.faults import (
    BUILTIN_SCENARIOS,
    DeviceScript,
    ErrorFault,
    GoAwayFault,
    IdleClose,
    Latency,
    PingFault,
    Scenario,
    load_scenario,
    scenario_from_dict,
    scenario_to_dict,
)
from apns_exporter.mock.keys import KeyRegistry, ProviderKey
from apns_exporter.mock.pki import (
    CertificateAuthority,
    Keypair,
    ProviderCertificate,
    ProviderIdentity,
    SigningKeyPair,
    generate_ca,
    generate_signing_key,
    read_provider_identity,
)
from apns_exporter.mock.policy import VALIDATION_ORDER, Policy, RateLimit
from apns_exporter.mock.server import MockAPNs
from apns_exporter.mock.stats import Stats

__all__ = [
    "BUILTIN_SCENARIOS",
    "VALIDATION_ORDER",
    "CertificateAuthority",
    "Device",
    "DeviceRegistry",
    "DeviceScript",
    "ErrorFault",
    "GoAwayFault",
    "IdleClose",
    "KeyRegistry",
    "Keypair",
    "Latency",
    "MockAPNs",
    "Notification",
    "PingFault",
    "Policy",
    "ProviderCertificate",
    "ProviderIdentity",
    "ProviderKey",
    "RateLimit",
    "Scenario",
    "SigningKeyPair",
    "Stats",
    "generate_ca",
    "generate_signing_key",
    "load_scenario",
    "read_provider_identity",
    "scenario_from_dict",
    "scenario_to_dict",
]
