"""Where a CrewAI kickoff's time goes under crewtrace, by layer, from a py-spy profile.

    py-spy record --format raw -r 400 -o bench/results/profile.txt -- \\
        python -m bench.profile_crewai run --chunks 10000 --kickoffs 8
    python -m bench.profile_crewai summarize bench/results/profile.txt [--alone bench/results/alone.txt]

``run`` streams ``--kickoffs`` CrewAI kickoffs of ``--chunks`` chunks each under ``instrument_crewai``
and the bridge (``--alone``: without them). ``summarize`` sorts py-spy's samples (collapsed stacks,
every thread of the process; the bench server is another process) by the innermost frame of crewtrace
or of the application (:func:`layer`) into: the SDK's metric points the bridge records
(``Histogram.record`` under crewtrace), the rest of crewtrace (the adapter, the bridge, spans, the
SDK's other work for them), everything else (CrewAI, the OpenAI SDK, httpx, asyncio), and, left out
of the shares, the process's start (imports) and blocked threads (idle pool workers, a loop's
``select``). ``--alone``: a profile of the same kickoffs run with ``--alone``, to show what each layer
adds over CrewAI alone, as a share of its busy samples (CrewAI's own code included: the same calls
can cost more beside an instrumentation).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

_CREWTRACE = "(crewtrace/"  # py-spy names frames by their path below site-packages (or the source root)
_RECORD = "Histogram.record (metrics/_internal/instrument.py"  # py-spy shortens the SDK's paths
_IMPORT = "(<frozen importlib._bootstrap>"
_APPLICATION = ("(crewai/", "(openai/", "(httpx/", "(httpcore/", "(h11/", "(anyio/", "(bench/")
_WAITS = ("select (selectors.py", "Condition.wait (threading.py", "Event.wait (threading.py", "_worker (concurrent/")
"""Innermost frames of threads blocked (py-spy samples them too): a pool's idle workers, a loop's select."""
_IDLE = "waiting (blocked threads)"
_BUSY_NOT = ("startup (imports)", _IDLE)


def run(chunks: int, kickoffs: int, alone: bool) -> None:
    from bench.crewai import CrewAICrewtrace, CrewAIDefault
    from bench.server import BenchServer

    with BenchServer() as server:
        scenario = CrewAIDefault(server.base_url) if alone else CrewAICrewtrace(server.base_url)
        scenario.activate()
        try:
            for _ in range(kickoffs):
                if scenario.stream(chunks) != chunks:
                    raise RuntimeError("a kickoff lost chunks")
        finally:
            scenario.deactivate()
            scenario.close()


def layer(stack: str) -> str:
    """Whose work a sample is: the innermost frame of crewtrace's or of the application's code owns it.

    Libraries both call (pydantic, the OpenTelemetry SDK, the standard library) count for their caller; a
    crewtrace frame that merely wraps CrewAI's LLM call (its entry-point hook) does not own what CrewAI
    does inside it. Imports and blocked threads count apart.
    """
    if _IMPORT in stack:
        return "startup (imports)"
    frames = stack.split(";")
    if any(wait in frames[-1] for wait in _WAITS):
        return _IDLE
    for depth in range(len(frames) - 1, -1, -1):
        frame = frames[depth]
        if _CREWTRACE in frame:
            inner = ";".join(frames[depth:])
            return "SDK metric points the bridge records" if _RECORD in inner else "crewtrace, the rest"
        if any(owner in frame for owner in _APPLICATION):
            return "CrewAI and the rest"
    return "CrewAI and the rest"


def summarize(path: Path) -> dict[str, int]:
    samples: Counter[str] = Counter()
    for line in path.read_text(encoding="utf-8").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            samples[layer(stack)] += int(count)
    return dict(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_crewai", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    running = commands.add_parser("run")
    running.add_argument("--chunks", type=int, default=10_000)
    running.add_argument("--kickoffs", type=int, default=8)
    running.add_argument("--alone", action="store_true")
    summarizing = commands.add_parser("summarize")
    summarizing.add_argument("profile", type=Path)
    summarizing.add_argument("--alone", type=Path, help="the same kickoffs' profile without crewtrace, to compare")
    args = parser.parse_args(argv)
    if args.command == "run":
        run(args.chunks, args.kickoffs, args.alone)
        return 0
    samples = summarize(args.profile)
    alone = summarize(args.alone) if args.alone else {}
    busy = sum(count for name, count in samples.items() if name not in _BUSY_NOT) or 1
    busy_alone = sum(count for name, count in alone.items() if name not in _BUSY_NOT) or 1
    header = "| where | samples | share of the busy samples |"
    if alone:
        header += " alone | added, share of alone's busy samples |"
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    for name, count in sorted(samples.items(), key=lambda item: -item[1]):
        share = "" if name in _BUSY_NOT else f"{count / busy:.1%}"
        row = f"| {name} | {count} | {share} |"
        if alone:
            before = alone.get(name, 0)
            added = "" if name in _BUSY_NOT else f"{(count - before) / busy_alone:+.1%}"
            row += f" {before} | {added} |"
        print(row)
    if alone:
        print(f"\nbusy samples: {busy} against {busy_alone} alone ({busy / busy_alone:.3f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
