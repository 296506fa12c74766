"""What the SDK and the OTLP exporters refuse never costs a run its telemetry.

A lone surrogate (a task named after a file name that is not UTF-8) in any string the bridge hands to
OpenTelemetry would make the OTLP exporter drop the whole batch, other runs' spans included; and chunk
events beyond the span event limit (``OTEL_SPAN_EVENT_COUNT_LIMIT``) would be evicted oldest first,
the first chunk's among them. Real HTTP against the local server, the real SDK and exporters.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tests.support.llms import API_KEY
from tests.support.openai_server import FakeOpenAIServer, Reply, ToolCallReply, last_user_text, numbered_chunks
from tests.support.otlp_receiver import OTLPHttpReceiver

from crewtrace import LLM, Agent, Crew, Task, tool
from crewtrace.events import EventBus
from crewtrace.telemetry import OTelBridge, Telemetry

FILE_NAME = os.fsdecode(b"notes-\xff.txt")  # how Python names a file whose name is not UTF-8: a lone surrogate
assert "\udcff" in FILE_NAME


@tool
def open_notes() -> str:
    """Open the notes in the folder."""
    raise RuntimeError(f"cannot open {FILE_NAME}: it is empty")  # the name as os.listdir gives it


def reader(body: dict[str, Any]) -> Reply:
    """Opens the folder's notes for the odd crew (the tool fails naming the file), then answers naming it."""
    subject = FILE_NAME if "folder" in last_user_text(body) else "notes.txt"
    model = f"test-model {subject}"
    if subject == FILE_NAME and body["messages"][-1]["role"] != "tool":
        return Reply(tool_calls=[ToolCallReply("open-1", "open_notes", "{}")], model=model)
    return Reply(chunks=[f"Summary of {subject}: ", "short."], model=model)


def reading_crew(server: FakeOpenAIServer, bus: EventBus, file_name: str, description: str) -> Crew:
    """A task named after a file (the prompt never holds the name: a surrogate cannot be sent to a model)."""
    llm = LLM("openai/test-model", stream=True, base_url=server.base_url, api_key=API_KEY, bus=bus)
    agent = Agent(role="Reader", goal="Read.", backstory="Careful.", llm=llm, tools=[open_notes])
    task = Task(name=f"summarise {file_name}", description=description, expected_output="A line.", agent=agent)
    return Crew(name="odd" if file_name == FILE_NAME else "good", agents=[agent], tasks=[task], bus=bus)


@pytest.mark.parametrize("capture", [False, True], ids=["capture-off", "capture-on"])
def test_a_lone_surrogate_never_makes_the_exporter_drop_a_batch(
    server: FakeOpenAIServer, telemetries: Callable[..., Telemetry], capture: bool
) -> None:
    """The task's name, a tool's error, the reply and the model name the server reports carry the surrogate."""
    server.responder = reader
    bus = EventBus()
    with OTLPHttpReceiver() as receiver:
        telemetry = telemetries(
            "svc-surrogates",
            otlp_endpoint=receiver.endpoint,
            otlp_protocol="http/protobuf",
            capture_content=capture,
            bus=bus,
        )
        reading_crew(server, bus, FILE_NAME, "Summarise the notes in the folder.").kickoff()
        reading_crew(server, bus, "notes.txt", "Summarise the notes.").kickoff()  # unrelated, in the same batch
        assert telemetry.shutdown(timeout=10.0) is True
        spans = receiver.spans()
        durations = receiver.metric_points("gen_ai.client.operation.duration")
    names = sorted(span.name for span in spans)
    assert names == sorted(
        [
            *("invoke_workflow odd", "execute_task summarise notes- txt", "invoke_agent Reader"),
            *("execute_tool open_notes", "chat test-model", "chat test-model"),
            *("invoke_workflow good", "execute_task summarise notes.txt", "invoke_agent Reader"),
            "chat test-model",
        ]
    ), "both runs' spans were delivered"
    models = {s.attributes.get("gen_ai.response.model") for s in spans if s.name.startswith("chat ")}
    assert models == {"test-model notes-\ufffd.txt", "test-model notes.txt"}, "U+FFFD for the surrogate, kept"
    (tool_span,) = [s for s in spans if s.name == "execute_tool open_notes"]
    assert tool_span.status_code == "ERROR"
    if capture:
        assert tool_span.status_message == "RuntimeError: cannot open notes-\ufffd.txt: it is empty"
        (task,) = [s for s in spans if s.name == "execute_task summarise notes- txt"]
        assert task.attributes["crewtrace.task.output"] == "Summary of notes-\ufffd.txt: short."
        assert any("notes-\ufffd.txt" in str(e.attributes) for s in spans for e in s.events), "chunk text"
    assert {p["attributes"]["crewtrace.task.name"] for p in durations} == {
        "summarise notes- txt",
        "summarise notes.txt",
    }, "the metrics of both runs were delivered too"


