"""exporter-toolkit compatible ``--web.config.file``: TLS, client certificates, basic auth, headers.

The file format is that of prometheus/exporter-toolkit (``docs/web-configuration.md``)::

    tls_server_config:
      cert_file: server.crt               # relative paths start at the file's directory
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert
      client_ca_file: clients-ca.crt
      client_allowed_sans: [prometheus.example.org]
      min_version: TLS12                  # TLS10 | TLS11 | TLS12 (default) | TLS13
      max_version: TLS13
    http_server_config:
      headers: {X-Frame-Options: deny}
    basic_auth_users:
      prometheus: $2y$10$...              # from: htpasswd -nBC 10 "" prometheus

How the web server uses it::

    watcher = WebConfigWatcher(path)                      # raises WebConfigError
    app.middlewares.append(middleware(watcher))          # auth + headers on every response
    site = web.TCPSite(runner, host, port, ssl_context=watcher.ssl_context())
    tasks.create_task(watcher.run())                      # optional: notice cert rotation idly

Users, headers and SANs apply from the next request after the file changes. A listening
socket keeps its ``SSLContext``, so rotated certificate/key files are loaded into that same
context; changes to versions or client authentication need a restart (a warning says so),
and a change that would turn authentication or TLS off is refused until a restart.

Modules: ``settings`` (the file's keys and their validation), ``servertls`` (the server
SSLContext), ``auth`` (basic auth, SANs, headers), ``watcher`` (changes while running),
``files`` (regular files of bounded size only).
"""

from apns_exporter.web.webconfig.auth import header_hook, middleware
from apns_exporter.web.webconfig.settings import WebConfig, load
from apns_exporter.web.webconfig.watcher import WebConfigWatcher

__all__ = ["WebConfig", "WebConfigWatcher", "header_hook", "load", "middleware"]
