"""The demo crew, and the two listeners that show it live: chunks as they stream, then a summary."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from crewtrace.cli._offline_model import Script, ScriptedToolCall
from crewtrace.cli._offline_model import install as install_offline_model
from crewtrace.crew import Agent, Crew, Task, tool
from crewtrace.errors import CrewtraceError
from crewtrace.events import (
    BaseEventListener,
    EventBus,
    LLMCallCompletedEvent,
    LLMCallFailedEvent,
    LLMStreamChunkEvent,
    ToolUsageErrorEvent,
    ToolUsageFinishedEvent,
    crewtrace_event_bus,
)
from crewtrace.llm import LLM

if TYPE_CHECKING:
    from crewtrace.telemetry import Telemetry

DEMO_INPUTS: Mapping[str, str] = {"topic": "observability for LLM agent crews"}

_NOTES = {
    "streaming": "Every streamed chunk carries its agent and task, so slow agents stand out.",
    "latency": "Time to first chunk matters more to users than total duration.",
    "cost": "Token usage per task type shows where the money goes.",
}

# What the offline model says, per agent role (tool calls first where the agent has tools).
_SCRIPTS = {
    "Researcher": Script(
        answer=(
            "Key findings: 1) every streamed chunk carries its agent and task, so slow agents stand out; "
            "2) time to first chunk matters more to users than total duration; "
            "3) token usage per task type shows where the money goes."
        ),
        tool_calls=(
            ScriptedToolCall("search_notes", {"query": "streaming"}),
            ScriptedToolCall("search_notes", {"query": "latency"}),
        ),
    ),
    "Writer": Script(
        answer=(
            "Summary: crews stream their answers chunk by chunk. Tracing each chunk with its agent and task "
            "turns a black box into a timeline you can debug, meter and alert on."
        )
    ),
}


@tool
def search_notes(query: str) -> str:
    """Search the team's research notes.

    Args:
        query: a keyword such as streaming, latency or cost
    """
    hits = [note for key, note in _NOTES.items() if key in query.lower()]
    return "\n".join(hits) or f"no notes about {query!r}"


def build_crew(model: str | None, base_url: str | None, bus: EventBus) -> Crew:
    """Two agents (the researcher with a tool), two tasks. ``model=None`` runs offline."""
    if model is None:
        model = install_offline_model(_SCRIPTS)
    researcher = Agent(
        role="Researcher",
        goal="Find the three facts about {topic} that matter most.",
        backstory="A methodical analyst who checks her notes before she answers.",
        llm=LLM(model, stream=True, base_url=base_url, bus=bus),
        tools=[search_notes],
    )
    writer = Agent(
        role="Writer",
        goal="Explain {topic} to a busy engineer in two sentences.",
        backstory="A technical writer who hates filler.",
        llm=LLM(model, stream=True, base_url=base_url, bus=bus),
    )
    research = Task(
        name="research_topic",
        description="Research {topic} and list the key findings.",
        expected_output="Three numbered findings.",
        agent=researcher,
    )
    summary = Task(
        name="write_summary",
        description="Write a two-sentence summary of the findings on {topic}.",
        expected_output="Two sentences.",
        agent=writer,
    )
    return Crew(name="demo-crew", agents=[researcher, writer], tasks=[research, summary], bus=bus)


class LiveChunkPrinter(BaseEventListener):
    """Prints chunks as they arrive, with a header whenever the agent or task changes, and tool calls."""

    def __init__(self, bus: EventBus | None = None, out: TextIO = sys.stdout) -> None:
        self._out = out
        self._last: tuple[str | None, str | None] | None = None
        super().__init__(bus)

    def setup_listeners(self, crewtrace_event_bus: EventBus) -> None:
        @crewtrace_event_bus.on(LLMStreamChunkEvent)
        def on_chunk(source: Any, event: LLMStreamChunkEvent) -> None:
            who = (event.agent_role, event.task_name)
            if who != self._last:
                self._last = who
                self._out.write(f"\n\n[{event.agent_role} | {event.task_name}] ")
            if event.tool_call is not None and event.tool_call.name:
                self._out.write(f"\n  calls {event.tool_call.name} ")
            self._out.write(event.chunk)
            self._out.flush()

        @crewtrace_event_bus.on(ToolUsageFinishedEvent)
        @crewtrace_event_bus.on(ToolUsageErrorEvent)
        def on_tool_result(source: Any, event: ToolUsageFinishedEvent | ToolUsageErrorEvent) -> None:
            result = event.output if isinstance(event, ToolUsageFinishedEvent) else f"error: {event.error}"
            self._out.write(f"\n  {event.tool_name} -> {result.splitlines()[0] if result else ''}\n  ")
            self._out.flush()


@dataclass
class _Row:
    calls: int = 0
    failed: int = 0
    tool_calls: int = 0
    chunks: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    first_chunk_s: float = 0.0
    duration_s: float = 0.0


class SummaryCollector(BaseEventListener):
    """Totals per agent and task, from the completed and failed events alone."""

    def __init__(self, bus: EventBus | None = None) -> None:
        self.rows: dict[tuple[str, str], _Row] = {}
        self._lock = threading.Lock()
        super().__init__(bus)

    def setup_listeners(self, crewtrace_event_bus: EventBus) -> None:
        @crewtrace_event_bus.on(LLMCallCompletedEvent)
        @crewtrace_event_bus.on(LLMCallFailedEvent)
        def on_end(source: Any, event: LLMCallCompletedEvent | LLMCallFailedEvent) -> None:
            key = (event.agent_role or "-", event.task_name or "-")
            with self._lock:
                row = self.rows.setdefault(key, _Row())
                row.calls += 1
                row.chunks += event.chunk_count
                row.duration_s += event.duration_s
                row.first_chunk_s += event.time_to_first_chunk_s or 0.0
                if isinstance(event, LLMCallFailedEvent):
                    row.failed += 1
                elif event.usage is not None:
                    row.input_tokens += event.usage.input_tokens
                    row.output_tokens += event.usage.output_tokens

        @crewtrace_event_bus.on(ToolUsageFinishedEvent)
        @crewtrace_event_bus.on(ToolUsageErrorEvent)
        def on_tool(source: Any, event: ToolUsageFinishedEvent | ToolUsageErrorEvent) -> None:
            with self._lock:
                self.rows.setdefault((event.agent_role or "-", event.task_name or "-"), _Row()).tool_calls += 1

    def table(self) -> str:
        header = (
            "agent", "task", "calls", "failed", "tools", "chunks", "tokens in", "tokens out", "first chunk", "duration",
        )  # fmt: skip
        lines = [header]
        for (agent, task), row in sorted(self.rows.items()):
            lines.append(
                (
                    agent,
                    task,
                    str(row.calls),
                    str(row.failed),
                    str(row.tool_calls),
                    str(row.chunks),
                    str(row.input_tokens),
                    str(row.output_tokens),
                    f"{row.first_chunk_s / row.calls * 1000:.0f} ms",
                    f"{row.duration_s / row.calls * 1000:.0f} ms",
                )
            )
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        rendered = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=False)).rstrip() for line in lines]
        rendered.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(rendered)


def run_demo(args: argparse.Namespace) -> int:
    telemetry = _setup_telemetry(args)
    bus = crewtrace_event_bus
    printer = LiveChunkPrinter(bus)
    summary = SummaryCollector(bus)
    crew = build_crew(args.model, args.base_url, bus)
    inputs = dict(DEMO_INPUTS) if args.topic is None else {"topic": args.topic}
    mode = "offline model" if args.model is None else args.model
    print(f"crewtrace demo: crew {crew.name!r}, {len(crew.agents)} agents, {len(crew.tasks)} tasks ({mode})")
    if telemetry is not None and telemetry.metrics_url:
        print(f"metrics: {telemetry.metrics_url}", flush=True)
    try:
        result = crew.kickoff(inputs=inputs)
    except CrewtraceError as exc:
        print(f"\n\ncrew failed: {exc}", file=sys.stderr)
        return 1
    finally:
        printer.close()
        summary.close()
        if telemetry is not None and not args.keep_alive:
            telemetry.shutdown()
    print(f"\n\nfinal answer: {result.raw}\n")
    print(summary.table())
    usage = result.token_usage
    print(f"\ntokens: {usage.input_tokens} in, {usage.output_tokens} out")
    if telemetry is not None and args.keep_alive:
        print("\nkeeping telemetry alive until interrupted (Ctrl-C)", flush=True)
        _wait_for_signal()
        telemetry.shutdown()
    return 0


def _setup_telemetry(args: argparse.Namespace) -> Telemetry | None:
    wanted = args.otlp_endpoint or args.metrics_port is not None or args.usage_log or args.keep_alive
    if not wanted:
        return None
    from crewtrace.telemetry import setup_telemetry

    return setup_telemetry(
        args.service_name,
        otlp_endpoint=args.otlp_endpoint,
        otlp_protocol=args.otlp_protocol,
        prometheus_port=args.metrics_port,
        prometheus_host=args.metrics_host,
        capture_content=True if args.capture_content else None,
        usage_log=args.usage_log,
    )


def _wait_for_signal() -> None:
    """Block until SIGINT or SIGTERM, so that `kill` ends the demo as cleanly as Ctrl-C."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
