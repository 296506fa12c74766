"""Timing, interleaving, statistics and memory helpers shared by every benchmark.

Rules applied everywhere:

* clocks: ``time.perf_counter_ns`` for wall time, ``time.process_time_ns``
  for the CPU time of the whole client process (all its threads);
* ``gc.collect()`` before every measured run, the collector left *enabled*
  during it (the garbage an instrumentation creates is part of its cost);
  ``--no-gc`` disables it during runs instead, for every scenario alike;
* scenarios are interleaved (A B C ... then B C ... A, rotating the order
  each round) and compared *pairwise within a round*, so slow phases of a
  shared, noisy machine hit both sides of a comparison;
* litellm's background logging (a thread pool it feeds per chunk and at the
  end of a stream) is drained between runs, untimed, so one run's leftovers
  never land in the next run's time. How long that drain took is recorded.
"""

from __future__ import annotations

import gc
import math
import statistics
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

GC_DURING_RUNS = True
"""Set to False by ``--no-gc``: disable the collector during measured runs."""


@dataclass
class Sample:
    """One measured run of one scenario."""

    wall_ns: int
    cpu_ns: int  # process CPU time: every thread (litellm's logging pool, span processor...)
    chunks: int
    ttfc_ns: int | None = None  # consumer-side: request start to first text chunk (single streams)
    drain_ns: int = 0  # untimed: how long litellm's background logging ran on after the run
    thread_cpu_ns: int = 0  # CPU time of the consuming thread alone: where crewtrace's work runs
    extra: dict[str, Any] = field(default_factory=dict)


class Clock:
    """Wall and process CPU time of a block; ``first_chunk()`` marks TTFC once."""

    __slots__ = ("cpu0", "t0", "thread0", "ttfc_ns")

    def __init__(self) -> None:
        self.ttfc_ns: int | None = None
        self.cpu0 = time.process_time_ns()
        self.thread0 = time.thread_time_ns()
        self.t0 = time.perf_counter_ns()

    def first_chunk(self) -> None:
        if self.ttfc_ns is None:
            self.ttfc_ns = time.perf_counter_ns() - self.t0

    def stop(self, chunks: int) -> Sample:
        wall = time.perf_counter_ns() - self.t0
        thread = time.thread_time_ns() - self.thread0
        cpu = time.process_time_ns() - self.cpu0
        return Sample(wall_ns=wall, cpu_ns=cpu, chunks=chunks, ttfc_ns=self.ttfc_ns, thread_cpu_ns=thread)


def prepare_run() -> None:
    """Same starting state for every run: a full collection, then the chosen GC policy."""
    gc.collect()
    if not GC_DURING_RUNS:
        gc.disable()


def end_run() -> None:
    gc.enable()


# -- litellm's background logging -------------------------------------------------


def litellm_logging_idle() -> bool:
    """Whether litellm's logging thread pool has nothing queued or running."""
    try:
        from litellm.litellm_core_utils.thread_pool_executor import executor
    except ImportError:  # pragma: no cover - other litellm versions
        return True
    slots = getattr(executor, "_pending_slots", None)
    cap = getattr(executor, "_max_pending_tasks", None)
    if slots is None or cap is None:
        return executor._work_queue.qsize() == 0
    return bool(slots._value >= cap)


def drain_litellm(timeout: float = 30.0) -> int:
    """Wait (untimed) until litellm's logging pool is idle; return how long that took in ns."""
    t0 = time.perf_counter_ns()
    deadline = time.monotonic() + timeout
    while not litellm_logging_idle() and time.monotonic() < deadline:
        time.sleep(0.001)
    return time.perf_counter_ns() - t0


# -- interleaving -----------------------------------------------------------------


def interleave(
    names: Sequence[str],
    run: Callable[[str], Sample],
    rounds: int,
    warmup_rounds: int = 1,
    between: Callable[[], None] | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, list[Sample]]:
    """Run every scenario once per round, rotating the order each round.

    ``samples[name][r]`` is round ``r`` for every name, so rounds pair up.
    """
    samples: dict[str, list[Sample]] = {name: [] for name in names}
    k = len(names)
    for r in range(warmup_rounds + rounds):
        order = [names[(r + i) % k] for i in range(k)]
        for name in order:
            sample = run(name)
            if between is not None:
                between()
            if r >= warmup_rounds:
                samples[name].append(sample)
        if progress is not None:
            label = "warm-up" if r < warmup_rounds else f"round {r - warmup_rounds + 1}/{rounds}"
            progress(label)
    return samples


# -- statistics -------------------------------------------------------------------


def median(values: Iterable[float]) -> float:
    data = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.median(data) if data else float("nan")


def quartiles(values: Iterable[float]) -> tuple[float, float]:
    data = sorted(v for v in values if v is not None)
    if len(data) < 2:
        return (data[0], data[0]) if data else (float("nan"), float("nan"))
    q = statistics.quantiles(data, n=4, method="inclusive")
    return q[0], q[2]


