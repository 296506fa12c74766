"""``Crew(stream=True)``: every chunk of a run, with its task, agent and call; back-pressure; stopping.

Against the suite's OpenAI-compatible server over litellm's real HTTP path. The crew has two
agents and three tasks; the first task calls a tool, so its agent makes two LLM calls in it.
The cancellation tests run a real ``OTelBridge`` on in-memory SDK providers.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from tests.support import crews
from tests.support.crews import TOOL_ARGUMENTS, scripted
from tests.support.leaks import open_state
from tests.support.llms import MakeLLM
from tests.support.metrics import metric_sum
from tests.support.openai_server import FakeOpenAIServer, Fault, Reply, chop, numbered_chunks
from tests.support.polling import await_until, wait_until
from tests.support.recording import Recorder
from tests.support.spans import SpanCounter

from crewtrace import Crew, LLMStreamError, MissingInputError, tool
from crewtrace.crew import CrewOutput, CrewStreamingOutput, StreamChunk, StreamChunkType
from crewtrace.crew.streaming import MAX_PENDING_CHUNKS
from crewtrace.errors import ResultNotReady, StreamClosed, StreamConsumed, StreamError
from crewtrace.events import (
    EventBus,
    LLMCallCompletedEvent,
    LLMCallStartedEvent,
    LLMStreamChunkEvent,
    ToolUsageFinishedEvent,
)
from crewtrace.telemetry import OTelBridge


def three_task_crew(make_llm: MakeLLM, bus: EventBus, **llm_kwargs: Any) -> Crew:
    return crews.three_task_crew(make_llm, bus, name="streaming", streaming=True, **llm_kwargs)


def streaming(output: CrewOutput | CrewStreamingOutput) -> CrewStreamingOutput:
    assert isinstance(output, CrewStreamingOutput)
    return output


def collect(crew: Crew, mode: str, inputs: dict[str, str]) -> tuple[list[StreamChunk], CrewStreamingOutput]:
    """Every chunk of one run, read with ``for`` (sync) or ``async for`` (async)."""
    if mode == "sync":
        output = streaming(crew.kickoff(inputs=inputs))
        return list(output), output

    async def main() -> tuple[list[StreamChunk], CrewStreamingOutput]:
        output = streaming(await crew.kickoff_async(inputs=inputs))
        return [chunk async for chunk in output], output

    return asyncio.run(main())


def stream_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("crewtrace-stream-")]


MODES = ["sync", "async"]


# -- what every chunk says ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_every_chunk_names_its_task_agent_and_call_in_order(
    server: FakeOpenAIServer, make_llm: MakeLLM, bus: EventBus, recorder: Recorder, mode: str
) -> None:
    server.responder = scripted
    crew = three_task_crew(make_llm, bus)
    chunks, output = collect(crew, mode, {"topic": "tracing streams"})

    events = recorder.of(LLMStreamChunkEvent)
    assert [(c.call_id, c.chunk_index, c.content) for c in chunks] == [
        (e.call_id, e.chunk_index, e.chunk) for e in events
    ], "the chunks are the run's chunk events, all of them, in order"
    calls = recorder.of(LLMCallCompletedEvent)
    assert len(calls) == 4, "research: tool call + answer; draft; review"
    for chunk in chunks:  # crewAI #4347: task metadata empty, task_index always 0
        task = crew.tasks[chunk.task_index]
        assert (chunk.task_id, chunk.task_name) == (task.id, task.name)
        assert task.agent is not None and (chunk.agent_role, chunk.agent_id) == (task.agent.role, task.agent.id)
        assert chunk.run_id == output.run_id == output.result.run_id
        assert str(chunk) == chunk.content
    assert sorted({c.task_index for c in chunks}) == [0, 1, 2]
    assert [c.task_index for c in chunks] == sorted(c.task_index for c in chunks), "tasks in crew order"

    texts = {call.call_id: call.response for call in calls}
    for call_id, text in texts.items():
        mine = [c for c in chunks if c.call_id == call_id and c.chunk_type is StreamChunkType.TEXT]
        assert "".join(c.content for c in mine) == text
    assert output.result.raw == "Reviewed: the draft holds up."
    assert output.is_completed and not output.is_cancelled


@pytest.mark.parametrize("mode", MODES)
def test_tool_call_fragments_are_chunks_with_the_tool_on_each(
    server: FakeOpenAIServer, make_llm: MakeLLM, bus: EventBus, recorder: Recorder, mode: str
) -> None:
    """crewAI #3982: tool-call chunks missing."""
    server.responder = scripted
    chunks, output = collect(three_task_crew(make_llm, bus), mode, {"topic": "tracing streams"})
    calls = [c for c in chunks if c.chunk_type is StreamChunkType.TOOL_CALL]
    assert len(calls) > 2, "the arguments arrive in several fragments"
    assert all(c.tool_call is not None for c in calls)
    assert {(c.tool_call.tool_id, c.tool_call.tool_name, c.tool_call.index) for c in calls if c.tool_call} == {
        ("call_lookup", "lookup", 0)
    }
    assert "".join(c.content for c in calls) == TOOL_ARGUMENTS
    assert all(c.tool_call is None for c in chunks if c.chunk_type is StreamChunkType.TEXT)
    assert {(c.task_name, c.agent_role) for c in calls} == {("research", "Researcher")}
    (finished,) = recorder.of(ToolUsageFinishedEvent)
    assert finished.run_id == output.run_id and finished.output == "facts about tracing streams", (
        "tool results are events of the run, not chunks"
    )


