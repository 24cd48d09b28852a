"""Ground-truth counters: what the mock actually did, for tests to compare with client metrics."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Stats:
    """Counters since the mock started; plain attributes, safe to read at any time."""

    connections: int = 0  # connections that completed TLS with ALPN h2
    active_connections: int = 0
    tls_handshakes: int = 0  # handshakes started; minus connections = failed or non-h2
    requests: int = 0
    responses: Counter[tuple[int, str]] = field(default_factory=Counter)
    pings: int = 0
    ping_acks_withheld: int = 0
    refused_streams: int = 0
    stalled_streams: int = 0
    goaways: int = 0
    protocol_errors: int = 0
    settings_sent: int = 0

    def count(self, status: int, reason: str = "") -> int:
        """How many responses had this status and reason ("" for none)."""
        return self.responses[(status, reason)]

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view for the admin API."""
        return {
            "connections": self.connections,
            "active_connections": self.active_connections,
            "tls_handshakes": self.tls_handshakes,
            "requests": self.requests,
            "responses": [
                {"status": status, "reason": reason, "count": count}
                for (status, reason), count in sorted(self.responses.items())
            ],
            "pings": self.pings,
            "ping_acks_withheld": self.ping_acks_withheld,
            "refused_streams": self.refused_streams,
            "stalled_streams": self.stalled_streams,
            "goaways": self.goaways,
            "protocol_errors": self.protocol_errors,
            "settings_sent": self.settings_sent,
        }
