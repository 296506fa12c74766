"""The usage log: one structured record per LLM call on ``crewtrace.usage``, and its JSON-lines file.

Calls go through litellm's real streaming to the fake OpenAI server; the records are
read back with pytest's ``caplog`` and from the file ``setup_telemetry(usage_log=...)``
writes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import litellm
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tests.support.llms import API_KEY
from tests.support.openai_server import FakeOpenAIServer, Fault, Reply

from crewtrace import LLM, Agent, Crew, CrewOutput, LLMCallError, LLMStreamError, Task
from crewtrace.events import EventBus
from crewtrace.telemetry import Telemetry, setup_telemetry

USAGE_LOGGER = "crewtrace.usage"
PRICED_MODEL = "openai/gpt-4o-mini"  # in litellm's bundled price map, so calls have a cost
FIELDS = {
    "timestamp", "call_id", "flow", "flow_run_id", "flow_method", "run_id", "crew", "agent", "agent_id", "task",
    "task_id", "step_id", "model", "provider",
    "input_tokens", "output_tokens", "cost_usd", "duration_s", "time_to_first_chunk_s", "chunk_count",
    "outcome", "error_type", "trace_id", "span_id",
}  # fmt: skip

# Distinctive content: none of it may reach a usage record.
PROMPT_MARK = "ZEBRA-PROMPT-7781"
BACKSTORY_MARK = "PANGOLIN-BACKSTORY-3310"
REPLY_CHUNKS = {
    "Researcher": ["QUOKKA", "-REPLY", "-4492", " done"],
    "Writer": ["NARWHAL", "-ANSWER", "-1187"],
}
SECRETS = (PROMPT_MARK, BACKSTORY_MARK, "QUOKKA", "NARWHAL", "-REPLY", "-ANSWER", API_KEY)


@pytest.fixture
def priced_llm(server: FakeOpenAIServer, bus: EventBus) -> Callable[..., LLM]:
    def make(**kwargs: Any) -> LLM:
        kwargs.setdefault("stream", True)
        kwargs.setdefault("timeout", 10)
        return LLM(PRICED_MODEL, base_url=server.base_url, api_key=API_KEY, bus=bus, **kwargs)

    return make


@pytest.fixture
def telemetry(bus: EventBus) -> Iterator[Telemetry]:
    made = setup_telemetry("usage-test", set_global=False, bus=bus)
    yield made
    made.shutdown()


@pytest.fixture
def usage_records(caplog: pytest.LogCaptureFixture) -> Callable[[], list[logging.LogRecord]]:
    caplog.set_level(logging.INFO, logger=USAGE_LOGGER)

    def records() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name == USAGE_LOGGER]

    return records


def crew_of_two(make: Callable[..., LLM], bus: EventBus) -> Crew:
    researcher = Agent(role="Researcher", goal="Find facts.", backstory=f"A {BACKSTORY_MARK} analyst.", llm=make())
    writer = Agent(role="Writer", goal="Explain.", backstory="Concise.", llm=make())
    research = Task(
        name="research_topic", description=f"Research {PROMPT_MARK} now.", expected_output="Facts.", agent=researcher
    )
    summary = Task(name="write_summary", description="Summarise it.", expected_output="Two lines.", agent=writer)
    return Crew(name="usage-crew", agents=[researcher, writer], tasks=[research, summary], bus=bus)


def queue_crew_replies(server: FakeOpenAIServer) -> None:
    server.queue(
        Reply(chunks=REPLY_CHUNKS["Researcher"], usage=(120, 4)),
        Reply(chunks=REPLY_CHUNKS["Writer"], usage=(230, 3)),
    )


def expected_cost(input_tokens: int, output_tokens: int) -> float:
    prices = litellm.model_cost["gpt-4o-mini"]
    return float(input_tokens * prices["input_cost_per_token"] + output_tokens * prices["output_cost_per_token"])


def fields(record: logging.LogRecord) -> dict[str, Any]:
    value: dict[str, Any] = record.crewtrace_usage  # type: ignore[attr-defined]
    return value


def check_crew_records(records: list[dict[str, Any]], output: CrewOutput, crew: Crew) -> None:
    assert [r["agent"] for r in records] == ["Researcher", "Writer"]
    usage = {"Researcher": (120, 4), "Writer": (230, 3)}
    for record, agent, task in zip(records, crew.agents, crew.tasks, strict=False):
        assert set(record) == FIELDS
        assert record["run_id"] == output.run_id and record["crew"] == "usage-crew"
        assert record["agent_id"] == agent.id
        assert (record["task"], record["task_id"]) == (task.name, task.id)
        assert record["model"] == "gpt-4o-mini" and record["provider"] == "openai"
        tokens = usage[record["agent"]]
        assert (record["input_tokens"], record["output_tokens"]) == tokens
        assert record["cost_usd"] == pytest.approx(expected_cost(*tokens), rel=1e-9)
        assert record["chunk_count"] == len(REPLY_CHUNKS[record["agent"]])
        assert 0 < record["time_to_first_chunk_s"] <= record["duration_s"] < 10
        assert record["outcome"] == "ok" and record["error_type"] is None
    assert len({r["call_id"] for r in records}) == 2


def test_one_record_per_call_with_attribution_usage_cost_and_timings(
    telemetry: Telemetry,
    server: FakeOpenAIServer,
    priced_llm: Callable[..., LLM],
    bus: EventBus,
    usage_records: Callable[[], list[logging.LogRecord]],
) -> None:
    queue_crew_replies(server)
    crew = crew_of_two(priced_llm, bus)
    output = crew.kickoff()
    records = usage_records()
    assert len(records) == 2, "one record per LLM call"
    assert all(r.levelno == logging.INFO for r in records)
    check_crew_records([fields(r) for r in records], output, crew)
    message = records[0].getMessage()
    assert "agent=Researcher" in message and "task=research_topic" in message and "outcome=ok" in message


def test_a_call_outside_a_crew_has_no_attribution(
    telemetry: Telemetry, priced_llm: Callable[..., LLM], usage_records: Callable[[], list[logging.LogRecord]]
) -> None:
    priced_llm().call("hello")
    (record,) = [fields(r) for r in usage_records()]
    assert record["outcome"] == "ok"
    assert all(record[k] is None for k in ("run_id", "crew", "agent", "agent_id", "task", "task_id"))


def test_a_call_failing_before_the_first_chunk_is_an_error_record(
    telemetry: Telemetry,
    server: FakeOpenAIServer,
    priced_llm: Callable[..., LLM],
    usage_records: Callable[[], list[logging.LogRecord]],
) -> None:
    server.queue(*[Reply(chunks=["never"], fault=Fault.STATUS_500)] * 3)
    with pytest.raises(LLMCallError):
        priced_llm(num_retries=0).call("hello")
    (record,) = [fields(r) for r in usage_records()]
    assert set(record) == FIELDS
    assert record["outcome"] == "error" and record["error_type"] == "InternalServerError"
    assert record["chunk_count"] == 0 and record["time_to_first_chunk_s"] is None
    assert record["input_tokens"] is None and record["output_tokens"] is None and record["cost_usd"] is None
    assert record["model"] == "gpt-4o-mini" and record["duration_s"] > 0


def test_a_stream_broken_mid_way_is_an_error_record_with_its_chunks(
    telemetry: Telemetry,
    server: FakeOpenAIServer,
    priced_llm: Callable[..., LLM],
    bus: EventBus,
    usage_records: Callable[[], list[logging.LogRecord]],
) -> None:
    server.queue(
        Reply(chunks=REPLY_CHUNKS["Researcher"]),
        Reply(chunks=["par", "tial", "more"], fault=Fault.RESET, fault_after=2),
    )
    crew = crew_of_two(priced_llm, bus)
    with pytest.raises(LLMStreamError) as caught:
        crew.kickoff()
    ok, failed = (fields(r) for r in usage_records())
    assert ok["outcome"] == "ok" and ok["agent"] == "Researcher"
    assert failed["outcome"] == "error" and failed["error_type"] == caught.value.error_type
    assert failed["error_type"] and failed["error_type"] != "ok"
    assert (failed["agent"], failed["task"]) == ("Writer", "write_summary")
    assert failed["run_id"] == ok["run_id"] is not None
    assert failed["chunk_count"] == 2 and failed["time_to_first_chunk_s"] is not None
    assert failed["cost_usd"] is None


def test_usage_log_file_gets_one_json_line_per_call(
    tmp_path: Path,
    server: FakeOpenAIServer,
    priced_llm: Callable[..., LLM],
    bus: EventBus,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = tmp_path / "logs" / "usage.jsonl"  # the directory does not exist yet
    logger = logging.getLogger(USAGE_LOGGER)
    root = logging.getLogger()
    saved = (logger.level, root.level)
    logger.setLevel(logging.NOTSET)
    root.setLevel(logging.WARNING)  # the usual default: INFO records would not be created at all
    try:
        telemetry = setup_telemetry("usage-file", usage_log=path, set_global=False, bus=bus)
        try:
            queue_crew_replies(server)
            crew = crew_of_two(priced_llm, bus)
            output = crew.kickoff()
            server.queue(*[Reply(chunks=["never"], fault=Fault.STATUS_500)] * 3)
            with pytest.raises(LLMCallError):
                priced_llm(num_retries=0).call("will fail")
        finally:
            assert telemetry.shutdown() is True
        assert not any(isinstance(h, logging.FileHandler) and Path(h.baseFilename) == path for h in logger.handlers), (
            "shutdown detaches the file handler"
        )
        priced_llm().call("after shutdown")  # neither listened to nor written
    finally:
        logger.setLevel(saved[0])
        root.setLevel(saved[1])

    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) == 3 and text.endswith("\n")
    parsed = [json.loads(line) for line in lines]
    check_crew_records(parsed[:2], output, crew)
    assert parsed[2]["outcome"] == "error" and parsed[2]["error_type"] == "InternalServerError"
    assert set(parsed[2]) == FIELDS
    # The application logs at WARNING: the file has the records, its logging (and console) none of them.
    assert [r for r in caplog.records if r.name == USAGE_LOGGER] == []


def test_a_usage_file_leaves_the_usage_loggers_level_alone(tmp_path: Path, bus: EventBus) -> None:
    logger = logging.getLogger(USAGE_LOGGER)
    saved = logger.level
    logger.setLevel(logging.WARNING)
    try:
        telemetry = setup_telemetry("usage-level", usage_log=tmp_path / "u.jsonl", set_global=False, bus=bus)
        assert logger.level == logging.WARNING and not logger.isEnabledFor(logging.INFO)
        telemetry.shutdown()
        assert logger.level == logging.WARNING
    finally:
        logger.setLevel(saved)


@pytest.mark.parametrize("capture_content", [False, None, True], ids=["off", "default-off", "on"])
def test_no_prompt_completion_or_api_key_in_records(
    tmp_path: Path,
    server: FakeOpenAIServer,
    priced_llm: Callable[..., LLM],
    bus: EventBus,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    capture_content: bool | None,
) -> None:
    """Usage records never hold content; content capture only concerns spans."""
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    caplog.set_level(logging.DEBUG, logger="crewtrace")
    path = tmp_path / "usage.jsonl"
    telemetry = setup_telemetry(
        "usage-content", usage_log=path, capture_content=capture_content, set_global=False, bus=bus
    )
    try:
        queue_crew_replies(server)
        output = crew_of_two(priced_llm, bus).kickoff()
        server.queue(Reply(chunks=["QUOKKA-partial", "-REPLY-partial"], fault=Fault.RESET, fault_after=1))
        with pytest.raises(LLMStreamError):
            priced_llm().call(f"{PROMPT_MARK} with key {API_KEY}")
    finally:
        telemetry.shutdown()
    assert "QUOKKA" in output.tasks_output[0].raw, "the distinctive reply did stream"
    assert PROMPT_MARK in server.requests[0].body["messages"][1]["content"], "and the distinctive prompt was sent"

    records = [r for r in caplog.records if r.name == USAGE_LOGGER]
    assert len(records) == 3
    crewtrace_logs = [r for r in caplog.records if r.name.startswith("crewtrace")]
    rendered = [r.getMessage() for r in crewtrace_logs] + [json.dumps(fields(r), default=str) for r in records]
    file_text = path.read_text(encoding="utf-8")
    for secret in SECRETS:
        assert all(secret not in text for text in rendered), f"{secret!r} in a log record"
        assert secret not in file_text, f"{secret!r} in the usage file"


def test_each_record_names_the_trace_and_span_of_its_call(
    tmp_path: Path, server: FakeOpenAIServer, priced_llm: Callable[..., LLM], bus: EventBus
) -> None:
    """From a log line to its trace: the record carries its chat span's trace and span ids."""
    path = tmp_path / "usage.jsonl"
    spans = InMemorySpanExporter()
    telemetry = setup_telemetry("usage-trace", usage_log=path, set_global=False, bus=bus)
    telemetry.tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    try:
        queue_crew_replies(server)
        crew_of_two(priced_llm, bus).kickoff()
    finally:
        assert telemetry.shutdown() is True
    chats = {
        s.attributes["gen_ai.agent.name"]: s.context for s in spans.get_finished_spans() if s.name.startswith("chat")
    }
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(records) == len(chats) == 2
    for record in records:
        context = chats[record["agent"]]
        assert (record["trace_id"], record["span_id"]) == (f"{context.trace_id:032x}", f"{context.span_id:016x}")
