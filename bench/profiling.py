"""Where scenario 3's per-chunk time goes: cProfile in isolation, py-spy end to end.

cProfile runs the LLM layer + bridge on pre-built chunks (``micro`` config
``llm+bridge``) and attributes time to functions; cProfile inflates every
call, so its figures are scaled to the un-profiled total measured by
``micro``. py-spy (optional, ``pip install py-spy``) samples a real
end-to-end run in a child process and says which share of all samples has
a crewtrace frame on the stack, and which crewtrace functions those are.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from bench.micro import _record_one, _setup, raw_chunks

ROOT = Path(__file__).resolve().parent.parent
SRC = str(ROOT / "src" / "crewtrace")


def _package(filename: str) -> str:
    if filename.startswith(SRC):
        return "crewtrace"
    for name in ("opentelemetry", "pydantic_core", "pydantic", "litellm", "openinference", "httpx", "openai"):
        if f"/{name}/" in filename:
            return name
    if filename.startswith(("~", "<")):
        return "builtins"
    return "stdlib/other"


def _short(func: tuple[str, int, str]) -> str:
    filename, line, name = func
    if filename.startswith(SRC):
        filename = "crewtrace/" + filename[len(SRC) + 1 :]
    elif "site-packages/" in filename:
        filename = filename.split("site-packages/", 1)[1]
    return f"{filename}:{line}({name})"


def cprofile_isolation(
    n: int = 1000, streams: int = 20, unprofiled_us_per_chunk: float | None = None
) -> dict[str, Any]:
    """Profile ``streams`` calls of ``n`` chunks through LLM layer + bridge."""
    setup = _setup("llm+bridge")
    raws = raw_chunks(n)
    messages = [{"role": "user", "content": "bench"}]
    for _ in range(3):
        _record_one(setup, raws, messages)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(streams):
        _record_one(setup, raws, messages)
    profiler.disable()
    setup.close()
    stats = pstats.Stats(profiler)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    chunks = n * streams
    total_tt = sum(v[2] for v in raw.values())
    scale = 1.0
    if unprofiled_us_per_chunk:
        scale = unprofiled_us_per_chunk / (total_tt * 1e6 / chunks)
    by_package: Counter[str] = Counter()
    for func, (_cc, _nc, tt, _ct, _callers) in raw.items():
        by_package[_package(func[0])] += tt
    crewtrace_funcs = []
    for func, (_cc, nc, tt, ct, _callers) in raw.items():
        if func[0].startswith(SRC):
            crewtrace_funcs.append(
                {
                    "function": _short(func),
                    "calls_per_chunk": nc / chunks,
                    "self_us_per_chunk": tt * 1e6 / chunks * scale,
                    "cumulative_us_per_chunk": ct * 1e6 / chunks * scale,
                }
            )
    crewtrace_funcs.sort(key=lambda f: f["cumulative_us_per_chunk"], reverse=True)
    top_self = sorted(raw.items(), key=lambda kv: kv[1][2], reverse=True)[:15]
    return {
        "config": "llm+bridge (CallRecorder + OTelBridge on pre-built litellm chunks)",
        "chunks": chunks,
        "profiled_us_per_chunk": total_tt * 1e6 / chunks,
        "scale_to_unprofiled": scale,
        "share_by_package": {k: v / total_tt for k, v in by_package.most_common()},
        "crewtrace_functions": crewtrace_funcs[:20],
        "top_self_time": [
            {
                "function": _short(func),
                "calls_per_chunk": v[1] / chunks,
                "self_us_per_chunk": v[2] * 1e6 / chunks * scale,
            }
            for func, v in top_self
        ],
    }


# -- py-spy, end to end -------------------------------------------------------------------

_TARGET = """
import sys
sys.path.insert(0, {root!r})
from bench.server import BenchServer
from bench.scenarios import Harness
with BenchServer() as server:
    harness = Harness(server.base_url, ["bridge"])
    for _ in range({streams}):
        harness.run_sync("bridge", {n})
    harness.close()
"""


def pyspy_end_to_end(n: int = 1000, streams: int = 10, rate: int = 500) -> dict[str, Any]:
    """Sample scenario 3 end to end with py-spy; None-ish result if py-spy is missing or not permitted."""
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not os.path.exists(pyspy):
        return {"skipped": "py-spy not installed (pip install py-spy)"}
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "target.py"
        script.write_text(_TARGET.format(root=str(ROOT), streams=streams, n=n))
        out = Path(tmp) / "stacks.txt"
        proc = subprocess.run(
            [pyspy, "record", "--format", "raw", "--rate", str(rate), "--output", str(out), "--nonblocking",
             "--", sys.executable, str(script)],
            capture_output=True, text=True, cwd=ROOT, timeout=600,
        )  # fmt: skip
        if proc.returncode != 0 or not out.exists():
            return {"skipped": f"py-spy failed (exit {proc.returncode}): {proc.stderr.strip()[-300:]}"}
        lines = out.read_text().splitlines()
    return _collapse(lines)


_STREAM_FRAMES = ("LLM._stream ", "LLM._astream ", "LLM.stream ", "LLM.astream ")


def _collapse(lines: list[str]) -> dict[str, Any]:
    """Folded stacks ('frame;frame;... count') -> shares of the measured runs' samples.

    Only stacks under ``Harness.run_sync`` count (the consuming thread, import
    and set-up excluded); py-spy drops idle samples, so shares are of CPU
    samples. A sample is crewtrace's own work when a crewtrace frame other than
    the ``LLM._stream`` generator (which is on the stack while litellm runs
    under it) is on the stack, or when that generator is the leaf itself.
    """
    total = 0
    in_crewtrace = 0
    crewtrace_frames: Counter[str] = Counter()
    leaf_packages: Counter[str] = Counter()
    for line in lines:
        stack, _, count_text = line.rpartition(" ")
        if not stack or "Harness.run_sync (" not in stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        seen: set[str] = set()
        hit = any(frames[-1].startswith(f) for f in _STREAM_FRAMES) and "(crewtrace/" in frames[-1]
        for frame in frames:
            if "(crewtrace/" not in frame or frame.startswith(_STREAM_FRAMES):
                continue
            hit = True
            name = frame.split(" (")[0] + " (" + frame.split(" (")[1].rsplit(":", 1)[0] + ")"
            if name not in seen:
                seen.add(name)
                crewtrace_frames[name] += count
        if hit:
            in_crewtrace += count
        leaf_packages[_leaf_package(frames[-1])] += count
    if not total:
        return {"skipped": "py-spy returned no samples of the measured runs"}
    return {
        "samples": total,
        "share_crewtrace_own_work": in_crewtrace / total,
        "crewtrace_functions_inclusive_share": {k: v / total for k, v in crewtrace_frames.most_common(15)},
        "leaf_share_by_package": {k: v / total for k, v in leaf_packages.most_common(8)},
    }


def _leaf_package(frame: str) -> str:
    where = frame.rsplit(" (", 1)[-1]
    for name in ("crewtrace", "opentelemetry", "pydantic_core", "pydantic", "litellm", "openai", "httpx", "httpcore"):
        if where.startswith(f"{name}/"):
            return name
    return "stdlib/other"
