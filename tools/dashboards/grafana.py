"""Grafana 11 dashboard JSON built from code: panels, queries, threshold steps, variables and a flowing layout."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from otel_monitor.monitor.alerting.thresholds import Thresholds

__all__ = [
    "PROMETHEUS",
    "VICTORIALOGS",
    "Board",
    "NEUTRAL",
    "Step",
    "bargauge",
    "levels",
    "logs",
    "logs_target",
    "query_variable",
    "stat",
    "steps",
    "target",
    "timeseries",
]

Panel = dict[str, Any]
# A threshold step: its colour and the value it starts at (None: the base step, from minus infinity).
Step = tuple[str, "int | float | None"]

PROMETHEUS = {"type": "prometheus", "uid": "prometheus"}
# The log store's data source (plugin victoriametrics-logs-datasource; config/grafana/datasources.yml).
VICTORIALOGS = {"type": "victoriametrics-logs-datasource", "uid": "victorialogs"}
GRID_WIDTH = 24
NEUTRAL: tuple[Step, ...] = (("blue", None),)
# Colours of the steps a quantity's levels start, in the order the steps rise.
GOOD_TO_BAD = ("green", "yellow", "red")
BAD_TO_GOOD = ("red", "yellow", "green")


def steps(*defined: Step) -> dict:
    """Grafana's absolute thresholds from (colour, value) steps, the base step first."""
    return {"mode": "absolute", "steps": [{"color": color, "value": value} for color, value in defined]}


def _number(literal: str) -> int | float:
    """A threshold as JSON writes it: ``5`` stays an integer, ``0.90`` and ``1.0`` are floats."""
    return float(literal) if any(c in literal for c in ".eE") else int(literal)


def levels(thresholds: Thresholds, quantity: str, rising: Sequence[str], colors: Sequence[str]) -> tuple[Step, ...]:
    """The steps of ``quantity`` (``SECTION.NAME`` of the thresholds file): the base step in ``colors[0]``, then one
    step per level of ``rising`` (in the order the values rise) in the next colours; KeyError names a missing level."""
    defined: list[Step] = [(colors[0], None)]
    for level, color in zip(rising, colors[1:], strict=True):
        literal = thresholds.literal(f"{quantity}.{level}")
        if literal is None:
            raise KeyError(f"{thresholds.path}: no {quantity}.{level}")
        defined.append((color, _number(literal)))
    return tuple(defined)


def target(expr: str, legend: str = "__auto", *, instant: bool = False, exemplar: bool = False) -> dict:
    """One Prometheus query of a panel (its refId is given by the panel): instant (a stat's value now) or a range."""
    query: dict[str, Any] = {"datasource": PROMETHEUS, "expr": expr, "legendFormat": legend}
    query.update(instant=instant, range=not instant)
    if exemplar:
        query["exemplar"] = True  # the exemplars' trace ids link to Jaeger (config/grafana/datasources.yml)
    return query


def logs_target(expr: str, *, max_lines: int = 100) -> dict:
    """One LogsQL query of a logs panel: the newest ``max_lines`` matching lines over the dashboard's range (the
    plugin's raw-logs query, VictoriaLogs' ``/select/logsql/query``)."""
    return {"datasource": VICTORIALOGS, "expr": expr, "queryType": "instant", "maxLines": max_lines}


def _panel(
    kind: str,
    title: str,
    description: str,
    targets: Iterable[dict],
    field_defaults: dict,
    datasource: dict = PROMETHEUS,
) -> Panel:
    queries = [{"refId": chr(ord("A") + i), **query} for i, query in enumerate(targets)]
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": datasource,
        "targets": queries,
        "fieldConfig": {"defaults": field_defaults, "overrides": []},
    }


def _range(minimum: float | None, maximum: float | None) -> dict:
    return {key: value for key, value in (("min", minimum), ("max", maximum)) if value is not None}


_REDUCE_LAST = {"calcs": ["lastNotNull"], "fields": "", "values": False}


