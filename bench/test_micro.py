"""Micro-benchmarks without HTTP (pytest-benchmark): what one chunk costs in each crewtrace layer.

    PYTHONPATH=src:. python -m pytest bench/test_micro.py --benchmark-only -p no:cacheprovider

Not collected by the test suite (``testpaths = ["tests"]``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from openai.types.chat import ChatCompletionChunk
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

from crewtrace.events import EventBus, LLMStreamChunkEvent
from crewtrace.llm._recorder import CallRecorder, CallSettings
from crewtrace.telemetry import OTelBridge

CHUNK = ChatCompletionChunk.model_validate(
    {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": "m",
     "choices": [{"index": 0, "delta": {"content": "w1 "}, "finish_reason": None}]}
)  # fmt: skip


def recorder(bus: EventBus) -> CallRecorder:
    settings = CallSettings(
        source=None, model="openai/gpt-4o-mini", request_model="gpt-4o-mini", provider="openai", bus=bus, secrets=()
    )
    return CallRecorder(settings, [{"role": "user", "content": "x"}], stream=True)


@pytest.fixture
def bridged_bus() -> Iterator[EventBus]:
    bus = EventBus()
    tracer_provider, meter_provider = TracerProvider(), MeterProvider(metric_readers=[InMemoryMetricReader()])
    bridge = OTelBridge(tracer_provider, meter_provider, bus=bus)
    yield bus
    bridge.close()
    tracer_provider.shutdown()
    meter_provider.shutdown()


def test_recorder_chunk_no_listener(benchmark: Any) -> None:
    """The per-chunk path of an LLM call nobody listens to (includes the listener-generation check)."""
    benchmark(recorder(EventBus()).on_chunk, CHUNK)


def test_recorder_chunk_one_listener(benchmark: Any) -> None:
    bus = EventBus()
    bus.on(LLMStreamChunkEvent)(lambda source, event: None)
    benchmark(recorder(bus).on_chunk, CHUNK)


def test_recorder_chunk_bridge(benchmark: Any, bridged_bus: EventBus) -> None:
    benchmark(recorder(bridged_bus).on_chunk, CHUNK)
