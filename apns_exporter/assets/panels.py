"""Grafana panel kinds the dashboards use: stat, time series, state timeline, heatmap, table.

Each returns a panel dictionary without position; :func:`grafana.layout` places them.
"""

from __future__ import annotations

from typing import Any

from apns_exporter.assets.grafana import RED_GREEN, Panel, panel, query, rate, thresholds

# Sparse counters (a GOAWAY an hour) spike and vanish when Grafana's step gets shorter than
# the scrape interval: no panel goes below this.
MIN_INTERVAL = "1m"


def stat(
    title: str,
    description: str,
    expr: str,
    unit: str,
    width: int,
    *,
    legend: str = "",
    height: int = 4,
    steps: dict[str, Any] | None = None,
    mappings: list[dict[str, Any]] | None = None,
    no_value: str | None = None,
    decimals: int | None = None,
) -> Panel:
    """A single-value panel showing the latest value, coloured by thresholds.

    Without ``steps`` the background is a neutral blue: Grafana's default thresholds turn
    red at 80, which means nothing for a count. With a ``legend`` each value is shown with
    its name (which exporter it belongs to).
    """
    defaults: dict[str, Any] = {
        "color": {"mode": "thresholds"},
        "mappings": mappings or [],
        "thresholds": steps if steps is not None else thresholds((None, "blue")),
    }
    if no_value is not None:
        defaults["noValue"] = no_value
    if decimals is not None:
        defaults["decimals"] = decimals
    return panel(
        "stat",
        title,
        description,
        [query(expr, legend, instant=True, range=False)],
        unit,
        width,
        height,
        defaults=defaults,
        options={
            "colorMode": "background",
            "graphMode": "none",
            "justifyMode": "center",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "textMode": "value_and_name" if legend else "value",
        },
    )


def timeseries(
    title: str,
    description: str,
    targets: list[dict[str, Any]],
    unit: str,
    width: int,
    *,
    height: int = 8,
    steps: dict[str, Any] | None = None,
    threshold_style: str = "off",
    draw: str = "line",
) -> Panel:
    """A time series graph; ``draw="bars"`` for event counts per interval."""
    custom = {
        "drawStyle": draw,
        "fillOpacity": 80 if draw == "bars" else 10,
        "lineWidth": 1,
        "showPoints": "never",
        "spanNulls": False,
        "thresholdsStyle": {"mode": threshold_style},
    }
    defaults: dict[str, Any] = {"custom": custom}
    if steps is not None:
        defaults["thresholds"] = steps
    return panel(
        "timeseries",
        title,
        description,
        targets,
        unit,
        width,
        height,
        interval=MIN_INTERVAL,
        defaults=defaults,
        options={
            "legend": {"displayMode": "table", "placement": "bottom", "showLegend": True},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    )


def state_timeline(
    title: str,
    description: str,
    expr: str,
    legend: str,
    mappings: list[dict[str, Any]],
    width: int = 24,
    height: int = 5,
) -> Panel:
    """A state timeline of a 0/1 gauge, one lane per series."""
    return panel(
        "state-timeline",
        title,
        description,
        [query(expr, legend)],
        "bool",
        width,
        height,
        defaults={
            "color": {"mode": "thresholds"},
            "mappings": mappings,
            "thresholds": RED_GREEN,
        },
        options={
            "alignValue": "left",
            "mergeValues": True,
            "rowHeight": 0.9,
            "showValue": "auto",
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": False},
        },
    )


def heatmap(
    title: str,
    description: str,
    histogram: str,
    width: int,
    scheme: str,
    *,
    exemplars: bool = False,
) -> Panel:
    """Observations per second in each bucket of a per-target histogram, over time.

    ``exemplars``: show the histogram's exemplars (one push's IDs) as points over it.
    """
    extra: dict[str, Any] = {"exemplar": True} if exemplars else {}
    return panel(
        "heatmap",
        title,
        description,
        [query(f"sum by (le) ({rate(histogram)})", "{{le}}", format="heatmap", **extra)],
        "s",
        width,
        8,
        interval=MIN_INTERVAL,
        options={
            "calculate": False,
            "yAxis": {"unit": "s"},
            "cellGap": 1,
            "color": {"mode": "scheme", "scheme": scheme, "fill": "dark", "steps": 64},
            "tooltip": {"show": True, "yHistogram": False},
            "legend": {"show": True},
            "exemplars": {"color": "rgba(255,0,255,0.7)"},
        },
    )


def table(
    title: str,
    description: str,
    specs: list[tuple[str, str, str]],
    width: int,
    height: int,
    *,
    hide: tuple[str, ...] = (),
    order: tuple[str, ...] = (),
    sort_by: str | None = None,
    overrides: list[dict[str, Any]] | None = None,
) -> Panel:
    """A table of instant queries merged on their labels; ``specs``: (expr, column, unit)."""
    targets = [
        query(expr, "", chr(ord("A") + i), format="table", instant=True, range=False)
        for i, (expr, _, _) in enumerate(specs)
    ]
    columns = [
        {
            "matcher": {"id": "byName", "options": f"Value #{chr(ord('A') + i)}"},
            "properties": [
                {"id": "displayName", "value": name},
                {"id": "unit", "value": unit},
            ],
        }
        for i, (_, name, unit) in enumerate(specs)
    ]
    hidden = {"Time": True, "__name__": True, **dict.fromkeys(hide, True)}
    options: dict[str, Any] = {"showHeader": True, "cellHeight": "sm"}
    if sort_by is not None:
        options["sortBy"] = [{"displayName": sort_by, "desc": True}]
    return panel(
        "table",
        title,
        description,
        targets,
        "none",
        width,
        height,
        options=options,
        overrides=columns + (overrides or []),
        transformations=[
            {"id": "merge", "options": {}},
            {
                "id": "organize",
                "options": {
                    "excludeByName": hidden,
                    "indexByName": {name: i for i, name in enumerate(order)},
                    "renameByName": {},
                },
            },
        ],
    )
