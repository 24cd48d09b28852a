"""Configuration: strict YAML to a frozen, typed Config with located, one-line errors."""

from apns_exporter.config.fleet import Fleet, load, load_fleet
from apns_exporter.config.loader import credential_key, locate, parse
from apns_exporter.config.models import (
    Auth,
    BroadcastConfig,
    CanaryConfig,
    CertificateAuth,
    Config,
    DeliveryConfig,
    DiscoverSource,
    EnvironmentChecks,
    GlobalConfig,
    PingConfig,
    ReachabilityConfig,
    ReceiptsConfig,
    RequiredRoot,
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
    "DiscoverSource",
    "EnvironmentChecks",
    "Fleet",
    "GlobalConfig",
    "PingConfig",
    "ReachabilityConfig",
    "ReceiptsConfig",
    "RequiredRoot",
    "Target",
    "TlsCheckConfig",
    "TokenAuth",
    "credential_key",
    "load",
    "load_fleet",
    "locate",
    "parse",
]
