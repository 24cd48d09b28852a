"""APNs vocabulary: environments, hosts, push types and reason codes; pure data, no IO."""

from __future__ import annotations

from enum import StrEnum

# Apple's provider API hosts; "api.development.push.apple.com" is an older sandbox alias.
PRODUCTION_HOST = "api.push.apple.com"
SANDBOX_HOST = "api.sandbox.push.apple.com"
# 2197 is Apple's alternative port for networks that block outbound 443.
DEFAULT_PORT = 443
ALTERNATE_PORT = 2197

# Broadcast push (iOS 18): channels are managed on their own hosts and ports ("Sending
# channel management requests to APNs"); broadcasts go to the push hosts ("Sending
# broadcast push notification requests to APNs").
PRODUCTION_MANAGEMENT_HOST = "api-manage-broadcast.push.apple.com"
SANDBOX_MANAGEMENT_HOST = "api-manage-broadcast.sandbox.push.apple.com"
PRODUCTION_MANAGEMENT_PORT = 2196
SANDBOX_MANAGEMENT_PORT = 2195
CHANNELS_PATH = "/1/apps/{bundle_id}/channels"
ALL_CHANNELS_PATH = "/1/apps/{bundle_id}/all-channels"
BROADCAST_PATH = "/4/broadcasts/apps/{bundle_id}"

# Device-side courier hosts (N-courier.push.apple.com); devices and MDM need 5223, or 443.
COURIER_HOST = "1-courier.push.apple.com"
COURIER_PORTS = (5223, 443)
# Apple's own address block, and the IPv6 ranges Apple lists for APNs (support.apple.com
# HT210060, "Use Apple products on enterprise networks"). An APNs host resolving outside
# them points at DNS hijacking or an intercepting proxy.
APPLE_NETWORKS = (
    "17.0.0.0/8",
    "2620:149:a44::/48",
    "2403:300:a42::/48",
    "2403:300:a51::/48",
    "2a01:b740:a42::/48",
)

# The roots Apple's current server-certificate notice asks providers to trust (Apple
# Developer News, "Apple Push Notification service server certificate update": sandbox
# from 21 January 2025, production from 24 February 2025): name and SHA-256 fingerprint.
REQUIRED_ROOTS = (
    (
        "USERTrust RSA Certification Authority",
        "e793c9b02fd8aa13e21c31228accb08119643b749c898964b1746d46c3d4cbd2",
    ),
)

# Payload limits from Apple's "Sending notification requests to APNs".
MAX_PAYLOAD_BYTES = 4096
MAX_VOIP_PAYLOAD_BYTES = 5120

# APNs rejects tokens whose iat is older than one hour, and answers 429
# TooManyProviderTokenUpdates when a connection sees a new token sooner than 20 minutes.
TOKEN_MAX_AGE_SECONDS = 3600.0
TOKEN_MIN_REFRESH_SECONDS = 1200.0


class Environment(StrEnum):
    """Which APNs service a target talks to."""

    PRODUCTION = "production"
    SANDBOX = "sandbox"

    @property
    def host(self) -> str:
        """The provider API host name for this environment."""
        return PRODUCTION_HOST if self is Environment.PRODUCTION else SANDBOX_HOST

    @property
    def management_endpoint(self) -> tuple[str, int]:
        """Host and port of the broadcast channel-management API for this environment."""
        if self is Environment.PRODUCTION:
            return PRODUCTION_MANAGEMENT_HOST, PRODUCTION_MANAGEMENT_PORT
        return SANDBOX_MANAGEMENT_HOST, SANDBOX_MANAGEMENT_PORT


