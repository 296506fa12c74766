"""End-to-end scenarios: one streamed completion from the bench server, consumed to the end.

Every scenario streams the same reply (``numbered_chunks(n)`` plus the role,
finish and usage chunks) through litellm over real HTTP; they differ only in
what sits between litellm and the consumer:

==================  ==================================================================
``litellm``         (1) bare ``litellm.completion(stream=True)``: the floor
``crewtrace``       (2) ``crewtrace.LLM.stream`` on a bus with no listener
``bridge``          (3) + ``OTelBridge`` (SDK TracerProvider, BatchSpanProcessor, null
                    exporter; MeterProvider with an InMemoryMetricReader)
``bridge+listener`` (4) + a user listener on chunk events
``openinference``   (6) bare litellm under ``openinference-instrumentation-litellm``
``litellm-otel``    (6) bare litellm with litellm's own ``OpenTelemetry`` callback
                    (``litellm.callbacks``), metrics on, same null exporter
==================  ==================================================================

The consumer does what an application does with a stream: it keeps the text.
Peers change litellm's global state, so each is switched on just before its
run and off right after (untimed), and a check after every run verifies that
only the active scenario exported anything.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

from bench.measure import Clock, Sample, drain_litellm, end_run, prepare_run
from bench.server import prompt_for
from crewtrace import LLM
from crewtrace.events import BaseEventListener, EventBus, LLMStreamChunkEvent
from crewtrace.llm._litellm import litellm
from crewtrace.telemetry import OTelBridge

MODEL = "openai/gpt-4o-mini"  # a priced model, so cost is computed as in real use
API_KEY = "sk-bench-not-a-real-key"
TIMEOUT = 300

SPAN_PROCESSOR = "batch"
"""``batch`` (what ``setup_telemetry`` uses) or ``simple`` (export on the caller's thread)."""


class NullSpanExporter(SpanExporter):
    """Counts spans and drops them: exporting costs nothing, the pipeline before it is real."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


@dataclass
class OTelStack:
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    reader: InMemoryMetricReader
    exporter: NullSpanExporter

    def flush(self) -> None:
        self.tracer_provider.force_flush()

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


def make_otel() -> OTelStack:
    exporter = NullSpanExporter()
    tracer_provider = TracerProvider()
    processor = BatchSpanProcessor(exporter) if SPAN_PROCESSOR == "batch" else SimpleSpanProcessor(exporter)
    tracer_provider.add_span_processor(processor)
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    return OTelStack(tracer_provider, meter_provider, reader, exporter)


class ChunkCounter(BaseEventListener):
    """The "user listener" of scenario 4: what a UI that shows progress would do."""

    def __init__(self, bus: EventBus) -> None:
        self.chunks = 0
        self.chars = 0
        super().__init__(bus)

    def setup_listeners(self, crewtrace_event_bus: EventBus) -> None:
        @crewtrace_event_bus.on(LLMStreamChunkEvent)
        def on_chunk(source: Any, event: LLMStreamChunkEvent) -> None:
            self.chunks += 1
            self.chars += len(event.chunk)


def _messages(n: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt_for(n)}]


def _bare_request(base_url: str, n: int) -> dict[str, Any]:
    return {
        "model": MODEL,
        "messages": _messages(n),
        "stream": True,
        "stream_options": {"include_usage": True},
        "base_url": base_url,
        "api_key": API_KEY,
        "timeout": TIMEOUT,
    }


class Scenario:
    """One way of streaming. ``activate``/``deactivate`` wrap every run, untimed."""

    name = ""
    label = ""
    number = 0
    uses_llm = False  # consumer goes through crewtrace.LLM rather than bare litellm
    expect_spans = False

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.otel: OTelStack | None = None

    @classmethod
    def available(cls) -> str | None:
        """None if the scenario can run here, else why not."""
        return None

    def activate(self) -> None:
        pass

    def deactivate(self) -> None:
        pass

    def close(self) -> None:
        if self.otel is not None:
            self.otel.shutdown()

    def spans_exported(self) -> int:
        return self.otel.exporter.spans if self.otel is not None else 0

    # -- sync ------------------------------------------------------------------------

    def stream_sync(self, n: int) -> Sample:
        prepare_run()
        try:
            clock = Clock()
            parts = self._consume_llm(n, clock) if self.uses_llm else self._consume_bare(n, clock)
            sample = clock.stop(len(parts))
        finally:
            end_run()
        return sample

    def _consume_bare(self, n: int, clock: Clock) -> list[str]:
        parts: list[str] = []
        for chunk in litellm.completion(**_bare_request(self.base_url, n)):
            choices = chunk.choices
            if choices:
                text = choices[0].delta.content
                if text:
                    clock.first_chunk()
                    parts.append(text)
        return parts

    def _consume_llm(self, n: int, clock: Clock) -> list[str]:
        parts: list[str] = []
        for text in self.llm.stream(_messages(n)):
            clock.first_chunk()
            parts.append(text)
        return parts

    # -- async -----------------------------------------------------------------------

    async def stream_async(self, n: int) -> int:
        if self.uses_llm:
            count = 0
            async for _text in self.llm.astream(_messages(n)):
                count += 1
            return count
        count = 0
        response = await litellm.acompletion(**_bare_request(self.base_url, n))
        async for chunk in response:
            choices = chunk.choices
            if choices and choices[0].delta.content:
                count += 1
        return count

    @property
    def llm(self) -> LLM:
        raise NotImplementedError


class BareLiteLLM(Scenario):
    name, number, label = "litellm", 1, "bare litellm streaming (floor)"


class _CrewtraceScenario(Scenario):
    uses_llm = True

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        self.bus = EventBus()
        self._llm = LLM(MODEL, stream=True, base_url=base_url, api_key=API_KEY, timeout=TIMEOUT, bus=self.bus)

    @property
    def llm(self) -> LLM:
        return self._llm


class CrewtraceNoListener(_CrewtraceScenario):
    name, number, label = "crewtrace", 2, "crewtrace.LLM, no listener"


class CrewtraceBridge(_CrewtraceScenario):
    name, number, label = "bridge", 3, "crewtrace.LLM + OTelBridge"
    expect_spans = True

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        self.otel = make_otel()
        self.bridge = OTelBridge(self.otel.tracer_provider, self.otel.meter_provider, bus=self.bus)

    def close(self) -> None:
        self.bridge.close()
        super().close()


class CrewtraceBridgeListener(CrewtraceBridge):
    name, number, label = "bridge+listener", 4, "crewtrace.LLM + OTelBridge + user listener"

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        self.listener = ChunkCounter(self.bus)


class OpenInference(Scenario):
    name, number, label = "openinference", 6, "litellm + OpenInference LiteLLMInstrumentor"
    expect_spans = True

    @classmethod
    def available(cls) -> str | None:
        try:
            import openinference.instrumentation.litellm  # noqa: F401
        except ImportError:
            return "openinference-instrumentation-litellm not installed (pip install '.[bench]')"
        return None

    def __init__(self, base_url: str) -> None:
        from openinference.instrumentation.litellm import LiteLLMInstrumentor

        super().__init__(base_url)
        self.otel = make_otel()
        self.instrumentor = LiteLLMInstrumentor()
        self._original = litellm.completion

    def activate(self) -> None:
        self.instrumentor.instrument(tracer_provider=self.otel.tracer_provider)

    def deactivate(self) -> None:
        self.instrumentor.uninstrument()
        if litellm.completion is not self._original:  # pragma: no cover - would poison every other scenario
            raise RuntimeError("OpenInference left litellm.completion patched")


_CALLBACK_LISTS = ("callbacks", "input_callback", "success_callback", "failure_callback",
                   "_async_success_callback", "_async_failure_callback")  # fmt: skip


class LiteLLMOTel(Scenario):
    name, number, label = "litellm-otel", 6, "litellm + its OpenTelemetry callback (metrics on)"
    expect_spans = True

    @classmethod
    def available(cls) -> str | None:
        try:
            from litellm.integrations.opentelemetry import OpenTelemetry  # noqa: F401
        except ImportError as exc:
            return f"litellm's OpenTelemetry integration does not import: {exc}"
        return None

    def __init__(self, base_url: str) -> None:
        from litellm.integrations.opentelemetry import OpenTelemetry, OpenTelemetryConfig

        super().__init__(base_url)
        self.otel = make_otel()
        config = OpenTelemetryConfig(exporter=self.otel.exporter, enable_metrics=True)
        self.callback = OpenTelemetry(
            config=config,
            tracer_provider=self.otel.tracer_provider,
            meter_provider=self.otel.meter_provider,
        )
        self._saved: dict[str, list[Any]] = {}

    def activate(self) -> None:
        self._saved = {name: list(getattr(litellm, name)) for name in _CALLBACK_LISTS}
        litellm.callbacks = [*self._saved["callbacks"], self.callback]

    def deactivate(self) -> None:
        for name, saved in self._saved.items():
            setattr(litellm, name, saved)


ALL: tuple[type[Scenario], ...] = (
    BareLiteLLM,
    CrewtraceNoListener,
    CrewtraceBridge,
    CrewtraceBridgeListener,
    OpenInference,
    LiteLLMOTel,
)


class Harness:
    """Owns the scenarios of one run and performs single measured runs of them."""

    def __init__(self, base_url: str, names: Sequence[str]) -> None:
        self.scenarios: dict[str, Scenario] = {}
        self.skipped: dict[str, str] = {}
        for cls in ALL:
            if cls.name not in names:
                continue
            why = cls.available()
            if why is None:
                self.scenarios[cls.name] = cls(base_url)
            else:
                self.skipped[cls.name] = why
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def names(self) -> list[str]:
        return list(self.scenarios)

    def close(self) -> None:
        for scenario in self.scenarios.values():
            scenario.close()
        if self._loop is not None:
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    def _exports(self) -> dict[str, int]:
        return {name: s.spans_exported() for name, s in self.scenarios.items()}

    def _check_exports(self, active: Scenario, before: dict[str, int]) -> None:
        for scenario in self.scenarios.values():
            if scenario.otel is not None:
                scenario.otel.flush()
        after = self._exports()
        for name, count in after.items():
            if name == active.name:
                if active.expect_spans and count == before[name]:
                    raise RuntimeError(f"scenario {name} exported no span: its instrumentation is not active")
            elif count != before[name]:
                raise RuntimeError(f"scenario {name} exported spans during a run of {active.name}: state leaked")

    def run_sync(self, name: str, n: int) -> Sample:
        scenario = self.scenarios[name]
        before = self._exports()
        scenario.activate()
        try:
            sample = scenario.stream_sync(n)
            sample.drain_ns = drain_litellm()
        finally:
            scenario.deactivate()
        self._check_exports(scenario, before)
        if sample.chunks != n:
            raise RuntimeError(f"{name}: expected {n} text chunks, got {sample.chunks}")
        return sample

    # -- async: one long-lived loop, so litellm's cached async clients stay valid ---------

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop

    def run_async(self, name: str, n: int, concurrency: int) -> Sample:
        scenario = self.scenarios[name]
        before = self._exports()
        scenario.activate()
        try:
            sample = self.loop.run_until_complete(self._concurrent(scenario, n, concurrency))
        finally:
            scenario.deactivate()
        self._check_exports(scenario, before)
        if sample.chunks != n * concurrency:
            raise RuntimeError(f"{name}: expected {n * concurrency} text chunks, got {sample.chunks}")
        return sample

    async def _concurrent(self, scenario: Scenario, n: int, concurrency: int) -> Sample:
        existing = asyncio.all_tasks()
        prepare_run()
        try:
            clock = Clock()
            counts = await asyncio.gather(*(scenario.stream_async(n) for _ in range(concurrency)))
            sample = clock.stop(sum(counts))
        finally:
            end_run()
        sample.drain_ns = await _settle_loop(existing)
        return sample


async def _settle_loop(existing: set[asyncio.Task[Any]], timeout: float = 10.0) -> int:
    """Let the async logging tasks litellm started during the run, and its thread pool,
    finish (untimed); return the ns that took."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for _ in range(3):
        await asyncio.sleep(0)
    pending = [t for t in asyncio.all_tasks() - existing if t is not asyncio.current_task() and not t.done()]
    if pending:
        await asyncio.wait(pending, timeout=timeout)
    await asyncio.to_thread(drain_litellm, timeout)
    return int((loop.time() - t0) * 1e9)
