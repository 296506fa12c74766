"""``crewtrace`` command line: ``demo`` and ``stack``.

Exit codes: 0 done, 1 something failed (the crew, a port in use, a file that exists), 2 a value
on the command line to change, 130 interrupted (Ctrl-C). Every expected problem is one line on
stderr that says what to change; only a bug in crewtrace prints a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from crewtrace._version import __version__
from crewtrace.errors import CrewtraceError

__all__ = ["main"]

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for Ctrl-C


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number (0-65535), got {value!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 0 and 65535, got {port}")
    return port


def _parsers() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(
        prog="crewtrace",
        description="Observability for LLM agent crews: see a crew's streamed chunks as OpenTelemetry traces.",
        epilog="Start with: crewtrace demo",
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
    telemetry.add_argument("--metrics-host", default="127.0.0.1", help="address for --metrics-port")
    telemetry.add_argument(
        "--keep-alive", action="store_true", help="keep serving metrics after the crew finishes, until interrupted"
    )
    telemetry.add_argument("--service-name", default="crewtrace-demo", help="service.name of the telemetry")
    telemetry.add_argument("--usage-log", help="write one JSON line per LLM call to this file")
    telemetry.add_argument(
        "--capture-content", action="store_true", help="record prompts, completions and chunk text in telemetry"
    )
    stack = commands.add_parser(
        "stack",
        help="write the local observability stack (Collector, Jaeger, Prometheus, Grafana) into a directory",
        description="Write docker-compose.yml, the Collector, Jaeger and Prometheus configuration and the "
        "provisioned Grafana dashboards into DIR, then print how to start it.",
    )
    stack.add_argument("directory", metavar="DIR", help="where to write the files (created if missing)")
    stack.add_argument("--force", action="store_true", help="overwrite files that already exist in DIR")
    return parser, {"demo": demo, "stack": stack}


def main(argv: Sequence[str] | None = None) -> int:
    parser, commands = _parsers()
    args, extras = parser.parse_known_args(argv)
    command = commands.get(args.command)
    if command is None:
        if extras:
            parser.error(f"unrecognized arguments: {' '.join(extras)}")
        parser.print_help()
        return 0
    if extras:
        command.error(f"unrecognized arguments: {' '.join(extras)}")  # the subcommand's usage, exit 2
    try:
        if args.command == "stack":
            from crewtrace.cli.stack import write_stack

            return write_stack(args.directory, force=args.force)
        return _demo(args, command)
    except KeyboardInterrupt:
        print(f"\n{command.prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (CrewtraceError, OSError) as exc:  # a port in use, a file that cannot be written, ...
        print(f"{command.prog}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_FAILED


def _demo(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.base_url and not args.model:
        parser.error("--base-url needs --model (the offline default does not use an endpoint)")
    from crewtrace.cli.demo import UsageError, run_demo  # imports litellm: keep --help fast

    try:
        return run_demo(args)
    except UsageError as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