class PushType(StrEnum):
    """Values of the ``apns-push-type`` header."""

    ALERT = "alert"
    BACKGROUND = "background"
    LOCATION = "location"
    VOIP = "voip"
    COMPLICATION = "complication"
    FILEPROVIDER = "fileprovider"
    MDM = "mdm"
    LIVEACTIVITY = "liveactivity"
    PUSHTOTALK = "pushtotalk"
    WIDGETS = "widgets"
    CONTROLS = "controls"

    @property
    def topic_suffix(self) -> str:
        """The suffix APNs requires on ``apns-topic`` for this push type."""
        return _TOPIC_SUFFIX.get(self, "")

    @property
    def max_payload_bytes(self) -> int:
        """The largest payload APNs accepts for this push type."""
        return MAX_VOIP_PAYLOAD_BYTES if self is PushType.VOIP else MAX_PAYLOAD_BYTES


# Sources: sideshow/apns2 notification.go, APNSwift topicSuffixRequirements.
_TOPIC_SUFFIX = {
    PushType.VOIP: ".voip",
    PushType.COMPLICATION: ".complication",
    PushType.FILEPROVIDER: ".pushkit.fileprovider",
    PushType.LOCATION: ".location-query",
    PushType.LIVEACTIVITY: ".push-type.liveactivity",
    PushType.PUSHTOTALK: ".voip-ptt",
    PushType.WIDGETS: ".push-type.widgets",
    PushType.CONTROLS: ".push-type.controls",
}


class Reason(StrEnum):
    """Every ``reason`` string APNs documents, plus ``unknown`` for anything newer."""

    BAD_COLLAPSE_ID = "BadCollapseId"
    BAD_DEVICE_TOKEN = "BadDeviceToken"
    BAD_EXPIRATION_DATE = "BadExpirationDate"
    BAD_MESSAGE_ID = "BadMessageId"
    BAD_PRIORITY = "BadPriority"
    BAD_TOPIC = "BadTopic"
    DEVICE_TOKEN_NOT_FOR_TOPIC = "DeviceTokenNotForTopic"
    DUPLICATE_HEADERS = "DuplicateHeaders"
    IDLE_TIMEOUT = "IdleTimeout"
    INVALID_PUSH_TYPE = "InvalidPushType"
    MISSING_DEVICE_TOKEN = "MissingDeviceToken"
    MISSING_TOPIC = "MissingTopic"
    PAYLOAD_EMPTY = "PayloadEmpty"
    TOPIC_DISALLOWED = "TopicDisallowed"
    BAD_CERTIFICATE = "BadCertificate"
    BAD_CERTIFICATE_ENVIRONMENT = "BadCertificateEnvironment"
    EXPIRED_PROVIDER_TOKEN = "ExpiredProviderToken"
    FORBIDDEN = "Forbidden"
    INVALID_PROVIDER_TOKEN = "InvalidProviderToken"
    MISSING_PROVIDER_TOKEN = "MissingProviderToken"
    UNRELATED_KEY_ID_IN_TOKEN = "UnrelatedKeyIdInToken"
    BAD_ENVIRONMENT_KEY_ID_IN_TOKEN = "BadEnvironmentKeyIdInToken"
    BAD_ENVIRONMENT_KEY_IN_TOKEN = "BadEnvironmentKeyInToken"
    BAD_PATH = "BadPath"
    METHOD_NOT_ALLOWED = "MethodNotAllowed"
    EXPIRED_TOKEN = "ExpiredToken"
    UNREGISTERED = "Unregistered"
    PAYLOAD_TOO_LARGE = "PayloadTooLarge"
    TOO_MANY_PROVIDER_TOKEN_UPDATES = "TooManyProviderTokenUpdates"
    TOO_MANY_REQUESTS = "TooManyRequests"
    INTERNAL_SERVER_ERROR = "InternalServerError"
    SERVICE_UNAVAILABLE = "ServiceUnavailable"
    SHUTDOWN = "Shutdown"
    # Broadcast push and channel management only (see BROADCAST_REASONS).
    BAD_CHANNEL_ID = "BadChannelId"
    BAD_REQUEST_PAYLOAD = "BadRequestPayload"
    CANNOT_CREATE_CHANNEL_CONFIG = "CannotCreateChannelConfig"
    CHANNEL_NOT_REGISTERED = "ChannelNotRegistered"
    FEATURE_NOT_ENABLED = "FeatureNotEnabled"
    MISSING_CHANNEL_ID = "MissingChannelId"
    MISSING_PUSH_TYPE = "MissingPushType"
    UNKNOWN = "unknown"

    @property
    def status(self) -> int:
        """The HTTP status APNs answers with for this reason (0 for ``unknown``)."""
        return _STATUS[self]

    @classmethod
    def parse(cls, text: str | None) -> Reason:
        """Map a reason string from APNs onto the enum, never raising."""
        try:
            return cls(text or "")
        except ValueError:
            return cls.UNKNOWN


