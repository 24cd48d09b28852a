"""The mock's conformance table: each APNs rule, what the mock does, and the test that pins it.

Each row is a rule as Apple states it (with the title of the Apple document it comes from),
or, where Apple is silent, the behaviour we chose (marked "undocumented: our choice") with
what real clients observe, cited by issue or pull-request title. ``render_markdown()``
produces the table in docs/mock-apns.md (run ``python -m apns_exporter.mock.conformance``);
tests/mock/test_mock_conformance.py checks that the docs match, that every row names an
existing ``test_rule_*`` test, that every such test has a row, and that every reason in
``apns_exporter.apns.Reason`` is covered.

This module is longer than the usual 400 lines because it is a data table: one entry per
rule, kept together so that a reviewer sees the whole table in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

DOCUMENTED: Final = "documented"
OUR_CHOICE: Final = "undocumented: our choice"

SEND = "Sending notification requests to APNs"
TOKEN = "Establishing a token-based connection to APNs"
CERT = "Establishing a certificate-based connection to APNs"
RESPONSES = "Handling notification responses from APNs"
GUIDE = "Local and Remote Notification Programming Guide (legacy): Communicating with APNs"
MANAGE = "Sending channel management requests to APNs"
BROADCAST = "Sending broadcast push notification requests to APNs"
_SDKS = (
    'APNSwift "Add broadcast push support" (PR #254, APNSBroadcastClient and its test '
    'server); @parse/node-apn 6.4.0 "channel management and broadcast" (PR #164)'
)

_A = "tests/mock/test_conformance_aioapns.py::"
_H = "tests/mock/test_conformance_h2.py::"
_R = "tests/mock/test_conformance_h2_requests.py::"
_B = "tests/mock/test_conformance_h2_broadcast.py::"


@dataclass(frozen=True)
class Row:
    """One rule: Apple's words (or the question Apple leaves open) and how the mock answers."""

    id: str
    kind: Literal["documented", "undocumented: our choice"]
    apple: str
    source: str
    mock: str
    tests: tuple[str, ...]
    reasons: tuple[str, ...] = ()
    evidence: str = ""


def _doc(id: str, apple: str, source: str, mock: str, *tests: str, reasons: str = "") -> Row:
    return Row(id, DOCUMENTED, apple, source, mock, tests, tuple(reasons.split()))


def _ours(id: str, question: str, evidence: str, mock: str, *tests: str, reasons: str = "") -> Row:
    return Row(id, OUR_CHOICE, question, "", mock, tests, tuple(reasons.split()), evidence)


