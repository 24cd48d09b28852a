"""The APNs client: sans-IO HTTP/2, the one dialer, kept connections and TLS contexts."""