def stat(
    title: str,
    description: str,
    targets: Iterable[dict],
    *,
    unit: str = "short",
    decimals: int | None = None,
    thresholds: Sequence[Step] = NEUTRAL,
    minimum: float | None = None,
    maximum: float | None = None,
    mappings: list[dict] | None = None,
    text_mode: str = "auto",
) -> Panel:
    """A stat panel coloured by its thresholds (background), showing each query's last value."""
    defaults: dict[str, Any] = {"unit": unit, "thresholds": steps(*thresholds), "color": {"mode": "thresholds"}}
    if decimals is not None:
        defaults["decimals"] = decimals
    defaults.update(_range(minimum, maximum))
    if mappings is not None:
        defaults["mappings"] = mappings
    panel = _panel("stat", title, description, targets, defaults)
    panel["options"] = {
        "reduceOptions": _REDUCE_LAST,
        "colorMode": "background",
        "graphMode": "none",
        "justifyMode": "auto",
        "orientation": "auto",
        "textMode": text_mode,
        "wideLayout": True,
        "showPercentChange": False,
    }
    return panel


def timeseries(
    title: str,
    description: str,
    targets: Iterable[dict],
    *,
    unit: str = "short",
    decimals: int | None = None,
    thresholds: Sequence[Step] = NEUTRAL,
    draw_thresholds: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
    draw: str = "line",
    fill: int = 10,
    stacked: bool = False,
    line_interpolation: str | None = None,
) -> Panel:
    """A time series panel, one line (or bar) per series; ``draw_thresholds`` shades the threshold steps."""
    custom: dict[str, Any] = {
        "drawStyle": draw,
        "lineWidth": 1,
        "fillOpacity": fill,
        "showPoints": "never",
        "spanNulls": False,
        "stacking": {"mode": "normal" if stacked else "none", "group": "A"},
        "thresholdsStyle": {"mode": "line+area" if draw_thresholds else "off"},
    }
    if line_interpolation is not None:
        custom["lineInterpolation"] = line_interpolation
    defaults: dict[str, Any] = {"unit": unit, "custom": custom, "color": {"mode": "palette-classic"}}
    defaults["thresholds"] = steps(*thresholds)
    if decimals is not None:
        defaults["decimals"] = decimals
    defaults.update(_range(minimum, maximum))
    panel = _panel("timeseries", title, description, targets, defaults)
    panel["options"] = {
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }
    return panel


def bargauge(title: str, description: str, targets: Iterable[dict], *, unit: str = "short") -> Panel:
    """Horizontal bars, one per series (a top-k list)."""
    defaults = {"unit": unit, "thresholds": steps(*NEUTRAL), "color": {"mode": "thresholds"}}
    panel = _panel("bargauge", title, description, targets, defaults)
    panel["options"] = {
        "displayMode": "basic",
        "orientation": "horizontal",
        "showUnfilled": True,
        "valueMode": "color",
        "namePlacement": "auto",
        "sizing": "auto",
        "minVizHeight": 16,
        "minVizWidth": 8,
        "maxVizHeight": 300,
        "reduceOptions": _REDUCE_LAST,
    }
    return panel


def logs(title: str, description: str, targets: Iterable[dict]) -> Panel:
    """A logs panel over VictoriaLogs, newest line first, each line's fields (trace_id links to Jaeger) a click
    away."""
    panel = _panel("logs", title, description, targets, {}, VICTORIALOGS)
    panel["options"] = {
        "showTime": True,
        "showLabels": False,
        "showCommonLabels": False,
        "wrapLogMessage": True,
        "prettifyLogMessage": False,
        "enableLogDetails": True,
        "dedupStrategy": "none",
        "sortOrder": "Descending",
    }
    return panel


def threshold_override(series_name: str, defined: Sequence[Step]) -> dict:
    """A field override giving the series displayed as ``series_name`` its own threshold steps."""
    return {
        "matcher": {"id": "byName", "options": series_name},
        "properties": [{"id": "thresholds", "value": steps(*defined)}],
    }


