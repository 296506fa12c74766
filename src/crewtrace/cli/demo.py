"""``crewtrace demo``: a two-agent crew, its chunks live, a summary table and a waterfall of its trace.

Every option is checked, and telemetry set up (the metrics port bound, the usage log opened), before
the crew's module imports litellm, which takes seconds on a cold start: a mistake costs one line at
once, not a wait.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from opentelemetry.sdk.environment_variables import (
    OTEL_EXPORTER_OTLP_ENDPOINT,
    OTEL_EXPORTER_OTLP_PROTOCOL,
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from crewtrace.cli._delivery import HeldTelemetryLogs, jaeger_trace_url, nothing_listens_at, undelivered_message
from crewtrace.cli._errors import CommandFailed, UsageError
from crewtrace.cli._listeners import LiveChunkPrinter, SummaryCollector
from crewtrace.cli.spans import SpanRecord
from crewtrace.cli.terminal import terminal_width, visible
from crewtrace.cli.waterfall import Glyphs, render_waterfall
from crewtrace.errors import CrewtraceError, MetricsServerError
from crewtrace.events import EventBus, crewtrace_event_bus
from crewtrace.telemetry import Telemetry, names, setup_telemetry

__all__ = ["DEFAULT_SERVICE_NAME", "check_arguments", "run_demo"]

DEFAULT_SERVICE_NAME = "crewtrace-demo"
"""``service.name`` unless ``--service-name``, ``OTEL_SERVICE_NAME`` or ``OTEL_RESOURCE_ATTRIBUTES`` name one."""
# Plenty for a collector that is up. With nothing listening at the endpoint the exporters would
# retry with backoff until the timeout, so the demo gives them only a moment.
SHUTDOWN_TIMEOUT_S = 3.0
DEAD_ENDPOINT_SHUTDOWN_TIMEOUT_S = 0.5
_MAX_WATERFALL_WIDTH = 120


@dataclass(frozen=True)
class _Outcome:
    code: int
    interrupted: bool = False
    trace_id: str | None = None


def check_arguments(args: argparse.Namespace) -> None:
    """Raise :class:`UsageError` for a value that cannot work or an option that would do nothing.

    A file in the way of ``--usage-log`` is :class:`CommandFailed`.
    """
    if args.base_url and not args.model:
        raise UsageError("--base-url needs --model (the offline default does not use an endpoint)")
    if args.model is not None:
        _check_model(args.model)
    if args.keep_alive and args.metrics_port is None:
        raise UsageError(
            "--keep-alive keeps /metrics served after the run, and there is none: add --metrics-port PORT "
            "(0 picks a free one)"
        )
    exported = args.otlp_endpoint or args.console or _endpoint_from_environment()
    if args.capture_content and not exported:
        raise UsageError(
            "--capture-content records prompts and completions on the exported spans, and nothing exports "
            "them: add --otlp-endpoint URL (or --console)"
        )
    if args.usage_log is not None:
        _check_usage_log(Path(args.usage_log))


def _check_model(model: str) -> None:
    provider, slash, name = model.partition("/")
    shown = visible(model)
    if not slash:
        raise UsageError(
            f"--model '{shown}' needs its provider prefix, e.g. --model openai/{shown} (litellm's provider/model form)"
        )
    if not provider.strip():
        raise UsageError(f"--model '{shown}' names no provider before the '/', e.g. --model openai{shown}")
    if not name.strip():
        example = f"{visible(provider)}/gpt-4o-mini"
        raise UsageError(f"--model '{shown}' names no model after the provider, e.g. --model {example}")


def _check_usage_log(path: Path) -> None:
    log = visible(str(path))
    if path.is_dir():
        raise UsageError(f"--usage-log {log} is a directory: give a file, e.g. {log}/usage.jsonl")
    blocking = next((parent for parent in path.parents if parent.exists() and not parent.is_dir()), None)
    if blocking is not None:  # a file in the way, as for crewtrace stack: a failure, not a value to change
        raise CommandFailed(f"--usage-log {log}: {visible(str(blocking))} is a file, not a directory")


def _endpoint_from_environment() -> str | None:
    """Where the exporters send traces when ``--otlp-endpoint`` is not given (the per-signal variable first)."""
    return os.environ.get(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) or os.environ.get(OTEL_EXPORTER_OTLP_ENDPOINT) or None


def run_demo(args: argparse.Namespace) -> int:
    """Run the crew with telemetry; 0 on success, 1 if the crew failed.

    Raises :class:`UsageError` for bad values, :class:`CommandFailed` when a port or file cannot be
    used, and ``KeyboardInterrupt`` after showing what ran until Ctrl-C.
    """
    check_arguments(args)
    bus = crewtrace_event_bus
    glyphs = Glyphs.for_encoding(sys.stdout.encoding)
    endpoint = args.otlp_endpoint or _endpoint_from_environment()
    with HeldTelemetryLogs() as held:
        telemetry = _setup_telemetry(args, bus)
        try:
            spans = InMemorySpanExporter()
            telemetry.tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
            outcome = _run(args, bus, telemetry, spans, glyphs)
        finally:
            # Also on Ctrl-C: the bridge ends what is still open, and the exporters get a bounded chance.
            listening = not (endpoint and nothing_listens_at(endpoint))
            delivered = telemetry.shutdown(
                timeout=SHUTDOWN_TIMEOUT_S if listening else DEAD_ENDPOINT_SHUTDOWN_TIMEOUT_S
            )
    exported = endpoint is not None and listening and delivered and not held.export_failed
    if endpoint is not None and not exported:
        print(visible(undelivered_message(endpoint, _protocol(args), listening=listening)), file=sys.stderr)
    else:
        held.replay()
    if outcome.trace_id is not None:
        _print_where_the_trace_is(outcome.trace_id, endpoint if exported else None)
    if outcome.interrupted:
        raise KeyboardInterrupt
    return outcome.code


def _run(
    args: argparse.Namespace, bus: EventBus, telemetry: Telemetry, spans: InMemorySpanExporter, glyphs: Glyphs
) -> _Outcome:
    print(f"crewtrace demo: loading litellm and the crew (seconds on a first run){glyphs.ellipsis}", flush=True)
    from crewtrace.cli._demo_crew import DEFAULT_TOPIC, build_crew  # imports litellm
    from crewtrace.crew import CrewStreamingOutput

    topic = args.topic or DEFAULT_TOPIC
    try:
        crew = build_crew(args.model, args.base_url, bus, topic)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"--model '{visible(args.model)}': {visible(str(exc))}") from exc
    if args.model is not None and crew.agents[0].llm.provider is None:
        provider = args.model.partition("/")[0]
        raise UsageError(
            f"--model '{visible(args.model)}': litellm knows no provider '{visible(provider)}'; use one of its "
            "prefixes (openai/ also serves any OpenAI-compatible server given with --base-url)"
        )
    mode = "offline model" if args.model is None else visible(args.model)
    print(f"crewtrace demo: crew {crew.name!r}, {len(crew.agents)} agents, {len(crew.tasks)} tasks ({mode})")
    if telemetry.metrics_url:
        print(f"metrics: {visible(telemetry.metrics_url)}", flush=True)
    printer = LiveChunkPrinter(bus, ellipsis=glyphs.ellipsis)
    summary = SummaryCollector(bus)
    code, interrupted = 0, False
    try:
        for agent in crew.agents:  # litellm's one-time start-up, before the clock of the first call starts
            agent.llm.warm_up()
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
        except KeyboardInterrupt:  # the run has stopped, and its spans have ended, cancelled
            interrupted = True
        printer.finish()
    finally:
        printer.close()
        summary.close()
    if interrupted:
        print("\n\ninterrupted (Ctrl-C): what ran until then, the spans it stopped marked cancelled")
    print("\n")
    print(summary.table.render())
    print()
    records = [record for span in spans.get_finished_spans() if (record := SpanRecord.from_sdk(span)) is not None]
    width = min(terminal_width(), _MAX_WATERFALL_WIDTH)
    print(render_waterfall(records, glyphs, width), flush=True)
    if args.keep_alive and not interrupted:
        print("\nkeeping telemetry alive until interrupted (Ctrl-C)", flush=True)
        _wait_for_signal()
    return _Outcome(code, interrupted, records[0].trace_id if records else None)


def _setup_telemetry(args: argparse.Namespace, bus: EventBus) -> Telemetry:
    try:
        return setup_telemetry(
            _service_name(args),
            otlp_endpoint=args.otlp_endpoint,
            otlp_protocol=args.otlp_protocol,
            prometheus_port=args.metrics_port,
            prometheus_host=args.metrics_host,
            console=args.console,
            capture_content=True if args.capture_content else None,
            usage_log=args.usage_log,
            bus=bus,
        )
    except MetricsServerError as exc:
        where = f"{visible(args.metrics_host)}:{args.metrics_port}"
        if exc.errno == errno.EADDRINUSE:
            raise CommandFailed(
                f"--metrics-port {args.metrics_port}: {where} is already in use; choose another port "
                "(--metrics-port 0 picks a free one) or stop what listens there"
            ) from None
        cause = exc.__cause__
        reason = cause.strerror if isinstance(cause, OSError) and cause.strerror else "cannot listen there"
        raise CommandFailed(f"--metrics-host/--metrics-port: cannot serve metrics on {where}: {reason}") from None
    except OSError as exc:  # the usage log: the only file set-up opens
        reason = exc.strerror or str(exc)
        raise CommandFailed(f"--usage-log {visible(args.usage_log)}: {reason}") from None
    except ValueError as exc:  # a malformed endpoint, protocol or OTEL_* value: the user's to change
        raise UsageError(visible(str(exc))) from exc


def _service_name(args: argparse.Namespace) -> str | None:
    """``--service-name``; else None when the environment names one (setup_telemetry reads it); else the default."""
    if args.service_name:
        return str(args.service_name)
    from_environment = str(Resource.create().attributes.get(names.SERVICE_NAME, ""))
    return None if from_environment and not from_environment.startswith("unknown_service") else DEFAULT_SERVICE_NAME


def _protocol(args: argparse.Namespace) -> str:
    return str(args.otlp_protocol or os.environ.get(OTEL_EXPORTER_OTLP_PROTOCOL) or "grpc")


def _print_where_the_trace_is(trace_id: str, endpoint: str | None) -> None:
    if endpoint is None:
        print(f"\ntrace id: {trace_id} (not exported; see --otlp-endpoint)")
    else:
        print(f"\ntrace id: {trace_id}, sent to {visible(endpoint)}")
        print(f"in Jaeger: {visible(jaeger_trace_url(endpoint, trace_id))}")


def _one_line(exc: BaseException) -> str:
    return visible(" ".join(str(exc).split())) or type(exc).__name__


def _wait_for_signal() -> None:
    """Block until SIGINT or SIGTERM, so that `kill` ends the demo as cleanly as Ctrl-C."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