@pytest.mark.parametrize("mode", MODES)
def test_two_calls_of_one_agent_in_one_task_have_their_own_call_id(
    server: FakeOpenAIServer, make_llm: MakeLLM, bus: EventBus, mode: str
) -> None:
    """crewAI #3845: chunks of two messages of the same agent in one task cannot be told apart."""
    server.responder = scripted
    chunks, _ = collect(three_task_crew(make_llm, bus), mode, {"topic": "tracing streams"})
    research = [c for c in chunks if c.task_index == 0]
    call_ids = list(dict.fromkeys(c.call_id for c in research))
    assert len(call_ids) == 2, "the tool-call round and the answer are two calls"
    first, second = ([c for c in research if c.call_id == call_id] for call_id in call_ids)
    assert all(c.chunk_type is StreamChunkType.TOOL_CALL for c in first)
    assert "".join(c.content for c in second) == "Found: facts about tracing streams"
    for call in (first, second):
        assert [c.chunk_index for c in call] == list(range(len(call)))


def test_result_and_iteration_say_clearly_what_is_wrong(
    server: FakeOpenAIServer, make_llm: MakeLLM, bus: EventBus
) -> None:
    server.responder = scripted
    crew = three_task_crew(make_llm, bus)
    output = streaming(crew.kickoff(inputs={"topic": "t"}))
    with pytest.raises(ResultNotReady, match="has not finished"):
        _ = output.result
    assert server.requests == [], "nothing runs before the iteration starts"
    chunks = iter(output)
    next(chunks)
    with pytest.raises(ResultNotReady, match="has not finished"):
        _ = output.result
    with pytest.raises(StreamConsumed, match="iterated once"):
        iter(output)
    list(chunks)
    assert output.result.raw.startswith("Reviewed")
    with pytest.raises(StreamError, match="kickoff_async"):
        asyncio.run(_first_async(output))
    with pytest.raises(MissingInputError, match="topic"):
        crew.kickoff(inputs={})  # before any streaming: kickoff itself raises


async def _first_async(output: CrewStreamingOutput) -> None:
    async for _ in output:
        break


def test_an_async_stream_is_not_read_with_for(server: FakeOpenAIServer, make_llm: MakeLLM, bus: EventBus) -> None:
    async def main() -> None:
        output = streaming(await three_task_crew(make_llm, bus).kickoff_async(inputs={"topic": "t"}))
        with pytest.raises(StreamError, match="async for"):
            iter(output)
        with pytest.raises(StreamError, match="aclose"):
            output.close()
        assert [chunk async for chunk in output]

    asyncio.run(main())


# -- errors ------------------------------------------------------------------------------------


def failing_in_draft(body: dict[str, Any]) -> Reply:
    if body["messages"][1]["content"].startswith("Draft"):
        return Reply(chunks=["d1 ", "d2 ", "d3 ", "d4 "], fault=Fault.RESET, fault_after=2)
    return scripted(body)


