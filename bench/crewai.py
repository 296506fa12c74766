"""The CrewAI scenarios of ``bench.run``: a CrewAI 1.15 crew alone, under crewtrace, and under its peers.

All run the same crew (one agent, one task, ``bench.scenarios.AGENT``/``TASK``) on
CrewAI's default LLM path, its native OpenAI client (``crewai.LLM("openai/...",
stream=True)``); its one LLM call streams the server's ``n``-chunk reply. A sample
times ``kickoff()`` (or ``await akickoff()``) plus ``crewai_event_bus.flush()``, so
the handlers CrewAI runs on its thread pool are counted. Concurrent ``akickoff()`` calls
each get a crew of their own (``Crew.copy()`` of the never-run template, as
``akickoff_for_each`` copies), made once (in the warm-up) and reused.

``crewai+listener`` adds one chunk handler that does nothing: what CrewAI's bus costs any
per-chunk listener, the floor under ``crewai+crewtrace``. Two more take ``crewai+crewtrace``
apart: ``crewai+adapter`` is ``instrument_crewai`` alone (its chunk events reach one listener that
does nothing; no bridge), ``crewai+crewtrace-nometrics`` the bridge on OpenTelemetry's no-op meter
provider (everything but the SDK's metric points).

``instrument_crewai`` listens on CrewAI's process-wide bus, so ``crewai+crewtrace``
instruments just before each of its runs and closes right after (untimed), like the
peers of ``bench.scenarios``. The peers' CrewAI instrumentors (``crewai+openinference``,
``crewai+openllmetry``; ``crewai+openinference-events``, OpenInference's mode that listens on
CrewAI's bus instead) patch CrewAI's classes for the whole process, so they are switched on and
off the same way, and export into a ``_Pipeline`` of their own as crewtrace does; one whose
package is not installed is skipped. Imported only by ``bench.scenarios.available``: without
CrewAI the import fails and all these scenarios are skipped.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

os.environ.update(CREWAI_DISABLE_TELEMETRY="true", CREWAI_TRACING_ENABLED="false")  # before crewai is imported

from crewai import LLM, Agent, Crew, Task
from crewai.events import LLMStreamChunkEvent, crewai_event_bus
from opentelemetry.metrics import NoOpMeterProvider

from bench.scenarios import AGENT, API_KEY, MODEL, TASK, TIMEOUT, Scenario, _Pipeline, answer_chunks, inputs
from crewtrace import events
from crewtrace.events import EventBus
from crewtrace.integrations.crewai import CrewAIInstrumentation, instrument_crewai
from crewtrace.telemetry import OTelBridge


class CrewAIDefault(Scenario):
    name = "crewai"

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        llm = LLM(model=MODEL, base_url=base_url, api_key=API_KEY, stream=True, timeout=TIMEOUT)
        agent = Agent(**AGENT, llm=llm)
        self.template = Crew(name="bench", agents=[agent], tasks=[Task(**TASK, agent=agent)])
        self.crew = self.template.copy()  # a crew run once copies as its filled-in task: copy the unrun one
        self.idle = [self.crew]  # crews not running an akickoff

    def stream(self, n: int) -> int:
        output = self.crew.kickoff(inputs=inputs(n))
        crewai_event_bus.flush()
        return answer_chunks(output)

    async def astream(self, n: int) -> int:
        crew = self.idle.pop() if self.idle else self.template.copy()
        try:
            output = await crew.akickoff(inputs=inputs(n))
        finally:
            self.idle.append(crew)
        crewai_event_bus.flush()  # blocking, as akickoff's own flush before its completed event
        return answer_chunks(output)


class CrewAIListener(CrewAIDefault):
    """CrewAI with one chunk handler that does nothing: what CrewAI's bus costs any per-chunk listener."""

    name = "crewai+listener"

    def activate(self) -> None:
        crewai_event_bus.on(LLMStreamChunkEvent)(_ignore)

    def deactivate(self) -> None:
        crewai_event_bus.off(LLMStreamChunkEvent, _ignore)


def _ignore(source: Any, event: Any) -> None:
    pass


class CrewAICrewtrace(CrewAIDefault):
    name = "crewai+crewtrace"

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        self.bus = EventBus()
        self.pipeline = _Pipeline()
        self.bridge = self.listen()
        self.instrumentation: CrewAIInstrumentation | None = None

    def listen(self) -> OTelBridge | None:
        """What listens on the crewtrace bus: the bridge, on the bench's pipeline."""
        return OTelBridge(self.pipeline.tracer_provider, self.pipeline.meter_provider, bus=self.bus)

    def activate(self) -> None:
        self.instrumentation = instrument_crewai(self.bus)

    def deactivate(self) -> None:
        if self.instrumentation is not None:
            self.instrumentation.close()
            self.instrumentation = None

    def close(self) -> None:
        self.deactivate()
        if self.bridge is not None:
            self.bridge.close()
        self.pipeline.shutdown()


class CrewAIAdapter(CrewAICrewtrace):
    """``instrument_crewai`` alone: its chunk events reach one listener that does nothing, and no bridge."""

    name = "crewai+adapter"

    def listen(self) -> OTelBridge | None:
        self.bus.on(events.LLMStreamChunkEvent)(_ignore)
        return None


class CrewAINoMetrics(CrewAICrewtrace):
    """``crewai+crewtrace`` with no-op instruments: the difference is what the SDK's metric points cost."""

    name = "crewai+crewtrace-nometrics"

    def listen(self) -> OTelBridge | None:
        return OTelBridge(self.pipeline.tracer_provider, NoOpMeterProvider(), bus=self.bus)


class _Peer(CrewAIDefault):
    """The crew under a peer's ``CrewAIInstrumentor`` (an OTel ``BaseInstrumentor``), instrumented around each run."""

    module = ""  # where the peer's CrewAIInstrumentor is
    metrics = False  # whether its instrument() takes a meter provider

    def __init__(self, base_url: str) -> None:
        instrumentor = importlib.import_module(self.module).CrewAIInstrumentor  # not installed: skipped
        super().__init__(base_url)
        self.pipeline = _Pipeline()
        self.instrumentor: Any = instrumentor()
        self.options: dict[str, Any] = {"tracer_provider": self.pipeline.tracer_provider}  # of instrument()
        if self.metrics:
            self.options["meter_provider"] = self.pipeline.meter_provider

    def activate(self) -> None:
        self.instrumentor.instrument(**self.options)

    def deactivate(self) -> None:
        self.instrumentor.uninstrument()

    def close(self) -> None:
        self.pipeline.shutdown()


class CrewAIOpenInference(_Peer):
    name = "crewai+openinference"
    module = "openinference.instrumentation.crewai"


class CrewAIOpenInferenceEvents(CrewAIOpenInference):
    """Its event-listener mode: spans from CrewAI's bus, an LLM span too, and ``akickoff`` covered."""

    name = "crewai+openinference-events"

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        self.options["use_event_listener"] = True


class CrewAIOpenLLMetry(_Peer):
    name = "crewai+openllmetry"
    module = "opentelemetry.instrumentation.crewai"
    metrics = True
