"""Configuration: strict YAML to a frozen, typed Config with located, one-line errors."""

from apns_exporter.config.loader import load, parse
from apns_exporter.config.models import (
    Auth,
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
    "load",
    "parse",
]
