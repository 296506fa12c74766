"""Agent tools: schemas from signatures, streamed tool-call chunks, the tool loop, every bad input."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import pytest
from tests.support.crews import add, answer_after_tools, tool_crew
from tests.support.llms import MakeLLM
from tests.support.openai_server import FakeOpenAIServer, Reply, ToolCallReply
from tests.support.recording import Recorder

from crewtrace import Agent, MaxIterationsError, tool
from crewtrace.errors import ConfigurationError
from crewtrace.events import (
    AgentExecutionErrorEvent,
    EventBus,
    LLMCallCompletedEvent,
    LLMStreamChunkEvent,
    ToolUsageErrorEvent,
    ToolUsageFinishedEvent,
    ToolUsageStartedEvent,
)


@tool
async def shout(text: str) -> str:
    """Upper-case a text, asynchronously."""
    await asyncio.sleep(0)
    return text.upper()


@tool
def broken(x: int) -> int:
    """Always fails."""
    raise RuntimeError(f"cannot handle {x}")


# A run that waited for a timed-out tool would take the tool's whole time; the test releases the tool
# once the run is over, so that its thread ends then.
RELEASE_SLEEPY = threading.Event()


@tool(timeout=0.2)
def sleepy(seconds: float) -> str:
    """Takes too long: ``seconds``, unless the test releases it first."""
    RELEASE_SLEEPY.wait(seconds)
    return "woke up"


@tool(timeout=0.2)
async def async_sleepy(seconds: float) -> str:
    """Sleeps too long, asynchronously."""
    await asyncio.sleep(seconds)
    return "woke up"


def test_schema_comes_from_signature_type_hints_and_docstring() -> None:
    schema = add.schema
    assert schema["type"] == "function"
    function = schema["function"]
    assert (function["name"], function["description"]) == ("add", "Add two integers.")
    parameters = function["parameters"]
    assert parameters["required"] == ["a"]
    assert parameters["properties"]["a"] == {"type": "integer", "description": "the first number", "title": "A"}
    assert parameters["properties"]["b"]["default"] == 1
    assert shout.is_async and shout.schema["function"]["parameters"]["properties"]["text"]["type"] == "string"
    assert add(2, b=5) == 7, "a tool is still callable as the function"


def test_tool_definitions_reject_what_has_no_schema() -> None:
    with pytest.raises(ConfigurationError, match=r"\*args"):

        @tool
        def anything(*values: int) -> None:
            """Varargs."""

    with pytest.raises(ConfigurationError, match=r"@crewtrace\.tool"):
        Agent(role="R", goal="G", backstory="B", llm="openai/x", tools=[len])
    with pytest.raises(ValueError, match="timeout"):
        tool(timeout=0)(lambda: None)


def test_tool_loop_streams_tool_call_chunks_runs_both_parallel_calls_and_answers(
    server: FakeOpenAIServer, make_llm: MakeLLM, bus: EventBus, recorder: Recorder
) -> None:
    calls = [
        ToolCallReply("call_add", "add", '{"a": 20, "b": 22}'),
        ToolCallReply("call_shout", "shout", '{"text": "hello there"}'),
    ]
    server.responder = answer_after_tools(calls)
    result = tool_crew(make_llm, bus, [add, shout]).kickoff()
    assert result.raw == "Final: 42 | HELLO THERE"
    first, second = (r.body for r in server.requests)
    assert [t["function"]["name"] for t in first["tools"]] == ["add", "shout"]
    assistant, *tool_results = second["messages"][2:]
    assert [c["id"] for c in assistant["tool_calls"]] == ["call_add", "call_shout"]
    assert tool_results == [
        {"role": "tool", "tool_call_id": "call_add", "content": "42"},
        {"role": "tool", "tool_call_id": "call_shout", "content": "HELLO THERE"},
    ]

    first_call_id = recorder.of(LLMCallCompletedEvent)[0].call_id
    fragments = [e for e in recorder.of(LLMStreamChunkEvent) if e.call_id == first_call_id]
    assert fragments and all(e.chunk_type == "tool_call" and e.tool_call is not None for e in fragments)
    assert [e.chunk_index for e in fragments] == list(range(len(fragments)))
    for index, call in enumerate(calls):
        mine = [e for e in fragments if e.tool_call.index == index]
        assert len(mine) > 2, "arguments arrive split across chunks"
        assert all(e.tool_call.id == call.id and e.tool_call.function.name == call.name for e in mine)
        assert "".join(e.chunk for e in mine) == call.arguments
        assert mine[-1].tool_call.function.arguments == call.arguments, "each carries the arguments so far"
    assert all(
        e.agent_role == "Calculator" and e.task_name == "compute" and e.run_id == result.run_id for e in fragments
    )
    (completed, _) = recorder.of(LLMCallCompletedEvent)
    assert [(c.id, c.function.name, c.function.arguments) for c in completed.tool_calls] == [
        (c.id, c.name, c.arguments) for c in calls
    ]

    started = recorder.of(ToolUsageStartedEvent)
    finished = recorder.of(ToolUsageFinishedEvent)
    assert [(e.tool_name, e.tool_call_id, e.arguments, e.iteration) for e in started] == [
        ("add", "call_add", '{"a": 20, "b": 22}', 0),
        ("shout", "call_shout", '{"text": "hello there"}', 0),
    ]
    assert [e.output for e in finished] == ["42", "HELLO THERE"]
    assert all(e.duration_s >= 0 and e.agent_role == "Calculator" and e.task_name == "compute" for e in finished)
    assert result.token_usage.prompt_tokens > 0 and result.token_usage.successful_requests == len(server.requests) == 2


@pytest.mark.parametrize(
    ("call", "error_type", "message"),
    [
        (ToolCallReply("c1", "nope", "{}"), "unknown_tool", "unknown tool 'nope' (available: add, broken, sleepy)"),
        (ToolCallReply("c1", "add", '{"a": 1,'), "invalid_arguments", "not valid JSON"),
        (ToolCallReply("c1", "add", '{"a": "lots"}'), "invalid_arguments", "a: Input should be a valid integer"),
        (ToolCallReply("c1", "add", '{"b": 2}'), "invalid_arguments", "a: Field required"),
        (ToolCallReply("c1", "broken", '{"x": 7}'), "RuntimeError", "RuntimeError: cannot handle 7"),
        (ToolCallReply("c1", "sleepy", '{"seconds": 60}'), "timeout", "timed out after 0.2 s"),
    ],
    ids=["unknown-tool", "bad-json", "wrong-type", "missing-argument", "tool-raises", "timeout"],
)
def test_bad_tool_calls_go_back_to_the_model_and_the_run_goes_on(
    server: FakeOpenAIServer,
    make_llm: MakeLLM,
    bus: EventBus,
    recorder: Recorder,
    call: ToolCallReply,
    error_type: str,
    message: str,
) -> None:
    server.responder = answer_after_tools([call])
    RELEASE_SLEEPY.clear()
    started = time.perf_counter()
    try:
        result = tool_crew(make_llm, bus, [add, broken, sleepy]).kickoff()
    finally:
        RELEASE_SLEEPY.set()
    assert time.perf_counter() - started < 20.0, "a timed-out tool does not hold the run (it would for 60 s)"
    fed_back = server.requests[1].body["messages"][-1]
    assert fed_back["role"] == "tool" and fed_back["tool_call_id"] == "c1"
    assert fed_back["content"].startswith("Error: ") and message in fed_back["content"]
    assert result.raw.startswith("Final: Error: ")
    (error,) = recorder.of(ToolUsageErrorEvent)
    assert error.error_type == error_type and message in error.error
    assert (error.tool_name, error.tool_call_id, error.arguments) == (call.name, "c1", call.arguments)
    assert recorder.types().count("tool_usage_started") == 1


async def test_async_run_with_async_tools_and_an_async_timeout(
    server: FakeOpenAIServer, make_llm: MakeLLM, bus: EventBus, recorder: Recorder
) -> None:
    server.responder = answer_after_tools(
        [ToolCallReply("s1", "shout", '{"text": "abc"}'), ToolCallReply("t1", "async_sleepy", '{"seconds": 5}')]
    )
    result = await tool_crew(make_llm, bus, [shout, async_sleepy, add]).kickoff_async()
    assert result.raw.startswith("Final: ABC | Error: timed out after 0.2 s")
    assert [e.error_type for e in recorder.of(ToolUsageErrorEvent)] == ["timeout"]


def test_sync_tool_in_an_async_run_runs_off_the_event_loop(
    server: FakeOpenAIServer, make_llm: MakeLLM, bus: EventBus
) -> None:
    server.responder = answer_after_tools([ToolCallReply("a1", "add", '{"a": 1, "b": 2}')])
    result = asyncio.run(tool_crew(make_llm, bus, [add]).kickoff_async())
    assert result.raw == "Final: 3"


def test_max_iterations_ends_with_a_clear_error(
    server: FakeOpenAIServer, make_llm: MakeLLM, bus: EventBus, recorder: Recorder
) -> None:
    server.responder = lambda body: Reply(tool_calls=[ToolCallReply(f"c{len(body['messages'])}", "add", '{"a": 1}')])
    with pytest.raises(MaxIterationsError, match="max_iterations=3") as caught:
        tool_crew(make_llm, bus, [add], max_iterations=3).kickoff()
    assert caught.value.agent_role == "Calculator"
    assert len(server.requests) == 3
    assert recorder.types().count("tool_usage_finished") == 3
    assert recorder.of(AgentExecutionErrorEvent)[0].error_type == "MaxIterationsError"
    assert recorder.types()[-1] == "crew_kickoff_failed"


def test_tool_results_are_json_when_not_text(server: FakeOpenAIServer, make_llm: MakeLLM, bus: EventBus) -> None:
    @tool
    def lookup(key: str) -> dict[str, Any]:
        """Look something up."""
        return {"key": key, "values": [1, 2]}

    server.responder = answer_after_tools([ToolCallReply("l1", "lookup", '{"key": "k"}')])
    tool_crew(make_llm, bus, [lookup]).kickoff()
    assert json.loads(server.requests[1].body["messages"][-1]["content"]) == {"key": "k", "values": [1, 2]}