ROWS: tuple[Row, ...] = (
    # -- connection --------------------------------------------------------------------------
    _doc(
        "stream-limit",
        "When using an authentication token, APNs allows only one stream until you post a "
        "request with a valid authentication token.",
        SEND,
        "First SETTINGS: HEADER_TABLE_SIZE 4096, MAX_CONCURRENT_STREAMS 1, INITIAL_WINDOW_SIZE "
        "65535, MAX_FRAME_SIZE 16384, MAX_HEADER_LIST_SIZE 8000. After the first valid token "
        "the limit is 1000 (`Policy.authenticated_streams`).",
        _H + "test_rule_settings_and_one_stream_until_a_valid_token",
    ),
    _ours(
        "stream-limit-after-rejection",
        "What happens to the stream limit after a rejected push?",
        'openradar-mirror "27870881: APNs server sets maximum concurrent streams to 1 after a '
        'failed notification"; pushy "The delay of APNs\'s response is very high(even up to '
        '700s)".',
        "Any rejection drops the limit to 1; the next accepted push restores it "
        "(`Policy.drop_streams_on_rejection`).",
        _H + "test_rule_rejection_drops_the_stream_limit",
    ),
    _ours(
        "stream-over-limit",
        "How is a stream beyond the advertised limit refused?",
        'pushy "Not all notifications got response" (RST_STREAM error code 7 after the limit '
        'fell to 1); pushy "Received GOAWAY from APNs server: Maximum active streams violated '
        'for this endpoint." shows the other form.',
        "RST_STREAM REFUSED_STREAM on that stream; the connection stays up. The plain-text "
        "GOAWAY form is available as a fault (`goaway.debug: text`).",
        _H + "test_rule_stream_over_the_limit_is_refused",
    ),
    _doc(
        "priority-frames",
        "APNs ignores HTTP/2 PRIORITY frames, so don't send them on your streams.",
        SEND,
        "PRIORITY frames are accepted and ignored.",
        _H + "test_rule_priority_frames_are_ignored",
    ),
    _doc(
        "goaway-json",
        "APNs may also terminate a connection by sending a GOAWAY frame. The payload of the "
        "GOAWAY frame includes JSON data with a reason key, indicating the reason for the "
        "connection termination.",
        SEND,
        'Every GOAWAY the mock starts on its own carries `{"reason":…}`; `POST /goaway` and '
        "scenarios choose the reason (default `Shutdown`), or a text or empty form.",
        _H + "test_rule_goaway_json_reason_through_the_admin_api",
        reasons="Shutdown",
    ),
    _doc(
        "idle-timeout",
        "IdleTimeout (400): Idle time out.",
        GUIDE + ", Table 8-6",
        'The `idle_close` fault sends GOAWAY `{"reason":"IdleTimeout"}`; `debug: empty` sends '
        "empty debug data and `followed_by_empty` adds an empty GOAWAY after the JSON one, "
        'as seen in the wild (golang/go "x/net/http2: EOF when Transport received GOAWAY '
        '(http2 client)"). The built-in `idle-timeout` scenario does the pair. A 400 '
        "IdleTimeout response is only injected (`errors`).",
        _H + "test_rule_idle_close_goaway_says_idle_timeout",
        _A + "test_rule_injected_reasons",
        reasons="IdleTimeout",
    ),
    # -- provider tokens ---------------------------------------------------------------------
    _doc(
        "missing-provider-token",
        "MissingProviderToken (403): No provider certificate was used to connect to APNs and "
        "Authorization header was missing or no provider token was specified.",
        GUIDE + ", Table 8-6",
        "403 MissingProviderToken.",
        _H + "test_rule_missing_provider_token",
        reasons="MissingProviderToken",
    ),
    _doc(
        "token-es256",
        "Specify the value ES256 in the algorithm header key (alg).",
        GUIDE,
        "Any other alg, an unknown kid, an iss that is not the key's team or a signature that "
        "does not verify is 403 InvalidProviderToken.",
        _H + "test_rule_token_must_be_es256",
        _A + "test_rule_invalid_provider_token",
        reasons="InvalidProviderToken",
    ),
    _doc(
        "token-expiry",
        "If the timestamp for token issue is not within the last hour, APNs rejects "
        "subsequent push messages, returning an ExpiredProviderToken (403) error.",
        GUIDE,
        "iat older than 3600 s by the mock's clock is 403 ExpiredProviderToken.",
        _A + "test_rule_expired_provider_token",
        _H + "test_rule_token_expires_after_an_hour_and_wedges",
        reasons="ExpiredProviderToken",
    ),
    _ours(
        "expired-token-wedges",
        "Is a connection usable after ExpiredProviderToken?",
        'pushy "Not all notifications got response" (the limit fell to 1 and in-flight '
        'streams were refused); pushy "Retry notifications on stream reset (fixes #476)".',
        "No: the connection is wedged, its limit is 1 and every later stream is refused "
        "(`Policy.wedge_on_expired_token`).",
        _H + "test_rule_token_expires_after_an_hour_and_wedges",
    ),
    _doc(
        "token-refresh",
        "TooManyProviderTokenUpdates (429): The provider token is being updated too often. "
        "Refresh your token no more than once every 20 minutes.",
        TOKEN,
        "A token different from the one the connection accepted, within 20 min, is 429; "
        "re-sending the same token is not an update (`Policy.token_update_scope`).",
        _H + "test_rule_token_updates_at_most_every_20_minutes",
        reasons="TooManyProviderTokenUpdates",
    ),
    _doc(
        "one-team-per-connection",
        "APNs doesn't support authentication tokens from multiple developer accounts on a "
        "single connection.",
        TOKEN,
        "The first accepted token pins the team; another team's token is 403 "
        "InvalidProviderToken (Apple names no reason; Pushy's mock answers the same).",
        _H + "test_rule_one_team_per_connection",
    ),
    _doc(
        "unrelated-key",
        "UnrelatedKeyIdInToken (403): The key ID in the provider token isn't related to the "
        "key ID of the token used in the first push of this connection.",
        RESPONSES,
        "A topic-specific key after a team key (or another unrelated key) on one connection "
        "is 403 UnrelatedKeyIdInToken.",
        _H + "test_rule_unrelated_key_id_in_token",
        reasons="UnrelatedKeyIdInToken",
    ),
    _doc(
        "environment-key",
        "BadEnvironmentKeyIdInToken (403); team-scoped keys are limited to Sandbox or Production.",
        TOKEN,
        "A key registered with `environment=` used on the other environment is 403 "
        "BadEnvironmentKeyIdInToken.",
        _A + "test_rule_bad_environment_key_id_in_token",
        reasons="BadEnvironmentKeyIdInToken",
    ),
    _ours(
        "der-signature",
        "Must the ES256 signature be raw R||S (RFC 7515), or is DER accepted?",
        'APNSwift "[BUG] ES256 signer is not according to spec": "Apple\'s server actually '
        'accepts these JWTs" (DER).',
        "Both raw R||S and DER signatures verify.",
        _H + "test_rule_der_signature_is_accepted",
    ),
    _ours(
        "string-iat",
        "Must iat be a JSON number?",
        'APNSwift "Validate requests in APNSTestServer and fix JWT claim encoding": its iat '
        "was a JSON string, in production use for years.",
        "A numeric string is read as a number; anything else is InvalidProviderToken.",
        _H + "test_rule_string_iat_is_accepted",
    ),
    _ours(
        "future-iat",
        "Is a token with an iat in the future rejected?",
        'No report pins it; apnotic "Receiving sporadic InvalidProviderToken errors from '
        'Apple" suspects clock skew without confirming it.',
        "Accepted by default; `Policy.max_future_iat` turns it into InvalidProviderToken.",
        _H + "test_rule_future_iat_is_accepted",
    ),
    # -- path and method ---------------------------------------------------------------------
    _doc(
        "method",
        "MethodNotAllowed (405): The specified :method was not POST.",
        GUIDE + ", Table 8-6",
        "405 MethodNotAllowed for every other method, before auth; HEAD gets no body.",
        _R + "test_rule_method_not_allowed",
        reasons="MethodNotAllowed",
    ),
    _doc(
        "bad-path",
        "BadPath (404): The request contained a bad :path value.",
        GUIDE + ", Table 8-6",
        "Anything but `/3/device/<token>` is 404 BadPath (broadcast paths too).",
        _R + "test_rule_bad_path",
        reasons="BadPath",
    ),
    _doc(
        "missing-device-token",
        "MissingDeviceToken (400): The device token is not specified in the request :path.",
        GUIDE + ", Table 8-6",
        "`/3/device/` with no token is 400 MissingDeviceToken.",
        _A + "test_rule_missing_device_token",
        reasons="MissingDeviceToken",
    ),
    _ours(
        "query-string",
        "What about a query string after the device token?",
        "No client report found: real clients never send one.",
        "Ignored, as HTTP servers commonly do; the push is judged on the path alone.",
        _R + "test_rule_query_string_is_ignored",
    ),
    # -- headers -----------------------------------------------------------------------------
    _doc(
        "apns-id",
        "A canonical UUID that identifies the notification … If you omit this header, a new "
        "UUID is created by APNs and returned in the response. BadMessageId (400): The "
        "apns-id value is bad.",
        GUIDE + ", Tables 8-2, 8-3, 8-6",
        "A valid apns-id is echoed; a missing one is generated (lowercase uuid4); a bad one "
        "is 400 BadMessageId, answered under a generated apns-id.",
        _A + "test_rule_accepted_push_echoes_apns_id",
        _R + "test_rule_apns_id_generated_when_omitted",
        _R + "test_rule_bad_message_id",
        reasons="BadMessageId",
    ),
    _ours(
        "apns-id-case",
        "Apple shows the canonical form as lowercase; is an upper-case UUID rejected?",
        'AndrewBarba/apns2 "[Feature Request]: Add `apns-unique-id` in response" shows APNs '
        'answering with an upper-case apns-id; APNSwift "Return the `apns-unique-id` header '
        'in `APNSResponse`" lower-cases IDs only for logging.',
        "Accepted and echoed unchanged.",
        _R + "test_rule_uppercase_apns_id_is_accepted",
    ),
    _doc(
        "expiration",
        "A UNIX epoch date expressed in seconds (UTC) … If the value is 0, APNs treats the "
        "notification as if it expires immediately. BadExpirationDate (400): The "
        "apns-expiration value is bad.",
        GUIDE + ", Tables 8-2, 8-6",
        "Digits only (0 allowed); anything else is 400 BadExpirationDate. Expiry itself is "
        "not modelled: devices are always online.",
        _R + "test_rule_expiration_is_unix_seconds",
        reasons="BadExpirationDate",
    ),
    _doc(
        "priority-values",
        "The priority of the notification. Specify one of the following values: 10 … 5. "
        "(Newer: apns-priority 1.) BadPriority (400): The apns-priority value is bad.",
        GUIDE + ", Tables 8-2, 8-6; " + SEND,
        "10, 5 and 1 are accepted; any other value is 400 BadPriority.",
        _A + "test_rule_bad_priority_value",
        reasons="BadPriority",
    ),
    _doc(
        "priority-10-content-available",
        "It is an error to use this priority for a push notification that contains only the "
        "content-available key.",
        GUIDE + ", Table 8-2 (apns-priority 10)",
        "apns-priority 10 with an `aps` holding only `content-available` is 400 BadPriority, "
        "whatever the push type; keys outside `aps` are app data and do not count.",
        _A + "test_rule_priority_10_needs_more_than_content_available",
        reasons="BadPriority",
    ),
    _ours(
        "priority-omitted-content-available",
        "Apple says an omitted priority means 10; is a content-available-only push without "
        "apns-priority an error?",
        "aioapns and sideshow/apns2 send apns-priority only when the caller sets it "
        "(their request-building code), and no report of such pushes being rejected exists.",
        "Accepted: only an explicit apns-priority 10 is checked.",
        _R + "test_rule_omitted_priority_with_content_available",
    ),
    _ours(
        "background-priority-10",
        "Is a background push at priority 10 an error when its payload has an alert?",
        'sideshow/apns2 comment on PushTypeBackground: "Always use priority 5. Using '
        'priority 10 is an error."',
        "400 BadPriority for push type background with priority 10.",
        _A + "test_rule_background_push_with_priority_10",
    ),
    _doc(
        "push-type",
        "The apns-push-type header field has the following valid values. InvalidPushType (400).",
        SEND,
        "A value outside alert, background, location, voip, complication, fileprovider, mdm, "
        "liveactivity, pushtotalk, widgets, controls is 400 InvalidPushType.",
        _R + "test_rule_invalid_push_type",
        reasons="InvalidPushType",
    ),
    _ours(
        "push-type-omitted",
        "Recent and upcoming features may not work if this header is missing: rejected?",
        "aioapns sends apns-push-type only when the caller sets it (its request-building "
        "code) and works against Apple.",
        "Treated as alert (`Policy.require_push_type` makes it InvalidPushType).",
        _R + "test_rule_omitted_push_type_is_alert",
    ),
    _ours(
        "push-type-topic-suffix",
        "Which reason does a push type get when the topic lacks its suffix (.voip, "
        ".complication, .push-type.liveactivity …)?",
        "sideshow/apns2's PushType comments in notification.go give the suffix per type; "
        'APNSwift "Validate requests in APNSTestServer and fix JWT claim encoding" enforces '
        "it with BadTopic.",
        "400 BadTopic.",
        _A + "test_rule_push_type_topic_suffix",
        reasons="BadTopic",
    ),
    _doc(
        "topic-token",
        "If you are using a provider token instead of a certificate, you must specify a value "
        "for this request header.",
        GUIDE + ", Table 8-2",
        "400 MissingTopic.",
        _R + "test_rule_token_connection_needs_a_topic",
        reasons="MissingTopic",
    ),
    _doc(
        "topic-certificate",
        "If your certificate includes multiple topics, you must specify a value for this "
        "header. The certificate … must include the capability for this topic.",
        GUIDE + ", Table 8-2; " + CERT,
        "Multi-topic certificate without apns-topic: 400 MissingTopic; a topic outside the "
        "certificate: 400 BadTopic.",
        _H + "test_rule_certificate_topics",
        reasons="MissingTopic BadTopic",
    ),
    _doc(
        "topic-certificate-default",
        "If you omit this request header and your APNs certificate does not specify "
        "multiple topics, the APNs server uses the certificate's Subject as the default topic.",
        GUIDE + ", Table 8-2",
        "The subject UID is the topic.",
        _H + "test_rule_single_topic_certificate_default_topic",
    ),
    _doc(
        "topic-disallowed",
        "TopicDisallowed (400): Pushing to this topic is not allowed.",
        GUIDE + ", Table 8-6",
        "Topics outside a topic-specific key, or in `Policy.disallowed_topics`.",
        _A + "test_rule_topic_disallowed",
        reasons="TopicDisallowed",
    ),
    _doc(
        "collapse-id",
        "The value of this key must not exceed 64 bytes. BadCollapseId (400).",
        GUIDE + ", Tables 8-2, 8-6",
        "Over 64 bytes (UTF-8) is 400 BadCollapseId; 64 is fine.",
        _A + "test_rule_accepted_push_echoes_apns_id",
        _A + "test_rule_bad_collapse_id",
        reasons="BadCollapseId",
    ),
    _ours(
        "duplicate-headers",
        "DuplicateHeaders (400): One or more headers were repeated. Which headers count?",
        "No client report found; HTTP/2 clients do not repeat APNs headers by accident.",
        "Any non-pseudo header sent twice is 400 DuplicateHeaders.",
        _R + "test_rule_duplicate_headers",
        reasons="DuplicateHeaders",
    ),
    # -- device token ------------------------------------------------------------------------
    _doc(
        "device-token",
        "BadDeviceToken (400): The specified device token was bad. Don't make assumptions "
        "about device token size.",
        GUIDE + ", Table 8-6; " + SEND,
        "Hex of 64 to 200 characters (`Policy.device_token_length`), registered, and for this "
        "environment; otherwise 400 BadDeviceToken.",
        _A + "test_rule_bad_device_token",
        _R + "test_rule_device_token_size",
        reasons="BadDeviceToken",
    ),
    _doc(
        "device-token-topic",
        "DeviceTokenNotForTopic (400): The device token does not match the specified topic.",
        GUIDE + ", Table 8-6",
        "400 DeviceTokenNotForTopic.",
        _A + "test_rule_device_token_not_for_topic",
        reasons="DeviceTokenNotForTopic",
    ),
    _doc(
        "gone-device",
        "Unregistered (410): The device token is inactive for the specified topic. "
        "ExpiredToken (410): The device token has expired. timestamp: the last time at which "
        "APNs confirmed that the device token was no longer valid for the topic.",
        GUIDE + ", Tables 8-5, 8-6; " + RESPONSES,
        "410 with the reason and `timestamp` in milliseconds (`devices.unregister`).",
        _A + "test_rule_gone_device_is_410_with_timestamp",
        reasons="Unregistered ExpiredToken",
    ),
    # -- payload -----------------------------------------------------------------------------
    _doc(
        "payload-empty",
        "PayloadEmpty (400): The message payload was empty.",
        GUIDE + ", Table 8-6",
        "400 PayloadEmpty.",
        _R + "test_rule_payload_empty",
        reasons="PayloadEmpty",
    ),
    _doc(
        "payload-size",
        "Its maximum size is 4KB (4096 bytes). For a Voice over Internet Protocol (VoIP) "
        "notification, the body data maximum size is 5KB (5120 bytes).",
        GUIDE + ", Table 8-2; " + SEND,
        "413 PayloadTooLarge above 4096 bytes, or 5120 for push type voip.",
        _A + "test_rule_payload_limits",
        reasons="PayloadTooLarge",
    ),
    _doc(
        "too-many-requests",
        "TooManyRequests (429): Too many requests were made consecutively to the same device "
        "token.",
        GUIDE + ", Table 8-6",
        "Off by default (Apple's limit is unknown); `Policy.rate_limit` sets pushes per "
        "window per device token.",
        _A + "test_rule_too_many_requests",
        reasons="TooManyRequests",
    ),
    # -- responses ---------------------------------------------------------------------------
    _doc(
        "response-body",
        "For a successful request, the body of the response is empty. On failure, the "
        "response body contains a JSON dictionary … timestamp: If the value in the :status "
        "header is 410 …",
        GUIDE + ", Table 8-5",
        'Empty body on 200; `{"reason":…}` on errors, plus `timestamp` only on 410.',
        _R + "test_rule_response_bodies",
    ),
    _doc(
        "apns-unique-id",
        "apns-unique-id: an identifier that is only available in the Development environment.",
        RESPONSES,
        "Sandbox responses carry a lowercase uuid4 `apns-unique-id`; production ones do not.",
        _R + "test_rule_apns_unique_id_in_sandbox_only",
    ),
    _doc(
        "server-errors",
        "InternalServerError (500): An internal server error occurred. ServiceUnavailable "
        "(503): The service is unavailable. 503: The server is shutting down and unavailable. "
        "Forbidden (403): The specified action is not allowed.",
        GUIDE + ", Tables 8-4, 8-6",
        "No natural trigger: answered through a scenario `errors` entry (probability, count).",
        _A + "test_rule_injected_reasons",
        reasons="InternalServerError ServiceUnavailable Shutdown Forbidden",
    ),
    _ours(
        "environment-key-variant",
        "BadEnvironmentKeyInToken is listed by client libraries, not in Apple's tables: when "
        "is it sent?",
        'APNSwift lists it in APNSError ("authentication key or token is used with the wrong '
        'APNs environment"); no capture of its trigger is public.',
        "Never sent on its own (the mock answers BadEnvironmentKeyIdInToken); inject it.",
        _A + "test_rule_injected_reasons",
        reasons="BadEnvironmentKeyInToken",
    ),
    # -- certificates ------------------------------------------------------------------------
    _ours(
        "bad-certificate",
        "BadCertificate (403): The certificate was bad. Is it a response, or a TLS failure?",
        'buford "TLS alert "internal error" when using expired APNs certificate": Apple '
        "fails the handshake.",
        "Expired, not-yet-valid or untrusted client certificates fail at TLS; 403 "
        "BadCertificate is only injected.",
        _H + "test_rule_bad_certificate_fails_tls",
        _A + "test_rule_injected_reasons",
        reasons="BadCertificate",
    ),
    _ours(
        "certificate-environment",
        "BadCertificateEnvironment (403): The client certificate was for the wrong "
        "environment. Is it a response or a GOAWAY?",
        'sideshow/apns2 "APNs invalid certificate yields (confusing) connection error": '
        'GOAWAY LastStreamID=0 Debug="{"reason":"BadCertificateEnvironment"}".',
        'GOAWAY `{"reason":"BadCertificateEnvironment"}` with last_stream_id 0 right after '
        "the preface, then close.",
        _H + "test_rule_wrong_environment_certificate",
        reasons="BadCertificateEnvironment",
    ),
    # -- broadcast channel management (iOS 18) ----------------------------------------------
    _doc(
        "broadcast-hosts",
        "Channel management requests go to api-manage-broadcast.sandbox.push.apple.com:2195 "
        "(development) and api-manage-broadcast.push.apple.com:2196 (production); broadcasts "
        "themselves are POST /4/broadcasts/apps/<bundle ID> on the usual push hosts.",
        MANAGE + "; " + BROADCAST,
        "`apns.Environment.management_endpoint`; the mock runs the management API on its own "
        "port (`ManagementServer`, `mock-apns --broadcast-listen`) with the push server's "
        "keys, clock and server chain.",
        _B + "test_rule_management_hosts_and_ports",
    ),
    _doc(
        "broadcast-create",
        "Create a channel with POST /1/apps/<bundle ID>/channels and a JSON body naming the "
        "message-storage-policy (0 or 1) and the push-type LiveActivity; APNs answers 201 "
        "with the new channel's ID in the apns-channel-id header.",
        MANAGE,
        "201, empty body, `apns-channel-id` a base64 string of 16 random bytes.",
        _B + "test_rule_create_channel",
    ),
    _doc(
        "broadcast-read",
        "Read a channel's configuration with GET /1/apps/<bundle ID>/channels and its ID in "
        "the apns-channel-id header.",
        MANAGE,
        '200 `{"message-storage-policy":…,"push-type":"LiveActivity"}`.',
        _B + "test_rule_read_channel",
    ),
    _doc(
        "broadcast-list",
        "List every channel ID of an app with GET /1/apps/<bundle ID>/all-channels.",
        MANAGE,
        '200 `{"channels":[…]}`; read-only, so it is what a monitoring probe should send.',
        _B + "test_rule_list_all_channels",
    ),
    _doc(
        "broadcast-delete",
        "Delete a channel with DELETE /1/apps/<bundle ID>/channels and its ID in the "
        "apns-channel-id header.",
        MANAGE,
        "204 with no body; the channel is gone afterwards.",
        _B + "test_rule_delete_channel",
    ),
    _doc(
        "broadcast-request-id",
        "apns-request-id: a canonical UUID identifying the request; APNs creates one when you "
        "don't send it and returns it in the response.",
        MANAGE,
        "Every answer, errors included, carries `apns-request-id`: the client's, else a new uuid4.",
        _B + "test_rule_request_id_on_every_answer",
    ),
    _doc(
        "broadcast-auth",
        "Channel management requests authenticate with the same provider token or "
        "certificate as notification requests.",
        MANAGE,
        "The push JWT rules (signature, key, environment, one-hour age) with the push reasons; "
        "a topic-scoped key for another app is 400 TopicDisallowed.",
        _B + "test_rule_management_authenticates_like_pushes",
    ),
    _ours(
        "broadcast-no-rights",
        "How is a key (or app) without the broadcast capability refused?",
        _SDKS + " both list FeatureNotEnabled among the broadcast reasons.",
        "A key added with `broadcast=False` gets 403 FeatureNotEnabled on every management "
        "request (403, like the other refusals of a credential; excluded from AUTH_REASONS "
        "so canary alerts are unchanged).",
        _B + "test_rule_key_without_broadcast_rights",
        reasons="FeatureNotEnabled",
    ),
    _ours(
        "broadcast-channel-errors",
        "Which reason and status for a missing, malformed or unknown apns-channel-id?",
        _SDKS + " list MissingChannelId, BadChannelId and ChannelNotRegistered.",
        "400 MissingChannelId, 400 BadChannelId (not base64), 404 ChannelNotRegistered.",
        _B + "test_rule_channel_id_errors",
        reasons="MissingChannelId BadChannelId ChannelNotRegistered",
    ),
    _ours(
        "broadcast-create-errors",
        "Which reasons for a create request with a bad body?",
        _SDKS + " list MissingPushType and BadRequestPayload.",
        "400 PayloadEmpty (no body), BadRequestPayload (not a JSON object, or a "
        "message-storage-policy other than 0 or 1), MissingPushType, InvalidPushType "
        "(not LiveActivity).",
        _B + "test_rule_create_errors",
        reasons="MissingPushType BadRequestPayload",
    ),
    _ours(
        "broadcast-limit",
        "How many channels may an app have, and what happens beyond?",
        _SDKS + " list CannotCreateChannelConfig.",
        "`ChannelStore.limit` (10 000 by default); beyond it 400 CannotCreateChannelConfig.",
        _B + "test_rule_channel_limit",
        reasons="CannotCreateChannelConfig",
    ),
    _ours(
        "broadcast-order",
        "In which order are management requests checked?",
        _SDKS + " check nothing client-side; no capture of Apple's order is public.",
        "Path (404 BadPath), method (405 MethodNotAllowed), auth, apns-request-id (400 "
        "BadMessageId), then the request (channel ID or body).",
        _B + "test_rule_management_check_order",
    ),
    # -- order -------------------------------------------------------------------------------
    _ours(
        "defect-order",
        "Which reason wins when a request has several defects? Apple says only that it "
        "validates the token or certificate and then uses the device token.",
        'gorush "Improve APNs http2 connection health check": HEAD with no token is 405 '
        "(method before auth).",
        "One constant, `VALIDATION_ORDER`: method, path, auth, headers (apns-id, priority, "
        "push type, topic, collapse-id, expiration, duplicates), device token, payload, rate.",
        _R + "test_rule_defect_order",
    ),
)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _test_names(row: Row) -> str:
    return "<br>".join(f"`{test.rpartition('::')[2]}`" for test in row.tests)


def render_markdown() -> str:
    """The conformance table as Markdown, exactly as docs/mock-apns.md embeds it."""
    lines = [
        "| rule | Apple | the mock | kind | pinned by |",
        "|---|---|---|---|---|",
    ]
    for row in ROWS:
        if row.kind == DOCUMENTED:
            apple = f"{row.apple} — *{row.source}*"
        else:
            apple = f"Apple is silent. {row.apple} Clients observe: {row.evidence}"
        cells = (f"`{row.id}`", apple, row.mock, row.kind, _test_names(row))
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_markdown(), end="")
