"""Tables (plain text for the terminal, Markdown for docs/benchmarks.md) and the goal verdicts.

``python -m bench.report [docs/benchmarks.json] [--markdown]`` re-renders the
tables of a saved run without measuring anything.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

DEFAULT_JSON = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.json"

Row = Sequence[Any]


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _has_ci(ci: Sequence[Any] | None) -> bool:
    return bool(ci) and all(isinstance(v, (int, float)) and not math.isnan(v) for v in ci)  # type: ignore[union-attr]


def _numeric(cell: str) -> bool:
    return bool(cell) and (cell[0].isdigit() or cell[0] in "+-—") and " " not in cell.strip()


class Table:
    def __init__(self, title: str, headers: Sequence[str], digits: Sequence[int] | None = None) -> None:
        self.title = title
        self.headers = list(headers)
        self.digits = list(digits) if digits else [1] * len(headers)
        self.rows: list[list[str]] = []
        self.notes: list[str] = []

    def add(self, *cells: Any) -> None:
        self.rows.append(
            [_fmt(c, d) if not isinstance(c, str) else c for c, d in zip(cells, self.digits, strict=False)]
        )

    def text(self) -> str:
        widths = [
            max(len(h), *(len(r[i]) for r in self.rows)) if self.rows else len(h) for i, h in enumerate(self.headers)
        ]
        lines = [self.title, "  ".join(h.ljust(w) for h, w in zip(self.headers, widths, strict=False))]
        lines.append("  ".join("-" * w for w in widths))
        for row in self.rows:
            lines.append(
                "  ".join(
                    c.rjust(w) if i and _numeric(c) else c.ljust(w)
                    for i, (c, w) in enumerate(zip(row, widths, strict=False))
                )
            )
        lines.extend(f"  {note}" for note in self.notes)
        return "\n".join(lines)

    def markdown(self) -> str:
        lines = [f"**{self.title}**", "", "| " + " | ".join(self.headers) + " |"]
        lines.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(self.headers))) + "|")
        for row in self.rows:
            lines.append("| " + " | ".join(row) + " |")
        if self.notes:
            lines.append("")
            lines.extend(f"{note}" for note in self.notes)
        return "\n".join(lines)


# -- the tables -------------------------------------------------------------------------


def tables(result: dict[str, Any]) -> list[Table]:
    out: list[Table] = []
    e2e = result.get("end_to_end", {})
    memory = e2e.get("memory", {})
    modes = e2e.get("litellm_modes", {})
    for mode, block in e2e.get("sync", {}).items():
        t = Table(
            f"End to end, sync streams, litellm {mode} ({modes.get(mode, '')}); medians, ratio and overhead "
            "paired per round against (1)",
            ["scenario", "chunks", "runs", "ms/stream", "µs/chunk", "+µs/chunk vs (1)", "ratio to (1)",
             "ratio 95% CI", "thread-CPU ratio", "TTFC ms", "+TTFC ms", "drain ms"],
            [0, 0, 0, 1, 1, 1, 3, 3, 3, 2, 2, 1],
        )  # fmt: skip
        for n, per_n in block["lengths"].items():
            for name, s in per_n["scenarios"].items():
                ci = s.get("ratio_ci95") or [None, None]
                t.add(
                    f"({s['number']}) {name}", int(n), s["runs"], s["wall_ms"], s["wall_us_per_chunk"],
                    s.get("overhead_us_per_chunk"), s.get("ratio"),
                    f"{_fmt(ci[0], 3)}–{_fmt(ci[1], 3)}" if _has_ci(ci) else "—",
                    s.get("thread_cpu_ratio"), s["ttfc_ms"], s.get("ttfc_added_ms"), s["drain_ms"],
                )  # fmt: skip
        t.notes.append(
            "thread-CPU ratio: CPU time of the consuming thread (all of crewtrace's work runs there; "
            "litellm's logging pool and litellm-otel's export do not). drain ms: untimed wait after the "
            "stream for litellm's logging thread pool."
        )
        out.append(t)
    conc = e2e.get("async", {})
    if conc:
        t = Table(
            f"Concurrent async streams ({e2e.get('async_chunks_per_stream', '?')} chunks each; "
            "medians, ratio paired per round)",
            ["scenario", "streams", "runs", "wall ms", "chunks/s", "throughput ratio to (1)", "ratio 95% CI"],
            [0, 0, 0, 0, 0, 3, 3],
        )
        for c, block in conc.items():
            for name, s in block["scenarios"].items():
                iqr = s.get("throughput_ratio_ci95") or [None, None]
                t.add(
                    f"({s['number']}) {name}", int(c), s["runs"], s["wall_ms"], s["chunks_per_s"],
                    s.get("throughput_ratio"),
                    f"{_fmt(iqr[0], 3)}–{_fmt(iqr[1], 3)}" if _has_ci(iqr) else "—",
                )  # fmt: skip
        out.append(t)
    iso = result.get("isolation", {})
    llm = iso.get("llm_layer", {})
    if llm:
        t = Table(
            "In isolation: crewtrace's own work per call (pre-built litellm chunks, no HTTP; medians)",
            ["configuration", "chunks", "start µs", "hot path µs/chunk", "end µs",
             "end µs/chunk", "total µs/chunk", "best total", "bridge adds µs/chunk"],
            [0, 0, 1, 2, 0, 2, 2, 2, 2],
        )  # fmt: skip
        for config, per_n in llm.items():
            for n, s in per_n.items():
                base = llm.get("llm", {}).get(n, {}).get("total_per_chunk_us")
                added = s["total_per_chunk_us"] - base if base is not None and config != "llm" else None
                t.add(config, int(n), s["start_us"], s["per_chunk_us"], s["end_us"],
                      s["end_per_chunk_us"], s["total_per_chunk_us"], s.get("total_per_chunk_us_best"),
                      added)  # fmt: skip
        t.notes.append(
            "total = (start + every chunk + end) / chunks; end = completed event: span events, one "
            "time_per_output_chunk point per chunk, usage/cost/duration points, span end. Medians of the "
            "interleaved repeats; best = the fastest repeat. bridge adds = total minus the `llm` row."
        )
        out.append(t)
    ttfc = iso.get("ttfc", {})
    if ttfc:
        t = Table(
            "In isolation: time crewtrace adds before the first chunk reaches the consumer (call start + "
            "first chunk, µs per call)",
            ["configuration", "median µs", "p90 µs", "first call after a full GC µs"],
            [0, 1, 1, 1],
        )
        for config, v in ttfc.items():
            t.add(config, v["median_us"], v["p90_us"], v["cold_median_us"])
        out.append(t)
    bridge = iso.get("bridge_alone", {})
    if bridge:
        t = Table(
            "In isolation: the bridge alone on pre-built events (medians)",
            ["configuration", "chunks", "start µs", "per chunk µs", "end µs", "end µs/chunk", "total µs/chunk"],
            [0, 0, 1, 2, 0, 2, 2],
        )
        for config, per_n in bridge.items():
            for n, s in per_n.items():
                t.add(config, int(n), s["start_us"], s["per_chunk_us"], s["end_us"], s["end_per_chunk_us"],
                      s["total_per_chunk_us"])  # fmt: skip
        out.append(t)
    bus = iso.get("bus", {})
    if bus:
        t = Table("The event bus alone (medians)", ["measure", "value"], [0, 1])
        t.add("emit, no handler (ns)", bus["emit_no_handler_ns"])
        t.add("has_handlers() check (ns)", bus["has_handlers_ns"])
        t.add("emit to one sync handler (ns)", bus["emit_one_handler_ns"])
        t.add("events/s to one sync handler", bus["events_per_s_one_handler"])
        t.add("build one LLMStreamChunkEvent (ns)", bus["chunk_event_build_ns"])
        t.add("emit to one coroutine handler, to flush (ns)", bus["emit_async_handler_ns"])
        t.add("events/s to one coroutine handler", bus["events_per_s_async_handler"])
        out.append(t)
    mem = iso.get("memory", {})
    if mem or memory:
        t = Table(
            "Peak memory of one stream (tracemalloc, KiB above the level before it)",
            ["what", "chunks", "peak KiB", "added vs baseline KiB", "retained after KiB"],
            [0, 0, 1, 1, 1],
        )
        for config, per_n in mem.items():
            for n, s in per_n.items():
                t.add(f"isolation: {config}", int(n), s["peak_kib"], s.get("added_peak_kib"), s["retained_kib"])
        for n, per_name in memory.items():
            base = per_name.get("litellm", {}).get("peak_kib")
            for name, s in per_name.items():
                added = s["peak_kib"] - base if base is not None and name != "litellm" else None
                t.add(f"end to end: {name}", int(n), s["peak_kib"], added, s.get("retained_kib"))
        t.notes.append("isolation baseline: the LLM layer with no listener; end-to-end baseline: bare litellm.")
        out.append(t)
    cand = result.get("candidates", {})
    if cand.get("bridge"):
        t = Table(
            "Candidate fixes, LLM layer + bridge in isolation (prototypes in bench/candidates.py; medians)",
            ["candidate", "chunks", "hot path µs/chunk", "end µs", "total µs/chunk", "vs current", "peak KiB"],
            [0, 0, 2, 0, 2, 0, 1],
        )
        current = cand["bridge"].get("current", {})
        for name, per_n in cand["bridge"].items():
            for n, s in per_n.items():
                ref = current.get(n, {}).get("total_per_chunk_us")
                delta = f"{(s['total_per_chunk_us'] / ref - 1) * 100:+.0f}%" if ref and name != "current" else "—"
                t.add(name, int(n), s["per_chunk_us"], s["end_us"], s["total_per_chunk_us"], delta, s["peak_kib"])
        out.append(t)
    if cand.get("event_build_ns"):
        t = Table("Building one chunk event (ns, medians)", ["variant", "ns"], [0, 0])
        for name, ns in cand["event_build_ns"].items():
            t.add(name, ns)
        out.append(t)
    prof = result.get("profile", {}).get("cprofile")
    if prof:
        t = Table(
            f"cProfile, {prof['config']}: crewtrace functions (µs/chunk scaled to the un-profiled total)",
            ["function", "calls/chunk", "self µs/chunk", "cumulative µs/chunk"],
            [0, 3, 2, 2],
        )
        for f in prof["crewtrace_functions"][:12]:
            t.add(f["function"], f["calls_per_chunk"], f["self_us_per_chunk"], f["cumulative_us_per_chunk"])
        shares = ", ".join(f"{k} {v:.0%}" for k, v in prof["share_by_package"].items())
        t.notes.append(f"self time by package: {shares}")
        out.append(t)
    spy = result.get("profile", {}).get("pyspy")
    if spy and "samples" in spy:
        t = Table(
            f"py-spy, scenario 3 end to end: {spy['samples']} CPU samples of the consuming thread; "
            f"crewtrace's own work {spy['share_crewtrace_own_work']:.1%}",
            ["crewtrace function (inclusive)", "share of samples"],
            [0, 3],
        )
        for name, share in spy["crewtrace_functions_inclusive_share"].items():
            t.add(name, f"{share:.2%}")
        leaves = ", ".join(f"{k} {v:.0%}" for k, v in spy["leaf_share_by_package"].items())
        t.notes.append(f"leaf frames by package: {leaves}")
        out.append(t)
    placement = result.get("server_placement")
    if placement:
        t = Table(
            "Server placement (bare litellm and bridge, 1,000 chunks, litellm quiet, interleaved)",
            ["server", "scenario", "runs", "µs/chunk", "cpu µs/chunk", "ratio bridge/litellm"],
            [0, 0, 0, 1, 1, 3],
        )
        for mode, block in placement.items():
            for name, s in block.items():
                t.add(mode, name, s["runs"], s["wall_us_per_chunk"], s["cpu_us_per_chunk"], s.get("ratio"))
        out.append(t)
    goals = result.get("goals")
    if goals:
        t = Table("Goals", ["goal", "target", "measured", "met"], [0, 0, 0, 0])
        for g in goals:
            met = "unresolved" if g["met"] is None else ("yes" if g["met"] else "NO")
            t.add(g["goal"], g["target"], g["measured"], met)
        out.append(t)
    return out


# -- goal verdicts ------------------------------------------------------------------------


def evaluate_goals(result: dict[str, Any]) -> list[dict[str, Any]]:
    goals: list[dict[str, Any]] = []
    e2e = result.get("end_to_end", {})
    sync_modes = e2e.get("sync", {})
    iso = result.get("isolation", {})
    llm = iso.get("llm_layer", {})

    def goal(name: str, target: str, measured: str, met: bool | None, note: str = "") -> None:
        goals.append({"goal": name, "target": target, "measured": measured, "met": met, "note": note})

    def pct(r: float) -> str:
        return f"{(r - 1) * 100:+.1f}%"

    for mode, block in sync_modes.items():
        sync = block["lengths"]
        ratios = {n: b["scenarios"].get("bridge", {}).get("ratio") for n, b in sync.items()}
        ratios = {n: r for n, r in ratios.items() if r is not None}
        if not ratios:
            continue
        parts = []
        for n, r in ratios.items():
            ci = sync[n]["scenarios"]["bridge"].get("ratio_ci95") or [None, None]
            parts.append(f"{int(n):,}: {pct(r)}" + (f" [CI {pct(ci[0])}…{pct(ci[1])}]" if _has_ci(ci) else ""))
        model = {}
        for n in ratios:
            whole = llm.get("llm+bridge", {}).get(n, {}).get("total_per_chunk_us")
            floor = sync[n]["scenarios"].get("litellm", {}).get("wall_us_per_chunk")
            if whole is not None and floor:
                model[n] = 1 + whole / floor
        text = ", ".join(parts)
        if model:
            text += "; isolation cost / floor: " + ", ".join(f"{int(n):,}: {pct(m)}" for n, m in model.items())
        goal(
            f"bridge: end-to-end time vs bare litellm (sync, litellm {mode})",
            "≤ +3%",
            text,
            max(ratios.values()) <= 1.03,
            "median of per-round paired ratios (crewtrace.LLM + bridge vs bare litellm); the CI shows what "
            "the noise leaves unresolved",
        )
    if llm.get("llm+bridge"):
        added = {n: s["total_per_chunk_us"] - llm["llm"][n]["total_per_chunk_us"] for n, s in llm["llm+bridge"].items()}
        whole = {n: s["total_per_chunk_us"] for n, s in llm["llm+bridge"].items()}
        goal(
            "bridge: µs per chunk in isolation (added to the LLM layer, end amortised)",
            "≤ 15 µs",
            ", ".join(f"{int(n):,}: {v:.1f}" for n, v in added.items())
            + " (whole crewtrace: "
            + ", ".join(f"{v:.1f}" for v in whole.values())
            + ")",
            max(added.values()) <= 15,
        )
        lengths = sorted(llm["llm+bridge"], key=int)
        if len(lengths) >= 2:
            lo, hi = lengths[0], lengths[-1]
            growth = whole[hi] / whole[lo]
            hot = llm["llm+bridge"][hi]["per_chunk_us"] / llm["llm+bridge"][lo]["per_chunk_us"]
            goal(
                f"cost per chunk does not grow ({int(hi):,} vs {int(lo):,} chunks, isolation)",
                "within 10%",
                f"total {pct(growth)}, hot path {pct(hot)}",
                growth <= 1.10,
                "total includes the per-call start and end, amortised",
            )
    ttfc_all = iso.get("ttfc", {})
    ttfc_iso = ttfc_all.get("llm+bridge")
    e2e_parts = []
    e2e_missed = False
    e2e_above = False
    for mode, block in sync_modes.items():
        pooled = block.get("ttfc_added_pooled_ms", {}).get("bridge")
        ci = block.get("ttfc_added_pooled_ci95_ms", {}).get("bridge") or [None, None]
        if pooled is None:
            continue
        cis = f" [CI {ci[0]:+.2f}…{ci[1]:+.2f}]" if _has_ci(ci) else ""
        e2e_parts.append(f"end to end ({mode}) {pooled:+.2f} ms{cis}")
        e2e_missed = e2e_missed or (_has_ci(ci) and ci[0] > 0.2)
        e2e_above = e2e_above or pooled > 0.2
    if ttfc_iso or e2e_parts:
        parts = []
        if ttfc_iso:
            parts.append(
                f"isolation, warm {ttfc_iso['median_us'] / 1000:.3f} ms (p90 {ttfc_iso['p90_us'] / 1000:.3f}), "
                f"first call after a full GC {ttfc_iso['cold_median_us'] / 1000:.3f} ms"
            )
            base = ttfc_all.get("llm")
            if base:
                parts[-1] += f" (LLM layer alone: {base['median_us'] / 1000:.3f} / {base['cold_median_us'] / 1000:.3f})"
        parts.extend(e2e_parts)
        if (ttfc_iso and ttfc_iso["median_us"] > 200) or e2e_missed:
            met: bool | None = False
        elif e2e_above or (ttfc_iso and ttfc_iso["cold_median_us"] > 200):
            met = None
        else:
            met = True
        goal(
            "time to first chunk added",
            "≤ 0.2 ms",
            "; ".join(parts),
            met,
            "met when warm; cold (caches flushed, as after the full GC before each end-to-end run) and "
            "end to end it is above 0.2 ms or unresolved",
        )
    mem = iso.get("memory", {}).get("llm+bridge", {})
    if len(mem) >= 2:
        lengths = sorted(mem, key=int)
        lo, hi = lengths[-2], lengths[-1]
        slope = (mem[hi]["added_peak_kib"] - mem[lo]["added_peak_kib"]) * 1024 / (int(hi) - int(lo))
        goal(
            "memory for a stream is bounded (bridge's added peak, isolation)",
            "does not grow with length",
            ", ".join(f"{int(n):,}: {mem[n]['added_peak_kib']:.0f} KiB" for n in lengths)
            + f"; slope {slope:.1f} B/chunk",
            slope < 1.0,
            "the O(n) part is ChunkTimeline.gaps (8 B/chunk), kept until the stream ends",
        )
    conc = e2e.get("async", {})
    if conc:
        top = max(conc, key=int)
        s = conc[top]["scenarios"].get("bridge", {})
        ratio = s.get("throughput_ratio")
        if ratio is not None:
            ci = s.get("throughput_ratio_ci95") or [None, None]
            cis = f" [CI {ci[0]:.1%}…{ci[1]:.1%}]" if _has_ci(ci) else ""
            goal(
                f"throughput with {int(top)} concurrent streams vs uninstrumented",
                "≥ 95%",
                f"{ratio:.1%}{cis}",
                ratio >= 0.95,
            )
    for mode, block in sync_modes.items():
        peers: dict[str, list[tuple[str, float, float]]] = {}
        for n, b in block["lengths"].items():
            mine = b["scenarios"].get("bridge", {}).get("ratio")
            for peer in ("openinference", "litellm-otel"):
                theirs = b["scenarios"].get(peer, {}).get("ratio")
                if mine is not None and theirs is not None:
                    peers.setdefault(peer, []).append((n, mine, theirs))
        for peer, rows in peers.items():
            goal(
                f"cheaper than {peer} (sync, litellm {mode}; ratio to bare litellm)",
                "bridge ≤ peer",
                ", ".join(f"{int(n):,}: {m:.3f} vs {t:.3f}" for n, m, t in rows),
                all(m <= t for _, m, t in rows),
                "the bridge's ratio includes crewtrace.LLM itself; the peers wrap bare litellm",
            )
    return goals


def render(result: dict[str, Any], markdown: bool = False) -> str:
    parts = [t.markdown() if markdown else t.text() for t in tables(result)]
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("json", nargs="?", default=str(DEFAULT_JSON))
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    result = json.loads(Path(args.json).read_text())
    result["goals"] = evaluate_goals(result)
    sys.stdout.write(render(result, args.markdown) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
