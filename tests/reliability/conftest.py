"""Fixtures for the reliability suites: a probe gate installed in front of every probe."""

from __future__ import annotations

import dataclasses

import pytest

from apns_exporter.probes import ProbeKind
from apns_exporter.probes.registry import PROBES
from tests.reliability.support import Gate


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Gate:
    """A gate in front of the canary and ping probes, so a test can park every probe loop."""
    gate = Gate()
    for kind in (ProbeKind.CANARY, ProbeKind.PING):
        spec = PROBES[kind]
        monkeypatch.setitem(PROBES, kind, dataclasses.replace(spec, run=gate.wrap(kind, spec.run)))
    return gate
