"""The topic memory behind the MDM topic trap."""

from __future__ import annotations

from dataclasses import replace

from apns_exporter.creds.certificates import CertificateSummary
from apns_exporter.service.inventory import Inventory

MDM = CertificateSummary(
    not_before=0.0,
    not_after=1.0,
    subject_cn="APSP:1111",
    uid="com.apple.mgmt.External.1111",
    team_id="TEAM123456",
    topics=("com.apple.mgmt.External.1111",),
    environments=frozenset({"production"}),
    fingerprint_sha256="00",
    serial="1",
    issuer_cn="Apple Application Integration 2 Certification Authority",
    is_mdm=True,
)


def test_a_new_mdm_topic_is_reported_once_with_both_topics() -> None:
    """The first certificate sets the topic; another UID is a change, reported once."""
    inventory = Inventory()
    renewed = replace(MDM, uid="com.apple.mgmt.External.2222", serial="2")
    assert inventory.topic_seen("vendor", MDM) is None
    assert inventory.topic_seen("vendor", replace(MDM, serial="3")) is None  # same topic
    assert inventory.topic_seen("vendor", renewed) == (
        "com.apple.mgmt.External.1111",
        "com.apple.mgmt.External.2222",
    )
    assert inventory.topic_seen("vendor", renewed) is None


def test_app_certificates_changing_bundle_are_not_the_mdm_trap() -> None:
    """Two non-MDM certificates with different UIDs raise nothing: only MDM topics are kept."""
    inventory = Inventory()
    app = replace(MDM, uid="com.example.app", is_mdm=False)
    assert inventory.topic_seen("app", app) is None
    assert inventory.topic_seen("app", replace(app, uid="com.example.other")) is None
