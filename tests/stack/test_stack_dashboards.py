"""Grafana provisioning and dashboards: valid PromQL (promtool), only series crewtrace emits, wiring."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml
from tests.stack.dashboard_queries import PanelQuery, VariableQuery, iter_panels

# The contract: what crewtrace's own /metrics and the collector's prometheus exporter both serve.
_COMMON = {
    "service_name",
    "gen_ai_workflow_name",
    "gen_ai_operation_name",
    "gen_ai_provider_name",
    "gen_ai_request_model",
    "gen_ai_agent_name",
    "crewtrace_task_name",
}
_HISTOGRAMS = {
    "gen_ai_client_operation_duration_seconds": {"error_type"},
    "gen_ai_client_token_usage": {"gen_ai_token_type"},
    "gen_ai_client_operation_time_to_first_chunk_seconds": set(),
    "gen_ai_client_operation_time_per_output_chunk_seconds": set(),
    "gen_ai_usage_cost_USD": set(),
}
SERIES: dict[str, set[str]] = {
    **{f"{name}_{suffix}": _COMMON | extra for name, extra in _HISTOGRAMS.items() for suffix in ("sum", "count")},
    **{f"{name}_bucket": _COMMON | extra | {"le"} for name, extra in _HISTOGRAMS.items()},
    "crewtrace_stream_chunks_total": _COMMON | {"error_type"},
    "crewtrace_stream_active": _COMMON,
}
# Tool metrics: per agent, task and tool; a tool call has no model or provider.
_TOOL_COMMON = {
    "service_name",
    "gen_ai_workflow_name",
    "gen_ai_operation_name",
    "gen_ai_agent_name",
    "crewtrace_task_name",
    "gen_ai_tool_name",
    "error_type",
}
# The runs and agent invocations: a run has only its crew; an agent its crew, task, model and provider.
_WORKFLOW = {"service_name", "gen_ai_operation_name", "gen_ai_workflow_name", "error_type"}
_AGENT = _COMMON | {"error_type"}


def _histogram(name: str, labels: set[str]) -> dict[str, set[str]]:
    return {
        **{f"{name}_{suffix}": labels for suffix in ("sum", "count")},
        f"{name}_bucket": labels | {"le"},
    }


SERIES.update(
    {
        "crewtrace_tool_calls_total": _TOOL_COMMON,
        "crewtrace_tool_errors_total": _TOOL_COMMON,
        **_histogram("gen_ai_execute_tool_duration_seconds", _TOOL_COMMON),
        **_histogram("gen_ai_invoke_agent_duration_seconds", _AGENT),
        **_histogram("gen_ai_workflow_duration_seconds", _WORKFLOW),
    }
)
# Every panel follows the dashboard's variables (those whose label its series carry).
VARIABLE_FILTERS = (
    'service_name=~"$service"',
    'gen_ai_workflow_name=~"$crew"',
    'gen_ai_agent_name=~"$agent"',
    'crewtrace_task_name=~"$task"',
    'gen_ai_request_model=~"$model"',
)
DASHBOARD_UIDS = {"crewtrace-agents", "crewtrace-tasks", "crewtrace-debugging"}

_SELECTOR = re.compile(r"(?P<metric>[a-zA-Z_:][\w:]*)\{(?P<matchers>[^}]*)\}")
_VARIABLE_SELECTOR = re.compile(r"(?P<metric>[a-zA-Z_:][\w:]*)(?:\{(?P<matchers>[^}]*)\})?")
_MATCHER_LABEL = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")


def _promtool_check(promtool: str, tmp_path: Path, expr: str) -> None:
    rules = tmp_path / "rules.yml"
    rule = {"record": "dashboard:query", "expr": expr}
    rules.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": [rule]}]}))
    result = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True)
    assert result.returncode == 0, f"{expr}\n{result.stdout}{result.stderr}"


def _selectors(expr: str) -> list[tuple[str, str]]:
    selectors = [(m["metric"], m["matchers"]) for m in _SELECTOR.finditer(expr)]
    assert selectors, f"no series selector in {expr}"
    return selectors


def _datasource_refs(node: Any) -> Iterator[dict[str, str]]:
    if isinstance(node, dict):
        if isinstance(node.get("datasource"), dict):
            yield node["datasource"]
        for value in node.values():
            yield from _datasource_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _datasource_refs(item)


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _strings(item)


# -- queries ----------------------------------------------------------------------------------


def test_promtool_accepts_panel_query(promtool: str, tmp_path: Path, panel_query: PanelQuery) -> None:
    _promtool_check(promtool, tmp_path, panel_query.promql())


def test_promtool_accepts_variable_selector(promtool: str, tmp_path: Path, variable_query: VariableQuery) -> None:
    _promtool_check(promtool, tmp_path, variable_query.promql())


def test_panel_query_uses_only_emitted_series_and_labels(panel_query: PanelQuery) -> None:
    labels: set[str] = set()
    for metric, matchers in _selectors(panel_query.expr):
        assert metric in SERIES, f"crewtrace does not emit {metric}"
        assert set(_MATCHER_LABEL.findall(matchers)) <= SERIES[metric], f"{metric}{{{matchers}}}"
        filters = [f for f in VARIABLE_FILTERS if f.split("=~")[0] in SERIES[metric]]
        assert all(f in matchers for f in filters), f"{metric}{{{matchers}}} ignores the dashboard variables"
        labels |= SERIES[metric]
    for grouping in _GROUPING.findall(panel_query.expr):
        grouped = {label.strip() for label in grouping.split(",")}
        assert grouped <= labels, f"grouping by {grouped - labels}, which these series lack"


def test_variable_query_uses_an_emitted_label(variable_query: VariableQuery) -> None:
    selector = _VARIABLE_SELECTOR.fullmatch(variable_query.selector)
    assert selector, variable_query.selector
    assert selector["metric"] in SERIES
    assert variable_query.label in SERIES[selector["metric"]]
    if variable_query.name != "service":
        assert 'service_name=~"$service"' in (selector["matchers"] or ""), f"${variable_query.name}: not chained"


# -- dashboards -------------------------------------------------------------------------------


def test_dashboards_have_fixed_uids_and_a_current_schema(dashboards: dict[str, dict[str, Any]]) -> None:
    assert {d["uid"] for d in dashboards.values()} == DASHBOARD_UIDS
    for name, dashboard in dashboards.items():
        assert dashboard["uid"] == name  # file name = uid, so links and the home path are predictable
        assert 39 <= dashboard["schemaVersion"] <= 42
        assert [v["name"] for v in dashboard["templating"]["list"]] == ["service", "crew", "agent", "task", "model"]


def test_every_panel_has_a_query(dashboards: dict[str, dict[str, Any]]) -> None:
    for name, dashboard in dashboards.items():
        panels = [p for p in iter_panels(dashboard) if p["type"] != "row"]
        assert panels, name
        ids = [p["id"] for p in iter_panels(dashboard)]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
        for panel in panels:
            assert panel.get("targets"), f"{name}: {panel['title']} has no query"


def test_datasource_references_are_provisioned(
    dashboards: dict[str, dict[str, Any]], datasources: dict[str, dict[str, Any]]
) -> None:
    refs = list(_datasource_refs(list(dashboards.values())))
    assert refs
    for ref in refs:
        assert ref["uid"] in datasources, ref
        assert ref["type"] == datasources[ref["uid"]]["type"], ref


def test_debugging_links_exemplars_and_searches_jaeger(dashboards: dict[str, dict[str, Any]]) -> None:
    debugging = list(iter_panels(dashboards["crewtrace-debugging"]))
    targets = [t for p in debugging for t in p.get("targets", [])]
    exemplars = [t["expr"] for t in targets if t.get("exemplar")]
    assert exemplars and all("_bucket{" in expr for expr in exemplars)  # exemplars sit on histogram buckets
    assert any(t["datasource"]["type"] == "jaeger" and t["queryType"] == "search" for t in targets)


# -- provisioning -----------------------------------------------------------------------------


def test_prometheus_exemplars_open_traces_in_jaeger(datasources: dict[str, dict[str, Any]]) -> None:
    assert datasources["crewtrace-prometheus"]["type"] == "prometheus"
    assert datasources["crewtrace-jaeger"]["type"] == "jaeger"
    destinations = datasources["crewtrace-prometheus"]["jsonData"]["exemplarTraceIdDestinations"]
    assert {"name": "trace_id", "datasourceUid": "crewtrace-jaeger"} in destinations


def test_provisioning_values_escape_dollar_signs(load_yaml: Callable[[str], Any]) -> None:
    """Grafana expands $VAR and ${VAR} in provisioning values from its environment; $$ is a literal $."""
    for kind in ("datasources", "dashboards"):
        path = f"dashboards/provisioning/{kind}/{kind}.yaml"
        for value in _strings(load_yaml(path)):
            assert not re.search(r"(?<!\$)\$(?!\$)", value.replace("$$", "")), f"{path}: unescaped $ in {value!r}"


def test_dashboard_provider_reads_the_mounted_json(
    load_yaml: Callable[[str], Any], grafana_mounts: dict[str, str]
) -> None:
    (provider,) = load_yaml("dashboards/provisioning/dashboards/dashboards.yaml")["providers"]
    assert provider["type"] == "file"
    assert grafana_mounts[provider["options"]["path"]] == "./dashboards/json"