def streamed_chat_span(
    server: FakeOpenAIServer, chunks: int, limit: int, monkeypatch: pytest.MonkeyPatch
) -> ReadableSpan:
    """One streamed call of ``chunks`` chunks, with the SDK's span event limit set to ``limit`` the standard way."""
    monkeypatch.setenv("OTEL_SPAN_EVENT_COUNT_LIMIT", str(limit))
    exporter = InMemorySpanExporter()
    provider = TracerProvider()  # reads the limit, as the bridge does
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    bus = EventBus()
    bridge = OTelBridge(provider, capture_content=False, bus=bus)  # a chunk-event budget of 64
    server.queue(Reply(chunks=numbered_chunks(chunks)))
    llm = LLM("openai/test-model", stream=True, base_url=server.base_url, api_key=API_KEY, bus=bus)
    assert len(list(llm.iter_text("count"))) == chunks
    bridge.close()
    provider.shutdown()
    (span,) = exporter.get_finished_spans()
    return span


CHUNKS = 40


@pytest.mark.parametrize("limit", [10, 3, 2])
def test_below_the_chunk_event_budget_the_span_event_limit_keeps_the_first_chunk_and_exact_counts(
    server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch, limit: int
) -> None:
    span = streamed_chat_span(server, CHUNKS, limit, monkeypatch)
    events = [dict(e.attributes or {}) for e in span.events]
    assert span.dropped_events == 0, "the SDK evicted none: the bridge stayed within the limit"
    assert 2 <= len(events) <= limit
    first, last = events[0], events[-1]
    assert (first["crewtrace.chunk.index"], first["crewtrace.chunk.count"]) == (0, 1), "the first chunk's own event"
    assert last["crewtrace.chunk.index"] + last["crewtrace.chunk.count"] == CHUNKS, "and the last chunk's"
    assert sum(e["crewtrace.chunk.count"] for e in events) == CHUNKS == span.attributes["crewtrace.stream.chunk_count"]
    indices = [e["crewtrace.chunk.index"] for e in events]
    assert indices == sorted(indices), "in chunk order"


def test_with_room_for_one_event_the_first_chunks_is_kept(
    server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    span = streamed_chat_span(server, CHUNKS, 1, monkeypatch)
    assert span.dropped_events == 0
    (event,) = [dict(e.attributes or {}) for e in span.events]
    assert (event["crewtrace.chunk.index"], event["crewtrace.chunk.count"]) == (0, 1), "time to first chunk survives"
    assert span.attributes is not None and span.attributes["crewtrace.stream.chunk_count"] == CHUNKS


def test_with_no_room_for_events_the_span_still_counts_every_chunk(
    server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    span = streamed_chat_span(server, CHUNKS, 0, monkeypatch)
    assert span.events == () and span.dropped_events == 0
    assert span.attributes is not None and span.attributes["crewtrace.stream.chunk_count"] == CHUNKS
    assert span.attributes["gen_ai.response.time_to_first_chunk"] > 0
