"""Configuration: strict YAML to a frozen, typed Config with located, one-line errors."""

from apns_exporter.config.loader import credential_key, load, locate, parse
from apns_exporter.config.models import (
    Auth,
    BroadcastConfig,
    CanaryConfig,
    CertificateAuth,
    Config,
    DeliveryConfig,
    GlobalConfig,
    PingConfig,
    ReachabilityConfig,
    ReceiptsConfig,
    Target,
    TlsCheckConfig,
    TokenAuth,
)

__all__ = [
    "Auth",
    "BroadcastConfig",
    "CanaryConfig",
    "CertificateAuth",
    "Config",
    "DeliveryConfig",
    "GlobalConfig",
    "PingConfig",
    "ReachabilityConfig",
    "ReceiptsConfig",
    "Target",
    "TlsCheckConfig",
    "TokenAuth",
    "credential_key",
    "load",
    "locate",
    "parse",
]
