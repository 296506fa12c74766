"""Micro-benchmarks without HTTP (pytest-benchmark): what one chunk costs in each crewtrace layer.

    PYTHONPATH=src:. python -m pytest bench/test_micro.py --benchmark-only -p no:cacheprovider

Every step measured runs in the calling thread, so on a busy machine ``--benchmark-timer time.thread_time``
(this thread's CPU time) gives steadier figures than the wall clock.

Not collected by the test suite (``testpaths = ["tests"]``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from openai.types.chat import ChatCompletionChunk
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

from crewtrace import Agent, Task
from crewtrace.crew._run import prepare
from crewtrace.crew._stream_engine import StreamSink, ThreadQueue
from crewtrace.events import EventBus, ExecutionScope, LLMStreamChunkEvent, use_scope
from crewtrace.events.scope import use_sink
from crewtrace.llm._recorder import CallRecorder, CallSettings
from crewtrace.telemetry import OTelBridge

CHUNK = ChatCompletionChunk.model_validate(
    {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": "m",
     "choices": [{"index": 0, "delta": {"content": "w1 "}, "finish_reason": None}]}
)  # fmt: skip


def recorder(bus: EventBus | None) -> CallRecorder:
    """``bus=None``: the bus of the run whose sink is current, as for an LLM built without one."""
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


@pytest.mark.parametrize("runs", [1, 100])
def test_crew_stream_chunk_among_concurrent_runs(benchmark: Any, bridged_bus: EventBus, runs: int) -> None:
    """One chunk of a ``Crew(stream=True)`` run, from the LLM layer to its consumer's queue and out, the bridge on
    the crew's bus, while ``runs`` runs stream at once (their chunks interleaved): flat in ``runs``."""
    agent = Agent(role="R", goal="G", backstory="B", llm="openai/gpt-4o-mini")
    task = Task(name="t", description="d", expected_output="e", agent=agent)
    calls: list[tuple[Callable[[Any], Any], ThreadQueue]] = []
    with ExitStack() as stack:
        for _ in range(runs):
            run = prepare(None, "bench", bridged_bus, [task], {}, verbose=False)
            queue = ThreadQueue(256)
            scope = ExecutionScope(run_id=run.run_id, crew_name="bench", task_id=task.id, task_name="t")
            with use_sink(StreamSink(run, queue)), use_scope(scope):  # what the run's flow sets around a call
                calls.append((recorder(None).on_chunk, queue))
            stack.callback(queue.stop)
        turns = itertools.cycle(calls)

        def one_chunk() -> None:
            on_chunk, queue = next(turns)
            on_chunk(CHUNK)
            queue.get()

        benchmark(one_chunk)
