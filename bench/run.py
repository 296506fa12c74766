"""crewtrace's benchmark: ``python -m bench.run`` (full, ~10-15 min on 2 cores) or ``--quick``.

Prints the tables and writes the same figures as JSON (``docs/benchmarks.json``
unless ``--out``). Not part of the test suite; see docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "src"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from bench import candidates, env, measure, micro, profiling, report, scenarios  # noqa: E402
from bench.measure import (  # noqa: E402
    PeakMemory,
    Sample,
    bootstrap_median_ci,
    interleave,
    median,
    paired_delta_ms,
    paired_delta_per_chunk_us,
    paired_ratio,
    paired_ratio_iqr,
    quartiles,
    summarize,
    to_jsonable,
)
from bench.scenarios import Harness  # noqa: E402
from bench.server import BenchServer  # noqa: E402

DEFAULT_OUT = ROOT / "docs" / "benchmarks.json"
ALL_SCENARIOS = ["litellm", "crewtrace", "bridge", "bridge+listener", "openinference", "litellm-otel"]
ASYNC_SCENARIOS = ["litellm", "crewtrace", "bridge"]
BASELINE = "litellm"


@dataclass
class Plan:
    lengths: list[int]
    rounds: dict[int, int]  # sync interleaved rounds per stream length, litellm as shipped
    quiet_rounds: dict[int, int]  # the same with litellm's per-chunk logging off
    memory_lengths: list[int]
    concurrency: list[int]
    async_chunks: int
    async_rounds: dict[int, int]
    micro_repeats: int
    placement_rounds: int  # 0: skip the in-process vs subprocess server comparison
    pyspy: bool
    profile_streams: int = 20
    litellm_modes: list[str] = field(default_factory=lambda: ["quiet", "default"])
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def full(cls) -> Plan:
        return cls(
            lengths=[100, 1000, 10000],
            rounds={100: 15, 1000: 7, 10000: 3},
            quiet_rounds={100: 11, 1000: 5, 10000: 3},
            memory_lengths=[100, 1000, 10000],
            concurrency=[1, 10, 100],
            async_chunks=200,
            async_rounds={1: 15, 10: 9, 100: 5},
            micro_repeats=7,
            placement_rounds=5,
            pyspy=True,
        )

    @classmethod
    def quick(cls) -> Plan:
        return cls(
            lengths=[100, 1000],
            rounds={100: 5, 1000: 2},
            quiet_rounds={100: 5, 1000: 2},
            memory_lengths=[100],
            concurrency=[1, 10],
            async_chunks=100,
            async_rounds={1: 3, 10: 3},
            micro_repeats=3,
            placement_rounds=0,
            pyspy=False,
            profile_streams=5,
        )


class Progress:
    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def __call__(self, message: str) -> None:
        elapsed = time.monotonic() - self.t0
        sys.stderr.write(f"[{elapsed:6.1f}s] {message}\n")
        sys.stderr.flush()


def _number(name: str) -> int:
    return next(cls.number for cls in scenarios.ALL if cls.name == name)


def analyse_sync(samples: dict[str, list[Sample]]) -> dict[str, Any]:
    base = samples[BASELINE]
    out: dict[str, Any] = {}
    for name, runs in samples.items():
        s = summarize(runs)
        s["number"] = _number(name)
        if name != BASELINE:
            s["ratio"] = paired_ratio(runs, base)
            s["ratio_iqr"] = list(paired_ratio_iqr(runs, base))
            s["ratio_ci95"] = list(
                bootstrap_median_ci([r.wall_ns / b.wall_ns for r, b in zip(runs, base, strict=False)])
            )
            s["cpu_ratio"] = paired_ratio(runs, base, "cpu_ns")
            s["thread_cpu_ratio"] = paired_ratio(runs, base, "thread_cpu_ns")
            s["thread_cpu_overhead_us_per_chunk"] = paired_delta_per_chunk_us(runs, base, "thread_cpu_ns")
            s["overhead_us_per_chunk"] = paired_delta_per_chunk_us(runs, base)
            s["ttfc_added_ms"] = paired_delta_ms(runs, base, "ttfc_ns")
        out[name] = s
    return {"scenarios": out, "raw": {name: [to_jsonable(r) for r in runs] for name, runs in samples.items()}}


def analyse_async(samples: dict[str, list[Sample]]) -> dict[str, Any]:
    base = samples[BASELINE]
    out: dict[str, Any] = {}
    for name, runs in samples.items():
        s = summarize(runs)
        s.pop("ttfc_ms", None)
        s["number"] = _number(name)
        if name != BASELINE:
            # throughput ratio = baseline time / this time, paired per round
            ratios = [b.wall_ns / r.wall_ns for r, b in zip(runs, base, strict=False)]
            s["throughput_ratio"] = median(ratios)
            s["throughput_ratio_iqr"] = list(quartiles(ratios))
            s["throughput_ratio_ci95"] = list(bootstrap_median_ci(ratios))
        out[name] = s
    return {"scenarios": out, "raw": {name: [to_jsonable(r) for r in runs] for name, runs in samples.items()}}


def run_isolation(plan: Plan, log: Progress) -> dict[str, Any]:
    log("isolation: event bus")
    bus = micro.bus_alone(plan.micro_repeats)
    log("isolation: LLM layer (+ bridge) on pre-built litellm chunks")
    llm = micro.llm_layer(plan.lengths, plan.micro_repeats, log)
    bridge = micro.bridge_alone(plan.lengths, plan.micro_repeats, log)
    log("isolation: time to first chunk (start + first chunk, per call)")
    ttfc = micro.ttfc(plan.micro_repeats)
    log("isolation: memory")
    memory = micro.memory(plan.lengths)
    return {"bus": bus, "llm_layer": llm, "bridge_alone": bridge, "ttfc": ttfc, "memory": memory}


LITELLM_MODES = {
    "default": "litellm as shipped: per-chunk success logging on its thread pool",
    "quiet": "litellm.disable_streaming_logging = True: a lower, steadier floor (ratios are upper bounds)",
}


def _set_litellm_mode(mode: str) -> bool:
    previous = bool(scenarios.litellm.disable_streaming_logging)
    scenarios.litellm.disable_streaming_logging = mode == "quiet"
    return previous


def run_sync_block(plan: Plan, harness: Harness, mode: str, log: Progress, first: bool) -> dict[str, Any]:
    previous = _set_litellm_mode(mode)
    try:
        sync: dict[str, Any] = {}
        rounds = plan.rounds if mode == "default" else plan.quiet_rounds
        for i, n in enumerate(plan.lengths):
            log(f"end to end, sync, litellm {mode}, {n} chunks: {len(harness.names)} scenarios x {rounds[n]} rounds")
            samples = interleave(
                harness.names,
                lambda name, n=n: harness.run_sync(name, n),
                rounds=rounds[n],
                warmup_rounds=1 if (i == 0 and first) else 0,
                progress=lambda label, n=n: log(f"  sync {mode} {n}: {label}"),
            )
            sync[str(n)] = analyse_sync(samples)
    finally:
        _set_litellm_mode("quiet" if previous else "default")
    pooled: dict[str, float] = {}
    pooled_ci: dict[str, list[float]] = {}
    for name in harness.names:
        if name == BASELINE:
            continue
        diffs = []
        for block in sync.values():
            runs, base = block["raw"][name], block["raw"][BASELINE]
            diffs += [(r["ttfc_ns"] - b["ttfc_ns"]) / 1e6 for r, b in zip(runs, base, strict=False)]
        pooled[name] = median(diffs)
        pooled_ci[name] = list(bootstrap_median_ci(diffs))
    return {"lengths": sync, "ttfc_added_pooled_ms": pooled, "ttfc_added_pooled_ci95_ms": pooled_ci}


def run_end_to_end(plan: Plan, names: list[str], server_mode: str, log: Progress, skip: set[str]) -> dict[str, Any]:
    result: dict[str, Any] = {"server": server_mode, "litellm_modes": LITELLM_MODES}
    with BenchServer(server_mode) as server:
        harness = Harness(server.base_url, names)
        result["skipped_scenarios"] = harness.skipped
        for name, why in harness.skipped.items():
            log(f"skipping {name}: {why}")
        try:
            if "sync" not in skip:
                result["sync"] = {}
                for i, mode in enumerate(plan.litellm_modes):
                    result["sync"][mode] = run_sync_block(plan, harness, mode, log, first=i == 0)
            if "memory" not in skip:
                memory: dict[str, Any] = {}
                previous = _set_litellm_mode("quiet")
                try:
                    for n in plan.memory_lengths:
                        log(f"end to end, peak memory (tracemalloc, litellm quiet), {n} chunks")
                        for name in harness.names:
                            with PeakMemory() as mem:
                                harness.run_sync(name, n)
                            memory.setdefault(str(n), {})[name] = {
                                "peak_kib": mem.peak_bytes / 1024,
                                "retained_kib": mem.retained_bytes / 1024,
                            }
                finally:
                    _set_litellm_mode("quiet" if previous else "default")
                result["memory"] = memory
            if "async" not in skip:
                conc: dict[str, Any] = {}
                async_names = [n for n in ASYNC_SCENARIOS if n in harness.names]
                for i, c in enumerate(plan.concurrency):
                    log(f"end to end, async, {c} concurrent streams of {plan.async_chunks} chunks")
                    samples = interleave(
                        async_names,
                        lambda name, c=c: harness.run_async(name, plan.async_chunks, c),
                        rounds=plan.async_rounds[c],
                        warmup_rounds=1 if i == 0 else 0,
                        progress=lambda label, c=c: log(f"  async x{c}: {label}"),
                    )
                    conc[str(c)] = analyse_async(samples)
                result["async"] = conc
                result["async_chunks_per_stream"] = plan.async_chunks
        finally:
            harness.close()
    return result


def run_placement(plan: Plan, log: Progress) -> dict[str, Any]:
    """The same two scenarios against an in-process and a subprocess server, interleaved."""
    log(f"server placement: in-process vs subprocess, {plan.placement_rounds} rounds")
    n = 1000
    previous = _set_litellm_mode("quiet")  # the steadier floor, so placement effects are visible
    with BenchServer("subprocess") as sub, BenchServer("inproc") as inproc:
        harnesses = {
            "subprocess": Harness(sub.base_url, ["litellm", "bridge"]),
            "inproc": Harness(inproc.base_url, ["litellm", "bridge"]),
        }
        try:
            keys = [f"{mode}/{name}" for mode in harnesses for name in ("litellm", "bridge")]
            samples = interleave(
                keys,
                lambda key: harnesses[key.split("/")[0]].run_sync(key.split("/")[1], n),
                rounds=plan.placement_rounds,
                warmup_rounds=1,
            )
        finally:
            for h in harnesses.values():
                h.close()
            _set_litellm_mode("quiet" if previous else "default")
    out: dict[str, Any] = {}
    for mode in harnesses:
        base = samples[f"{mode}/litellm"]
        for name in ("litellm", "bridge"):
            runs = samples[f"{mode}/{name}"]
            s = summarize(runs)
            if name != "litellm":
                s["ratio"] = paired_ratio(runs, base)
            out.setdefault(mode, {})[name] = s
    return out


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke run: short streams, few rounds (~2 min)")
    parser.add_argument("--out", help="JSON output (default: docs/benchmarks.json; --quick writes none unless given)")
    parser.add_argument("--no-write", action="store_true", help="print only; write no JSON")
    parser.add_argument("--markdown", action="store_true", help="print Markdown tables (for docs/benchmarks.md)")
    parser.add_argument(
        "--server",
        choices=["subprocess", "inproc"],
        default="subprocess",
        help="where the local OpenAI-compatible server runs (default: subprocess, own GIL)",
    )
    parser.add_argument("--scenarios", default=",".join(ALL_SCENARIOS), help="comma-separated subset")
    parser.add_argument("--lengths", help="comma-separated stream lengths, e.g. 100,1000")
    parser.add_argument("--concurrency", help="comma-separated concurrency levels, e.g. 1,10,100")
    parser.add_argument("--async-chunks", type=int, help="chunks per stream in the concurrency runs")
    parser.add_argument("--rounds-scale", type=float, default=1.0, help="multiply every round count")
    parser.add_argument(
        "--litellm-mode",
        choices=["both", "default", "quiet"],
        default="both",
        help="sync floor: litellm as shipped, with its per-chunk logging off, or both (default)",
    )
    parser.add_argument("--span-processor", choices=["batch", "simple"], default="batch")
    parser.add_argument("--no-gc", action="store_true", help="disable the garbage collector during measured runs")
    parser.add_argument(
        "--skip", default="", help="comma-separated: isolation,candidates,sync,memory,async,placement,profile"
    )
    return parser.parse_args(argv)


def build_plan(args: argparse.Namespace) -> Plan:
    plan = Plan.quick() if args.quick else Plan.full()
    if args.lengths:
        plan.lengths = [int(x) for x in args.lengths.split(",")]
        plan.memory_lengths = [n for n in plan.memory_lengths if n in plan.lengths] or plan.lengths[:1]
    if args.concurrency:
        plan.concurrency = [int(x) for x in args.concurrency.split(",")]
    if args.async_chunks:
        plan.async_chunks = args.async_chunks

    def rounds_for(n: int, table: dict[int, int], default_work: int) -> int:
        base = table.get(n) or max(2, round(default_work / n))
        return max(2, round(base * args.rounds_scale))

    plan.rounds = {n: rounds_for(n, plan.rounds, 9000) for n in plan.lengths}
    plan.quiet_rounds = {n: rounds_for(n, plan.quiet_rounds, 5000) for n in plan.lengths}
    if args.litellm_mode != "both":
        plan.litellm_modes = [args.litellm_mode]
    plan.async_rounds = {c: rounds_for(c, plan.async_rounds, 90) for c in plan.concurrency}
    plan.micro_repeats = max(2, round(plan.micro_repeats * args.rounds_scale))
    return plan


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    logging.getLogger("LiteLLM").setLevel(logging.ERROR)
    measure.GC_DURING_RUNS = not args.no_gc
    scenarios.SPAN_PROCESSOR = args.span_processor
    plan = build_plan(args)
    skip = {s for s in args.skip.split(",") if s}
    names = [n for n in args.scenarios.split(",") if n]
    unknown = set(names) - set(ALL_SCENARIOS)
    if unknown or BASELINE not in names:
        sys.stderr.write(f"--scenarios must include {BASELINE!r} and only {ALL_SCENARIOS}\n")
        return 2
    log = Progress()
    started = dt.datetime.now(dt.timezone.utc)
    command = "python -m bench.run" + (
        "" if argv is None and len(sys.argv) <= 1 else " " + " ".join(argv or sys.argv[1:])
    )
    result: dict[str, Any] = {
        "meta": {
            "command": command,
            "mode": "quick" if args.quick else "full",
            "started_utc": started.isoformat(timespec="seconds"),
            "machine": env.describe(),
            "settings": {
                "server": args.server,
                "span_processor": args.span_processor,
                "gc_during_runs": not args.no_gc,
                "plan": {k: v for k, v in vars(plan).items() if k != "extra"},
                "model": scenarios.MODEL,
            },
        }
    }
    log(f"crewtrace bench ({result['meta']['mode']}): plan {result['meta']['settings']['plan']}")
    if "isolation" not in skip:
        result["isolation"] = run_isolation(plan, log)
    if "candidates" not in skip:
        log("candidate fixes, in isolation")
        result["candidates"] = {
            "event_build_ns": candidates.event_build_variants(max(3, plan.micro_repeats // 2)),
            "bridge": candidates.bridge_candidates(plan.lengths, max(2, plan.micro_repeats // 2 + 1), log),
        }
    if not {"sync", "memory", "async"} <= skip:
        result["end_to_end"] = run_end_to_end(plan, names, args.server, log, skip)
    if plan.placement_rounds and "placement" not in skip:
        result["server_placement"] = run_placement(plan, log)
    if "profile" not in skip:
        log("profile: cProfile of scenario 3 in isolation")
        unprofiled = result.get("isolation", {}).get("llm_layer", {}).get("llm+bridge", {}).get("1000", {})
        profile: dict[str, Any] = {
            "cprofile": profiling.cprofile_isolation(1000, plan.profile_streams, unprofiled.get("total_per_chunk_us"))
        }
        if plan.pyspy:
            log("profile: py-spy of scenario 3 end to end (1,000-chunk streams)")
            profile["pyspy"] = profiling.pyspy_end_to_end(1000, 10)
        result["profile"] = profile
    result["goals"] = report.evaluate_goals(result)
    result["meta"]["duration_s"] = round(time.monotonic() - log.t0, 1)
    result["meta"]["load_average_at_end"] = os.getloadavg()
    log(f"done in {result['meta']['duration_s']} s")
    sys.stdout.write(report.render(result, markdown=args.markdown) + "\n")
    if args.quick and not args.out:
        log("quick run: no JSON written (pass --out FILE to keep it); docs/benchmarks.json is for full runs")
    elif not args.no_write:
        out = Path(args.out or DEFAULT_OUT)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(to_jsonable(result), indent=1) + "\n")
        log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
