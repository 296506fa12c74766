"""The Prometheus endpoint: real SDK providers, a real HTTP server, scraped with urllib."""

from __future__ import annotations

import errno
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from opentelemetry import trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import format_span_id, format_trace_id
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text
from prometheus_client.samples import Sample
from tests.support.polling import wait_until

from crewtrace.errors import CrewtraceError, MetricsServerError
from crewtrace.events import EventBus
from crewtrace.telemetry import (
    MetricsServer,
    PrometheusCollector,
    PrometheusReader,
    metrics_server,
    setup_telemetry,
    start_metrics_server,
)

OPENMETRICS = "application/openmetrics-text"
BOUNDS = [0.1, 1.0, 10.0]


@dataclass
class Stack:
    reader: PrometheusReader
    meters: MeterProvider
    tracer: trace.Tracer
    server: MetricsServer


@pytest.fixture
def stack() -> Iterator[Stack]:
    reader = PrometheusReader()
    meters = MeterProvider(metric_readers=[reader], resource=Resource.create({"service.name": "svc-x"}))
    tracers = TracerProvider()
    server = start_metrics_server(reader, port=0)
    try:
        yield Stack(reader, meters, tracers.get_tracer("test"), server)
    finally:
        server.shutdown()
        meters.shutdown()
        tracers.shutdown()


def scrape(url: str, accept: str | None = None) -> tuple[str, str]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.headers["Content-Type"], response.read().decode()


def samples(text: str, openmetrics: bool = False) -> list[tuple[str, Sample]]:
    """(family type, sample) pairs; the OpenMetrics parser is strict, so parsing is itself a check."""
    families = parse_openmetrics(text) if openmetrics else parse_text(text)
    return [(family.type, sample) for family in families for sample in family.samples]


def find(text: str, name: str, openmetrics: bool = False, **labels: str) -> list[Sample]:
    return [
        s
        for _, s in samples(text, openmetrics)
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]


def record_crew_metrics(stack: Stack) -> None:
    meter = stack.meters.get_meter("crewtrace", "0.1.0")
    duration = meter.create_histogram("x", unit="s", explicit_bucket_boundaries_advisory=BOUNDS)
    chunks = meter.create_counter("crewtrace.stream.chunks", unit="{chunk}")
    active = meter.create_up_down_counter("crewtrace.active.calls", unit="{call}")
    cost = meter.create_histogram("gen_ai.usage.cost", unit="USD", explicit_bucket_boundaries_advisory=[0.01, 1])
    agent = {"gen_ai.agent.name": "researcher"}
    for value in (0.05, 0.5, 0.5, 5, 50):
        duration.record(value, agent)
    chunks.add(7, agent)
    active.add(3, agent)
    active.add(-1, agent)
    cost.record(0.002, agent)


