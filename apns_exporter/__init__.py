"""Prometheus exporter for Apple Push Notification service (APNs)."""

__version__ = "0.1.0"
