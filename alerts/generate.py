"""Write the repository's copies of the shipped assets, generated with the default parameters.

The generator lives in the package (apns_exporter/assets), so a pip install can write the
same files with its own parameters (``apns-exporter assets --out DIR``). This script
places the default output where the repository keeps it::

    python alerts/generate.py           # rewrite the files below
    python alerts/generate.py --check   # exit 1 if a committed file is out of date (CI)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from apns_exporter import assets

ROOT = Path(__file__).resolve().parents[1]
# Where each generated file lives in the repository. The Alertmanager example is package
# data (apns_exporter/assets/alertmanager.yml) and needs no copy.
PLACES = {
    assets.RULES_FILE: Path("alerts") / assets.RULES_FILE,
    assets.PROMETHEUS_RULE_FILE: Path("deploy") / "kubernetes" / assets.PROMETHEUS_RULE_FILE,
    "dashboards/apns-exporter-overview.json": Path("dashboards/apns-exporter-overview.json"),
    "dashboards/apns-exporter-target.json": Path("dashboards/apns-exporter-target.json"),
}


def stale(root: Path = ROOT) -> list[str]:
    """The repository files that differ from the generator's output."""
    files = assets.render_all()
    out = []
    for name, place in PLACES.items():
        path = root / place
        if not path.is_file() or path.read_text(encoding="utf-8") != files[name]:
            out.append(str(place))
    return out


def write(root: Path = ROOT) -> None:
    """Write every repository copy."""
    files = assets.render_all()
    for name, place in PLACES.items():
        (root / place).parent.mkdir(parents=True, exist_ok=True)
        (root / place).write_text(files[name], encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Write or check the files; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a file is out of date")
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.check:
        write(args.root)
        return 0
    out_of_date = stale(args.root)
    if out_of_date:
        print(
            f"out of date: {', '.join(out_of_date)}; run python alerts/generate.py", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
