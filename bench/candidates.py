"""Prototypes of fixes the profile points to, measured before/after in isolation.

Nothing here changes ``src/``: each candidate is applied to one bridge
instance (a wrapped instrument, a constructor argument or a small subclass)
so that its effect can be measured against the unchanged bridge in the same
interleaved run. A candidate that pays off is then for ``src/`` to adopt.

=========================  ==================================================================
``current``                the bridge as it is
``gap-points-no-exemplar`` time_per_output_chunk recorded without the span context: no
                           exemplar work per point (exemplars of the other histograms stay)
``gap-points-per-chunk``   each gap recorded when its chunk arrives (and without exemplar
                           context): no O(n) ``gaps`` array, no burst at the end of a stream
``chunk-events-16``        ``max_chunk_events=16`` instead of 64: fewer span events at the end
=========================  ==================================================================

Event construction in the LLM layer (pydantic validation, the random event
id) is measured as variants of building one ``LLMStreamChunkEvent``.
"""

from __future__ import annotations

import dataclasses
import os
import random
import time
from collections.abc import Callable
from typing import Any

from bench.measure import PeakMemory, end_run, median, prepare_run
from bench.micro import Setup, _phase_summary, _record_one, interleaved_samples, raw_chunks
from bench.scenarios import API_KEY, MODEL, make_otel
from crewtrace import LLM
from crewtrace.events import EventBus, LLMStreamChunkEvent
from crewtrace.telemetry import OTelBridge


class _NoContextHistogram:
    """Forwards ``record`` without the context argument (so the SDK offers no exemplar)."""

    def __init__(self, histogram: Any) -> None:
        self._histogram = histogram

    def record(self, amount: float, attributes: Any = None, context: Any = None) -> None:
        self._histogram.record(amount, attributes)


class _GapsPerChunkBridge(OTelBridge):
    """Records each chunk gap as it arrives; the end then finds no gaps left to record."""

    def _on_chunk(self, source: Any, event: LLMStreamChunkEvent) -> None:
        super()._on_chunk(source, event)
        call = self._calls.get(event.call_id)
        if call is None:
            return
        gaps = call.timeline.gaps
        if gaps:
            self._instruments.time_per_output_chunk.record(gaps[0], call.metric_attributes)
            del gaps[:]


def _bridge(candidate: str, bus: EventBus, otel: Any) -> OTelBridge:
    if candidate == "gap-points-per-chunk":
        return _GapsPerChunkBridge(otel.tracer_provider, otel.meter_provider, bus=bus)
    if candidate == "chunk-events-16":
        return OTelBridge(otel.tracer_provider, otel.meter_provider, bus=bus, max_chunk_events=16)
    bridge = OTelBridge(otel.tracer_provider, otel.meter_provider, bus=bus)
    if candidate == "gap-points-no-exemplar":
        instruments = bridge._instruments
        bridge._instruments = dataclasses.replace(
            instruments, time_per_output_chunk=_NoContextHistogram(instruments.time_per_output_chunk)
        )
    return bridge


CANDIDATES = ["current", "gap-points-no-exemplar", "gap-points-per-chunk", "chunk-events-16"]


def _setup(candidate: str) -> Setup:
    bus = EventBus()
    llm = LLM(MODEL, stream=True, base_url="http://127.0.0.1:9/v1", api_key=API_KEY, bus=bus)
    otel = make_otel()
    bridge = _bridge(candidate, bus, otel)
    return Setup(bus, llm, otel, (bridge.close,))


def bridge_candidates(lengths: list[int], repeats: int, progress: Callable[[str], None]) -> dict[str, Any]:
    """LLM layer + bridge per candidate, interleaved like ``micro.llm_layer``; plus peak memory."""
    messages = [{"role": "user", "content": "bench"}]
    results: dict[str, Any] = {}
    for n in lengths:
        raws = raw_chunks(n)
        setups = {c: _setup(c) for c in CANDIDATES}
        per = interleaved_samples(setups, raws, messages, n, repeats)
        for candidate in CANDIDATES:
            summary = _phase_summary(per[candidate], n)
            setup = setups[candidate]
            with PeakMemory() as mem:
                _record_one(setup, raws, messages)
                assert setup.otel is not None
                setup.otel.flush()
            summary["peak_kib"] = mem.peak_bytes / 1024
            results.setdefault(candidate, {})[str(n)] = summary
            setup.close()
        progress(f"candidates, {n} chunks")
    return results


# -- building one chunk event -------------------------------------------------------------


def event_build_variants(repeats: int) -> dict[str, float]:
    """ns to build one LLMStreamChunkEvent: as now, without validation, with a cheaper event id."""
    base = {
        "run_id": None, "crew_name": None, "task_id": None, "task_name": None, "agent_id": None,
        "agent_role": None, "call_id": "c" * 32, "model": MODEL, "provider": "openai",
    }  # fmt: skip
    count = 20_000
    getrandbits = random.getrandbits

    def validated() -> float:
        t0 = time.perf_counter_ns()
        for i in range(count):
            LLMStreamChunkEvent(**base, chunk="w1 ", chunk_index=i, response_id="r")
        return (time.perf_counter_ns() - t0) / count

    def constructed() -> float:
        construct = LLMStreamChunkEvent.model_construct
        t0 = time.perf_counter_ns()
        for i in range(count):
            construct(**base, chunk="w1 ", chunk_index=i, response_id="r")
        return (time.perf_counter_ns() - t0) / count

    template = LLMStreamChunkEvent(**base, chunk="w0 ", chunk_index=0, response_id="r")

    def copied() -> float:
        copy = template.model_copy
        t0 = time.perf_counter_ns()
        for i in range(count):
            copy(update={"chunk": "w1 ", "chunk_index": i, "event_id": f"{getrandbits(64):016x}",
                         "timestamp_ns": time.time_ns()})  # fmt: skip
        return (time.perf_counter_ns() - t0) / count

    def validated_given_id() -> float:
        t0 = time.perf_counter_ns()
        for i in range(count):
            LLMStreamChunkEvent(
                **base, chunk="w1 ", chunk_index=i, response_id="r", event_id=f"{getrandbits(64):016x}",
                timestamp_ns=time.time_ns(),
            )  # fmt: skip
        return (time.perf_counter_ns() - t0) / count

    def urandom_id() -> float:
        t0 = time.perf_counter_ns()
        for _ in range(count):
            os.urandom(8).hex()
        return (time.perf_counter_ns() - t0) / count

    def getrandbits_id() -> float:
        t0 = time.perf_counter_ns()
        for _ in range(count):
            f"{getrandbits(64):016x}"
        return (time.perf_counter_ns() - t0) / count

    variants = {
        "validated (now)": validated,
        "model_construct (no validation)": constructed,
        "model_copy of a per-call template (no validation)": copied,
        "validated, id from random.getrandbits": validated_given_id,
        "event id: os.urandom(8).hex() (now)": urandom_id,
        "event id: random.getrandbits(64)": getrandbits_id,
    }
    out: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, run in variants.items():
            prepare_run()
            try:
                out[name].append(run())
            finally:
                end_run()
    return {name: median(values) for name, values in out.items()}
