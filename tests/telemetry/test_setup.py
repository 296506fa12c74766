"""``setup_telemetry``: resource, OTLP settings validation, the metrics port, shutdown, global providers.

Everything is real: SDK providers, OTLP exporters (against the test receivers, or
against a port nobody listens on), prometheus_client's HTTP server, litellm
streaming from the fake OpenAI server. In-process tests pass ``set_global=False``;
the global-provider behaviour is checked in fresh interpreters.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry import metrics, trace
from tests.support.blackhole import Blackhole
from tests.support.llms import API_KEY, MakeLLM
from tests.support.otlp_receiver import OTLPGrpcReceiver, OTLPHttpReceiver
from tests.support.polling import wait_until
from tests.support.ports import free_port
from tests.support.threads import sdk_threads

from crewtrace import Agent, Crew, Task
from crewtrace.errors import CrewtraceError, MetricsServerError
from crewtrace.events import EventBus, LLMCallCompletedEvent, LLMCallStartedEvent, LLMStreamChunkEvent
from crewtrace.telemetry import Telemetry, setup_telemetry

ROOT = Path(__file__).resolve().parents[2]


def one_task_crew(make_llm: MakeLLM, bus: EventBus) -> Crew:
    agent = Agent(role="Researcher", goal="Find facts.", backstory="Careful.", llm=make_llm())
    task = Task(name="research", description="Research streaming.", expected_output="Facts.", agent=agent)
    return Crew(name="setup-crew", agents=[agent], tasks=[task], bus=bus)


# -- service.name and resource attributes ---------------------------------------------------


def test_service_name_argument(telemetries: Callable[..., Telemetry], bus: EventBus) -> None:
    telemetry = telemetries("svc-from-arg", bus=bus)
    assert telemetry.tracer_provider.resource.attributes["service.name"] == "svc-from-arg"


def test_service_name_argument_beats_the_environment(
    telemetries: Callable[..., Telemetry], bus: EventBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "svc-from-env")
    telemetry = telemetries("svc-from-arg", bus=bus)
    assert telemetry.tracer_provider.resource.attributes["service.name"] == "svc-from-arg"


def test_service_name_from_otel_service_name(
    telemetries: Callable[..., Telemetry], bus: EventBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "svc-from-env")
    telemetry = telemetries(bus=bus)
    assert telemetry.tracer_provider.resource.attributes["service.name"] == "svc-from-env"


def test_service_name_defaults_to_crewtrace(telemetries: Callable[..., Telemetry], bus: EventBus) -> None:
    telemetry = telemetries(bus=bus)
    assert telemetry.tracer_provider.resource.attributes["service.name"] == "crewtrace"


def test_service_name_from_otel_resource_attributes(
    telemetries: Callable[..., Telemetry], bus: EventBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=svc-from-attrs")
    telemetry = telemetries(bus=bus)
    assert telemetry.tracer_provider.resource.attributes["service.name"] == "svc-from-attrs"


def test_resource_attributes_reach_both_providers(
    telemetries: Callable[..., Telemetry], make_llm: MakeLLM, bus: EventBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "k8s.pod.name=pod-7,deployment.environment.name=from-env")
    telemetry = telemetries(
        "svc-res",
        bus=bus,
        prometheus_port=0,
        resource_attributes={"deployment.environment.name": "staging", "team": "ml-platform", "replica": 3},
    )
    attributes = telemetry.tracer_provider.resource.attributes
    assert attributes["service.name"] == "svc-res"
    assert attributes["team"] == "ml-platform" and attributes["replica"] == 3
    assert attributes["deployment.environment.name"] == "staging", "the argument wins over the environment"
    assert attributes["k8s.pod.name"] == "pod-7", "OTEL_RESOURCE_ATTRIBUTES is honoured"
    # The meter provider has the same resource: Prometheus' target_info shows it once a call was recorded.
    make_llm().call("hello")
    assert telemetry.metrics_url is not None
    with urllib.request.urlopen(telemetry.metrics_url, timeout=5) as response:
        text = response.read().decode()
    (target_info,) = [line for line in text.splitlines() if line.startswith("target_info{")]
    for label in ('service_name="svc-res"', 'team="ml-platform"', 'k8s_pod_name="pod-7"'):
        assert label in target_info


def test_service_name_argument_beats_resource_attributes(telemetries: Callable[..., Telemetry], bus: EventBus) -> None:
    telemetry = telemetries("svc-arg", bus=bus, resource_attributes={"service.name": "svc-attr"})
    assert telemetry.tracer_provider.resource.attributes["service.name"] == "svc-arg"


# -- OTLP settings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "endpoint", ["localhost:4317", "http://", "ftp://x", "127.0.0.1", "http://localhost:notaport", "//host:4317"]
)
def test_malformed_otlp_endpoint_argument_is_rejected(bus: EventBus, endpoint: str) -> None:
    with pytest.raises(ValueError) as caught:
        setup_telemetry(otlp_endpoint=endpoint, set_global=False, bus=bus)
    message = str(caught.value)
    assert repr(endpoint) in message, "the message names the bad value"
    assert "http://localhost:4317" in message, "the message shows what a good endpoint looks like"
    assert not bus.has_handlers(LLMCallStartedEvent), "nothing was installed"


@pytest.mark.parametrize(
    "variable",
    ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"],
)
@pytest.mark.parametrize("endpoint", ["localhost:4317", "http://", "ftp://x"])
def test_malformed_otlp_endpoint_variable_is_rejected(
    bus: EventBus, monkeypatch: pytest.MonkeyPatch, variable: str, endpoint: str
) -> None:
    monkeypatch.setenv(variable, endpoint)
    with pytest.raises(ValueError) as caught:
        setup_telemetry(set_global=False, bus=bus)
    assert repr(endpoint) in str(caught.value)
    assert "http://localhost:4317" in str(caught.value)


def test_endpoint_argument_wins_over_a_malformed_variable(
    telemetries: Callable[..., Telemetry], bus: EventBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4317")
    with OTLPHttpReceiver() as receiver:
        telemetry = telemetries(otlp_endpoint=receiver.endpoint, otlp_protocol="http/protobuf", bus=bus)
        assert telemetry.shutdown() is True  # while the receiver still listens


def test_unknown_protocol_argument_is_rejected(bus: EventBus) -> None:
    with pytest.raises(ValueError) as caught:
        setup_telemetry(otlp_endpoint="http://localhost:4318", otlp_protocol="http/json", set_global=False, bus=bus)
    message = str(caught.value)
    assert "'http/json'" in message and "grpc" in message and "http/protobuf" in message


def test_unknown_protocol_variable_is_rejected(bus: EventBus, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318")
    with pytest.raises(ValueError) as caught:
        setup_telemetry(set_global=False, bus=bus)
    message = str(caught.value)
    assert "'http/json'" in message and "grpc" in message and "http/protobuf" in message
    assert not bus.has_handlers(LLMCallStartedEvent)


# -- the Prometheus port ----------------------------------------------------------------------


def test_metrics_port_in_use_raises_and_shuts_down_what_was_built(bus: EventBus) -> None:
    before = sdk_threads()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken, OTLPHttpReceiver() as receiver:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(MetricsServerError) as caught:
            setup_telemetry(
                "svc-port",
                prometheus_port=port,
                otlp_endpoint=receiver.endpoint,
                otlp_protocol="http/protobuf",
                set_global=False,
                bus=bus,
            )
    error = caught.value
    assert isinstance(error, CrewtraceError) and isinstance(error, OSError)
    assert error.errno == errno.EADDRINUSE
    assert f"127.0.0.1:{port}" in str(error)
    assert "already in use" in str(error)
    # The span processor and the periodic metric reader were built, then shut down: their threads are gone.
    assert sdk_threads() <= before, f"left running: {sorted(t.name for t in sdk_threads() - before)}"
    assert not bus.has_handlers(LLMCallStartedEvent), "no bridge listens after a failed set-up"
    assert not bus.has_handlers(LLMCallCompletedEvent), "no usage log listens after a failed set-up"


# -- shutdown ---------------------------------------------------------------------------------


def test_shutdown_flushes_returns_true_and_is_idempotent(make_llm: MakeLLM, bus: EventBus) -> None:
    with OTLPHttpReceiver() as receiver:
        telemetry = setup_telemetry(
            "svc-shutdown",
            otlp_endpoint=receiver.endpoint,
            otlp_protocol="http/protobuf",
            prometheus_port=0,
            set_global=False,
            bus=bus,
        )
        metrics_url = telemetry.metrics_url
        assert metrics_url is not None
        make_llm().call("hello")
        assert receiver.spans() == [], "nothing exported before the flush (batch delay is 5 s)"

        assert telemetry.shutdown() is True
        assert [s.name for s in receiver.spans()] == ["chat test-model"], "shutdown flushed the span"
        assert "gen_ai.client.operation.duration" in receiver.metric_names(), "and the metrics"
        exports = (len(receiver.trace_requests), len(receiver.metric_requests))

        started = time.monotonic()
        assert telemetry.shutdown() is True
        assert telemetry.shutdown(timeout=0.0) is True
        assert time.monotonic() - started < 0.5
        assert (len(receiver.trace_requests), len(receiver.metric_requests)) == exports, "nothing exported twice"

    for event_type in (LLMCallStartedEvent, LLMStreamChunkEvent, LLMCallCompletedEvent):
        assert not bus.has_handlers(event_type), f"still listening to {event_type.__name__}"
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(metrics_url, timeout=2)


def _shut_down_in_background(telemetry: Telemetry) -> None:
    """Best effort for providers crewtrace may have left running: never block the suite on them."""

    def stop() -> None:
        closers = (telemetry.tracer_provider.shutdown, lambda: telemetry.meter_provider.shutdown(timeout_millis=500))
        for close in closers:
            with contextlib.suppress(Exception):
                close()

    threading.Thread(target=stop, name="test-cleanup", daemon=True).start()


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_shutdown_is_bounded_when_the_collector_refuses_connections(
    make_llm: MakeLLM, bus: EventBus, protocol: str
) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nobody listens there
    telemetry = setup_telemetry("svc-down", otlp_endpoint=endpoint, otlp_protocol=protocol, set_global=False, bus=bus)
    try:
        one_task_crew(make_llm, bus).kickoff()
        started = time.monotonic()
        flushed = telemetry.shutdown(timeout=1.0)
        elapsed = time.monotonic() - started
        assert elapsed < 5.0, f"shutdown(timeout=1.0) held the application for {elapsed:.1f} s"
        assert flushed is False, "nothing reached the collector, so shutdown must not report success"
        assert not bus.has_handlers(LLMCallStartedEvent)
    finally:
        _shut_down_in_background(telemetry)


def test_shutdown_stops_the_exporter_threads_even_when_the_flush_times_out(
    make_llm: MakeLLM, bus: EventBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A collector that accepts connections and never answers: every export takes the exporter's
    # whole timeout (1 s), so a 0.3 s shutdown budget is always used up by the flush.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    with Blackhole() as blackhole:
        before = set(threading.enumerate())
        telemetry = setup_telemetry(
            "svc-hang", otlp_endpoint=blackhole.endpoint, otlp_protocol="grpc", set_global=False, bus=bus
        )
        try:
            ours = sdk_threads() - before
            assert ours, "the exporters started their worker threads"
            one_task_crew(make_llm, bus).kickoff()
            assert telemetry.shutdown(timeout=0.3) is False
            # In the background the exports give up after ~1 s each, then the providers finish
            # shutting down; give that a generous bound.
            wait_until(lambda: not any(t.is_alive() for t in ours), 6.0, interval=0.05, what="exporter threads ended")
        finally:
            _shut_down_in_background(telemetry)


# -- global providers -------------------------------------------------------------------------


def test_set_global_false_leaves_the_global_providers_alone(
    telemetries: Callable[..., Telemetry], bus: EventBus
) -> None:
    telemetry = telemetries(bus=bus, set_global=False)
    assert trace.get_tracer_provider() is not telemetry.tracer_provider
    assert metrics.get_meter_provider() is not telemetry.meter_provider


def _run_python(script: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(ROOT)) if p)
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    last = result.stdout.strip().splitlines()[-1]
    parsed: dict[str, object] = json.loads(last)
    return parsed


def test_providers_become_global_when_none_is_set() -> None:
    out = _run_python(
        """
        import json
        from opentelemetry import metrics, trace
        from crewtrace.events import EventBus
        from crewtrace.telemetry import setup_telemetry

        was_proxy = type(trace.get_tracer_provider()).__name__
        telemetry = setup_telemetry("svc-global", bus=EventBus())
        result = {
            "was": was_proxy,
            "tracer_is_ours": trace.get_tracer_provider() is telemetry.tracer_provider,
            "meter_is_ours": metrics.get_meter_provider() is telemetry.meter_provider,
            "global_tracer_resource": trace.get_tracer_provider().resource.attributes["service.name"],
            "flushed": telemetry.shutdown(),
        }
        print(json.dumps(result))
        """
    )
    assert out == {
        "was": "ProxyTracerProvider",
        "tracer_is_ours": True,
        "meter_is_ours": True,
        "global_tracer_resource": "svc-global",
        "flushed": True,
    }


def test_application_providers_stay_global_and_the_bridge_uses_its_own() -> None:
    out = _run_python(
        f"""
        import json
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from crewtrace import LLM
        from crewtrace.events import EventBus
        from crewtrace.telemetry import setup_telemetry
        from tests.support.openai_server import FakeOpenAIServer
        from tests.support.otlp_receiver import OTLPGrpcReceiver, OTLPHttpReceiver

        app_spans = InMemorySpanExporter()
        app_tracer_provider = TracerProvider(resource=Resource.create({{"service.name": "the-app"}}))
        app_tracer_provider.add_span_processor(SimpleSpanProcessor(app_spans))
        trace.set_tracer_provider(app_tracer_provider)
        app_reader = InMemoryMetricReader()
        app_meter_provider = MeterProvider(metric_readers=[app_reader])
        metrics.set_meter_provider(app_meter_provider)

        bus = EventBus()
        with FakeOpenAIServer() as server, OTLPHttpReceiver() as receiver:
            telemetry = setup_telemetry(
                "crewtrace-own", otlp_endpoint=receiver.endpoint, otlp_protocol="http/protobuf", bus=bus
            )
            kept = {{
                "tracer": trace.get_tracer_provider() is app_tracer_provider,
                "meter": metrics.get_meter_provider() is app_meter_provider,
            }}
            llm = LLM("openai/test-model", stream=True, base_url=server.base_url, api_key={API_KEY!r}, bus=bus)
            with trace.get_tracer("app").start_as_current_span("app-work"):
                llm.call("hello")
            flushed = telemetry.shutdown()
            app_data = app_reader.get_metrics_data()
            app_metric_names = sorted(
                m.name for rm in (app_data.resource_metrics if app_data else [])
                for sm in rm.scope_metrics for m in sm.metrics
            )
            received = receiver.spans()
            result = {{
                "kept": kept,
                "flushed": flushed,
                "app_spans": sorted(s.name for s in app_spans.get_finished_spans()),
                "app_metrics": app_metric_names,
                "received_spans": sorted(s.name for s in received),
                "received_services": sorted({{s.resource["service.name"] for s in received}}),
                "received_metrics": sorted(receiver.metric_names()),
            }}
        print(json.dumps(result))
        """
    )
    assert out["kept"] == {"tracer": True, "meter": True}, "the application's global providers stay in place"
    assert out["flushed"] is True
    assert out["app_spans"] == ["app-work"], "crewtrace's spans do not go to the application's provider"
    # (The SDK's own otel.sdk.* self-metrics do go to the global meter provider: not crewtrace's doing.)
    ours = [name for name in out["app_metrics"] if not name.startswith("otel.sdk.")]  # type: ignore[attr-defined]
    assert ours == [], "nor its metrics"
    assert out["received_spans"] == ["chat test-model"], "the bridge exports through crewtrace's providers"
    assert out["received_services"] == ["crewtrace-own"]
    assert "gen_ai.client.operation.duration" in out["received_metrics"]  # type: ignore[operator]


def test_setting_up_again_after_a_shutdown_warns_once_that_the_globals_are_stale() -> None:
    """OpenTelemetry sets its global providers once per process: the second telemetry cannot replace them."""
    out = _run_python(
        """
        import json, logging
        from opentelemetry import trace
        from crewtrace.events import EventBus
        from crewtrace.telemetry import setup_telemetry

        warnings = []
        class Collect(logging.Handler):
            def emit(self, record):
                if record.levelno >= logging.WARNING:
                    warnings.append(record.getMessage())
        logging.getLogger("crewtrace.telemetry").addHandler(Collect())

        first = setup_telemetry("svc-first", bus=EventBus())
        first.shutdown()
        quiet_so_far = list(warnings)
        second = setup_telemetry("svc-second", bus=EventBus())
        third = setup_telemetry("svc-third", bus=EventBus())
        result = {
            "before": quiet_so_far,
            "warnings": warnings,
            "global_is_first": trace.get_tracer_provider() is first.tracer_provider,
        }
        second.shutdown()
        third.shutdown()
        print(json.dumps(result))
        """
    )
    assert out["before"] == [], "a first setup and its shutdown say nothing"
    assert out["global_is_first"] is True, "the globals cannot be replaced (OpenTelemetry's rule)"
    (warning,) = out["warnings"]  # type: ignore[misc]
    assert "shut down" in warning and "set_global=False" in warning and "tracer_provider=" in warning


# -- OpenTelemetry's own export settings, per signal ------------------------------------------


class HeaderRecorder:
    """An OTLP/HTTP endpoint that answers 200 and keeps each request's path and headers."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                recorder.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize("switched_off", ["traces", "metrics"])
