"""Reproducible benchmarks for apns-exporter; run them all with ``benchmarks/run``.

Every benchmark runs on 127.0.0.1 against the mock APNs (``apns_exporter.mock``) in a process
of its own, starts the exporter as a real subprocess (``python -m apns_exporter``), and writes
its figures to ``benchmarks/results/<name>.json``. See docs/performance.md for the method and
the results.
"""
