"""Shared fixtures of the reliability suite (issue 5): faults, abandonment, load, secrets, bad config.

Everything is real: litellm over HTTP against ``tests.support.openai_server``, the
OpenTelemetry SDK, the OTLP exporters, prometheus_client. What this file adds:

- a *blackhole* collector (accepts TCP connections, never answers) and a refused endpoint;
- (``telemetries`` and the clean ``OTEL_*`` environment come from ``tests/conftest.py``);
- ``pipeline``: a bridge on a private bus over SDK providers with the SDK's own metrics
  (``otel.sdk.span.live`` ...) turned on, plus helpers to read metric points and the
  bridge's open state;
- ``measure``: records the figures each test measured; they are printed at the end of
  the run under "crewtrace reliability measurements" (docs/guarantees.md quotes them).

Tests that take more than a few seconds carry ``@pytest.mark.slow``. Nothing is skipped:
CI runs all of them (``pytest tests/reliability`` takes about three minutes on two cores).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tests.conftest import stop_exporters as stop_exporters  # other suites import it from here
from tests.support.crews import two_agent_crew
from tests.support.ports import free_port

from crewtrace import LLM, Crew
from crewtrace.events import EventBus
from crewtrace.telemetry import OTelBridge, _log_filter

MakeLLM = Callable[..., LLM]

# A background thread that dies with an exception is a failure here, not a warning.
RELIABILITY_FILTERS = ["error::pytest.PytestUnhandledThreadExceptionWarning"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: takes more than a few seconds (load, long streams, 1,000 streams); never skipped"
    )


# -- measurements ---------------------------------------------------------------------------

_MEASUREMENTS: dict[str, str] = {}


@pytest.fixture
def measure(request: pytest.FixtureRequest) -> Callable[[str, object], None]:
    """``measure("shutdown(timeout=2), grpc, hanging collector", "2.00 s")``: shown at the end of the run."""

    def record(what: str, value: object) -> None:
        _MEASUREMENTS[f"{request.node.name}: {what}"] = str(value)

    return record


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _MEASUREMENTS:
        return
    terminalreporter.section("crewtrace reliability measurements")
    for what, value in _MEASUREMENTS.items():
        terminalreporter.write_line(f"{what} = {value}")


# -- log filters ----------------------------------------------------------------------------


def _repeat_filters(logger: logging.Logger) -> list[logging.Filter]:
    """crewtrace's RepeatFilters on a logger (the SDK adds filters of its own, e.g. its DuplicateFilter)."""
    return [f for f in logger.filters if isinstance(f, _log_filter.RepeatFilter)]


@pytest.fixture(autouse=True)
def no_stray_log_filters() -> Iterator[None]:
    """Each test starts with no RepeatFilter on the SDK's export loggers and leaves none behind.

    A telemetry another test never shut down (or a setup that failed half-way) keeps its filter
    there; having seen a warning, it would hide that warning from the next test for a minute.
    Filters present before the test are put back after it.
    """
    loggers = [logging.getLogger(name) for name in _log_filter.SDK_EXPORT_LOGGERS]
    stashed = {logger.name: _repeat_filters(logger) for logger in loggers}
    for logger in loggers:
        for existing in stashed[logger.name]:
            logger.removeFilter(existing)
        # The SDK's own DuplicateFilter drops a record equal to the previous one within a 20 s window,
        # across tests: forget the previous test's last record.
        for sdk_filter in logger.filters:
            if hasattr(sdk_filter, "last_log"):
                del sdk_filter.last_log
    yield
    for logger in loggers:
        for stray in _repeat_filters(logger):
            logger.removeFilter(stray)
        for existing in stashed[logger.name]:
            logger.addFilter(existing)


# -- dead collectors --------------------------------------------------------------------------