@pytest.mark.parametrize("mode", MODES)
def test_an_error_mid_run_is_raised_after_the_chunks_that_arrived(
    server: FakeOpenAIServer, make_llm: MakeLLM, bus: EventBus, mode: str
) -> None:
    server.responder = failing_in_draft
    crew = three_task_crew(make_llm, bus)
    crew.stream = False
    with pytest.raises(LLMStreamError) as plain:
        crew.kickoff(inputs={"topic": "t"}) if mode == "sync" else asyncio.run(
            crew.kickoff_async(inputs={"topic": "t"})
        )
    crew.stream = True

    received: list[StreamChunk] = []

    async def read_async(output: CrewStreamingOutput) -> None:
        async for chunk in output:
            received.append(chunk)

    with pytest.raises(LLMStreamError) as streamed:
        if mode == "sync":
            output = streaming(crew.kickoff(inputs={"topic": "t"}))
            for chunk in output:
                received.append(chunk)
        else:

            async def main() -> None:
                await read_async(streaming(await crew.kickoff_async(inputs={"topic": "t"})))

            asyncio.run(main())
    assert type(streamed.value) is type(plain.value), "the exception kickoff() raises without streaming"
    assert (str(streamed.value), streamed.value.error_type) == (str(plain.value), plain.value.error_type)
    assert [c.content for c in received if c.task_name == "draft"] == ["d1 ", "d2 "]
    assert {c.task_name for c in received} == {"research", "draft"}, "the run stopped in the draft"
    if mode == "sync":
        with pytest.raises(LLMStreamError):
            _ = output.result
    assert not stream_threads()


# -- stopping early: everything ends -----------------------------------------------------------


