"""What careless or hostile input must never do to telemetry.

Error messages stay out of spans unless content capture is on; capture fails closed;
``/metrics`` never listens beyond loopback unless a host is named; a bad label value costs
that value, never the endpoint; ports and ``OTEL_*`` numbers are checked with messages that
name them. Shutdown is in ``test_shutdown.py``, the global providers in ``test_setup.py``.
Everything is real: the SDK with in-memory exporters, events emitted on a private bus,
prometheus_client's HTTP server scraped over HTTP.
"""

from __future__ import annotations

import logging
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from crewtrace.errors import ConfigurationError
from crewtrace.events import (
    EventBus,
    LLMCallCompletedEvent,
    LLMCallFailedEvent,
    LLMCallStartedEvent,
    TaskFailedEvent,
    TaskStartedEvent,
    ToolUsageErrorEvent,
    ToolUsageStartedEvent,
)
from crewtrace.redaction import MAX_ERROR_CHARS
from crewtrace.telemetry import OTelBridge, PrometheusReader, Telemetry, setup_telemetry, start_metrics_server
from crewtrace.telemetry._settings import ENV_NUMBERS

SCOPE = {"run_id": "run-1", "crew_name": "crew", "task_id": "task-1", "task_name": "research", "agent_id": "a-1"}
# What an error message can echo: a tool's argument value, the request's content.
LEAKY = "KeyError: 'customer 4111-1111-1111-1111 asked about the merger'"
ENV_CAPTURE = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"


def scrape(url: str, accept: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, response.read().decode()


# -- 10.4: an error message is content ---------------------------------------------------------


def emit_failures(bus: EventBus, message: str) -> None:
    """A task, a tool call and an LLM call that fail with ``message``."""
    agent = {**SCOPE, "agent_role": "Researcher"}
    bus.emit(None, TaskStartedEvent(**SCOPE, description="Research {topic}", expected_output="Facts."))
    tool = {**agent, "tool_name": "lookup", "declared": True, "tool_call_id": "t-1", "arguments": '{"q": "x"}'}
    tool["iteration"] = 0
    bus.emit(None, ToolUsageStartedEvent(**tool))
    bus.emit(None, ToolUsageErrorEvent(**tool, error=message, error_type="KeyError", duration_s=0.01))
    call = {**agent, "call_id": "c-1", "model": "openai/test-model", "provider": "openai"}
    bus.emit(None, LLMCallStartedEvent(**call, messages=[], stream=True))
    bus.emit(
        None, LLMCallFailedEvent(**call, error=message, error_type="BadRequestError", chunk_count=0, duration_s=0.1)
    )
    bus.emit(None, TaskFailedEvent(**SCOPE, error=message, error_type="KeyError", duration_s=0.2))


def everything_written(span: ReadableSpan) -> str:
    """Every text telemetry wrote on a span: name, status, attributes, events."""
    parts = [span.name, span.status.description or "", repr(dict(span.attributes or {}))]
    parts += [f"{e.name} {dict(e.attributes or {})}" for e in span.events]
    return "\n".join(parts)


def failed_spans(
    bus: EventBus, tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter, capture: bool, message: str
) -> dict[str, ReadableSpan]:
    bridge = OTelBridge(tracer_provider, capture_content=capture, bus=bus)
    try:
        emit_failures(bus, message)
    finally:
        bridge.close()
    spans = {s.name: s for s in span_exporter.get_finished_spans()}
    assert set(spans) == {"execute_task research", "execute_tool lookup", "chat openai/test-model"}
    return spans


def test_with_capture_off_a_failure_records_only_its_error_type(
    bus: EventBus, tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter
) -> None:
    spans = failed_spans(bus, tracer_provider, span_exporter, capture=False, message=LEAKY)
    for name, span in spans.items():
        assert span.status.status_code is StatusCode.ERROR, name
        assert span.status.description == span.attributes["error.type"], f"{name}: the status says the type only"
        assert "4111-1111" not in everything_written(span), f"{name} carries the error message"


def test_with_capture_on_the_status_is_the_message_bounded(
    bus: EventBus, tracer_provider: TracerProvider, span_exporter: InMemorySpanExporter
) -> None:
    long_message = LEAKY + " and more" * 1_000
    spans = failed_spans(bus, tracer_provider, span_exporter, capture=True, message=long_message)
    for name, span in spans.items():
        description = span.status.description or ""
        assert description.startswith(LEAKY), name
        assert len(description) < MAX_ERROR_CHARS + 50, f"{name}: {len(description)} characters"


# -- 10.5: capture fails closed ----------------------------------------------------------------


@pytest.mark.parametrize("value", ["false", "true", 0, 1, "", []])
def test_a_capture_argument_that_is_not_a_bool_is_a_type_error(bus: EventBus, value: object) -> None:
    with pytest.raises(ConfigurationError, match="capture_content"):
        OTelBridge(capture_content=value, bus=bus)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="capture_content"):
        setup_telemetry(capture_content=value, set_global=False, bus=bus)  # type: ignore[arg-type]
    assert not bus.has_handlers(LLMCallStartedEvent), "nothing was installed"


