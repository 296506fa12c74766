"""The CrewAI scenarios of ``bench.run``: a CrewAI 1.15 crew alone, and under crewtrace.

Both run the same crew (one agent, one task, ``bench.scenarios.AGENT``/``TASK``) on
CrewAI's default LLM path, its native OpenAI client (``crewai.LLM("openai/...",
stream=True)``); its one LLM call streams the server's ``n``-chunk reply. A sample
times ``kickoff()`` (or ``await akickoff()``) plus ``crewai_event_bus.flush()``, so
the handlers CrewAI runs on its thread pool are counted. Concurrent ``akickoff()`` calls
each get a crew of their own (``Crew.copy()`` of the never-run template, as
``akickoff_for_each`` copies), made once (in the warm-up) and reused.

``instrument_crewai`` listens on CrewAI's process-wide bus, so ``crewai+crewtrace``
instruments just before each of its runs and closes right after (untimed), like the
peers of ``bench.scenarios``. Imported only by ``bench.scenarios.available``: without
CrewAI the import fails and both scenarios are skipped.
"""

from __future__ import annotations

import os

os.environ.update(CREWAI_DISABLE_TELEMETRY="true", CREWAI_TRACING_ENABLED="false")  # before crewai is imported

from crewai import LLM, Agent, Crew, Task
from crewai.events import crewai_event_bus

from bench.scenarios import AGENT, API_KEY, MODEL, TASK, TIMEOUT, Scenario, _Pipeline, answer_chunks, inputs
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


class CrewAICrewtrace(CrewAIDefault):
    name = "crewai+crewtrace"

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        self.bus = EventBus()
        self.pipeline = _Pipeline()
        self.bridge = OTelBridge(self.pipeline.tracer_provider, self.pipeline.meter_provider, bus=self.bus)
        self.instrumentation: CrewAIInstrumentation | None = None

    def activate(self) -> None:
        self.instrumentation = instrument_crewai(self.bus)

    def deactivate(self) -> None:
        if self.instrumentation is not None:
            self.instrumentation.close()
            self.instrumentation = None

    def close(self) -> None:
        self.deactivate()
        self.bridge.close()
        self.pipeline.shutdown()