class Pipeline:
    """A real OTelBridge on the test's bus, over in-memory SDK providers."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.spans = InMemorySpanExporter()
        self.counter = SpanCounter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.tracer_provider.add_span_processor(self.counter)
        self.bridge = OTelBridge(self.tracer_provider, self.meter_provider, capture_content=False, bus=bus)
        self.handlers = bus.handler_count()

    def close(self) -> None:
        self.bridge.close()
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()

    def active_streams(self) -> float:
        return metric_sum(self.reader, "crewtrace.stream.active")

    def assert_everything_ended_cancelled(
        self, server: FakeOpenAIServer, requests: int, stream_abandoned: bool = True
    ) -> None:
        spans = self.spans.get_finished_spans()
        assert self.counter.open == 0, f"{self.counter.started} spans started, {self.counter.ended} ended"
        assert all(n == 0 for n in open_state(self.bridge).values()), open_state(self.bridge)
        assert self.active_streams() == 0
        assert self.bus.handler_count() == self.handlers, "the stream's chunk handler is gone"
        names = sorted(s.name for s in spans)
        assert "invoke_workflow streaming" in names and "execute_task research" in names
        cancelled = [s for s in spans if s.attributes and s.attributes.get("error.type") == "cancelled"]
        assert {s.name.split(" ")[0] for s in cancelled} >= {"invoke_workflow", "execute_task", "invoke_agent"}
        assert all(s.status.status_code is StatusCode.ERROR for s in cancelled)
        assert len(server.requests) == requests, "no LLM call started after the stop"
        assert not stream_threads(), "no worker left running"
        if stream_abandoned:
            wait_until(lambda: not server.open_connections, what="the abandoned LLM stream's connection closed")


@pytest.fixture
def pipeline(bus: EventBus) -> Iterator[Pipeline]:
    made = Pipeline(bus)
    yield made
    made.close()


def slow_research(body: dict[str, Any]) -> Reply:
    return Reply(chunks=numbered_chunks(40), delay=0.02)


def stop_by_break(output: CrewStreamingOutput) -> None:
    for n, _ in enumerate(output, start=1):
        if n == 3:
            break


def stop_by_close(output: CrewStreamingOutput) -> None:
    chunks = iter(output)
    for _ in range(3):
        next(chunks)
    output.close()


def stop_by_dropping_the_iterator(output: CrewStreamingOutput) -> None:
    chunks = iter(output)
    for _ in range(3):
        next(chunks)
    del chunks  # reference counting finalises the iteration


def stop_by_leaving_with(output: CrewStreamingOutput) -> None:
    with pytest.raises(LookupError), output:
        for n, _ in enumerate(output, start=1):
            if n == 3:
                raise LookupError("the consumer failed")


@pytest.mark.parametrize(
    "stop",
    [stop_by_break, stop_by_close, stop_by_dropping_the_iterator, stop_by_leaving_with],
    ids=lambda f: f.__name__,
)
def test_stopping_a_sync_stream_cancels_the_run_and_ends_every_span(
    server: FakeOpenAIServer, make_llm: MakeLLM, pipeline: Pipeline, stop: Callable[[CrewStreamingOutput], None]
) -> None:
    server.responder = slow_research
    output = streaming(three_task_crew(make_llm, pipeline.bus).kickoff(inputs={"topic": "t"}))
    stop(output)
    assert output.is_cancelled
    with pytest.raises(StreamClosed, match="closed before the run finished"):
        _ = output.result
    (chat,) = [s for s in pipeline.spans.get_finished_spans() if s.name.startswith("chat ")]
    assert chat.attributes and chat.attributes["error.type"] == "cancelled"
    pipeline.assert_everything_ended_cancelled(server, requests=1)


async def astop_by_break(output: CrewStreamingOutput) -> None:
    n = 0
    async for _ in output:
        n += 1
        if n == 3:
            break
    await await_until(lambda: output.is_completed, what="the abandoned iteration finalised by the loop")


async def astop_by_aclose(output: CrewStreamingOutput) -> None:
    chunks = aiter(output)
    for _ in range(3):
        await anext(chunks)
    await output.aclose()


async def astop_by_cancelling_the_consumer(output: CrewStreamingOutput) -> None:
    got_three = asyncio.Event()

    async def consumer() -> None:
        n = 0
        async for _ in output:
            n += 1
            if n == 3:
                got_three.set()

    task = asyncio.create_task(consumer())
    await got_three.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.parametrize(
    "stop", [astop_by_break, astop_by_aclose, astop_by_cancelling_the_consumer], ids=lambda f: f.__name__
)
def test_stopping_an_async_stream_cancels_the_run_and_ends_every_span(
    server: FakeOpenAIServer, make_llm: MakeLLM, pipeline: Pipeline, stop: Callable[[CrewStreamingOutput], Any]
) -> None:
    server.responder = slow_research

    async def main() -> None:
        output = streaming(await three_task_crew(make_llm, pipeline.bus).kickoff_async(inputs={"topic": "t"}))
        await stop(output)
        assert output.is_cancelled
        assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("crewtrace-stream-")]

    asyncio.run(main())
    pipeline.assert_everything_ended_cancelled(server, requests=1)


def test_stopping_during_a_tool_call_starts_no_further_llm_call(
    server: FakeOpenAIServer, make_llm: MakeLLM, pipeline: Pipeline
) -> None:
    """The run checks for a stop before each step, not only at chunks."""
    server.responder = scripted
    started, release = threading.Event(), threading.Event()

    @tool
    def lookup(topic: str) -> str:
        """Look a topic up, slowly."""
        started.set()
        release.wait(10)
        return "late facts"

    crew = three_task_crew(make_llm, pipeline.bus)
    crew.agents[0].tools = [lookup]
    output = streaming(crew.kickoff(inputs={"topic": "t"}))
    for _ in output:
        wait_until(started.is_set, what="the tool running")
        threading.Thread(target=lambda: (wait_until(lambda: output.is_cancelled), release.set())).start()
        break  # returns once the run has stopped: after the tool, before the next LLM call
    (tool_span,) = [s for s in pipeline.spans.get_finished_spans() if s.name == "execute_tool lookup"]
    assert tool_span.status.status_code is StatusCode.UNSET, "the tool itself finished"
    pipeline.assert_everything_ended_cancelled(server, requests=1, stream_abandoned=False)


# -- leaving while the model is silent --------------------------------------------------------

SILENT_CHUNKS = 3
LEFT_AT_ONCE = 5.0
"""Seconds: leaving returns within this, where waiting for the model would take the stall (30 s) or
the LLM's timeout (60 s here)."""


def silent_after_three(body: dict[str, Any]) -> Reply:
    return Reply(chunks=numbered_chunks(10), fault=Fault.STALL, fault_after=SILENT_CHUNKS)


