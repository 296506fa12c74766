"""Micro-benchmarks without HTTP (pytest-benchmark): what one chunk costs in each crewtrace layer.

    PYTHONPATH=src:. python -m pytest bench/test_micro.py --benchmark-only -p no:cacheprovider
    .venv-crewai/bin/python -m pytest bench/test_micro.py --benchmark-only -p no:cacheprovider -k crewai  # CrewAI

Every step measured runs in the calling thread, so on a busy machine ``--benchmark-timer time.thread_time``
(this thread's CPU time) gives steadier figures than the wall clock.

Not collected by the test suite (``testpaths = ["tests"]``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from types import SimpleNamespace
from typing import Any

import pytest
from openai.types.chat import ChatCompletionChunk
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

from crewtrace import Agent, Task
from crewtrace.crew._run import prepare
from crewtrace.crew._stream_engine import StreamSink, ThreadQueue
from crewtrace.events import EventBus, ExecutionScope, LLMStreamChunkEvent, StreamChunkType, use_scope
from crewtrace.events.scope import use_sink
from crewtrace.llm._recorder import CallRecorder, CallSettings
from crewtrace.telemetry import OTelBridge
from crewtrace.telemetry._chunks import ChunkTimeline

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


# -- the CrewAI path, step by step (needs CrewAI: run these in .venv-crewai) ------------------------------


ChunkHandler = Callable[[], None]


@pytest.fixture
def crewai_stream() -> Iterator[Callable[[EventBus], ChunkHandler]]:
    """Instruments a bus and hands back one CrewAI chunk event's handling, the next chunk of a call under way each time.

    CrewAI's handler (``_on_event``, what CrewAI calls per chunk) gets CrewAI's own chunk events of one
    call whose started event it has had; the instrumentation is closed after the test.
    """
    pytest.importorskip("crewai")
    from crewai.events.types.llm_events import LLMCallStartedEvent
    from crewai.events.types.llm_events import LLMStreamChunkEvent as CrewAIChunk

    from crewtrace.integrations.crewai import CrewAIInstrumentation, instrument_crewai

    source = SimpleNamespace(model="gpt-4o-mini", provider="openai", stream=True, base_url="http://127.0.0.1:1/v1")
    attribution = {"agent_id": "a-1", "agent_role": "Researcher", "task_id": "t-1", "task_name": "research"}
    started = LLMCallStartedEvent(model="gpt-4o-mini", call_id="call-1", messages="hi", stream=True, **attribution)
    previous, events = started.event_id, []
    for index in range(50_000):
        chunk = CrewAIChunk(chunk=f"w{index} ", call_id="call-1", model="gpt-4o-mini", response_id="r-1", **attribution)
        chunk.parent_event_id, chunk.previous_event_id, previous = started.event_id, previous, chunk.event_id
        events.append(chunk)
    next_event = itertools.cycle(events).__next__
    made: list[CrewAIInstrumentation] = []

    def instrument(bus: EventBus) -> ChunkHandler:
        made.append(instrumentation := instrument_crewai(bus))
        on_event = instrumentation._on_event
        on_event(source, started)
        return lambda: on_event(source, next_event())

    yield instrument
    for instrumentation in made:
        instrumentation.close()


BATCH = 1024
"""Chunks per timed call of the CrewAI path's benchmarks: the bridge records its gap points once per 1,024."""


def _batch(handle: ChunkHandler) -> Callable[[], None]:
    def chunks() -> None:
        for _ in range(BATCH):
            handle()

    return chunks


def test_crewai_1024_chunks_adapter_alone(benchmark: Any, crewai_stream: Any) -> None:
    """The adapter's per-chunk path: CrewAI's event in, crewtrace's chunk event emitted (one listener, a no-op)."""
    bus = EventBus()
    bus.on(LLMStreamChunkEvent)(lambda source, event: None)
    benchmark(_batch(crewai_stream(bus)))


def test_crewai_1024_chunks_adapter_and_bridge(benchmark: Any, crewai_stream: Any, bridged_bus: EventBus) -> None:
    """The whole per-chunk cost crewtrace adds to CrewAI: the adapter, the bridge, its metric point per gap."""
    benchmark(_batch(crewai_stream(bridged_bus)))


# -- the steps' floors and alternatives -----------------------------------------------------------------


def test_sdk_histogram_record_with_a_calls_labels(benchmark: Any) -> None:
    """The SDK's cost of one time_per_output_chunk point (one per chunk): the floor the bridge cannot go below."""
    histogram = MeterProvider(metric_readers=[InMemoryMetricReader()]).get_meter("bench").create_histogram("gap")
    labels = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini",
              "crewtrace.task.name": "research", "gen_ai.agent.name": "Researcher"}  # fmt: skip
    benchmark(histogram.record, 0.0012, labels)


def test_chunk_timeline_add(benchmark: Any) -> None:
    timeline = ChunkTimeline(0, max_events=64, capture_text=False)
    counter = itertools.count(1)

    def add() -> None:
        if timeline.add(next(counter), "w1 ", StreamChunkType.TEXT):
            timeline.take_gaps()

    benchmark(add)


_TEMPLATE = ExecutionScope(agent_id="a-1", agent_role="Researcher", task_id="t-1", task_name="research").stamp(
    LLMStreamChunkEvent, call_id="call-1", model="gpt-4o-mini", provider="openai", chunk="", chunk_index=0
)
_FIELDS = dict(_TEMPLATE.__dict__)
_CHUNK = {"event_id": "e-1", "timestamp_ns": 1, "chunk": "w1 ", "chunk_index": 1}


@pytest.mark.parametrize("how", ["assemble", "model_construct", "model_copy", "validated"])
def test_chunk_event_building(benchmark: Any, how: str) -> None:
    """One chunk event from a call's typed fields and the chunk's own four: the ways pydantic offers, and ours."""
    build: dict[str, Callable[[], LLMStreamChunkEvent]] = {
        "assemble": lambda: LLMStreamChunkEvent.assemble({**_FIELDS, **_CHUNK}),
        "model_construct": lambda: LLMStreamChunkEvent.model_construct(**{**_FIELDS, **_CHUNK}),
        "model_copy": lambda: _TEMPLATE.model_copy(update=_CHUNK),
        "validated": lambda: LLMStreamChunkEvent(**{**_FIELDS, **_CHUNK}),
    }
    benchmark(build[how])


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
