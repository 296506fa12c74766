"""The demo's live output goes through the crew streaming API (`Crew(stream=True)`), in order."""

from __future__ import annotations

import io
from typing import Any

from tests.support.polling import wait_until

from crewtrace.cli._demo_crew import DEFAULT_TOPIC, build_crew
from crewtrace.cli._listeners import LiveChunkPrinter
from crewtrace.crew import CrewStreamingOutput, StreamChunkType
from crewtrace.events import EventBus, ToolUsageFinishedEvent


def test_tool_results_print_between_the_calls_they_belong_to_when_the_reader_lags(bus: EventBus) -> None:
    finished: list[ToolUsageFinishedEvent] = []
    bus.on(ToolUsageFinishedEvent)(lambda source, event: finished.append(event))
    out = io.StringIO()
    printer = LiveChunkPrinter(bus, out)
    output = build_crew(None, None, bus).kickoff(inputs={"topic": DEFAULT_TOPIC})
    assert isinstance(output, CrewStreamingOutput), "the demo's crew streams"
    chunks: list[Any] = []
    with output:
        iterator = iter(output)
        chunks.append(next(iterator))
        printer.show(chunks[0])
        # The reader lags: the run has finished both tools before the rest of the first call is printed.
        wait_until(lambda: len(finished) == 2, what="both tool calls finished")
        for chunk in iterator:
            chunks.append(chunk)
            printer.show(chunk)
    printer.finish()
    printer.close()

    text = out.getvalue()
    calls = text.rindex("calls search_notes")
    results = text.index("search_notes ->")
    answer = text.index("Key findings")
    assert calls < results < answer, text
    assert text.count("search_notes ->") == 2
    assert [c.task_index for c in chunks] == sorted(c.task_index for c in chunks)
    assert {(c.task_index, c.task_name, c.agent_role) for c in chunks} == {
        (0, "research_topic", "Researcher"),
        (1, "write_summary", "Writer"),
    }
    assert any(c.chunk_type is StreamChunkType.TOOL_CALL for c in chunks)
    assert output.result.raw.startswith("Summary of")