@pytest.mark.parametrize("value", ["true", "TRUE", "1", "yes", "on", "SPAN_ONLY", "span_and_event", " True "])
def test_an_explicit_true_in_the_environment_turns_capture_on(
    bus: EventBus, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(ENV_CAPTURE, value)
    bridge = OTelBridge(bus=bus)
    bridge.close()
    assert bridge.capture_content is True


@pytest.mark.parametrize(
    "value", ["", "false", "0", "no", "off", "OFF", "none", "disabled", "NO_CONTENT", "EVENT_ONLY"]
)
def test_a_false_value_in_the_environment_is_off_without_a_word(
    bus: EventBus, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, value: str
) -> None:
    monkeypatch.setenv(ENV_CAPTURE, value)
    caplog.set_level(logging.WARNING, logger="crewtrace.telemetry")
    bridge = OTelBridge(bus=bus)
    bridge.close()
    assert bridge.capture_content is False
    assert not [r for r in caplog.records if r.name == "crewtrace.telemetry"]


def test_an_unknown_value_in_the_environment_is_off_with_one_warning(
    bus: EventBus, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    value = f"maybe-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv(ENV_CAPTURE, value)
    caplog.set_level(logging.WARNING, logger="crewtrace.telemetry")
    bridges = [OTelBridge(bus=bus) for _ in range(3)]
    for bridge in bridges:
        bridge.close()
    assert all(bridge.capture_content is False for bridge in bridges)
    warnings = [r.getMessage() for r in caplog.records if r.name == "crewtrace.telemetry"]
    assert len(warnings) == 1, warnings
    assert ENV_CAPTURE in warnings[0] and value in warnings[0]


# -- 10.6: loopback unless a host is named -----------------------------------------------------


def listening_addresses(port: int) -> set[str]:
    """Local addresses a socket LISTENs on for ``port``, read from the kernel's table (IPv4)."""
    found = set()
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(".".join(str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0)))
    return found


def test_prometheus_host_none_means_loopback(telemetries: Callable[..., Telemetry], bus: EventBus) -> None:
    telemetry = telemetries(prometheus_port=0, prometheus_host=None, bus=bus)
    server = telemetry.metrics_server
    assert server is not None and server.host == "127.0.0.1"
    assert listening_addresses(server.port) == {"127.0.0.1"}, "nothing listens beyond loopback"
    assert telemetry.metrics_url == f"http://127.0.0.1:{server.port}/metrics"
    assert scrape(telemetry.metrics_url)[0] == 200


def test_an_empty_host_is_refused_rather_than_binding_every_interface(bus: EventBus) -> None:
    with pytest.raises(ValueError, match=r"prometheus_host=.*every interface"):
        setup_telemetry(prometheus_port=0, prometheus_host="", set_global=False, bus=bus)
    assert not bus.has_handlers(LLMCallStartedEvent)


def test_metrics_url_works_for_an_ipv6_host() -> None:
    reader = PrometheusReader()
    with start_metrics_server(reader, host="::1", port=0) as server:
        assert server.url == f"http://[::1]:{server.port}/metrics"
        assert scrape(server.url)[0] == 200


# -- 10.8: a label value Prometheus cannot encode ------------------------------------------------


def emit_call(bus: EventBus, n: int, agent: str) -> None:
    call = {**SCOPE, "agent_role": agent, "call_id": f"c-{n}", "model": "openai/test-model", "provider": "openai"}
    bus.emit(None, LLMCallStartedEvent(**call, messages=[], stream=True))
    bus.emit(None, LLMCallCompletedEvent(**call, response="ok", chunk_count=3, duration_s=0.1))


def test_a_lone_surrogate_in_a_label_costs_only_that_value(
    telemetries: Callable[..., Telemetry], bus: EventBus
) -> None:
    telemetry = telemetries(prometheus_port=0, bus=bus)
    assert telemetry.metrics_url is not None
    emit_call(bus, 1, "Good agent")
    emit_call(bus, 2, "Bad \ud800 agent")
    for accept in (None, "application/openmetrics-text"):
        status, text = scrape(telemetry.metrics_url, accept)  # raised HTTPError 500 before
        assert status == 200
        parse = parse_openmetrics if accept else parse_text
        agents = {
            sample.labels.get("gen_ai_agent_name")
            for family in parse(text)
            if family.name == "crewtrace_stream_chunks"
            for sample in family.samples
        }
        assert agents == {"Good agent", "Bad \ufffd agent"}, "the bad value is replaced, the rest intact"


# -- 10.20 and 10.21: clear errors for bad numbers ------------------------------------------------


@pytest.mark.parametrize(
    ("port", "error", "says"),
    [
        (8000.5, ConfigurationError, "8000.5 (float)"),
        ("9464", ConfigurationError, "pass prometheus_port=9464"),
        (True, ConfigurationError, "True (bool)"),
        (-1, ValueError, "prometheus_port=-1 is not a TCP port"),
        (70000, ValueError, "prometheus_port=70000 is not a TCP port"),
    ],
)
def test_a_bad_prometheus_port_says_what_is_wrong(
    bus: EventBus, port: object, error: type[Exception], says: str
) -> None:
    with pytest.raises(error) as caught:
        setup_telemetry(prometheus_port=port, set_global=False, bus=bus)  # type: ignore[arg-type]
    assert says in str(caught.value)
    assert not bus.has_handlers(LLMCallStartedEvent)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OTEL_BSP_EXPORT_TIMEOUT", "ten"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "-1"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "0"),
        ("OTEL_METRIC_EXPORT_TIMEOUT", "soon"),
        ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "0"),
        ("OTEL_BSP_MAX_QUEUE_SIZE", "2048.5"),
        ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "-3"),
        ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "nan"),
    ],
)
def test_a_bad_otel_number_is_a_value_error_naming_the_variable(
    bus: EventBus, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError) as caught:
        setup_telemetry(otlp_endpoint="http://127.0.0.1:4317", set_global=False, bus=bus)
    assert f"{variable}={value!r}" in str(caught.value)
    assert not bus.has_handlers(LLMCallStartedEvent)


