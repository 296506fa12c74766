"""``crewtrace`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from crewtrace._version import __version__

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="crewtrace", description="Observability for LLM agent crews.")
    parser.add_argument("--version", action="version", version=f"crewtrace {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="run a two-agent crew and show its chunks live",
        description="Run a small crew. Offline by default (litellm's mock streaming); "
        "--model and --base-url run it on a real OpenAI-compatible endpoint "
        "(the key comes from the environment, e.g. OPENAI_API_KEY).",
    )
    demo.add_argument("--model", help="litellm model name, e.g. openai/gpt-4o-mini (default: offline mock)")
    demo.add_argument("--base-url", help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    demo.add_argument("--topic", default=None, help="what the crew researches")
    telemetry = demo.add_argument_group("telemetry")
    telemetry.add_argument("--otlp-endpoint", help="send traces and metrics over OTLP, e.g. http://localhost:4317")
    telemetry.add_argument("--otlp-protocol", choices=("grpc", "http/protobuf"), help="OTLP protocol (default: grpc)")
    telemetry.add_argument(
        "--metrics-port", type=int, help="serve Prometheus metrics on 127.0.0.1:PORT/metrics while running"
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.base_url and not args.model:
        _parser().error("--base-url needs --model (the offline default does not use an endpoint)")
    if args.metrics_port is not None and not 0 <= args.metrics_port <= 65535:
        _parser().error(f"--metrics-port must be between 0 and 65535, got {args.metrics_port}")
    from crewtrace.cli.demo import run_demo  # imports litellm: keep --help fast

    return run_demo(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
