"""Panel descriptions and thresholds both dashboards share."""

from __future__ import annotations

from apns_exporter.assets.grafana import thresholds

CANARY_UP = (
    "Result of the most recent canary push or auth check (apns_up). A canary is a real "
    "push to a test device, or a push to a well-formed fake token that APNs must answer "
    "with 400 BadDeviceToken, which proves TLS, authentication and routing."
)
CERT_DAYS = (
    "Days until the client certificate presented on the live connection expires. Alerts: "
    "warning at 28 days, critical (production) at 1 (MDM certificates: 60/30/14/1). Empty "
    "for token (.p8) authentication, which does not expire."
)
JWT_AGE = (
    "Age of the provider token (JWT) in use. Apple: refresh no more often than every 20 "
    "minutes (blue: younger than that) and no less often than every 60 (red: APNs rejects "
    "it with ExpiredProviderToken); orange from 55 minutes. Empty for certificate auth."
)
CONNECTION_UP = "1 while the HTTP/2 connection to APNs is open and its last PING was acknowledged."
CANARY_P99 = (
    "p99 time from sending a canary to APNs' response headers over the last 30 minutes, "
    "from the recording rule target_quantile:apns_canary_duration_seconds:histogram_quantile "
    "(load the shipped rules). The alert watches the median (above 2 s)."
)

DELIVERED = (
    "Share of the last hour's device canaries whose delivery receipt came back from the "
    "canary device within the deadline, from the recording rule "
    "target:apns_canary_delivery_lost:ratio1h. Empty when delivery receipts are not set up "
    "(docs/delivery-receipts.md). Alert below 50%."
)
DELIVERY_P50 = (
    "Median time from sending a canary to the device's delivery receipt over the last hour, "
    "from the recording rule "
    "target_quantile:apns_canary_delivery_duration_seconds:histogram_quantile. Alert above "
    "10 s."
)

JWT_STEPS = thresholds((None, "blue"), (1200, "green"), (3300, "orange"), (3600, "red"))
DAYS_STEPS = thresholds((None, "red"), (7, "orange"), (28, "green"))
