"""Fixtures shared by the suite: a local OpenAI-compatible server, a private bus, real OTel pipelines."""

from __future__ import annotations

import os
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
# The fork tests fork the test process, which other tests' OTLP receivers and exporters have used gRPC in.
# gRPC's own fork handlers then left a parent unstable once (a segfault in a later test); the forked
# children here never use gRPC and leave through os._exit, which needs no handler.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tests.support.llms import MakeLLM, server_llm
from tests.support.openai_server import FakeOpenAIServer
from tests.support.recording import Recorder
from tests.support.threads import sdk_threads

from crewtrace import LLM
from crewtrace.events import EventBus
from crewtrace.telemetry import Telemetry, setup_telemetry


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as fake:
        yield fake


@pytest.fixture
def bus() -> EventBus:
    """A private bus, so tests never see each other's handlers."""
    return EventBus()


@pytest.fixture
def recorder(bus: EventBus) -> Recorder:
    return Recorder(bus)


@pytest.fixture
def make_llm(server: FakeOpenAIServer, bus: EventBus) -> MakeLLM:
    """LLMs that stream from the local server over litellm's real HTTP path."""

    def make(**kwargs: Any) -> LLM:
        return server_llm(server, bus, **kwargs)

    return make


@pytest.fixture
def span_exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer_provider(span_exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    yield provider
    provider.shutdown()


@pytest.fixture
def metric_reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def meter_provider(metric_reader: InMemoryMetricReader) -> Iterator[MeterProvider]:
    provider = MeterProvider(metric_readers=[metric_reader])
    yield provider
    provider.shutdown()


# -- the OTEL_* environment and telemetry built by setup_telemetry ---------------------------------


@pytest.fixture(autouse=True)
def clean_otel_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No OTEL_* variable leaks in from the developer's shell, and none leaks out to later tests."""
    for name in [n for n in os.environ if n.startswith("OTEL_")]:
        monkeypatch.delenv(name)
    yield
    for name in [n for n in os.environ if n.startswith("OTEL_")]:
        del os.environ[name]  # what monkeypatch recorded is put back after this


@pytest.fixture
def telemetries() -> Iterator[Callable[..., Telemetry]]:
    """``setup_telemetry(set_global=False, ...)``; at teardown, shut down and wait (bounded) for its threads.

    An exporter stuck on a dead collector gives up at its export timeout (``OTEL_EXPORTER_OTLP_TIMEOUT``):
    tests that do not need the default 10 s set a short one. Waiting here keeps a late export failure
    from logging into the next test.
    """
    made: list[Telemetry] = []
    before = sdk_threads()

    def make(*args: Any, **kwargs: Any) -> Telemetry:
        kwargs.setdefault("set_global", False)
        telemetry = setup_telemetry(*args, **kwargs)
        made.append(telemetry)
        return telemetry

    yield make
    for telemetry in made:
        telemetry.shutdown(timeout=1.0)
    deadline = time.monotonic() + 15.0
    while (sdk_threads() - before) and time.monotonic() < deadline:
        time.sleep(0.05)


# -- measurements -------------------------------------------------------------------------------

MEASUREMENT = "crewtrace measurement"


@pytest.fixture
def measure(request: pytest.FixtureRequest) -> Callable[[str, object], None]:
    """``measure("shutdown(timeout=2), grpc, hanging collector", "2.00 s")``: shown at the end of the run.

    Kept in the test's report (``user_properties``), so that pytest-xdist's workers hand them to the
    process that prints the summary (which loads this file, not the conftest files below it).
    """

    def record(what: str, value: object) -> None:
        request.node.user_properties.append((MEASUREMENT, f"{request.node.name}: {what} = {value}"))

    return record


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The figures the tests measured (docs/guarantees.md quotes them), under "crewtrace reliability measurements"."""
    lines: dict[str, None] = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            for key, line in getattr(report, "user_properties", ()):
                if key == MEASUREMENT:
                    lines[line] = None
    if lines:
        terminalreporter.section("crewtrace reliability measurements")
        for line in lines:
            terminalreporter.write_line(line)
