"""Subcommands beyond run: probe (one target now) and demo (mock plus exporter)."""
