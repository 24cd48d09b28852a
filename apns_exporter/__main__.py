"""Entry point for ``python -m apns_exporter``."""

from apns_exporter.cli import main

raise SystemExit(main())
