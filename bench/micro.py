"""In-isolation costs: no HTTP, no litellm stream, only crewtrace's own work per chunk.

Two layers are timed separately and together:

* the LLM layer: ``CallRecorder`` (what ``LLM.stream`` runs per call) fed
  pre-built litellm ``ModelResponseStream`` chunks, exactly the objects
  litellm yields; this includes building and emitting the chunk events;
* the bridge alone: pre-built ``LLMCallStartedEvent``, N ``LLMStreamChunkEvent``
  and ``LLMCallCompletedEvent`` emitted into a bus with ``OTelBridge`` on it
  (real SDK TracerProvider + BatchSpanProcessor + null exporter,
  MeterProvider + InMemoryMetricReader).

Every figure is split into *start* (call started: span opened), *per chunk*
(the hot path) and *end* (span events, the per-chunk-gap histogram points,
span end), and the end is also given amortised per chunk; "total per chunk"
is (start + chunks + end) / N. The bus alone (dispatch rate to one handler,
emit with no handler) is measured here too.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from bench.measure import PeakMemory, best_and_median, end_run, median, prepare_run
from bench.scenarios import API_KEY, MODEL, ChunkCounter, OTelStack, make_otel
from crewtrace import LLM
from crewtrace.events import (
    EventBus,
    LLMCallCompletedEvent,
    LLMCallStartedEvent,
    LLMStreamChunkEvent,
    TokenUsage,
)
from crewtrace.llm._recorder import CallRecorder
from crewtrace.telemetry import OTelBridge

GAP_NS = 300_000  # synthetic chunk spacing (~ litellm's per-chunk cost), for the gap histogram

# -- raw litellm chunks ------------------------------------------------------------

_CONTENT: list[Any] = []


def raw_chunks(n: int) -> list[Any]:
    """What litellm yields for an n-chunk reply: role chunk, n content chunks, finish, usage."""
    from litellm.types.utils import Delta, ModelResponseStream, StreamingChoices, Usage

    def chunk(**fields: Any) -> Any:
        return ModelResponseStream(id="chatcmpl-bench", model="gpt-4o-mini", **fields)

    while len(_CONTENT) < n:
        i = len(_CONTENT)
        _CONTENT.append(chunk(choices=[StreamingChoices(index=0, delta=Delta(content=f"w{i} "))]))
    role = chunk(choices=[StreamingChoices(index=0, delta=Delta(content="", role="assistant"))])
    finish = chunk(choices=[StreamingChoices(index=0, finish_reason="stop", delta=Delta())])
    usage = chunk(choices=[], usage=Usage(prompt_tokens=5, completion_tokens=n, total_tokens=n + 5))
    return [role, *_CONTENT[:n], finish, usage]


# -- configurations ----------------------------------------------------------------


@dataclass
class Setup:
    """A bus with some listeners on it, and an LLM emitting on that bus."""

    bus: EventBus
    llm: LLM
    otel: OTelStack | None = None
    closers: tuple[Callable[[], None], ...] = ()

    def close(self) -> None:
        for close in self.closers:
            close()
        if self.otel is not None:
            self.otel.shutdown()


def _setup(config: str) -> Setup:
    bus = EventBus()
    llm = LLM(MODEL, stream=True, base_url="http://127.0.0.1:9/v1", api_key=API_KEY, bus=bus)
    if config == "llm":
        return Setup(bus, llm)
    if config == "llm+noop":
        bus.register_handler(LLMStreamChunkEvent, lambda source, event: None)
        return Setup(bus, llm)
    otel = make_otel()
    closers: list[Callable[[], None]] = []
    bridge = OTelBridge(
        otel.tracer_provider, otel.meter_provider, bus=bus, capture_content=config == "llm+bridge+content"
    )
    closers.append(bridge.close)
    if config == "llm+bridge+listener":
        closers.append(ChunkCounter(bus).close)
    return Setup(bus, llm, otel, tuple(closers))


LLM_CONFIGS = {
    "llm": "LLM layer, no listener (chunk events not built)",
    "llm+noop": "LLM layer + one no-op chunk handler (events built and dispatched)",
    "llm+bridge": "LLM layer + OTelBridge (scenario 3 in isolation)",
    "llm+bridge+content": "LLM layer + OTelBridge(capture_content=True)",
    "llm+bridge+listener": "LLM layer + OTelBridge + user listener (scenario 4)",
}


@dataclass
class Phases:
    start_ns: float = 0.0
    first_ns: float = 0.0  # role chunk + first content chunk
    chunks_ns: float = 0.0  # all chunks, first included
    end_ns: float = 0.0
    streams: int = 0
    starts: list[float] = field(default_factory=list)  # per call: start
    ttfcs: list[float] = field(default_factory=list)  # per call: start + first chunk

    def add(self, other: Phases) -> None:
        self.start_ns += other.start_ns
        self.first_ns += other.first_ns
        self.chunks_ns += other.chunks_ns
        self.end_ns += other.end_ns
        self.streams += other.streams
        self.starts.append(other.start_ns)
        self.ttfcs.append(other.start_ns + other.first_ns)


def _record_one(setup: Setup, raws: list[Any], messages: list[dict[str, str]]) -> Phases:
    t0 = time.perf_counter_ns()
    recorder = CallRecorder(setup.llm, messages, stream=True)
    t1 = time.perf_counter_ns()
    on_chunk = recorder.on_chunk
    on_chunk(raws[0])
    on_chunk(raws[1])
    t2 = time.perf_counter_ns()
    for raw in raws[2:]:
        on_chunk(raw)
    t3 = time.perf_counter_ns()
    recorder.completed()
    t4 = time.perf_counter_ns()
    return Phases(t1 - t0, t2 - t1, t3 - t1, t4 - t3, 1)


def _streams_per_sample(n: int) -> int:
    return max(1, 20_000 // n)  # ~20k chunks per timed sample, whatever the stream length


def interleaved_samples(
    setups: dict[str, Setup], raws: list[Any], messages: list[dict[str, Any]], n: int, repeats: int
) -> dict[str, list[Phases]]:
    """Time every setup on the same chunks, rotating their order each round (round 0 warms up)."""
    names = list(setups)
    per: dict[str, list[Phases]] = {name: [] for name in names}
    for r in range(repeats + 1):
        for i in range(len(names)):
            name = names[(r + i) % len(names)]
            setup = setups[name]
            total = Phases()
            prepare_run()
            try:
                for _ in range(_streams_per_sample(n)):
                    total.add(_record_one(setup, raws, messages))
            finally:
                end_run()
            if setup.otel is not None:
                setup.otel.flush()
            if r:
                per[name].append(total)
    return per


def llm_layer(lengths: list[int], repeats: int, progress: Callable[[str], None]) -> dict[str, Any]:
    """CallRecorder per-chunk cost for each configuration and stream length, interleaved."""
    messages = [{"role": "user", "content": "bench"}]
    results: dict[str, Any] = {}
    configs = list(LLM_CONFIGS)
    for n in lengths:
        raws = raw_chunks(n)
        setups = {config: _setup(config) for config in configs}
        per = interleaved_samples(setups, raws, messages, n, repeats)
        for config in configs:
            results.setdefault(config, {})[str(n)] = _phase_summary(per[config], n)
            setups[config].close()
        progress(f"LLM layer in isolation, {n} chunks")
    return results


def _phase_summary(samples: list[Phases], n: int) -> dict[str, float]:
    def us(get: Callable[[Phases], float], per: float = 1.0) -> float:
        return median(get(p) / p.streams / per / 1e3 for p in samples)

    # Start and TTFC: the median call (a mean would mostly measure the odd GC pause).
    start = median(v for p in samples for v in p.starts) / 1e3
    ttfc = median(v for p in samples for v in p.ttfcs) / 1e3
    chunk = us(lambda p: p.chunks_ns, n)
    end = us(lambda p: p.end_ns)
    total = us(lambda p: p.start_ns + p.chunks_ns + p.end_ns, n)  # means: GC pauses are a real cost here
    return {
        "total_per_chunk_us_best": min((p.start_ns + p.chunks_ns + p.end_ns) / p.streams / n / 1e3 for p in samples),
        "start_us": start,
        "first_chunk_us": ttfc - start,
        "ttfc_added_us": ttfc,
        "per_chunk_us": chunk,
        "end_us": end,
        "end_per_chunk_us": end / n,
        "total_per_chunk_us": total,
    }


def ttfc(repeats: int, calls: int = 300) -> dict[str, Any]:
    """What crewtrace adds before the consumer sees the first chunk: call start + first chunk.

    Short calls back to back (warm caches), interleaved per configuration;
    median and 90th percentile per call. The first call after a full GC
    (cold caches) is reported too.
    """
    messages = [{"role": "user", "content": "bench"}]
    raws = raw_chunks(2)
    configs = ["llm", "llm+bridge", "llm+bridge+listener"]
    setups = {config: _setup(config) for config in configs}
    values: dict[str, list[float]] = {config: [] for config in configs}
    cold: dict[str, list[float]] = {config: [] for config in configs}
    for r in range(repeats + 1):
        for i in range(len(configs)):
            config = configs[(r + i) % len(configs)]
            setup = setups[config]
            prepare_run()
            try:
                for k in range(calls):
                    p = _record_one(setup, raws, messages)
                    if r:
                        (cold if k == 0 else values)[config].append((p.start_ns + p.first_ns) / 1e3)
            finally:
                end_run()
            if setup.otel is not None:
                setup.otel.flush()
    for setup in setups.values():
        setup.close()
    out: dict[str, Any] = {}
    for config in configs:
        data = sorted(values[config])
        out[config] = {
            "median_us": median(data),
            "p90_us": data[int(0.9 * (len(data) - 1))],
            "cold_median_us": median(cold[config]),
        }
    return out


# -- the bridge alone, on pre-built events ---------------------------------------------


def _events(n: int, call: int) -> tuple[LLMCallStartedEvent, list[LLMStreamChunkEvent], LLMCallCompletedEvent]:
    base = {"call_id": f"call-{call}", "model": MODEL, "provider": "openai"}
    t0 = time.time_ns()
    started = LLMCallStartedEvent(
        **base, messages=[{"role": "user", "content": "bench"}], stream=True, timestamp_ns=t0,
        server_address="127.0.0.1", server_port=9,
    )  # fmt: skip
    chunks = [
        LLMStreamChunkEvent(
            **base, chunk=f"w{i} ", chunk_index=i, response_id="chatcmpl-bench", timestamp_ns=t0 + (i + 1) * GAP_NS
        )
        for i in range(n)
    ]
    completed = LLMCallCompletedEvent(
        **base, chunk_count=n, duration_s=(n + 1) * GAP_NS / 1e9, time_to_first_chunk_s=GAP_NS / 1e9,
        response="x", usage=TokenUsage(input_tokens=5, output_tokens=n), finish_reason="stop",
        response_id="chatcmpl-bench", response_model="gpt-4o-mini", cost_usd=0.0001,
        timestamp_ns=t0 + (n + 2) * GAP_NS,
    )  # fmt: skip
    return started, chunks, completed


def bridge_alone(lengths: list[int], repeats: int, progress: Callable[[str], None]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for capture in (False, True):
        key = "bridge+content" if capture else "bridge"
        for n in lengths:
            streams = _streams_per_sample(n)
            # Pre-build every event of every stream of one sample; call ids are reused per sample.
            prebuilt = [_events(n, call) for call in range(streams)]
            bus = EventBus()
            otel = make_otel()
            bridge = OTelBridge(otel.tracer_provider, otel.meter_provider, bus=bus, capture_content=capture)
            emit = bus.emit
            samples: list[Phases] = []
            for r in range(repeats + 1):
                total = Phases()
                prepare_run()
                try:
                    for started, chunks, completed in prebuilt:
                        t0 = time.perf_counter_ns()
                        emit(None, started)
                        t1 = time.perf_counter_ns()
                        for event in chunks:
                            emit(None, event)
                        t2 = time.perf_counter_ns()
                        emit(None, completed)
                        t3 = time.perf_counter_ns()
                        total.add(Phases(t1 - t0, 0, t2 - t1, t3 - t2, 1))
                finally:
                    end_run()
                otel.flush()
                if r:
                    samples.append(total)
            bridge.close()
            otel.shutdown()
            summary = _phase_summary(samples, n)
            summary.pop("first_chunk_us")
            summary.pop("ttfc_added_us")
            results.setdefault(key, {})[str(n)] = summary
        progress(f"bridge alone ({key})")
    return results


# -- the event bus alone ---------------------------------------------------------------


def bus_alone(repeats: int) -> dict[str, Any]:
    n = 200_000
    event = LLMStreamChunkEvent(call_id="c", model=MODEL, provider="openai", chunk="w1 ", chunk_index=1)

    def per_emit(bus: EventBus, count: int = n) -> float:
        emit = bus.emit
        t0 = time.perf_counter_ns()
        for _ in range(count):
            emit(None, event)
        return (time.perf_counter_ns() - t0) / count

    def timed(run: Callable[[], float]) -> float:
        return best_and_median(run, repeats)[1]

    empty = EventBus()
    one = EventBus()
    one.register_handler(LLMStreamChunkEvent, lambda source, e: None)
    no_handler_ns = timed(lambda: per_emit(empty))
    one_handler_ns = timed(lambda: per_emit(one))

    def has_handlers() -> float:
        check = empty.has_handlers
        t0 = time.perf_counter_ns()
        for _ in range(n):
            check(LLMStreamChunkEvent)
        return (time.perf_counter_ns() - t0) / n

    def build() -> float:
        count = n // 10
        t0 = time.perf_counter_ns()
        for i in range(count):
            LLMStreamChunkEvent(
                call_id="c", model=MODEL, provider="openai", chunk="w1 ", chunk_index=i, response_id="r"
            )
        return (time.perf_counter_ns() - t0) / count

    # Coroutine handlers run on the bus's loop thread: throughput until flush() returns.
    async_bus = EventBus()

    async def handler(source: Any, e: LLMStreamChunkEvent) -> None:
        return None

    async_bus.register_handler(LLMStreamChunkEvent, handler)

    def async_rate() -> float:
        count = n // 10
        t0 = time.perf_counter_ns()
        for _ in range(count):
            async_bus.emit(None, event)
        async_bus.flush(timeout=60)
        return (time.perf_counter_ns() - t0) / count

    async_ns = timed(async_rate)
    return {
        "emit_no_handler_ns": no_handler_ns,
        "has_handlers_ns": timed(has_handlers),
        "emit_one_handler_ns": one_handler_ns,
        "events_per_s_one_handler": 1e9 / one_handler_ns,
        "chunk_event_build_ns": timed(build),
        "emit_async_handler_ns": async_ns,
        "events_per_s_async_handler": 1e9 / async_ns,
    }


# -- memory in isolation --------------------------------------------------------------


def memory(lengths: list[int]) -> dict[str, Any]:
    """tracemalloc peak of one call (start to completed) above the level before it, and what stays."""
    messages = [{"role": "user", "content": "bench"}]
    results: dict[str, Any] = {}
    for config in ("llm", "llm+bridge", "llm+bridge+content"):
        setup = _setup(config)
        for n in lengths:
            raws = raw_chunks(n)
            _record_one(setup, raws, messages)  # warm caches (labels, instruments, series)
            if setup.otel is not None:
                setup.otel.flush()
            gc.collect()
            with PeakMemory() as mem:
                _record_one(setup, raws, messages)
                if setup.otel is not None:
                    setup.otel.flush()
            results.setdefault(config, {})[str(n)] = {
                "peak_kib": mem.peak_bytes / 1024,
                "retained_kib": mem.retained_bytes / 1024,
            }
        setup.close()
    for n in lengths:
        key = str(n)
        for config in ("llm+bridge", "llm+bridge+content"):
            results[config][key]["added_peak_kib"] = results[config][key]["peak_kib"] - results["llm"][key]["peak_kib"]
    return results
