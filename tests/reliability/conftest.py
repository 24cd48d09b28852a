"""Fixtures for the reliability suites: a probe gate installed in front of every probe."""

from __future__ import annotations

import pytest

from apns_exporter.probes import ProbeKind, canary, ping
from tests.reliability.support import Gate


def pytest_configure(config: pytest.Config) -> None:
    """Register the soak marker (bounded, so it runs in CI too)."""
    config.addinivalue_line("markers", "soak: a bounded long run; still part of the CI suite")


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Gate:
    """A gate in front of the canary and ping probes, so a test can park every probe loop."""
    gate = Gate()
    monkeypatch.setattr(canary, "run", gate.wrap(ProbeKind.CANARY, canary.run))
    monkeypatch.setattr(ping, "run", gate.wrap(ProbeKind.PING, ping.run))
    return gate