_STATUS: dict[Reason, int] = {
    **dict.fromkeys(
        [
            Reason.BAD_COLLAPSE_ID,
            Reason.BAD_DEVICE_TOKEN,
            Reason.BAD_EXPIRATION_DATE,
            Reason.BAD_MESSAGE_ID,
            Reason.BAD_PRIORITY,
            Reason.BAD_TOPIC,
            Reason.DEVICE_TOKEN_NOT_FOR_TOPIC,
            Reason.DUPLICATE_HEADERS,
            Reason.IDLE_TIMEOUT,
            Reason.INVALID_PUSH_TYPE,
            Reason.MISSING_DEVICE_TOKEN,
            Reason.MISSING_TOPIC,
            Reason.PAYLOAD_EMPTY,
            Reason.TOPIC_DISALLOWED,
        ],
        400,
    ),
    **dict.fromkeys(
        [
            Reason.BAD_CERTIFICATE,
            Reason.BAD_CERTIFICATE_ENVIRONMENT,
            Reason.EXPIRED_PROVIDER_TOKEN,
            Reason.FORBIDDEN,
            Reason.INVALID_PROVIDER_TOKEN,
            Reason.MISSING_PROVIDER_TOKEN,
            Reason.UNRELATED_KEY_ID_IN_TOKEN,
            Reason.BAD_ENVIRONMENT_KEY_ID_IN_TOKEN,
            Reason.BAD_ENVIRONMENT_KEY_IN_TOKEN,
        ],
        403,
    ),
    Reason.BAD_PATH: 404,
    Reason.METHOD_NOT_ALLOWED: 405,
    Reason.EXPIRED_TOKEN: 410,
    Reason.UNREGISTERED: 410,
    Reason.PAYLOAD_TOO_LARGE: 413,
    Reason.TOO_MANY_PROVIDER_TOKEN_UPDATES: 429,
    Reason.TOO_MANY_REQUESTS: 429,
    Reason.INTERNAL_SERVER_ERROR: 500,
    Reason.SERVICE_UNAVAILABLE: 503,
    Reason.SHUTDOWN: 503,
    # Statuses of the broadcast reasons where Apple's tables leave room: the mock's choice
    # (docs/mock-apns.md, conformance rows broadcast-*).
    Reason.BAD_CHANNEL_ID: 400,
    Reason.BAD_REQUEST_PAYLOAD: 400,
    Reason.CANNOT_CREATE_CHANNEL_CONFIG: 400,
    Reason.CHANNEL_NOT_REGISTERED: 404,
    Reason.FEATURE_NOT_ENABLED: 403,
    Reason.MISSING_CHANNEL_ID: 400,
    Reason.MISSING_PUSH_TYPE: 400,
    Reason.UNKNOWN: 0,
}

# Reasons only the broadcast and channel-management APIs answer: a device push never gets
# them, so per-device series need not be pre-initialised for them.
BROADCAST_REASONS = frozenset(
    {
        Reason.BAD_CHANNEL_ID,
        Reason.BAD_REQUEST_PAYLOAD,
        Reason.CANNOT_CREATE_CHANNEL_CONFIG,
        Reason.CHANNEL_NOT_REGISTERED,
        Reason.FEATURE_NOT_ENABLED,
        Reason.MISSING_CHANNEL_ID,
        Reason.MISSING_PUSH_TYPE,
    }
)

# Reasons that mean "the credential was not accepted" (as opposed to a bad request).
AUTH_REASONS = frozenset(r for r in Reason if r.status == 403 and r not in BROADCAST_REASONS)