def test_otel_signal_exporter_none_switches_that_signal_off(
    make_llm: MakeLLM, bus: EventBus, monkeypatch: pytest.MonkeyPatch, switched_off: str
) -> None:
    monkeypatch.setenv(f"OTEL_{switched_off.upper()}_EXPORTER", "none")
    with OTLPHttpReceiver() as receiver:
        telemetry = setup_telemetry(
            otlp_endpoint=receiver.endpoint, otlp_protocol="http/protobuf", console=True, set_global=False, bus=bus
        )
        make_llm().call("hello")
        assert telemetry.shutdown() is True
    spans, metric_names = receiver.spans(), receiver.metric_names()
    if switched_off == "traces":
        assert spans == [] and "gen_ai.client.operation.duration" in metric_names
    else:
        assert [s.name for s in spans] == ["chat test-model"] and metric_names == set()


def test_per_signal_protocol_and_endpoint_win_over_the_general_ones(
    make_llm: MakeLLM, bus: EventBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    with OTLPHttpReceiver() as http, OTLPGrpcReceiver() as grpc:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", grpc.endpoint)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", http.traces_url)  # a full URL, as the SDK takes it
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")
        telemetry = setup_telemetry(set_global=False, bus=bus)
        make_llm().call("hello")
        assert telemetry.shutdown() is True
    assert [s.name for s in http.spans()] == ["chat test-model"] and http.metric_requests == []
    assert grpc.trace_requests == [] and "gen_ai.client.operation.duration" in grpc.metric_names()


