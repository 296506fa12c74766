"""What sits between the local server and the consumer: one class per scenario.

Every scenario streams the same reply (``numbered_chunks(n)`` plus role, finish and
usage chunks) over real HTTP and keeps the text, as an application does:

============  =====================================================================
``litellm``   bare ``litellm.completion(stream=True)``, as shipped: the old floor
``crewtrace`` ``crewtrace.LLM.stream`` on a bus with no listener
``bridge``    ``crewtrace.LLM`` + ``OTelBridge`` (SDK providers, batch span processor,
              null exporter, in-memory metric reader)
``openinference``  bare litellm under OpenInference's ``LiteLLMInstrumentor`` (a peer; same
              span pipeline), where installed (the ``bench`` extra)
``crew``      a crewtrace ``Crew`` (one agent, one task) on ``crewtrace.LLM`` + ``OTelBridge``
``crew-stream``  that crew with ``stream=True``, its chunks read from the run's iterator
``crewai``    a CrewAI 1.15 crew of the same shape on CrewAI's default path (``bench/crewai.py``)
``crewai+crewtrace``  that CrewAI crew under ``instrument_crewai`` + ``OTelBridge``
``crewai+listener``, ``crewai+adapter``, ``crewai+crewtrace-nometrics``  (by name only) that crew
              with parts of ``crewai+crewtrace``, to take its cost apart (``bench/crewai.py``)
``crewai+openinference``, ``crewai+openinference-events``, ``crewai+openllmetry``  that crew under a
              peer's ``CrewAIInstrumentor`` (the ``bench`` extra; same span pipeline)
============  =====================================================================

The crews stream the same reply as their only LLM call: the task's description is
``prompt_for(n)``, and each of the server's chunks is one word of the answer.

A peer patches litellm for the whole process, so it is switched on just before each of
its runs and off right after (untimed).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from bench.server import prompt_for
from crewtrace import LLM, Agent, Crew, CrewStreamingOutput, Task
from crewtrace.events import EventBus
from crewtrace.llm._litellm import litellm
from crewtrace.telemetry import OTelBridge

MODEL = "openai/gpt-4o-mini"  # a priced model, so cost is computed as in real use
API_KEY = "sk-bench-not-a-real-key"
TIMEOUT = 300


class NullSpanExporter(SpanExporter):
    """Counts spans and drops them: exporting costs nothing, the pipeline before it is real."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


AGENT: dict[str, Any] = {"role": "Streamer", "goal": "Stream the words.", "backstory": "A benchmark."}
TASK: dict[str, Any] = {"name": "stream", "description": "{prompt}", "expected_output": "The words."}
"""The fields of every bench crew's one agent and one task (crewtrace's and CrewAI's alike)."""


def messages(n: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt_for(n)}]


def inputs(n: int) -> dict[str, str]:
    """Kickoff inputs that make a bench crew's task ask the server for ``n`` chunks."""
    return {"prompt": prompt_for(n)}


def answer_chunks(output: object) -> int:
    """The text chunks in a crew's answer (``str()`` of either framework's ``CrewOutput`` is the raw text)."""
    return len(str(output).split())


class Scenario:
    """One way of consuming a stream; ``stream``/``astream`` return the number of text chunks."""

    name = ""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def stream(self, n: int) -> int:
        raise NotImplementedError

    async def astream(self, n: int) -> int:
        raise NotImplementedError

    def activate(self) -> None:
        """Before each run: switch on what patches the process (peers)."""

    def deactivate(self) -> None:
        """After each run."""

    def close(self) -> None:
        pass


class BareLiteLLM(Scenario):
    name = "litellm"

    def _request(self, n: int) -> dict[str, Any]:
        return {
            "model": MODEL, "messages": messages(n), "stream": True, "stream_options": {"include_usage": True},
            "base_url": self.base_url, "api_key": API_KEY, "timeout": TIMEOUT,
        }  # fmt: skip

    def stream(self, n: int) -> int:
        parts = [c.choices[0].delta.content for c in litellm.completion(**self._request(n)) if c.choices]
        return sum(1 for p in parts if p)

    async def astream(self, n: int) -> int:
        count = 0
        async for chunk in await litellm.acompletion(**self._request(n)):
            if chunk.choices and chunk.choices[0].delta.content:
                count += 1
        return count


