"""Render docs/performance.md tables from benchmarks/results/*.json."""

from __future__ import annotations


def update_docs() -> None:
    """Placeholder until the report is written."""
