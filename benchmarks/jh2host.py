"""``python -m benchmarks.jh2host ARGS``: the exporter CLI with jh2 answering ``import h2``.

jh2 is a fork of h2 with the same API under another name; aliasing its modules lets the
cost benchmark measure it in the unchanged exporter, beside h2, in the same run.
"""

from __future__ import annotations

import importlib
import sys

import jh2

sys.modules["h2"] = jh2
for _name in ("config", "connection", "errors", "events", "exceptions", "settings"):
    sys.modules[f"h2.{_name}"] = importlib.import_module(f"jh2.{_name}")

from apns_exporter.cli import main  # noqa: E402  (after the alias, so it imports jh2)

if __name__ == "__main__":
    sys.exit(main())