class Crewtrace(Scenario):
    name = "crewtrace"

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        self.bus = EventBus()
        self.llm = LLM(MODEL, stream=True, base_url=base_url, api_key=API_KEY, timeout=TIMEOUT, bus=self.bus)

    def stream(self, n: int) -> int:
        return len(list(self.llm.iter_text(messages(n))))

    async def astream(self, n: int) -> int:
        return len([text async for text in self.llm.aiter_text(messages(n))])


class _Pipeline:
    """The span and metric pipeline every instrumented scenario exports into (as ``setup_telemetry`` builds it)."""

    def __init__(self) -> None:
        self.exporter = NullSpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(BatchSpanProcessor(self.exporter))
        self.meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


class Bridge(Crewtrace):
    name = "bridge"

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        self.pipeline = _Pipeline()
        self.bridge = OTelBridge(self.pipeline.tracer_provider, self.pipeline.meter_provider, bus=self.bus)

    def close(self) -> None:
        self.bridge.close()
        self.pipeline.shutdown()


class CrewtraceCrew(Bridge):
    name = "crew"

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        agent = Agent(**AGENT, llm=self.llm)
        self.crew = Crew(name="bench", agents=[agent], tasks=[Task(**TASK, agent=agent)], bus=self.bus)

    def stream(self, n: int) -> int:
        return answer_chunks(self.crew.kickoff(inputs(n)))

    async def astream(self, n: int) -> int:
        return answer_chunks(await self.crew.kickoff_async(inputs(n)))


class CrewtraceCrewStream(CrewtraceCrew):
    name = "crew-stream"

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        self.crew.stream = True

    def stream(self, n: int) -> int:
        streaming = self.crew.kickoff(inputs(n))
        assert isinstance(streaming, CrewStreamingOutput)
        for _ in streaming:
            pass
        return answer_chunks(streaming.result)

    async def astream(self, n: int) -> int:
        streaming = await self.crew.kickoff_async(inputs(n))
        assert isinstance(streaming, CrewStreamingOutput)
        async for _ in streaming:
            pass
        return answer_chunks(streaming.result)


class OpenInference(BareLiteLLM):
    name = "openinference"

    def __init__(self, base_url: str) -> None:
        from openinference.instrumentation.litellm import LiteLLMInstrumentor

        super().__init__(base_url)
        self.pipeline = _Pipeline()
        self.instrumentor = LiteLLMInstrumentor()

    def activate(self) -> None:
        self.instrumentor.instrument(tracer_provider=self.pipeline.tracer_provider)

    def deactivate(self) -> None:
        self.instrumentor.uninstrument()

    def close(self) -> None:
        self.pipeline.shutdown()


def available(base_url: str, names: Sequence[str]) -> list[Scenario]:
    """The scenarios asked for and installed, built; the CrewAI ones come from ``bench/crewai.py``."""
    built: list[Scenario] = []
    local: dict[str, type[Scenario]] = {
        "litellm": BareLiteLLM, "crewtrace": Crewtrace, "bridge": Bridge, "crew": CrewtraceCrew,
        "crew-stream": CrewtraceCrewStream, "openinference": OpenInference,
    }  # fmt: skip
    for name in names:
        try:
            if name in CREWAI:
                built.append(getattr(importlib.import_module("bench.crewai"), CREWAI[name])(base_url))
            else:
                built.append(local[name](base_url))
        except ImportError as exc:
            print(f"skipping {name}: {exc}")
    return built


CREWAI = {
    "crewai": "CrewAIDefault", "crewai+listener": "CrewAIListener", "crewai+crewtrace": "CrewAICrewtrace",
    "crewai+openinference": "CrewAIOpenInference", "crewai+openinference-events": "CrewAIOpenInferenceEvents",
    "crewai+openllmetry": "CrewAIOpenLLMetry", "crewai+adapter": "CrewAIAdapter",
    "crewai+crewtrace-nometrics": "CrewAINoMetrics",
}  # fmt: skip
"""Scenarios of ``bench/crewai.py``, built only where CrewAI imports."""
NAMES = ("litellm", "crewtrace", "bridge", "crew", "openinference", *CREWAI)