def test_break_while_the_model_is_silent_returns_at_once_and_closes_the_connection(
    server: FakeOpenAIServer, make_llm: MakeLLM, pipeline: Pipeline
) -> None:
    server.responder = silent_after_three
    output = streaming(three_task_crew(make_llm, pipeline.bus, timeout=60).kickoff(inputs={"topic": "t"}))
    for n, _ in enumerate(output, start=1):
        if n == SILENT_CHUNKS:
            leaving = time.monotonic()
            break
    assert time.monotonic() - leaving < LEFT_AT_ONCE, "the stream was left at once, not at the model's next chunk"
    assert output.is_cancelled
    pipeline.assert_everything_ended_cancelled(server, requests=1)


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals go to the main thread")
def test_ctrl_c_while_the_model_is_silent_returns_at_once_and_closes_the_connection(
    server: FakeOpenAIServer, make_llm: MakeLLM, pipeline: Pipeline
) -> None:
    server.responder = silent_after_three
    output = streaming(three_task_crew(make_llm, pipeline.bus, timeout=60).kickoff(inputs={"topic": "t"}))
    chunks = iter(output)
    for _ in range(SILENT_CHUNKS):
        next(chunks)
    ctrl_c = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
    ctrl_c.start()
    waiting = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        next(chunks)  # the model sends nothing more: only Ctrl-C ends the wait
    ctrl_c.join()
    assert time.monotonic() - waiting < LEFT_AT_ONCE
    assert output.is_cancelled
    pipeline.assert_everything_ended_cancelled(server, requests=1)


# -- back-pressure -----------------------------------------------------------------------------


def test_a_slow_sync_consumer_holds_the_run_back(
    server: FakeOpenAIServer, make_llm: MakeLLM, bus: EventBus, recorder: Recorder
) -> None:
    total = 4 * MAX_PENDING_CHUNKS
    server.responder = lambda body: Reply(chunks=numbered_chunks(total))
    crew = three_task_crew(make_llm, bus)
    crew.tasks[:] = crew.tasks[1:2]

    def emitted() -> int:
        return len(recorder.of(LLMStreamChunkEvent))

    consumed, lead = 0, 0
    for consumed, _ in enumerate(streaming(crew.kickoff(inputs={"topic": "t"})), start=1):
        if consumed == 1:
            wait_until(lambda: emitted() > MAX_PENDING_CHUNKS, what="the run filling the queue")
            time.sleep(0.3)  # room for a run without back-pressure to run away
        lead = max(lead, emitted() - consumed)
    assert consumed == total
    assert MAX_PENDING_CHUNKS <= lead <= MAX_PENDING_CHUNKS + 2, f"{lead} chunks were ahead of the consumer"


def test_a_slow_async_consumer_holds_the_next_step_back(
    server: FakeOpenAIServer, make_llm: MakeLLM, bus: EventBus, recorder: Recorder
) -> None:
    """Within one call the chunks queue as they arrive; the next call waits until the queue has room."""
    first = 2 * MAX_PENDING_CHUNKS
    server.queue(Reply(chunks=numbered_chunks(first)), Reply(chunks=chop("the second call")))
    crew = three_task_crew(make_llm, bus)
    crew.tasks[:] = crew.tasks[1:]
    crew.tasks[1].agent = crew.tasks[0].agent  # two plain text calls
    consumed = 0
    backlog_at_second_call: list[int] = []

    def on_started(source: Any, event: LLMCallStartedEvent) -> None:
        if recorder.of(LLMCallCompletedEvent):
            backlog_at_second_call.append(first - consumed)

    bus.register_handler(LLMCallStartedEvent, on_started)

    async def main() -> None:
        nonlocal consumed
        async for _ in streaming(await crew.kickoff_async(inputs={"topic": "t"})):
            consumed += 1
            if consumed == 1:
                await await_until(lambda: recorder.of(LLMCallCompletedEvent), what="the first call done")

    asyncio.run(main())
    assert backlog_at_second_call and backlog_at_second_call[0] < MAX_PENDING_CHUNKS


# -- concurrency -------------------------------------------------------------------------------


def check_own_chunks(chunks: list[StreamChunk], output: CrewStreamingOutput, topic: str) -> None:
    assert chunks and {c.run_id for c in chunks} == {output.run_id}
    for call_id in {c.call_id for c in chunks}:
        mine = [c.chunk_index for c in chunks if c.call_id == call_id]
        assert mine == list(range(len(mine))), "no chunk of another run, none lost"
    text = "".join(c.content for c in chunks)
    assert topic in text and not [n for n in range(4) if f"topic-{n}" != topic and f"topic-{n}" in text]


