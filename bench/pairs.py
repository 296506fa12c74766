"""Alternating pairs in one process: what an instrumentation adds per chunk, measured where load cannot hide it.

    python -m bench.pairs [--pair crewai+crewtrace/crewai] [--pairs 15] [--chunks 1000,10000]
                          [--modes sync,async] [--concurrent 100] [--memory 20000] [--clock cpu|wall]
                          [--out bench/results/pairs]

Each pair runs the two scenarios' kickoffs back to back, the order swapped every pair, so both
see the same load; the ratio of each pair (instrumented / alone) is what is compared: the median
of the pairs, their interquartile range and extremes, and the median of the µs each pair's chunk
cost more. The clock is this process's CPU time by default (every thread: CrewAI's pool, the
instrumentation, the SDK; the server is another process): what a chunk costs, which other
processes' load hardly changes; ``--clock wall`` times what the application waits. ``async xN``
runs N kickoffs at once (per chunk of all of them). ``--memory`` adds, per scenario, what one
stream of that many chunks allocates at its peak (``tracemalloc``, a fresh process each). The
fresh-process rounds of ``bench.run`` stay the end-to-end comparison with peers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from bench.run import peak_memory, timed
from bench.scenarios import Scenario, available
from bench.server import BenchServer

Case = tuple[str, int, int]  # (mode, chunks, concurrent kickoffs)


def pairs(
    first: Scenario, second: Scenario, case: Case, count: int, clock: Callable[[], float]
) -> list[tuple[float, float]]:
    """``count`` pairs of (first, second) seconds per chunk, run back to back, the order swapped each pair."""
    mode, n, concurrent = case
    out = []
    for index in range(count):
        order = (first, second) if index % 2 == 0 else (second, first)
        measured = {scenario.name: timed(scenario, mode, n, concurrent, clock) for scenario in order}
        out.append((measured[first.name], measured[second.name]))
    return out


def summary(values: list[tuple[float, float]]) -> dict[str, float]:
    ratios = sorted(b / a for a, b in values)
    quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
    return {
        "alone_us": statistics.median(a for a, _ in values) * 1e6,
        "instrumented_us": statistics.median(b for _, b in values) * 1e6,
        "ratio": statistics.median(ratios),
        "q1": quartiles[0],
        "q3": quartiles[2],
        "min": ratios[0],
        "max": ratios[-1],
        "added_us": statistics.median((b - a) for a, b in values) * 1e6,
    }


def table(names: tuple[str, str], results: dict[str, dict[str, float]]) -> str:
    second, first = names
    lines = [
        f"| case | {first} µs/chunk | {second} µs/chunk | ratio, median of pairs | IQR | range | added µs/chunk |",
        "|---|---|---|---|---|---|---|",
    ]
    for case, r in results.items():
        lines.append(
            f"| {case} | {r['alone_us']:.0f} | {r['instrumented_us']:.0f} | **{r['ratio']:.3f}** | "
            f"{r['q1']:.3f}–{r['q3']:.3f} | {r['min']:.2f}–{r['max']:.2f} | {r['added_us']:+.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pairs", description=__doc__.splitlines()[0])
    parser.add_argument("--pair", default="crewai+crewtrace/crewai", help="instrumented/alone scenario names")
    parser.add_argument("--pairs", type=int, default=15)
    parser.add_argument("--chunks", default="1000,10000")
    parser.add_argument("--modes", default="sync,async")
    parser.add_argument("--concurrent", type=int, default=0, help="also N concurrent async kickoffs of 100 chunks")
    parser.add_argument("--memory", type=int, default=0, help="chunks of the peak-memory stream (0: skip)")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    parser.add_argument("--out", type=Path, default=Path("bench/results/pairs"))
    args = parser.parse_args(argv)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    instrumented, alone = args.pair.split("/")
    cases: list[Case] = [(mode, int(n), 1) for n in args.chunks.split(",") for mode in args.modes.split(",")]
    if args.concurrent:
        cases += [("async", 100, 1), ("async", 100, args.concurrent)]
    load_before = os.getloadavg()[0]
    results: dict[str, dict[str, float]] = {}
    raw: dict[str, list[tuple[float, float]]] = {}
    with BenchServer() as server:
        scenarios = available(server.base_url, [alone, instrumented])
        if len(scenarios) != 2:
            raise SystemExit(f"needs both {alone} and {instrumented}")
        first, second = scenarios
        try:
            for mode, n, concurrent in {(m, 10, c) for m, _, c in cases}:  # warm-up: imports, clients, crews
                for scenario in scenarios:
                    timed(scenario, mode, n, concurrent)
            for case in cases:
                mode, n, concurrent = case
                label = f"{mode} {n:,}" if concurrent == 1 else f"async x{concurrent} {n:,} each"
                raw[label] = pairs(first, second, case, args.pairs, clock)
                results[label] = summary(raw[label])
                print(f"{label}: {results[label]['ratio']:.3f}, load {os.getloadavg()[0]:.2f}", flush=True)
        finally:
            for scenario in scenarios:
                scenario.close()
    memory = {name: peak_memory(name, args.memory) for name in (alone, instrumented)} if args.memory else {}
    header = (
        f"python {platform.python_version()}, {os.cpu_count()} cores, load before {load_before:.2f}, "
        f"after {os.getloadavg()[0]:.2f}; {args.pairs} alternating pairs per case, {args.clock} time"
    )
    report = table((instrumented, alone), results)
    if memory:
        rows = "\n".join(f"| {name} | {rss:.1f} | {allocated:.1f} |" for name, (rss, allocated) in memory.items())
        report += f"\n\n| one {args.memory:,}-chunk stream adds (MiB) | peak RSS | peak Python allocations |"
        report += f"\n|---|---|---|\n{rows}"
    print(header, report, sep="\n\n")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "pairs.md").write_text(f"{header}\n\n{report}\n", encoding="utf-8")
    document = {"clock": args.clock, "results": results, "pairs_s_per_chunk": raw, "memory_mib": memory}
    (args.out / "pairs.json").write_text(json.dumps(document, indent=1), "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