@pytest.mark.parametrize("variable", [v.name for v in ENV_NUMBERS])
def test_every_otel_number_crewtrace_reads_is_checked_and_a_good_one_accepted(
    bus: EventBus, monkeypatch: pytest.MonkeyPatch, telemetries: Callable[..., Telemetry], variable: str
) -> None:
    monkeypatch.setenv(variable, "not-a-number")
    with pytest.raises(ValueError, match=variable):
        setup_telemetry(set_global=False, bus=bus)
    monkeypatch.setenv(variable, "100")
    telemetries(bus=bus)  # checked whether or not an exporter reads it


# -- 15.4: the registry is injectable ------------------------------------------------------------


def test_crewtrace_metrics_join_an_application_registry_and_leave_it_at_shutdown(bus: EventBus) -> None:
    registry = CollectorRegistry()
    Counter("app_requests", "The application's own metric.", registry=registry).inc()
    telemetry = setup_telemetry(prometheus_registry=registry, set_global=False, bus=bus)
    emit_call(bus, 1, "Researcher")
    page = generate_latest(registry).decode()
    assert "app_requests_total" in page and "crewtrace_stream_chunks_total" in page
    assert telemetry.metrics_server is None, "no server unless a port is given: the application serves it"
    assert telemetry.shutdown(timeout=2.0) is True
    page = generate_latest(registry).decode()
    assert "app_requests_total" in page and "crewtrace_stream_chunks_total" not in page


def test_the_metrics_server_serves_the_registry_it_is_given() -> None:
    registry = CollectorRegistry()
    Counter("app_jobs", "The application's own metric.", registry=registry).inc(3)
    reader = PrometheusReader()
    meters = MeterProvider(metric_readers=[reader])
    meters.get_meter("crewtrace").create_counter("runs").add(1)
    try:
        with start_metrics_server(reader, port=0, registry=registry) as server:
            text = scrape(server.url)[1]
            assert "app_jobs_total 3.0" in text and "runs_total" in text
        assert "runs_total" not in generate_latest(registry).decode(), "shutdown unregisters the collector"
    finally:
        meters.shutdown()


# -- 15.12: the bridge's read-only view ------------------------------------------------------------


def test_open_spans_names_what_the_bridge_holds_open(bus: EventBus, tracer_provider: TracerProvider) -> None:
    bridge = OTelBridge(tracer_provider, bus=bus)
    try:
        bus.emit(None, TaskStartedEvent(**SCOPE, description="d", expected_output="e"))
        call: dict[str, Any] = {**SCOPE, "call_id": "c-1", "model": "m", "provider": "openai"}
        bus.emit(None, LLMCallStartedEvent(**call, messages=[], stream=True))
        assert bridge.open_spans() == ("execute_task research", "chat m")
        bus.emit(None, LLMCallCompletedEvent(**call, response="ok", chunk_count=0, duration_s=0.1))
        assert bridge.open_spans() == ("execute_task research",)
    finally:
        bridge.close()
    assert bridge.open_spans() == ()
