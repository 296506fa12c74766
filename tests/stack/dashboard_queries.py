"""The dashboards' Prometheus queries, read from the JSON files and filled in the way Grafana does."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DASHBOARDS = Path(__file__).resolve().parents[2] / "dashboards" / "json"

# Grafana's built-in interval variables, with the values Grafana would send for a short range.
_INTERVALS = {"__rate_interval": "1m", "__interval": "15s", "__range": "30m"}
_VARIABLE = re.compile(r"\$\{?(\w+)\}?")
_LABEL_VALUES = re.compile(r"label_values\((?P<selector>.+),\s*(?P<label>\w+)\)")


def _substitute(expr: str, values: dict[str, str]) -> str:
    """Intervals as above; dashboard variables from `values`, else `.*` (the variables' "All")."""
    return _VARIABLE.sub(lambda m: _INTERVALS.get(m[1]) or values.get(m[1], ".*"), expr)


@dataclass(frozen=True)
class PanelQuery:
    """One Prometheus target of one dashboard panel."""

    dashboard: str
    panel: str
    ref_id: str
    expr: str
    exemplar: bool

    @property
    def id(self) -> str:
        return f"{self.dashboard}:{self.panel}:{self.ref_id}"

    def promql(self, **values: str) -> str:
        return _substitute(self.expr, values)


@dataclass(frozen=True)
class VariableQuery:
    """A template variable filled from ``label_values(selector, label)``."""

    dashboard: str
    name: str
    selector: str
    label: str

    @property
    def id(self) -> str:
        return f"{self.dashboard}:${self.name}"

    def promql(self, **values: str) -> str:
        return _substitute(self.selector, values)


def load_dashboards() -> dict[str, dict[str, Any]]:
    """Dashboards by file name (without .json)."""
    return {path.stem: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def iter_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside (collapsed) rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def panel_queries() -> list[PanelQuery]:
    return [
        PanelQuery(name, panel["title"], target["refId"], target["expr"], bool(target.get("exemplar")))
        for name, dashboard in load_dashboards().items()
        for panel in iter_panels(dashboard)
        for target in panel.get("targets", [])
        if target["datasource"]["type"] == "prometheus"
    ]


def variable_queries() -> list[VariableQuery]:
    queries = []
    for name, dashboard in load_dashboards().items():
        for variable in dashboard["templating"]["list"]:
            match = _LABEL_VALUES.fullmatch(variable["query"])
            if match is None:
                raise ValueError(f"{name}: ${variable['name']} is not a label_values(selector, label) query")
            queries.append(VariableQuery(name, variable["name"], match["selector"], match["label"]))
    return queries