def bootstrap_median_ci(values: Sequence[float], level: float = 0.95, draws: int = 2000) -> tuple[float, float]:
    """Percentile bootstrap CI of the median (fixed seed: the same data give the same interval)."""
    import random

    data = [v for v in values if v is not None]
    if len(data) < 3:
        return float("nan"), float("nan")
    rng = random.Random(1234)
    meds = sorted(statistics.median(rng.choices(data, k=len(data))) for _ in range(draws))
    lo = meds[int((1 - level) / 2 * draws)]
    hi = meds[min(draws - 1, int((1 + level) / 2 * draws))]
    return lo, hi


def paired_ratio(samples: Sequence[Sample], baseline: Sequence[Sample], attr: str = "wall_ns") -> float:
    """Median over rounds of this/baseline (same round)."""
    return median(getattr(s, attr) / getattr(b, attr) for s, b in zip(samples, baseline, strict=False))


def paired_ratio_iqr(
    samples: Sequence[Sample], baseline: Sequence[Sample], attr: str = "wall_ns"
) -> tuple[float, float]:
    return quartiles([getattr(s, attr) / getattr(b, attr) for s, b in zip(samples, baseline, strict=False)])


def paired_delta_per_chunk_us(samples: Sequence[Sample], baseline: Sequence[Sample], attr: str = "wall_ns") -> float:
    """Median over rounds of (this - baseline) / chunks, in microseconds."""
    return median(
        (getattr(s, attr) - getattr(b, attr)) / 1e3 / max(1, s.chunks) for s, b in zip(samples, baseline, strict=False)
    )


def paired_delta_ms(samples: Sequence[Sample], baseline: Sequence[Sample], attr: str) -> float:
    pairs = [(getattr(s, attr), getattr(b, attr)) for s, b in zip(samples, baseline, strict=False)]
    return median((a - b) / 1e6 for a, b in pairs if a is not None and b is not None)


def summarize(samples: Sequence[Sample]) -> dict[str, Any]:
    """Medians (and quartiles of wall time) of one scenario's runs, in readable units."""
    if not samples:
        return {}
    chunks = samples[0].chunks
    wall = [s.wall_ns for s in samples]
    q1, q3 = quartiles(wall)
    ttfc = [s.ttfc_ns for s in samples if s.ttfc_ns is not None]
    return {
        "runs": len(samples),
        "chunks": chunks,
        "wall_ms": median(wall) / 1e6,
        "wall_ms_q1": q1 / 1e6,
        "wall_ms_q3": q3 / 1e6,
        "wall_us_per_chunk": median(w / 1e3 / max(1, s.chunks) for w, s in zip(wall, samples, strict=False)),
        "cpu_us_per_chunk": median(s.cpu_ns / 1e3 / max(1, s.chunks) for s in samples),
        "thread_cpu_us_per_chunk": median(s.thread_cpu_ns / 1e3 / max(1, s.chunks) for s in samples),
        "ttfc_ms": median(ttfc) / 1e6 if ttfc else None,
        "chunks_per_s": median(s.chunks / (s.wall_ns / 1e9) for s in samples),
        "drain_ms": median(s.drain_ns for s in samples) / 1e6,
    }


# -- micro-benchmark timing ---------------------------------------------------------


def best_and_median(run: Callable[[], float], repeats: int) -> tuple[float, float]:
    """Run ``run`` (returning a per-item figure) ``repeats`` times: (min, median)."""
    values = []
    for _ in range(repeats):
        prepare_run()
        try:
            values.append(run())
        finally:
            end_run()
    return min(values), statistics.median(values)


# -- memory -----------------------------------------------------------------------


class PeakMemory:
    """tracemalloc peak above the starting level while the block runs (all threads).

    tracemalloc slows Python several-fold, so memory is measured in separate,
    untimed runs.
    """

    def __init__(self) -> None:
        self.peak_bytes = 0
        self.retained_bytes = 0
        self._start = 0
        self._started_here = False

    def __enter__(self) -> PeakMemory:
        gc.collect()
        self._started_here = not tracemalloc.is_tracing()
        if self._started_here:
            tracemalloc.start()
        tracemalloc.reset_peak()
        self._start = tracemalloc.get_traced_memory()[0]
        return self

    def __exit__(self, *exc: object) -> None:
        _current, peak = tracemalloc.get_traced_memory()
        self.peak_bytes = max(0, peak - self._start)
        gc.collect()
        self.retained_bytes = tracemalloc.get_traced_memory()[0] - self._start
        if self._started_here:
            tracemalloc.stop()


def to_jsonable(obj: Any) -> Any:
    if isinstance(obj, Sample):
        return asdict(obj)
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, float) and (math.isnan(obj) or math.isinf(obj)):
        return None
    return obj


def lock_free_sleep(seconds: float) -> None:
    """Sleep without holding anything: lets background threads (span processors) run."""
    threading.Event().wait(seconds)
