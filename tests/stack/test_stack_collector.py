"""Collector configs, checked structurally (no collector binary can run here).

The generic checks mirror what ``otelcol validate`` rejects or warns about: a pipeline naming an
undefined component, a defined component nothing uses, a connector on only one side, a deprecated
component name; plus what breaks in a container: a listener on localhost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

COLLECTOR_CONFIGS = ["otel-collector.yaml", "deploy/otel-collector-agent.yaml", "deploy/otel-collector-gateway.yaml"]
# Jaeger v2 is a Collector build: its config gets the same structural checks.
JAEGER_CONFIG = "deploy/jaeger.yaml"

# Deprecated names that collector-contrib 0.159.0 still loads, with a warning, and their successors.
DEPRECATED = {
    "exporters": {"otlp": "otlp_grpc", "otlphttp": "otlp_http", "loadbalancing": "load_balancing"},
    "connectors": {"spanmetrics": "span_metrics"},
}
SPAN_METRICS_DIMENSIONS = {"gen_ai.agent.name", "crewtrace.task.name", "gen_ai.request.model"}

Config = dict[str, Any]


def _type(component: str) -> str:
    return component.split("/", 1)[0]


def _pipelines(config: Config) -> dict[str, dict[str, list[str]]]:
    pipelines: dict[str, dict[str, list[str]]] = config["service"]["pipelines"]
    return pipelines


def _used(config: Config, kind: str) -> set[str]:
    return {name for pipeline in _pipelines(config).values() for name in pipeline.get(kind, [])}


@pytest.fixture(params=[*COLLECTOR_CONFIGS, JAEGER_CONFIG])
def config(request: pytest.FixtureRequest, load_yaml: Callable[[str], Config]) -> Config:
    return load_yaml(request.param)


@pytest.fixture(params=COLLECTOR_CONFIGS)
def collector(request: pytest.FixtureRequest, load_yaml: Callable[[str], Config]) -> Config:
    return load_yaml(request.param)


@pytest.fixture
def agent(load_yaml: Callable[[str], Config]) -> Config:
    return load_yaml("deploy/otel-collector-agent.yaml")


@pytest.fixture
def gateway(load_yaml: Callable[[str], Config]) -> Config:
    return load_yaml("deploy/otel-collector-gateway.yaml")


# -- every config -----------------------------------------------------------------------------


def test_pipelines_name_only_defined_components(config: Config) -> None:
    connectors = set(config.get("connectors") or {})
    defined = {
        "receivers": set(config.get("receivers") or {}) | connectors,
        "processors": set(config.get("processors") or {}),
        "exporters": set(config.get("exporters") or {}) | connectors,
    }
    for name, pipeline in _pipelines(config).items():
        assert _type(name) in {"traces", "metrics", "logs"}, name
        assert pipeline.get("receivers") and pipeline.get("exporters"), f"{name} needs receivers and exporters"
        for kind, names in pipeline.items():
            assert set(names) <= defined[kind], f"{name}.{kind}: {set(names) - defined[kind]} undefined"


def test_every_defined_component_is_used(config: Config) -> None:
    for kind in ("receivers", "processors", "exporters"):
        unused = set(config.get(kind) or {}) - _used(config, kind)
        assert not unused, f"{kind} defined but in no pipeline: {unused}"
    assert set(config.get("extensions") or {}) == set(config["service"].get("extensions", []))


def test_connectors_join_two_pipelines(config: Config) -> None:
    for connector in config.get("connectors") or {}:
        assert connector in _used(config, "exporters"), f"{connector} is never fed"
        assert connector in _used(config, "receivers"), f"{connector} feeds nothing"


def test_component_names_are_current(config: Config) -> None:
    for kind, renamed in DEPRECATED.items():
        for name in config.get(kind) or {}:
            assert _type(name) not in renamed, f"{kind}.{name}: deprecated, use {renamed[_type(name)]}"


def test_listeners_bind_all_interfaces(config: Config, server_endpoints: Callable[[Config], dict[str, str]]) -> None:
    endpoints = server_endpoints(config)
    assert endpoints
    for where, endpoint in endpoints.items():
        assert endpoint.startswith("0.0.0.0:"), f"{where}: {endpoint} is unreachable from outside the container"


def test_pipelines_limit_memory_first_and_batch_last(collector: Config) -> None:
    for name, pipeline in _pipelines(collector).items():
        processors = pipeline["processors"]
        assert processors[0] == "memory_limiter" and processors[-1] == "batch", f"{name}: {processors}"


# -- otel-collector.yaml (docker-compose) -----------------------------------------------------


def test_stack_collector_receives_otlp_on_both_protocols(stack_collector: Config) -> None:
    protocols = stack_collector["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert protocols["http"]["endpoint"] == "0.0.0.0:4318"


def test_stack_collector_sends_traces_to_jaeger_and_span_metrics(stack_collector: Config) -> None:
    traces = _pipelines(stack_collector)["traces"]
    assert traces == {
        "receivers": ["otlp"],
        "processors": ["memory_limiter", "batch"],
        "exporters": ["otlp_grpc/jaeger", "span_metrics"],
    }
    jaeger = stack_collector["exporters"]["otlp_grpc/jaeger"]
    assert jaeger["endpoint"] == "jaeger:4317"
    assert jaeger["tls"]["insecure"] is True


def test_stack_collector_serves_metrics_with_exemplars_and_service_name(stack_collector: Config) -> None:
    metrics = _pipelines(stack_collector)["metrics"]
    assert set(metrics["receivers"]) == {"otlp", "span_metrics"}
    assert metrics["exporters"] == ["prometheus"]
    prometheus = stack_collector["exporters"]["prometheus"]
    assert prometheus["endpoint"] == "0.0.0.0:8889"
    assert prometheus["enable_open_metrics"] is True
    assert "service.name" in prometheus["resource_constant_labels"]["included"]
    assert "resource_to_telemetry_conversion" not in prometheus  # deprecated, and exclusive with the above


def test_stack_collector_span_metrics_split_by_agent_task_and_model(stack_collector: Config) -> None:
    span_metrics = stack_collector["connectors"]["span_metrics"]
    assert {d["name"] for d in span_metrics["dimensions"]} == SPAN_METRICS_DIMENSIONS
    assert span_metrics["exemplars"]["enabled"] is True


def test_stack_collector_health_check(stack_collector: Config) -> None:
    assert stack_collector["extensions"]["health_check"]["endpoint"] == "0.0.0.0:13133"


# -- at scale: agent per host, gateway tier ---------------------------------------------------


def test_agent_routes_spans_by_trace_id_to_the_gateways(agent: Config, gateway: Config) -> None:
    assert "load_balancing" in _pipelines(agent)["traces"]["exporters"]
    balancer = agent["exporters"]["load_balancing"]
    assert balancer["routing_key"] == "traceID"
    gateway_port = gateway["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"].rsplit(":", 1)[1]
    assert balancer["resolver"]["dns"]["port"] == gateway_port
    assert "otlp" in balancer["protocol"]  # the gateways' receiver speaks OTLP gRPC


def test_agent_is_what_prometheus_scrapes(agent: Config) -> None:
    assert _pipelines(agent)["metrics"]["exporters"] == ["prometheus"]
    assert agent["exporters"]["prometheus"]["enable_open_metrics"] is True
    assert "service.name" in agent["exporters"]["prometheus"]["resource_constant_labels"]["included"]
    # span metrics are computed before sampling, from every span
    assert {d["name"] for d in agent["connectors"]["span_metrics"]["dimensions"]} == SPAN_METRICS_DIMENSIONS


def test_gateway_tail_samples_whole_traces(gateway: Config) -> None:
    assert set(_pipelines(gateway)) == {"traces"}
    assert _pipelines(gateway)["traces"]["processors"] == ["memory_limiter", "tail_sampling", "batch"]
    policies = {policy["type"] for policy in gateway["processors"]["tail_sampling"]["policies"]}
    assert {"status_code", "latency"} <= policies  # failed and slow traces are always kept


# -- deploy/jaeger.yaml -----------------------------------------------------------------------


def test_jaeger_accepts_otlp_and_serves_its_ui(
    load_yaml: Callable[[str], Config], server_endpoints: Callable[[Config], dict[str, str]]
) -> None:
    jaeger = load_yaml(JAEGER_CONFIG)
    endpoints = set(server_endpoints(jaeger).values())
    assert {"0.0.0.0:4317", "0.0.0.0:16686"} <= endpoints
    storage = jaeger["exporters"]["jaeger_storage_exporter"]["trace_storage"]
    assert storage in jaeger["extensions"]["jaeger_storage"]["backends"]
    assert jaeger["extensions"]["jaeger_query"]["storage"]["traces"] == storage