class Blackhole:
    """A collector that hangs: accepts TCP connections, reads nothing, answers nothing."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self._sock.settimeout(0.05)
        self._accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="test-blackhole", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        port: int = self._sock.getsockname()[1]
        return port

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def connections(self) -> int:
        return len(self._accepted)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            self._accepted.append(conn)

    def close(self) -> None:
        """Reset every accepted connection, so clients stuck on it fail now rather than at their timeout."""
        self._stop.set()
        self._thread.join(5)
        for conn in self._accepted:
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
        self._sock.close()


@pytest.fixture
def blackhole() -> Iterator[Blackhole]:
    hole = Blackhole()
    yield hole
    hole.close()


@pytest.fixture
def refused_endpoint() -> str:
    """An OTLP endpoint nobody listens on: every connection is refused."""
    return f"http://127.0.0.1:{free_port()}"


# -- a bridge over SDK providers with the SDK's own metrics ------------------------------------


class StartEndCounter(SpanProcessor):
    """Counts spans started and ended: their difference is the number of spans left open."""

    def __init__(self) -> None:
        self.started = 0
        self.ended = 0
        self._lock = threading.Lock()

    def on_start(self, span: Span, parent_context: Any = None) -> None:
        with self._lock:
            self.started += 1

    def on_end(self, span: ReadableSpan) -> None:
        with self._lock:
            self.ended += 1

    @property
    def open(self) -> int:
        return self.started - self.ended


@dataclass
class Pipeline:
    bus: EventBus
    bridge: OTelBridge
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    reader: InMemoryMetricReader
    spans: InMemorySpanExporter
    counter: StartEndCounter
    closers: list[Callable[[], None]] = field(default_factory=list)

    def points(self, name: str) -> list[Any]:
        return metric_points(self.reader, name)

    def value(self, name: str) -> float:
        """Sum of a counter/up-down counter over all its series (0 when never recorded)."""
        return sum(p.value for p in self.points(name))

    def chat_spans(self) -> list[ReadableSpan]:
        return [s for s in self.spans.get_finished_spans() if s.name.startswith("chat ")]


def metric_points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    data = reader.get_metrics_data()
    found: list[Any] = []
    for resource_metrics in data.resource_metrics if data else []:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == name:
                    found.extend(metric.data.data_points)
    return found


@pytest.fixture
def pipeline(bus: EventBus, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pipeline]:
    """OTelBridge on the private bus, with in-memory span and metric export and the SDK's own metrics on."""
    monkeypatch.setenv("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "true")
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    tracer_provider = TracerProvider(meter_provider=meter_provider)
    exporter = InMemorySpanExporter()
    counter = StartEndCounter()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer_provider.add_span_processor(counter)
    bridge = OTelBridge(tracer_provider, meter_provider, capture_content=False, bus=bus)
    yield Pipeline(bus, bridge, tracer_provider, meter_provider, reader, exporter, counter)
    bridge.close()
    tracer_provider.shutdown()
    meter_provider.shutdown()


def open_calls(bridge: OTelBridge) -> list[str]:
    """The LLM-call spans the bridge still holds open."""
    return [name for name in bridge.open_spans() if name.startswith("chat ")]


def open_state(bridge: OTelBridge) -> dict[str, int]:
    """How many spans the bridge still holds open: LLM calls, and the others (crew, task, agent, tool)."""
    calls = len(open_calls(bridge))
    return {"calls": calls, "spans": len(bridge.open_spans()) - calls}


def handler_count(bus: EventBus) -> int:
    """Handlers registered on the bus (the bus keeps one registration per handler and event type)."""
    # The bus has no public count yet (issue 15.12, the bus's part): the one reach-in left here.
    return len(bus._registrations)


def live_bridge_objects() -> dict[str, int]:
    """Instances of the bridge's per-call bookkeeping still alive anywhere in the process."""
    from crewtrace.telemetry import _chunks
    from crewtrace.telemetry import bridge as bridge_module

    gc.collect()
    wanted = {
        "_Call": getattr(bridge_module, "_Call", None),
        "ChunkTimeline": getattr(_chunks, "ChunkTimeline", None),
        "_Group": getattr(_chunks, "_Group", None),
    }
    counts = dict.fromkeys(wanted, 0)
    for obj in gc.get_objects():
        for name, cls in wanted.items():
            if cls is not None and type(obj) is cls:
                counts[name] += 1
    return counts


def export_log_filters() -> dict[str, int]:
    """RepeatFilters on the SDK's export loggers (setup_telemetry adds one, shutdown removes it)."""
    return {name: len(_repeat_filters(logging.getLogger(name))) for name in _log_filter.SDK_EXPORT_LOGGERS}


# -- a small crew on the fake server ------------------------------------------------------------


def small_crew(make_llm: MakeLLM, bus: EventBus, **llm_kwargs: Any) -> Crew:
    """Two agents, two named tasks: one trace with 2 chat spans per run."""
    return two_agent_crew(make_llm, bus, name="reliability", **llm_kwargs)
