"""Instructions per chunk (callgrind): what a chunk costs each scenario, a count load cannot move.

    python -m bench.instructions [--scenarios crewai,crewai+listener,crewai+adapter,
                                  crewai+crewtrace-nometrics,crewai+crewtrace]
                                 [--chunks 200,1200] [--modes sync,async] [--concurrent 1]
                                 [--out bench/results/instructions]

Each scenario runs in a process of its own under valgrind's callgrind (``bench.callgrind``).
Per case, after two warm-up kickoffs, it counts the instructions of every thread of the
process through one kickoff of the fewer chunks and one of the more (``--concurrent``
kickoffs at once, in async mode), and reports the difference per chunk: the marginal cost
of a chunk, what a kickoff costs once cancelled out. The first scenario is the baseline the
others are compared with. Instructions are not time (cache misses, branch mispredictions),
but they say exactly where per-chunk work is, which the CPU-time pairs of ``bench.pairs``
cannot below ±5 % on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

from bench.callgrind import Callgrind, Child
from bench.run import timed
from bench.scenarios import available
from bench.server import BenchServer

Case = tuple[str, int]  # (mode, concurrent kickoffs)


def child_main(name: str, base_url: str) -> None:
    """A scenario's process: one ``timed`` run per line (``mode chunks concurrent``), answered when done."""
    (scenario,) = available(base_url, [name])
    print(json.dumps({"ready": name}), flush=True)
    for line in sys.stdin:
        mode, n, concurrent = line.split()
        timed(scenario, mode, int(n), int(concurrent))
        print(json.dumps({"done": line.strip()}), flush=True)
    scenario.close()


def per_chunk(callgrind: Callgrind, child: Child, case: Case, chunks: tuple[int, int]) -> float:
    """Instructions of every thread per chunk, between a kickoff of ``chunks[0]`` and one of ``chunks[1]``."""
    mode, concurrent = case
    for _ in range(2):
        child.ask(f"{mode} {chunks[0]} {concurrent}")  # warm-up: this mode's clients, crews and caches

    def kickoff(n: int) -> int:
        return sum(callgrind.count(child.process.pid, lambda: child.ask(f"{mode} {n} {concurrent}")).values())

    fewer, more = kickoff(chunks[0]), kickoff(chunks[1])
    return (more - fewer) / ((chunks[1] - chunks[0]) * concurrent)


def table(results: dict[str, dict[str, float]]) -> str:
    lines = ["| case | scenario | instructions per chunk | ratio | added per chunk |", "|---|---|---|---|---|"]
    for case, counts in results.items():
        base = next(iter(counts.values()))
        for name, count in counts.items():
            lines.append(f"| {case} | {name} | {count:,.0f} | {count / base:.3f} | {count - base:+,.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scenarios", default="crewai,crewai+listener,crewai+adapter,crewai+crewtrace-nometrics,crewai+crewtrace"
    )
    parser.add_argument("--chunks", default="200,1200", help="the two kickoffs' chunks (per kickoff)")
    parser.add_argument("--modes", default="sync,async")
    parser.add_argument("--concurrent", type=int, default=1, help="kickoffs at once (async mode only)")
    parser.add_argument("--out", type=Path, default=Path("bench/results/instructions"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child_main(args.child, args.url)
        return 0
    fewer, more = (int(n) for n in args.chunks.split(","))
    if not 0 < fewer < more:
        parser.error(f"--chunks takes two counts, the fewer first: got {args.chunks}")
    names = args.scenarios.split(",")
    cases: list[Case] = [(mode, 1 if mode == "sync" else args.concurrent) for mode in args.modes.split(",")]
    os.environ.setdefault("PYTHONHASHSEED", "0")  # the children's: the same dict and set layouts every run
    callgrind = Callgrind()
    results: dict[str, dict[str, float]] = {}
    with BenchServer() as server:
        children = {
            name: Child("bench.instructions", ["--child", name, "--url", server.base_url], callgrind.prefix)
            for name in names
        }
        try:
            for child in children.values():  # start-up under valgrind takes a while: all at once
                child.ask()
            for case in cases:
                mode, concurrent = case
                label = f"{mode} {fewer:,}→{more:,}" + (f", {concurrent} at once" if concurrent > 1 else "")
                results[label] = {}
                for name, child in children.items():
                    results[label][name] = per_chunk(callgrind, child, case, (fewer, more))
                    print(f"{label}: {name} {results[label][name]:,.0f}", flush=True)
        finally:
            for child in children.values():
                child.close()
            callgrind.cleanup()
    header = f"python {platform.python_version()}, instructions of every thread per chunk (callgrind)"
    report = table(results)
    print(header, report, sep="\n\n")
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "_".join(f"{mode}x{concurrent}" for mode, concurrent in cases)
    (args.out / f"{stem}.md").write_text(f"{header}\n\n{report}\n", encoding="utf-8")
    (args.out / f"{stem}.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
