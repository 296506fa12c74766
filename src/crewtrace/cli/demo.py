"""``crewtrace demo``: a two-agent crew, its chunks live, a summary table and a waterfall of its trace."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from crewtrace.cli._delivery import HeldTelemetryLogs, nothing_listens_at, undelivered_message
from crewtrace.cli._listeners import LiveChunkPrinter, SummaryCollector
from crewtrace.cli._offline_model import Script, ScriptedToolCall
from crewtrace.cli._offline_model import install as install_offline_model
from crewtrace.cli.waterfall import Glyphs, render_waterfall
from crewtrace.crew import Agent, Crew, CrewStreamingOutput, Task, tool
from crewtrace.errors import CrewtraceError
from crewtrace.events import EventBus, crewtrace_event_bus
from crewtrace.llm import LLM
from crewtrace.telemetry import Telemetry, setup_telemetry

__all__ = ["DEFAULT_TOPIC", "UsageError", "build_crew", "run_demo"]

DEFAULT_TOPIC = "observability for LLM agent crews"
# Plenty for a collector that is up. With nothing listening at the endpoint the exporters would
# retry with backoff until the timeout, so the demo gives them only a moment.
SHUTDOWN_TIMEOUT_S = 3.0
DEAD_ENDPOINT_SHUTDOWN_TIMEOUT_S = 0.5

_NOTES = {
    "streaming": "Every streamed chunk carries its agent and task, so slow agents stand out.",
    "latency": "Time to first chunk matters more to users than total duration.",
    "cost": "Token usage per task type shows where the money goes.",
}


class UsageError(ValueError):
    """A command-line value the user has to change (exit code 2)."""


def offline_scripts(topic: str) -> dict[str, Script]:
    """What the offline model says, per agent role (tool calls first where the agent has tools)."""
    return {
        "Researcher": Script(
            answer=(
                f"Key findings on {topic}: 1) every streamed chunk carries its agent and task, so slow agents "
                "stand out; 2) time to first chunk matters more to users than total duration; "
                "3) token usage per task type shows where the money goes."
            ),
            tool_calls=(
                ScriptedToolCall("search_notes", {"query": "streaming"}),
                ScriptedToolCall("search_notes", {"query": "latency"}),
            ),
        ),
        "Writer": Script(
            answer=(
                f"Summary of {topic}: crews stream their answers chunk by chunk. Tracing each chunk with its "
                "agent and task turns a black box into a timeline you can debug, meter and alert on."
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


def build_crew(model: str | None, base_url: str | None, bus: EventBus, topic: str = DEFAULT_TOPIC) -> Crew:
    """Two agents (the researcher with a tool), two tasks. ``model=None`` runs the offline model."""
    if model is None:
        model = install_offline_model(offline_scripts(topic))
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
    return Crew(name="demo-crew", agents=[researcher, writer], tasks=[research, summary], bus=bus, stream=True)


def run_demo(args: argparse.Namespace) -> int:
    """Run the crew with telemetry; 0 on success, 1 if the crew failed. Raises UsageError for bad values."""
    topic = args.topic or DEFAULT_TOPIC
    bus = crewtrace_event_bus
    with HeldTelemetryLogs() as held:
        telemetry = _setup_telemetry(args, bus)
        dead_endpoint = False
        try:
            spans = InMemorySpanExporter()
            telemetry.tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
            code = _run(args, topic, bus, telemetry, spans)
        finally:
            # Also on Ctrl-C: the bridge ends what is still open, and the exporters get a bounded chance.
            dead_endpoint = bool(args.otlp_endpoint) and nothing_listens_at(args.otlp_endpoint)
            timeout = DEAD_ENDPOINT_SHUTDOWN_TIMEOUT_S if dead_endpoint else SHUTDOWN_TIMEOUT_S
            delivered = telemetry.shutdown(timeout=timeout)
    if args.otlp_endpoint and (dead_endpoint or not delivered or held.export_failed):
        print(undelivered_message(args.otlp_endpoint), file=sys.stderr)
    else:
        held.replay()
    return code


def _run(args: argparse.Namespace, topic: str, bus: EventBus, telemetry: Telemetry, spans: InMemorySpanExporter) -> int:
    printer = LiveChunkPrinter(bus)
    summary = SummaryCollector(bus)
    try:
        try:
            crew = build_crew(args.model, args.base_url, bus, topic)
        except (ValueError, TypeError) as exc:
            raise UsageError(f"--model {args.model!r}: {exc}") from exc
        mode = "offline model" if args.model is None else args.model
        print(f"crewtrace demo: crew {crew.name!r}, {len(crew.agents)} agents, {len(crew.tasks)} tasks ({mode})")
        if telemetry.metrics_url:
            print(f"metrics: {telemetry.metrics_url}", flush=True)
        for agent in crew.agents:  # litellm's one-time start-up, before the clock of the first call starts
            agent.llm.warm_up()
        code = 0
        try:
            output = crew.kickoff(inputs={"topic": topic})
            assert isinstance(output, CrewStreamingOutput)  # built with stream=True
            with output:  # leaving early (Ctrl-C) stops the run
                for chunk in output:
                    printer.show(chunk)
        except CrewtraceError as exc:
            printer.finish()
            print(f"\n\ncrew failed: {_one_line(exc)}", file=sys.stderr, flush=True)
            code = 1
        printer.finish()
    finally:
        printer.close()
        summary.close()
    print("\n")
    print(summary.table())
    print()
    print(render_waterfall(spans.get_finished_spans(), Glyphs.for_encoding(sys.stdout.encoding)), flush=True)
    if args.keep_alive:
        print("\nkeeping telemetry alive until interrupted (Ctrl-C)", flush=True)
        _wait_for_signal()
    return code


def _setup_telemetry(args: argparse.Namespace, bus: EventBus) -> Telemetry:
    try:
        return setup_telemetry(
            args.service_name,
            otlp_endpoint=args.otlp_endpoint,
            otlp_protocol=args.otlp_protocol,
            prometheus_port=args.metrics_port,
            prometheus_host=args.metrics_host,
            console=args.console,
            capture_content=True if args.capture_content else None,
            usage_log=args.usage_log,
            bus=bus,
        )
    except ValueError as exc:  # a malformed endpoint, protocol or OTEL_* value: the user's to change
        raise UsageError(str(exc)) from exc


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _wait_for_signal() -> None:
    """Block until SIGINT or SIGTERM, so that `kill` ends the demo as cleanly as Ctrl-C."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
