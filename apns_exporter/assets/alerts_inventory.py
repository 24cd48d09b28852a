"""Alerts on the credential inventory: the MDM topic trap."""

from __future__ import annotations

from apns_exporter.assets.params import Params
from apns_exporter.assets.promql import ON, Rule, alert

# How long the alert fires after a topic change: long enough to be seen and acted on,
# short enough not to stay forever (the exporter cannot tell when devices re-enrolled).
TOPIC_CHANGE_WINDOW_SECONDS = 7 * 86400


def inventory_alerts(p: Params) -> list[Rule]:
    """A renewed push certificate that carries another topic than the one it replaced."""
    changed = p.select("apns_client_certificate_topic_changed_timestamp_seconds")
    change = p.select("apns_client_certificate_topic_change_info")
    return [
        alert(
            p,
            "ApnsMdmTopicChanged",
            f"(time() - {changed})\n* {ON} group_left (previous_topic, topic) {change}\n"
            f"< {TOPIC_CHANGE_WINDOW_SECONDS}",
            "warning",
            "A renewed MDM push certificate carries a different topic.",
            """The push certificate of target {{ $labels.target }} ({{
            $labels.apns_environment }}) was replaced by one whose topic is {{ $labels.topic
            }} instead of {{ $labels.previous_topic }}. Devices enrolled under the old topic
            no longer receive MDM pushes and must all re-enrol. Put the previous certificate
            back and renew it with the same Apple ID, from the account that made the original
            CSR.""",
        ),
    ]