def test_text_format_names_labels_and_target_info(stack: Stack) -> None:
    record_crew_metrics(stack)
    content_type, text = scrape(stack.server.url)

    assert content_type.startswith("text/plain")
    types = {s.name: typ for typ, s in samples(text)}
    assert types["x_seconds_bucket"] == "histogram"
    assert types["crewtrace_stream_chunks_total"] == "counter"
    assert types["gen_ai_usage_cost_USD_bucket"] == "histogram"
    assert types["crewtrace_active_calls"] == "gauge"
    assert "crewtrace_stream_chunks_total_total" not in text
    assert find(text, "crewtrace_stream_chunks_total", gen_ai_agent_name="researcher")[0].value == 7
    assert find(text, "crewtrace_active_calls", gen_ai_agent_name="researcher")[0].value == 2

    info = find(text, "target_info")
    assert len(info) == 1 and info[0].value == 1
    assert info[0].labels["service_name"] == "svc-x"
    assert info[0].labels["telemetry_sdk_language"] == "python"
    for _, sample in samples(text):
        assert sample.labels["service_name"] == "svc-x", sample
        assert all(re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", key) for key in sample.labels), sample
    # The endpoint uses its own registry: nothing from prometheus_client's global one.
    assert "python_gc" not in text and "process_" not in text


def test_histogram_buckets_are_cumulative(stack: Stack) -> None:
    record_crew_metrics(stack)
    _, text = scrape(stack.server.url)

    buckets = {s.labels["le"]: s.value for s in find(text, "x_seconds_bucket", gen_ai_agent_name="researcher")}
    assert buckets == {"0.1": 1, "1.0": 3, "10.0": 4, "+Inf": 5}
    assert find(text, "x_seconds_count")[0].value == 5
    assert find(text, "x_seconds_sum")[0].value == pytest.approx(56.05)
    cost = {s.labels["le"]: s.value for s in find(text, "gen_ai_usage_cost_USD_bucket")}
    assert cost == {"0.01": 1, "1.0": 1, "+Inf": 1}


def test_exemplars_in_openmetrics_only(stack: Stack) -> None:
    meter = stack.meters.get_meter("crewtrace")
    duration = meter.create_histogram("x", unit="s", explicit_bucket_boundaries_advisory=BOUNDS)
    with stack.tracer.start_as_current_span("chat gpt-test") as current:
        duration.record(0.5)  # exemplar from the current span
    other = stack.tracer.start_span("chat other")
    duration.record(5, context=trace.set_span_in_context(other))  # exemplar from an explicit context
    other.end()
    duration.record(50)  # no span: no exemplar

    _, plain = scrape(stack.server.url)
    assert " # {" not in plain  # the text format has no exemplars ...
    content_type, text = scrape(stack.server.url, OPENMETRICS)  # ... and they survive that scrape

    assert content_type.startswith(OPENMETRICS)
    assert text.endswith("# EOF\n")
    by_le = {s.labels["le"]: s for s in find(text, "x_seconds_bucket", openmetrics=True)}
    assert by_le["0.1"].exemplar is None
    assert by_le["+Inf"].exemplar is None
    first, second = by_le["1.0"].exemplar, by_le["10.0"].exemplar
    assert first is not None and second is not None
    assert first.labels == {
        "trace_id": format_trace_id(current.get_span_context().trace_id),
        "span_id": format_span_id(current.get_span_context().span_id),
    }
    assert first.value == 0.5
    assert abs(float(first.timestamp) - time.time()) < 60
    assert second.labels["trace_id"] == format_trace_id(other.get_span_context().trace_id)
    assert second.value == 5
    # The wire form Prometheus and Grafana read (prometheus_client sorts exemplar labels).
    trace_hex = format_trace_id(current.get_span_context().trace_id)
    assert re.search(rf'le="1\.0".*\}} 1\.0 # \{{span_id="[0-9a-f]{{16}}",trace_id="{trace_hex}"\}} 0\.5 ', text)


def test_newer_exemplar_replaces_older_in_same_bucket(stack: Stack) -> None:
    duration = stack.meters.get_meter("crewtrace").create_histogram(
        "x", unit="s", explicit_bucket_boundaries_advisory=BOUNDS
    )
    with stack.tracer.start_as_current_span("old"):
        duration.record(0.4)
    scrape(stack.server.url, OPENMETRICS)
    with stack.tracer.start_as_current_span("new") as new:
        duration.record(0.6)
    _, text = scrape(stack.server.url, OPENMETRICS)

    (bucket,) = find(text, "x_seconds_bucket", openmetrics=True, le="1.0")
    assert bucket.exemplar is not None
    assert bucket.exemplar.value == 0.6
    assert bucket.exemplar.labels["trace_id"] == format_trace_id(new.get_span_context().trace_id)


def test_counter_exemplar_in_openmetrics(stack: Stack) -> None:
    chunks = stack.meters.get_meter("crewtrace").create_counter("crewtrace.stream.chunks", unit="{chunk}")
    with stack.tracer.start_as_current_span("chat") as span:
        chunks.add(1)
    _, text = scrape(stack.server.url, OPENMETRICS)

    (sample,) = find(text, "crewtrace_stream_chunks_total", openmetrics=True)
    assert sample.exemplar is not None
    assert sample.exemplar.labels["span_id"] == format_span_id(span.get_span_context().span_id)


def test_unit_suffixes_follow_the_otel_exporter(stack: Stack) -> None:
    meter = stack.meters.get_meter("crewtrace")
    meter.create_histogram("rpc.latency", unit="ms").record(3)
    meter.create_up_down_counter("queue.size", unit="By").add(10)
    meter.create_up_down_counter("cache.hit-ratio", unit="1").add(1)
    meter.create_histogram("gen_ai.client.token.usage", unit="{token}").record(12)
    meter.create_histogram("call_duration_seconds", unit="s").record(1)
    meter.create_counter("requests_total").add(1)
    meter.create_counter("http.server.bytes", unit="By").add(5)
    meter.create_up_down_counter("link.speed", unit="m/s").add(1)

    for accept in (None, OPENMETRICS):
        _, text = scrape(stack.server.url, accept)
        names = {s.name for _, s in samples(text, openmetrics=accept is not None)}
        assert {
            "rpc_latency_milliseconds_bucket",
            "queue_size_bytes",
            "cache_hit_ratio",
            "gen_ai_client_token_usage_bucket",
            "call_duration_seconds_bucket",
            "requests_total",
            "http_server_bytes_total",
            "link_speed_meters_per_second",
        } <= names, names
        assert not any("seconds_seconds" in n or "total_total" in n for n in names)
    assert "# UNIT rpc_latency_milliseconds milliseconds" in text


def test_scopes_merge_and_label_sets_may_differ(stack: Stack) -> None:
    stack.meters.get_meter("crewtrace.llm", "1.0").create_counter("crewtrace.stream.chunks").add(2, {"a.b": "x"})
    other = stack.meters.get_meter("crewtrace.crew").create_counter("crewtrace.stream.chunks")
    other.add(3, {"gen_ai.task.name": "t"})
    other.add(4)

    for accept in (None, OPENMETRICS):
        _, text = scrape(stack.server.url, accept)
        assert text.count("# TYPE crewtrace_stream_chunks") == 1
        got = {
            (s.labels["otel_scope_name"], s.labels.get("a_b", ""), s.labels.get("gen_ai_task_name", "")): s.value
            for s in find(text, "crewtrace_stream_chunks_total", openmetrics=accept is not None)
        }
        assert got == {("crewtrace.llm", "x", ""): 2, ("crewtrace.crew", "", "t"): 3, ("crewtrace.crew", "", ""): 4}
    (versioned,) = find(text, "crewtrace_stream_chunks_total", openmetrics=True, a_b="x")
    assert versioned.labels["otel_scope_version"] == "1.0"


def test_attribute_values_and_colliding_keys(stack: Stack) -> None:
    gauge = stack.meters.get_meter("crewtrace").create_up_down_counter("odd.values")
    gauge.add(1, {"flag": True, "count": 3, "tags": ("a", "b"), "k.x": "dot", "k-x": "dash", "9lives": "cat"})
    _, text = scrape(stack.server.url, OPENMETRICS)

    (sample,) = find(text, "odd_values", openmetrics=True)
    assert sample.labels["flag"] == "true"
    assert sample.labels["count"] == "3"
    assert sample.labels["tags"] == '["a", "b"]'
    assert sample.labels["k_x"] == "dash;dot"  # joined in the order of the original keys
    assert sample.labels["_9lives"] == "cat"


def test_resource_labels_parameter() -> None:
    reader = PrometheusReader()
    resource = Resource.create({"service.name": "svc-y", "service.namespace": "crews", "host.name": "h1"})
    meters = MeterProvider(metric_readers=[reader], resource=resource)
    meters.get_meter("crewtrace").create_counter("runs").add(1)
    server = start_metrics_server(reader, port=0, resource_labels=("service.name", "service.namespace"))
    try:
        _, text = scrape(server.url)
    finally:
        server.shutdown()
        meters.shutdown()

    (sample,) = find(text, "runs_total")
    assert sample.labels["service_name"] == "svc-y"
    assert sample.labels["service_namespace"] == "crews"
    assert "host_name" not in sample.labels
    assert find(text, "target_info")[0].labels["host_name"] == "h1"


def test_reader_without_provider_serves_an_empty_page() -> None:
    reader = PrometheusReader()
    with start_metrics_server(reader, port=0) as server:
        assert server.url == f"http://127.0.0.1:{server.port}/metrics"
        assert scrape(server.url)[1] == ""
        assert scrape(server.url, OPENMETRICS)[1] == "# EOF\n"


def test_head_answers_like_get_without_a_body(stack: Stack) -> None:
    stack.meters.get_meter("m").create_counter("probe.count").add(1)
    request = urllib.request.Request(stack.server.url, method="HEAD")
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200, "probes and load balancers send HEAD"
        assert response.headers["Content-Type"] == scrape(stack.server.url)[0]
        assert response.read() == b""
    assert find(scrape(stack.server.url)[1], "probe_count_total"), "GET still serves the page"


def test_port_in_use_gives_a_clear_error() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        with pytest.raises(MetricsServerError) as caught:
            start_metrics_server(PrometheusReader(), port=port)

    error = caught.value
    assert isinstance(error, OSError) and isinstance(error, CrewtraceError)
    assert error.errno == errno.EADDRINUSE
    assert f"127.0.0.1:{port}" in str(error)
    assert "already in use" in str(error) and "another port" in str(error)
    assert isinstance(error.__cause__, OSError)


def test_second_server_on_same_port_is_refused(stack: Stack) -> None:
    with pytest.raises(MetricsServerError, match=rf"127\.0\.0\.1:{stack.server.port}"):
        start_metrics_server(stack.reader, port=stack.server.port)
    scrape(stack.server.url)  # the first one still serves


def test_shutdown_frees_the_port_and_is_idempotent(stack: Stack) -> None:
    record_crew_metrics(stack)
    server = start_metrics_server(stack.reader, port=0)
    scrape(server.url)
    port = server.port

    started = time.monotonic()
    server.shutdown()
    server.shutdown()
    assert time.monotonic() - started < 3
    with pytest.raises(urllib.error.URLError):
        scrape(server.url)

    again = start_metrics_server(stack.reader, port=port)
    try:
        assert again.port == port
        assert "x_seconds_bucket" in scrape(again.url)[1]
    finally:
        again.shutdown()


def test_invalid_port_is_rejected() -> None:
    with pytest.raises(ValueError, match="65535"):
        start_metrics_server(PrometheusReader(), port=70000)


# -- what registering checks, and the first scrape -------------------------------------------


def test_registering_the_collector_runs_no_collection_and_refuses_a_duplicate() -> None:
    reader = PrometheusReader()
    collections: list[int] = []

    def observe(options: CallbackOptions) -> list[Observation]:
        collections.append(1)
        return [Observation(1)]

    meters = MeterProvider(metric_readers=[reader])
    meters.get_meter("m").create_observable_gauge("probe", callbacks=[observe])
    try:
        registry = CollectorRegistry(auto_describe=True)  # prometheus_client's REGISTRY is made like this
        PrometheusCollector(reader, registry=registry)
        assert collections == [], "registering asked the SDK for nothing"
        with pytest.raises(ValueError, match="target_info"):
            PrometheusCollector(reader, registry=registry)  # its families would be written twice
        with pytest.raises(ValueError, match="target_info"):
            PrometheusCollector(reader, registry=CollectorRegistry(target_info={"env": "prod"}))
    finally:
        meters.shutdown()


def test_the_first_scrape_of_a_fresh_telemetry_shows_its_target_info() -> None:
    telemetry = setup_telemetry("svc-fresh", prometheus_port=0, set_global=False, bus=EventBus())
    try:
        assert telemetry.metrics_url is not None
        _, text = scrape(telemetry.metrics_url)
    finally:
        telemetry.shutdown()
    (target,) = find(text, "target_info")
    assert target.labels["service_name"] == "svc-fresh"


# -- connections: bounded in time and number, ended by shutdown ------------------------------


def idle_connection(server: MetricsServer) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    connection.settimeout(10)
    return connection


def closed_by_the_server(connection: socket.socket) -> bool:
    """True once the server closed it (reads end); False if it answered something first."""
    try:
        return connection.recv(1024) == b""
    except ConnectionResetError:
        return True


def test_a_silent_connection_is_closed_after_the_connection_timeout(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert metrics_server.CONNECTION_TIMEOUT <= 60
    monkeypatch.setattr(metrics_server, "CONNECTION_TIMEOUT", 0.5)
    with idle_connection(stack.server) as connection:
        started = time.monotonic()
        assert closed_by_the_server(connection)
        assert time.monotonic() - started < 8
    scrape(stack.server.url)  # and the endpoint still serves


def test_connections_beyond_the_limit_get_a_503_at_once(stack: Stack) -> None:
    held = [idle_connection(stack.server) for _ in range(metrics_server.MAX_CONNECTIONS)]
    try:
        wait_until(lambda: len(connection_threads()) == metrics_server.MAX_CONNECTIONS, what="every connection served")
        with idle_connection(stack.server) as extra:
            assert extra.recv(1024).startswith(b"HTTP/1.0 503")
    finally:
        for connection in held:
            connection.close()
    wait_until(lambda: serves(stack.server.url), what="the endpoint serves again once they are gone")


def serves(url: str) -> bool:
    """True when a scrape succeeds; False while it is refused with a 503 (connections still winding down)."""
    try:
        scrape(url)
    except urllib.error.HTTPError as refused:
        if refused.code != 503:
            raise
        return False
    return True


def test_shutdown_ends_open_connections_and_their_threads(stack: Stack) -> None:
    held = [idle_connection(stack.server) for _ in range(3)]
    wait_until(lambda: len(connection_threads()) >= 3)
    started = time.monotonic()
    stack.server.shutdown()
    assert time.monotonic() - started < 4
    for connection in held:
        with connection:
            assert closed_by_the_server(connection)
    assert connection_threads() == []


def connection_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "crewtrace-metrics-connection" and t.is_alive()]