def test_a_signal_without_an_endpoint_is_not_exported_to_a_default_one(
    make_llm: MakeLLM, bus: EventBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    with OTLPHttpReceiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", receiver.traces_url)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")
        telemetry = setup_telemetry(set_global=False, bus=bus)
        make_llm().call("hello")
        assert telemetry.shutdown() is True, "no metric exporter tried localhost:4317"
    assert [s.name for s in receiver.spans()] == ["chat test-model"]


def test_per_signal_headers_win_over_the_general_ones(
    make_llm: MakeLLM, bus: EventBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = HeaderRecorder()
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=general")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-tenant=traces")
        telemetry = setup_telemetry(
            otlp_endpoint=recorder.endpoint, otlp_protocol="http/protobuf", set_global=False, bus=bus
        )
        make_llm().call("hello")
        assert telemetry.shutdown() is True
    finally:
        recorder.close()
    tenants = {path: headers.get("x-tenant") for path, headers in recorder.requests}
    assert tenants == {"/v1/traces": "traces", "/v1/metrics": "general"}


def test_a_per_signal_timeout_wins_over_the_general_one(
    make_llm: MakeLLM, bus: EventBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "60")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "1")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blackhole:  # accepts, never answers
        blackhole.bind(("127.0.0.1", 0))
        blackhole.listen(64)
        endpoint = f"http://127.0.0.1:{blackhole.getsockname()[1]}"
        telemetry = setup_telemetry(otlp_endpoint=endpoint, otlp_protocol="http/protobuf", set_global=False, bus=bus)
        make_llm().call("hello")
        started = time.monotonic()
        assert telemetry.shutdown(timeout=40) is False
        elapsed = time.monotonic() - started
    # The traces' own 1 s, not the general 60 s: a bound between the two worlds.
    assert elapsed < 20, f"shutdown waited {elapsed:.1f} s on the export"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OTEL_TRACES_EXPORTER", "zipkin"),
        ("OTEL_METRICS_EXPORTER", "otlp,none"),
        ("OTEL_TRACES_EXPORTER", "prometheus"),
    ],
)
def test_an_exporter_name_crewtrace_cannot_honour_is_refused(
    bus: EventBus, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError) as caught:
        setup_telemetry(set_global=False, bus=bus)
    assert variable in str(caught.value) and repr(value) in str(caught.value) and "otlp" in str(caught.value)
    assert not bus.has_handlers(LLMCallStartedEvent)


def test_otel_metrics_exporter_prometheus_serves_on_the_sdks_port_variable(
    telemetries: Callable[..., Telemetry], bus: EventBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "prometheus")
    monkeypatch.setenv("OTEL_EXPORTER_PROMETHEUS_PORT", str(port))
    telemetry = telemetries("svc-env-prometheus", bus=bus)
    assert telemetry.metrics_url == f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(telemetry.metrics_url, timeout=5) as response:
        assert 'service_name="svc-env-prometheus"' in response.read().decode()


def test_setup_never_changes_the_process_environment_while_it_runs(bus: EventBus) -> None:
    """Another thread (or a subprocess started meanwhile) must never see an environment crewtrace changed."""
    seen: set[str] = set()
    before = dict(os.environ)
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen.update(k for k, v in list(os.environ.items()) if before.get(k) != v)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        for _ in range(5):
            setup_telemetry("svc-env", prometheus_port=0, set_global=False, bus=bus).shutdown()
    finally:
        done.set()
        watcher.join(5)
    assert seen == set()
