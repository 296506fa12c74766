"""``crewtrace`` command line: ``demo``, ``watch`` and ``stack``.

Exit codes: 0 done, 1 something failed (the crew, a port in use, a file in the way), 2 a value on
the command line to change, 130 interrupted (Ctrl-C). Every expected problem is one line on stderr
that says what to change; only a bug in crewtrace prints a traceback. What came from a model, a
user or another program is printed with its control characters made visible
(:mod:`crewtrace.cli.terminal`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TypeVar

from crewtrace._version import __version__
from crewtrace.cli._errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, CommandFailed, UsageError
from crewtrace.cli.terminal import prepare_streams, visible
from crewtrace.errors import CrewtraceError

__all__ = ["main"]

N = TypeVar("N", int, float)


def _number_in(kind: Callable[[str], N], low: N, high: N, what: str) -> Callable[[str], N]:
    """An argparse type: ``kind`` of the text, within ``low`` and ``high``."""

    def parse(value: str) -> N:
        try:
            number = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {value!r}") from None
        if not low <= number <= high:
            raise argparse.ArgumentTypeError(f"must be between {low:g} and {high:g}, got {value}")
        return number

    return parse


_port = _number_in(int, 0, 65535, "a port number (0-65535)")
_seconds = _number_in(float, 0.0, 3600.0, "a number of seconds")


def _parsers() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(
        prog="crewtrace",
        description="Observability for LLM agent crews: see a crew's streamed chunks as OpenTelemetry traces.",
        epilog="Start with: crewtrace demo. See your own application's runs: crewtrace watch",
    )
    parser.add_argument("--version", action="version", version=f"crewtrace {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="run a two-agent crew and show its chunks, a summary and its trace",
        description="Run a small crew of two agents and show its chunks live, a table per agent and task, "
        "and a waterfall of its trace drawn from the OpenTelemetry spans. Offline by default: an embedded model "
        "(a litellm custom provider) streams like a real one and calls tools, no network or key needed. "
        "--model and --base-url run it on a real OpenAI-compatible endpoint "
        "(the key comes from the environment, e.g. OPENAI_API_KEY).",
    )
    demo.add_argument("--model", help="model with its provider prefix, e.g. openai/gpt-4o-mini (default: offline)")
    demo.add_argument("--base-url", help="OpenAI-compatible endpoint for --model, e.g. http://127.0.0.1:8000/v1")
    demo.add_argument("--topic", default=None, help="what the crew researches (the offline model uses it too)")
    telemetry = demo.add_argument_group("telemetry")
    telemetry.add_argument("--otlp-endpoint", help="send traces and metrics over OTLP, e.g. http://localhost:4317")
    telemetry.add_argument("--otlp-protocol", choices=("grpc", "http/protobuf"), help="OTLP protocol (default: grpc)")
    telemetry.add_argument(
        "--console", action="store_true", help="also print the raw spans and metrics (the SDK's console exporters)"
    )
    telemetry.add_argument(
        "--metrics-port", type=_port, help="serve Prometheus metrics on 127.0.0.1:PORT/metrics while running"
    )
    telemetry.add_argument(
        "--metrics-host", default="127.0.0.1", help="address for --metrics-port (default: %(default)s)"
    )
    telemetry.add_argument(
        "--keep-alive",
        action="store_true",
        help="with --metrics-port: keep serving metrics after the run, until Ctrl-C",
    )
    telemetry.add_argument(
        "--service-name", help="service.name of the telemetry (default: $OTEL_SERVICE_NAME if set, else crewtrace-demo)"
    )
    telemetry.add_argument("--usage-log", help="write one JSON line per LLM call to this file")
    telemetry.add_argument(
        "--capture-content",
        action="store_true",
        help="record prompts, completions and chunk text on the exported spans (with --otlp-endpoint or --console)",
    )
    watch = commands.add_parser(
        "watch",
        help="receive OTLP from any process and draw each trace as it completes",
        description="A local OTLP receiver (gRPC and HTTP at once) that draws every trace as it completes: a "
        "one-line summary of the run, the waterfall of its spans (other instrumentations' spans too), and a table "
        "per agent and task. Point any process at it: setup_telemetry(otlp_endpoint='http://127.0.0.1:4317'), "
        "OTEL_EXPORTER_OTLP_ENDPOINT, or crewtrace demo --otlp-endpoint. A trace is drawn once its root span "
        "(the one without a parent) has arrived and no span of it has arrived for --settle seconds; one whose "
        "root never arrives is drawn after 60 s without new spans. Metrics and logs are accepted and ignored.",
        epilog="A developer's live view, not a trace store: nothing is kept after it exits. For history, search "
        "and dashboards use Jaeger and Grafana (crewtrace stack).",
    )
    watch.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    watch.add_argument("--grpc-port", type=_port, default=4317, help="OTLP/gRPC port (default: %(default)s; 0: any)")
    watch.add_argument("--http-port", type=_port, default=4318, help="OTLP/HTTP port (default: %(default)s; 0: any)")
    watch.add_argument(
        "--settle",
        type=_seconds,
        default=1.0,
        metavar="SECONDS",
        help="draw a trace once its root span is in and nothing new came for this long (default: %(default)s)",
    )
    watch.add_argument("--json", action="store_true", help="print one JSON object per trace instead of the pictures")
    stack = commands.add_parser(
        "stack",
        help="write the local observability stack (Collector, Jaeger, Prometheus, Grafana) into a directory",
        description="Write docker-compose.yml, the Collector, Jaeger and Prometheus configuration, the "
        "provisioned Grafana dashboards and a Prometheus configuration for use without Docker "
        "(deploy/prometheus-local.yml) into DIR, then print how to start it. It never writes through a "
        "symbolic link.",
    )
    stack.add_argument("directory", metavar="DIR", help="where to write the files (created if missing)")
    stack.add_argument("--force", action="store_true", help="overwrite files that already exist in DIR")
    return parser, {"demo": demo, "watch": watch, "stack": stack}


def main(argv: Sequence[str] | None = None) -> int:
    prepare_streams()
    parser, commands = _parsers()
    args, extras = parser.parse_known_args(argv)
    command = commands.get(args.command)
    if command is None:
        if extras:
            parser.error(f"unrecognized arguments: {visible(' '.join(extras))}")
        parser.print_help()
        return 0
    if extras:
        command.error(f"unrecognized arguments: {visible(' '.join(extras))}")  # the subcommand's usage, exit 2
    try:
        return _run(args)
    except KeyboardInterrupt:
        print(f"\n{command.prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except UsageError as exc:
        print(f"{command.prog}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except (CommandFailed, CrewtraceError, OSError) as exc:
        print(f"{command.prog}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_FAILED


def _run(args: argparse.Namespace) -> int:
    if args.command == "stack":
        from crewtrace.cli.stack import write_stack

        return write_stack(args.directory, force=args.force)
    if args.command == "watch":
        from crewtrace.cli.watch import run_watch

        return run_watch(args)
    from crewtrace.cli.demo import run_demo  # litellm is imported only once every option is checked

    return run_demo(args)


def _one_line(exc: BaseException) -> str:
    """The message on one line; an OSError without its ``[Errno N]`` prefix."""
    if isinstance(exc, OSError) and exc.strerror and not isinstance(exc, CrewtraceError):
        text = f"{exc.filename}: {exc.strerror}" if exc.filename else exc.strerror
    else:
        text = str(exc)
    return visible(" ".join(text.split()))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
