"""Fixtures shared by the suite: a local OpenAI-compatible server, a private bus, real OTel pipelines."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tests.support.openai_server import FakeOpenAIServer
from tests.support.recording import Recorder

from crewtrace import LLM
from crewtrace.events import EventBus
from crewtrace.telemetry import Telemetry, setup_telemetry

API_KEY = "sk-test-4f1c9a2b7e"  # a fake key the suite looks for wherever it must never appear


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
def make_llm(server: FakeOpenAIServer, bus: EventBus) -> Callable[..., LLM]:
    """LLMs that stream from the local server over litellm's real HTTP path."""

    def make(**kwargs: Any) -> LLM:
        kwargs.setdefault("stream", True)
        kwargs.setdefault("timeout", 10)
        return LLM("openai/test-model", base_url=server.base_url, api_key=API_KEY, bus=bus, **kwargs)

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


def sdk_threads() -> set[threading.Thread]:
    """Worker threads of the SDK (batch span processor, periodic metric reader) and crewtrace's shutdown."""
    return {
        t
        for t in threading.enumerate()
        if t.is_alive() and (t.name.startswith("Otel") or t.name == "crewtrace-telemetry-shutdown")
    }


def stop_exporters(telemetry: Telemetry) -> None:
    """Test clean-up only: shut the exporters down directly, so exports stuck on a dead collector give up now."""
    processors = getattr(getattr(telemetry.tracer_provider, "_active_span_processor", None), "_span_processors", ())
    exporters: list[Any] = [getattr(p, "span_exporter", None) for p in processors]
    readers = getattr(getattr(telemetry.meter_provider, "_sdk_config", None), "metric_readers", ())
    exporters += [getattr(r, "_exporter", None) for r in readers]
    logger = logging.getLogger("opentelemetry")
    previous = logger.level
    logger.setLevel(logging.CRITICAL)  # "Exporter already shutdown" noise
    try:
        for exporter in exporters:
            if exporter is not None:
                with contextlib.suppress(Exception):
                    exporter.shutdown()
    finally:
        logger.setLevel(previous)


@pytest.fixture
def telemetries() -> Iterator[Callable[..., Telemetry]]:
    """``setup_telemetry(set_global=False, ...)``; at teardown, shut down and wait (bounded) for its threads.

    The exporters are told to give up first, so no SDK thread stuck on a dead collector outlives
    its test (it would otherwise hold the interpreter's exit, see ``test_backend_down``).
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
        stop_exporters(telemetry)
        telemetry.shutdown(timeout=1.0)
    deadline = time.monotonic() + 15.0
    while (sdk_threads() - before) and time.monotonic() < deadline:
        time.sleep(0.05)
