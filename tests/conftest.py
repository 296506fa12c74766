"""Fixtures shared by the suite: a local OpenAI-compatible server, a private bus, real OTel pipelines."""

from __future__ import annotations

import os

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