def query_variable(name: str, label: str, metric: str, label_name: str, *, all_value: str | None = None) -> dict:
    """A multi-value template variable (All included) listing the values of ``label_name`` on ``metric``."""
    query = f"label_values({metric}, {label_name})"
    variable: dict[str, Any] = {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": PROMETHEUS,
        "query": query,
        "definition": query,
        "refresh": 2,  # on time range change
        "sort": 1,
        "multi": True,
        "includeAll": True,
    }
    if all_value is not None:
        variable["allValue"] = all_value
    variable.update(current={"selected": True, "text": ["All"], "value": ["$__all"]}, options=[], hide=0)
    return variable


class Board:
    """A dashboard whose panels flow left to right in rows of 24 columns, numbered in the order they are added."""

    def __init__(self, uid: str, title: str, description: str, tag: str, variables: Sequence[dict] = ()) -> None:
        self.uid, self.title, self.description, self.tag = uid, title, description, tag
        self.variables = list(variables)
        self.panels: list[Panel] = []
        self._x = self._y = self._line_height = 0

    def row(self, title: str, *, repeat: str | None = None) -> None:
        """Starts a row (on a line of its own); ``repeat`` names the variable whose every value repeats it."""
        self._new_line()
        panel: Panel = {"type": "row", "title": title, "collapsed": False, "panels": []}
        if repeat is not None:
            panel["repeat"] = repeat
        self._place(panel, GRID_WIDTH, 1)

    def add(self, panel: Panel, width: int, height: int) -> Panel:
        """Places ``panel`` right of the last one, or on the next line when it would not fit."""
        if self._x + width > GRID_WIDTH:
            self._new_line()
        return self._place(panel, width, height)

    def _new_line(self) -> None:
        self._y += self._line_height
        self._x = self._line_height = 0

    def _place(self, panel: Panel, width: int, height: int) -> Panel:
        placed = {"id": len(self.panels) + 1, **panel, "gridPos": {"x": self._x, "y": self._y, "w": width, "h": height}}
        self.panels.append(placed)
        self._x += width
        self._line_height = max(self._line_height, height)
        return placed

    def model(self) -> dict:
        """The dashboard JSON model (schemaVersion 39, Grafana 11), last hour, refreshed every 30 s."""
        return {
            "id": None,
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": ["otel-monitor", self.tag],
            "timezone": "browser",
            "editable": True,
            "graphTooltip": 1,
            "schemaVersion": 39,
            "version": 1,
            "fiscalYearStartMonth": 0,
            "liveNow": False,
            "refresh": "30s",
            "time": {"from": "now-1h", "to": "now"},
            "timepicker": {},
            "annotations": {
                "list": [
                    {
                        "builtIn": 1,
                        "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                        "enable": True,
                        "hide": True,
                        "iconColor": "rgba(0, 211, 255, 1)",
                        "name": "Annotations & Alerts",
                        "type": "dashboard",
                    }
                ]
            },
            "links": [
                {
                    "title": "otel-monitor",
                    "type": "dashboards",
                    "tags": ["otel-monitor"],
                    "asDropdown": True,
                    "includeVars": False,
                    "keepTime": True,
                    "icon": "external link",
                    "targetBlank": False,
                    "tooltip": "",
                    "url": "",
                }
            ],
            "templating": {"list": self.variables},
            "panels": self.panels,
        }


def _shown(value: float, unit: str) -> str:
    if unit == "percentunit":
        return f"{value * 100:g}%"
    if unit == "s":
        return f"{value / 60:g} min" if value >= 60 and value % 60 == 0 else f"{value:g} s"
    return f"{value:g}"


def spec_text(thresholds: Thresholds, quantity: str, unit: str, *, higher_is_better: bool) -> str:
    """``Spec: target >95%, warn <90%.``: the target and warning levels of ``quantity``, from the thresholds file."""
    good, bad = (">", "<") if higher_is_better else ("<", ">")
    parts = []
    for level, sign, name in (("target", good, "target"), ("warning", bad, "warn"), ("critical", bad, "critical")):
        literal = thresholds.literal(f"{quantity}.{level}")
        if literal is not None:
            parts.append(f"{name} {sign}{_shown(float(literal), unit)}")
    return f"Spec: {', '.join(parts)}."
