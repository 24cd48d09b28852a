"""``python -m benchmarks [NAME ...]``: run the benchmarks (all by default) and write results.

Each benchmark writes benchmarks/results/<name>.json; the scale benchmark also draws
docs/performance-scale.png. ``--update-docs`` then refreshes the generated tables in
docs/performance.md from the JSON files (``python -m benchmarks --update-docs --no-run``
does only that). ``--scale-sizes 300`` runs the scale benchmark at other sizes (a quick
check); its results then go to results/scale-quick.json, leaving the documented run alone.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable
from typing import Any

from benchmarks import (
    connmodel,
    cost,
    fleet,
    latency,
    render,
    report,
    rules,
    scale,
    steady,
    tlsmemory,
)
from benchmarks.common import Mock, Workspace, log, write_result

BENCHMARKS: dict[str, Callable[[Workspace, Mock], dict[str, Any]]] = {
    latency.NAME: latency.run,
    cost.NAME: cost.run,
    connmodel.NAME: connmodel.run,
    scale.NAME: scale.run,
    render.NAME: render.run,
    rules.NAME: rules.run,
    fleet.NAME: fleet.run,
    steady.NAME: steady.run,
    tlsmemory.NAME: tlsmemory.run,
}


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of numbers: {text!r}"
        ) from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"sizes must be 1 or more: {text!r}")
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("names", nargs="*", choices=[*BENCHMARKS, []], help="default: all")
    parser.add_argument("--update-docs", action="store_true", help="refresh docs/performance.md")
    parser.add_argument("--no-run", action="store_true", help="only --update-docs")
    parser.add_argument("--keep", action="store_true", help="keep the temporary workspace")
    parser.add_argument(
        "--scale-sizes",
        type=_sizes,
        help="targets per scale point, comma-separated (default "
        + ",".join(map(str, scale.SIZES))
        + "); results go to results/scale-quick.json",
    )
    args = parser.parse_args(argv)
    names = args.names or list(BENCHMARKS)
    benchmarks = dict(BENCHMARKS)
    result_names = {name: name for name in names}
    if args.scale_sizes:
        benchmarks[scale.NAME] = functools.partial(scale.run, sizes=args.scale_sizes)
        result_names[scale.NAME] = f"{scale.NAME}-quick"
    failed: list[str] = []
    if not args.no_run:
        ws = Workspace()
        log(f"workspace {ws.dir}")
        mock = ws.start_mock()
        started = time.monotonic()
        try:
            for name in names:
                log(f"== {name}")
                t0 = time.monotonic()
                try:
                    data = benchmarks[name](ws, mock)
                except Exception as exc:
                    log(f"{name} FAILED: {type(exc).__name__}: {exc}")
                    failed.append(name)
                    continue
                data["wall_seconds"] = round(time.monotonic() - t0, 1)
                path = write_result(result_names[name], data)
                log(f"{name}: wrote {path} in {data['wall_seconds']}s")
        finally:
            mock.proc.stop()
            if args.keep:
                log(f"kept {ws.dir}")
            else:
                ws.cleanup()
        log(f"all done in {time.monotonic() - started:.0f}s")
    if args.update_docs:
        report.update_docs()
    if failed:
        log(f"failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
