"""The running service: the exporter that owns targets and tasks, the scheduler, metrics."""
