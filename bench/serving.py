"""What telemetry costs a CPU-bound service with real exporters: crews of one 20-chunk call, back to back.

    python -m bench.serving [--rounds 5] [--runs 100] [--chunks 20] [--concurrency 4]
                            [--protocol grpc|http/protobuf] [--profile 200]

Each scenario is a service process of its own, alive for the whole benchmark, running
``Crew.kickoff_async`` ``--concurrency`` at a time on its event loop (the request path)
against the bench's LLM server (a process of its own):

=====================  ==================================================================
``off``                no telemetry, and no listener on the crews' bus
``listener``           a listener that does nothing (a ``UsageLog`` with logging off): what
                       crewtrace's LLM layer does for any listener (events, cost), without
                       OpenTelemetry
``otlp``               ``setup_telemetry(otlp_endpoint=...)``: batch span processor and a
                       periodic OTLP metric reader (every 5 s, so a short run sees exports),
                       to a real OTLP receiver in another process
``otlp+prometheus``    the same, plus ``/metrics`` (the pull reader and its collector),
                       scraped every 5 s from the receiver's process
``otlp+sdk-metrics``   ``otlp`` with the SDK's own metrics on
                       (``OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED=true``)
``bridge``             (``--scenarios``) ``setup_telemetry()`` with no exporter: the bridge and
                       the SDK's spans and instruments, with nothing reading them
``otlp-traces``,       (``--scenarios``) ``otlp`` with one signal only
``otlp-metrics``       (``OTEL_METRICS_EXPORTER=none``, ``OTEL_TRACES_EXPORTER=none``)
``otlp-sampled``       (``--scenarios``) ``otlp`` keeping 10 % of the traces
                       (``parentbased_traceidratio``, 0.1); the metrics are all kept
``otlp-unsampled``     (``--scenarios``) ``otlp`` keeping no trace (``always_off``): what
                       the metrics alone cost
``otlp-3-events``      (``--scenarios``) ``otlp`` with ``OTEL_SPAN_EVENT_COUNT_LIMIT=3``: the
                       first chunk, the last and one group between them
=====================  ==================================================================

Rounds are interleaved (the order rotates), so load from elsewhere hits every scenario
alike. Reported per run: wall time (throughput), the service's CPU (every thread: the
exporters' too) and the event loop thread's CPU (the request path), as medians over the
rounds, and the difference to ``off``. ``--profile N`` then profiles N more runs of
``listener`` and of ``otlp+prometheus`` on the request path (cProfile) and prints where
the difference (OpenTelemetry's own cost) went, by package.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import json
import os
import pstats
import statistics
import sys
import threading
import time
import urllib.request
from collections import defaultdict

from bench.callgrind import Callgrind, Child
from bench.server import BenchServer

SCENARIOS = ("off", "listener", "otlp", "otlp+prometheus", "otlp+sdk-metrics")
PARTS = ("bridge", "otlp-traces", "otlp-metrics", "otlp-sampled", "otlp-unsampled", "otlp-3-events")
"""Scenarios that take the ``otlp`` one apart (``--scenarios off,bridge,otlp-traces,otlp-metrics,otlp``),
or turn its production knobs (``--scenarios off,otlp,otlp-sampled,otlp-unsampled,otlp-3-events``)."""
_ENV = {
    "otlp+sdk-metrics": {"OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED": "true"},
    "otlp-traces": {"OTEL_METRICS_EXPORTER": "none"},
    "otlp-metrics": {"OTEL_TRACES_EXPORTER": "none"},
    "otlp-sampled": {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"},
    "otlp-unsampled": {"OTEL_TRACES_SAMPLER": "always_off"},
    "otlp-3-events": {"OTEL_SPAN_EVENT_COUNT_LIMIT": "3"},
}
SCRAPE_EVERY = 5.0
EXPORT_EVERY_MS = "5000"


# -- the receiver's process: OTLP receivers, and a scraper ------------------------------------


def receiver_main() -> None:
    """Serve OTLP (gRPC and HTTP) until stdin closes; ``scrape URL`` lines add /metrics targets."""
    from tests.support.otlp_receiver import OTLPGrpcReceiver, OTLPHttpReceiver

    targets: list[str] = []
    with OTLPGrpcReceiver() as grpc_receiver, OTLPHttpReceiver() as http_receiver:
        print(json.dumps({"grpc": grpc_receiver.endpoint, "http": http_receiver.endpoint}), flush=True)

        def scrape() -> None:
            while True:
                time.sleep(SCRAPE_EVERY)
                for url in list(targets):
                    try:
                        with urllib.request.urlopen(url, timeout=10) as response:
                            response.read()
                    except OSError as exc:
                        print(f"scrape of {url} failed: {exc}", file=sys.stderr, flush=True)

        threading.Thread(target=scrape, daemon=True).start()
        for line in sys.stdin:
            command, _, argument = line.strip().partition(" ")
            if command == "scrape":
                targets.append(argument)
            elif command == "spans":
                spans = grpc_receiver.spans() + http_receiver.spans()
                workflows = sum(s.name.startswith("invoke_workflow ") for s in spans)
                print(json.dumps({"spans": len(spans), "workflows": workflows}), flush=True)


# -- a service process ----------------------------------------------------------------------


def service_main(scenario: str, llm_url: str, otlp: str, protocol: str, chunks: int, concurrency: int) -> None:
    """Run batches of crews on command (``run N``), report their cost as a JSON line."""
    os.environ["OTEL_METRIC_EXPORT_INTERVAL"] = EXPORT_EVERY_MS
    os.environ.update(_ENV.get(scenario, {}))
    from bench.scenarios import AGENT, API_KEY, MODEL, TASK, TIMEOUT, answer_chunks, inputs
    from crewtrace import LLM, Agent, Crew, Task
    from crewtrace.events import EventBus
    from crewtrace.telemetry import UsageLog, setup_telemetry

    bus = EventBus()
    telemetry = None
    if scenario == "listener":
        UsageLog(bus)
    elif scenario != "off":
        telemetry = setup_telemetry(
            "bench-service",
            otlp_endpoint=None if scenario == "bridge" else otlp,
            otlp_protocol=protocol,
            prometheus_port=0 if scenario == "otlp+prometheus" else None,
            set_global=False,
            bus=bus,
        )
    llm = LLM(MODEL, stream=True, base_url=llm_url, api_key=API_KEY, timeout=TIMEOUT, bus=bus)
    agent = Agent(**AGENT, llm=llm)
    crew = Crew(name="bench", agents=[agent], tasks=[Task(**TASK, agent=agent)], bus=bus)

    async def batch(n: int) -> int:
        slots = asyncio.Semaphore(concurrency)

        async def one() -> int:
            async with slots:
                return answer_chunks(await crew.kickoff_async(inputs(chunks)))

        return sum(await asyncio.gather(*(one() for _ in range(n))))

    loop = asyncio.new_event_loop()
    metrics_url = telemetry.metrics_url if telemetry is not None else None
    print(json.dumps({"ready": scenario, "metrics": metrics_url}), flush=True)
    for line in sys.stdin:
        command, count = line.split()
        n = int(count)
        profiler = cProfile.Profile() if command == "profile" else None
        gc.collect()
        wall, cpu, thread = time.perf_counter(), time.process_time(), time.thread_time()
        if profiler is not None:
            profiler.enable()
        got = loop.run_until_complete(batch(n))
        if profiler is not None:
            profiler.disable()
        report = {
            "runs": n,
            "chunks": got,
            "wall": time.perf_counter() - wall,
            "cpu": time.process_time() - cpu,
            "thread": time.thread_time() - thread,
        }
        if profiler is not None:
            report["profile"] = by_package(profiler, n)
        print(json.dumps(report), flush=True)
    if telemetry is not None:
        telemetry.shutdown()


def by_package(profiler: cProfile.Profile, runs: int) -> dict[str, float]:
    """Microseconds per run spent in each package's own code (cProfile's tottime), request path only."""
    stats = pstats.Stats(profiler, stream=io.StringIO())
    spent: dict[str, float] = defaultdict(float)
    for (filename, _, _), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        spent[_package(filename)] += tottime
    return {name: round(seconds / runs * 1e6, 1) for name, seconds in sorted(spent.items(), key=lambda i: -i[1])}


_PACKAGES = (
    ("opentelemetry/sdk/metrics", "otel sdk metrics"),
    ("opentelemetry/sdk/trace", "otel sdk trace"),
    ("opentelemetry/exporter", "otel exporters"),
    ("opentelemetry", "otel (other)"),
    ("crewtrace/telemetry", "crewtrace telemetry"),
    ("crewtrace/events", "crewtrace events"),
    ("crewtrace/llm", "crewtrace llm"),
    ("crewtrace/crew", "crewtrace crew"),
    ("litellm", "litellm"),
    ("openai", "openai"),
    ("httpx", "httpx/httpcore"),
    ("httpcore", "httpx/httpcore"),
    ("pydantic", "pydantic"),
    ("asyncio", "asyncio"),
)


def _package(filename: str) -> str:
    if filename == "~":
        return "builtins (C)"
    path = filename.replace("\\", "/")
    return next((name for marker, name in _PACKAGES if f"/{marker}" in path), "other")


# -- the driver -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.serving", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=100, help="runs per scenario and round")
    parser.add_argument("--chunks", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--protocol", default="grpc", choices=("grpc", "http/protobuf"))
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"of {', '.join(SCENARIOS + PARTS)}")
    parser.add_argument("--profile", type=int, default=0, help="runs of otlp+prometheus to profile after (0: none)")
    parser.add_argument(
        "--instructions", type=int, default=0, help="instead: count instructions of this many runs (valgrind)"
    )
    parser.add_argument("--service", help=argparse.SUPPRESS)
    parser.add_argument("--receiver", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--llm", help=argparse.SUPPRESS)
    parser.add_argument("--otlp", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.scenarios = tuple(args.scenarios.split(","))
    unknown = set(args.scenarios) - set(SCENARIOS + PARTS)
    if unknown or "off" not in args.scenarios:
        parser.error(f"--scenarios: {', '.join(sorted(unknown)) or 'off is missing'} (the baseline, off, is needed)")
    if args.profile and not {"listener", "otlp+prometheus"} <= set(args.scenarios):
        parser.error("--profile compares listener with otlp+prometheus: include both in --scenarios")
    if args.receiver:
        receiver_main()
        return 0
    if args.service:
        service_main(args.service, args.llm, args.otlp, args.protocol, args.chunks, args.concurrency)
        return 0

    receiver = Child("bench.serving", ["--receiver"])
    endpoints = receiver.ask()
    otlp = endpoints["grpc" if args.protocol == "grpc" else "http"]
    if args.instructions:
        try:
            print(count_instructions(args, receiver, otlp))
        finally:
            receiver.close()
        return 0
    samples: dict[str, list[dict[str, float]]] = defaultdict(list)
    with BenchServer() as llm:
        flags = ["--llm", llm.base_url, "--otlp", otlp, "--protocol", args.protocol, "--chunks", str(args.chunks)]
        flags += ["--concurrency", str(args.concurrency)]
        services = {name: Child("bench.serving", ["--service", name, *flags]) for name in args.scenarios}
        try:
            for service in services.values():
                ready = service.ask()
                if ready["metrics"]:
                    receiver.tell(f"scrape {ready['metrics']}")
                service.ask(f"run {max(args.runs // 5, 5)}")  # warm-up: imports, connections, caches
            for round_ in range(args.rounds):
                shift = round_ % len(args.scenarios)
                order = args.scenarios[shift:] + args.scenarios[:shift]
                for name in order:
                    samples[name].append(services[name].ask(f"run {args.runs}"))
                print(f"round {round_ + 1}/{args.rounds} done, load {os.getloadavg()[0]:.2f}", flush=True)
            profiles = (
                {
                    name: services[name].ask(f"profile {args.profile}")["profile"]
                    for name in ("listener", "otlp+prometheus")
                }
                if args.profile
                else None
            )
        finally:
            for service in services.values():
                service.close()
    time.sleep(1.0)
    arrived = receiver.ask("spans")
    receiver.close()
    print(report(samples, args), f"\nreceiver: {arrived['workflows']} workflow spans, {arrived['spans']} spans in all")
    if profiles is not None:
        off, on = profiles["listener"], profiles["otlp+prometheus"]
        names = sorted(set(off) | set(on), key=lambda name: -(on.get(name, 0) - off.get(name, 0)))
        lines = [
            f"| {n} | {off.get(n, 0):.0f} | {on.get(n, 0):.0f} | {on.get(n, 0) - off.get(n, 0):+.0f} |" for n in names
        ]
        print("\nrequest path, µs per run by package (cProfile's own time per function, which cProfile inflates):")
        print("| package | listener | otlp+prometheus | OpenTelemetry |\n|---|---|---|---|\n" + "\n".join(lines))
    return 0


def count_instructions(args: argparse.Namespace, receiver: Child, otlp: str) -> str:
    """Instructions per run, request path (the event loop's thread) and all threads, per scenario."""
    callgrind = Callgrind()
    counts: dict[str, dict[int, int]] = {}
    with BenchServer() as llm:
        flags = ["--llm", llm.base_url, "--otlp", otlp, "--protocol", args.protocol, "--chunks", str(args.chunks)]
        flags += ["--concurrency", str(args.concurrency)]
        services = {
            name: Child("bench.serving", ["--service", name, *flags], callgrind.prefix) for name in args.scenarios
        }
        try:
            for service in services.values():  # start-up under valgrind takes minutes: all at once
                ready = service.ask()
                if ready["metrics"]:
                    receiver.tell(f"scrape {ready['metrics']}")
            for name, service in services.items():
                service.ask(f"run {max(args.instructions // 5, 3)}")  # warm-up, not counted
                counts[name] = callgrind.count(service.process.pid, lambda s=service: s.ask(f"run {args.instructions}"))
                print(f"{name}: counted", flush=True)
        finally:
            for service in services.values():
                service.close()
            callgrind.cleanup()
    base = counts["off"]
    lines = [
        f"instructions per run (callgrind), {args.instructions} runs of {args.chunks} chunks, "
        f"{args.concurrency} at a time, OTLP {args.protocol}",
        "",
        "| scenario | request path (M) | added | all threads (M) | added |",
        "|---|---|---|---|---|",
    ]
    for name, threads in counts.items():
        main, total = threads.get(1, 0) / args.instructions / 1e6, sum(threads.values()) / args.instructions / 1e6
        base_main, base_total = base.get(1, 0) / args.instructions / 1e6, sum(base.values()) / args.instructions / 1e6
        lines.append(f"| {name} | {main:.2f} | {main - base_main:+.2f} | {total:.2f} | {total - base_total:+.2f} |")
    return "\n".join(lines)


def report(samples: dict[str, list[dict[str, float]]], args: argparse.Namespace) -> str:
    def per_run(name: str, key: str) -> float:
        return statistics.median(s[key] / s["runs"] for s in samples[name]) * 1e3

    base_wall, base_cpu, base_thread = (per_run("off", key) for key in ("wall", "cpu", "thread"))
    events_thread = per_run("listener", "thread") if "listener" in samples else base_thread
    lines = [
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}; {args.rounds} rounds "
        f"of {args.runs} runs ({args.chunks} chunks, {args.concurrency} at a time), OTLP {args.protocol}; medians",
        "",
        "| scenario | runs/s | throughput | CPU ms/run (all threads) | added | request path ms/run | added "
        "| added by OpenTelemetry |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in args.scenarios:
        wall, cpu, thread = (per_run(name, key) for key in ("wall", "cpu", "thread"))
        lines.append(
            f"| {name} | {1e3 / wall:.0f} | {(base_wall / wall - 1) * 100:+.1f} % | {cpu:.2f} | {cpu - base_cpu:+.2f} "
            f"| {thread:.2f} | {thread - base_thread:+.2f} | {thread - events_thread:+.2f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