def by_topic(body: dict[str, Any]) -> Reply:
    return Reply(chunks=chop(f"About {body['messages'][1]['content']}"[:120], 3), delay=0.001)


def test_concurrent_sync_streams_never_mix(server: FakeOpenAIServer, make_llm: MakeLLM, bus: EventBus) -> None:
    server.responder = by_topic
    crew = three_task_crew(make_llm, bus)
    for task in crew.tasks:
        task.agent = crew.agents[1]  # no tools: every call is text
    results: dict[str, tuple[list[StreamChunk], CrewStreamingOutput]] = {}

    def consume(topic: str) -> None:
        output = streaming(crew.kickoff(inputs={"topic": topic}))
        results[topic] = (list(output), output)

    threads = [threading.Thread(target=consume, args=(f"topic-{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == [f"topic-{n}" for n in range(4)]
    for topic, (chunks, output) in results.items():
        check_own_chunks(chunks, output, topic)


def test_concurrent_async_streams_never_mix(server: FakeOpenAIServer, make_llm: MakeLLM, bus: EventBus) -> None:
    server.responder = by_topic
    crew = three_task_crew(make_llm, bus)
    for task in crew.tasks:
        task.agent = crew.agents[1]

    async def consume(topic: str) -> None:
        output = streaming(await crew.kickoff_async(inputs={"topic": topic}))
        check_own_chunks([chunk async for chunk in output], output, topic)

    async def main() -> None:
        await asyncio.gather(*(consume(f"topic-{n}") for n in range(4)))

    asyncio.run(main())


@pytest.mark.parametrize("mode", MODES)
def test_a_streamed_run_reaches_the_bridge_like_any_other(
    server: FakeOpenAIServer, make_llm: MakeLLM, pipeline: Pipeline, mode: str
) -> None:
    server.responder = scripted
    chunks, output = collect(three_task_crew(make_llm, pipeline.bus), mode, {"topic": "tracing streams"})
    spans = pipeline.spans.get_finished_spans()
    chats = [s for s in spans if s.name.startswith("chat ")]
    assert len(chats) == 4 and all(s.status.status_code is StatusCode.UNSET for s in spans)
    assert sum(s.attributes["crewtrace.stream.chunk_count"] for s in chats if s.attributes) == len(chunks)
    assert {s.context.trace_id for s in spans} == {spans[0].context.trace_id}, "one trace for the run"
    assert pipeline.active_streams() == 0 and output.result.run_id == output.run_id


@pytest.mark.parametrize("mode", MODES)
def test_a_span_open_around_kickoff_parents_the_run_even_when_read_outside_it(
    server: FakeOpenAIServer, make_llm: MakeLLM, pipeline: Pipeline, mode: str
) -> None:
    server.responder = scripted
    crew = three_task_crew(make_llm, pipeline.bus)
    tracer = pipeline.tracer_provider.get_tracer("app")

    async def kickoff_async() -> list[StreamChunk]:
        with tracer.start_as_current_span("request"):
            output = streaming(await crew.kickoff_async(inputs={"topic": "t"}))
        return [chunk async for chunk in output]

    if mode == "sync":
        with tracer.start_as_current_span("request"):
            output = streaming(crew.kickoff(inputs={"topic": "t"}))
        assert list(output)
    else:
        assert asyncio.run(kickoff_async())
    spans = {s.name: s for s in pipeline.spans.get_finished_spans()}
    request, workflow = spans["request"], spans["invoke_workflow streaming"]
    assert workflow.parent is not None and workflow.parent.span_id == request.context.span_id


@pytest.mark.parametrize("mode", MODES)
def test_a_streaming_crew_streams_llms_built_without_stream(
    server: FakeOpenAIServer, make_llm: MakeLLM, bus: EventBus, mode: str
) -> None:
    """As in CrewAI: ``Crew(stream=True)`` streams every call, whatever ``stream=`` each LLM was built with."""
    server.responder = scripted
    chunks, output = collect(three_task_crew(make_llm, bus, stream=False), mode, {"topic": "otel"})
    assert {chunk.task_index for chunk in chunks} == {0, 1, 2}
    assert "".join(c.content for c in chunks if c.task_index == 2 and c.chunk_type is StreamChunkType.TEXT)
    assert all(body.get("stream") for body in (request.body for request in server.requests))
    assert output.result.raw
