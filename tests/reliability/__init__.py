"""Reliability and security suites: fault matrix, hostile servers, bad input and a soak run."""
