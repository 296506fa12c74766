"""Interleaved side-by-side runs against one local server; results as pyperf suites and a markdown table.

    python -m bench.run [--rounds 5] [--chunks 100,1000,10000] [--scenarios litellm,crewtrace,bridge,crew,crewai]
                        [--concurrent 100 (streams of 100 chunks)] [--memory 100000] [--out bench/results]

Each round runs every scenario once per (mode, length), in an order rotated every
round, so a change in machine load hits all scenarios alike; ratios between
scenarios of one round are what to compare on a shared machine. The load average
is recorded with every value (pyperf metadata), and printed with the table.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pyperf

from bench.scenarios import NAMES, Scenario, available
from bench.server import BenchServer

Key = tuple[str, str, int]  # (scenario, mode, chunks)
RATIOS = (
    ("crewtrace", "litellm"), ("bridge", "crewtrace"), ("crew", "crewai"),
    *((f"crewai+{peer}", "crewai") for peer in ("crewtrace", "openinference", "openinference-events", "openllmetry")),
)  # fmt: skip
"""The ratio columns of the table, where both scenarios ran."""


def timed(
    scenario: Scenario, mode: str, n: int, concurrent: int = 1, clock: Callable[[], float] = time.perf_counter
) -> float:
    """Seconds per chunk for one stream (or ``concurrent`` async streams at once, per chunk of all of them).

    ``clock``: wall time by default; ``time.process_time`` counts the CPU time of every thread of this
    process (the server is another), which load from other processes hardly moves.
    """
    gc.collect()
    scenario.activate()
    try:
        start = clock()
        if mode == "sync":
            got = scenario.stream(n)
        else:

            async def streams() -> int:
                return sum(await asyncio.gather(*(scenario.astream(n) for _ in range(concurrent))))

            got = asyncio.run(streams())
        elapsed = clock() - start
    finally:
        scenario.deactivate()
    if got != n * concurrent:
        raise RuntimeError(f"{scenario.name} {mode}: {got} chunks, expected {n * concurrent}")
    return elapsed / got


def interleaved(scenarios: list[Scenario], cases: list[tuple[str, int, int]], rounds: int) -> dict[Key, list[float]]:
    samples: dict[Key, list[float]] = defaultdict(list)
    for scenario in scenarios:  # warm-up: imports, clients, caches, the connections (and crews) of concurrent streams
        timed(scenario, "sync", 10)
        for concurrent in sorted({c for _, _, c in cases}):
            timed(scenario, "async", 10, concurrent)
    for round_ in range(rounds):
        for mode, n, concurrent in cases:
            order = scenarios[round_ % len(scenarios) :] + scenarios[: round_ % len(scenarios)]
            for scenario in order:
                label = mode if concurrent == 1 else f"async x{concurrent}"
                samples[(scenario.name, label, n)].append(timed(scenario, mode, n, concurrent))
        print(f"round {round_ + 1}/{rounds} done, load {os.getloadavg()[0]:.2f}", flush=True)
    return samples


def peak_memory(name: str, n: int) -> tuple[float, float]:
    """MiB added by one ``n``-chunk stream in a fresh process: peak RSS, and peak of Python allocations.

    RSS is compared with the peak after a 10-chunk stream; the allocations are traced during the stream only.
    An instrumentation is switched on for the whole process (``activate``), as in the timed runs.
    """
    code = (
        "import resource,tracemalloc;from bench.server import BenchServer;from bench.scenarios import available\n"
        f"with BenchServer() as s:\n (sc,)=available(s.base_url,[{name!r}]);sc.activate();sc.stream(10)\n"
        " base=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        f" sc.stream({n});rss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss-base\n"
        f" tracemalloc.start();sc.stream({n});print(rss,tracemalloc.get_traced_memory()[1])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path.cwd())
    rss_kib, traced = out.stdout.strip().splitlines()[-1].split()
    return int(rss_kib) / 1024, int(traced) / 2**20


def write_suites(samples: dict[Key, list[float]], out: Path, load: list[float]) -> None:
    """One pyperf suite per scenario (benchmarks ``sync-1000`` ...), so ``pyperf compare_to`` works on them."""
    out.mkdir(parents=True, exist_ok=True)
    by_scenario: dict[str, list[pyperf.Benchmark]] = defaultdict(list)
    metadata = {"python_version": platform.python_version(), "cpu_count": os.cpu_count() or 0,
                "platform": platform.platform(), "loadavg": " ".join(f"{x:.2f}" for x in load)}  # fmt: skip
    for (name, mode, n), values in sorted(samples.items()):
        run = pyperf.Run(values, metadata={"name": f"{mode.replace(' ', '')}-{n}", "unit": "second", "loops": 1,
                                           **metadata}, collect_metadata=False)  # fmt: skip
        by_scenario[name].append(pyperf.Benchmark([run]))
    for name, benchmarks in by_scenario.items():
        pyperf.BenchmarkSuite(benchmarks).dump(str(out / f"{name}.json"), replace=True)


def table(samples: dict[Key, list[float]], memory: dict[str, tuple[float, float]]) -> str:
    names = list(dict.fromkeys(k[0] for k in samples))
    cases = list(dict.fromkeys((k[1], k[2]) for k in samples))
    heads = " | ".join(f"{n} µs/chunk" for n in names)
    ratios = [(a, b) for a, b in RATIOS if a in names and b in names]
    ratio_heads = "".join(f" {a} / {b} |" for a, b in ratios)
    lines = [f"| mode | chunks | {heads} |{ratio_heads}", "|---" * (len(names) + len(ratios) + 2) + "|"]
    for mode, n in cases:
        medians = {
            name: statistics.median(samples[(name, mode, n)]) * 1e6 for name in names if (name, mode, n) in samples
        }
        cells = " | ".join(f"{medians[name]:.0f}" if name in medians else "–" for name in names)
        lines.append(f"| {mode} | {n:,} | {cells} |" + "".join(f" {_ratio(medians, a, b)} |" for a, b in ratios))
    if memory:
        lines += ["", "| one stream adds (MiB) | " + " | ".join(memory) + " |", "|---" * (len(memory) + 1) + "|",
                  "| peak RSS | " + " | ".join(f"{v[0]:.0f}" for v in memory.values()) + " |",
                  "| peak Python allocs | " + " | ".join(f"{v[1]:.1f}" for v in memory.values()) + " |"]  # fmt: skip
    return "\n".join(lines)


def _ratio(medians: dict[str, float], a: str, b: str) -> str:
    return f"{medians[a] / medians[b]:.2f}" if a in medians and b in medians else "–"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--chunks", default="100,1000,10000")
    parser.add_argument("--scenarios", default=",".join(NAMES))
    parser.add_argument("--concurrent", type=int, default=100, help="async streams at once (0: skip)")
    parser.add_argument("--memory", type=int, default=100_000, help="chunks of the peak-memory stream (0: skip)")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args(argv)
    lengths = [int(x) for x in args.chunks.split(",")]
    cases = [(mode, n, 1) for n in lengths for mode in ("sync", "async")]
    if args.concurrent:
        cases.append(("async", 100, args.concurrent))
    load_before = list(os.getloadavg())
    with BenchServer() as server:
        scenarios = available(server.base_url, args.scenarios.split(","))
        try:
            samples = interleaved(scenarios, cases, args.rounds)
        finally:
            for scenario in scenarios:
                scenario.close()
        names = [s.name for s in scenarios]
    memory = {name: peak_memory(name, args.memory) for name in names} if args.memory else {}
    load = list(os.getloadavg())
    write_suites(samples, args.out, load)
    report = table(samples, memory)
    limits = resource.getrlimit(resource.RLIMIT_NOFILE)
    header = (f"python {platform.python_version()}, {os.cpu_count()} cores, load before {load_before[0]:.2f}, "
              f"after {load[0]:.2f}; {args.rounds} rounds, medians; nofile {limits[0]}")  # fmt: skip
    print(header, report, sep="\n\n")
    (args.out / "table.md").write_text(f"{header}\n\n{report}\n", encoding="utf-8")
    (args.out / "memory.json").write_text(json.dumps(memory), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
