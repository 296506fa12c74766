"""CrewAI rows of the benchmark: the same two-agent CrewAI crew alone, with crewtrace, and with each peer.

``python -m bench.crewai [--rounds N] [--chunks N]``. Every scenario runs the same
crew (two agents, two tasks, ``--chunks`` chunks per call, CrewAI's native OpenAI
path) against an in-process local server; scenarios are interleaved round by
round (order rotated) so machine load hits them alike, and each sample times
``kickoff()`` plus ``crewai_event_bus.flush()`` (handlers on CrewAI's pool count).
Peers are instrumented before and uninstrumented after each of their samples
(outside the timed block); a peer that is not installed is left out and named.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")
os.environ.setdefault("CREWAI_TRACING_ENABLED", "false")
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from crewai.events import crewai_event_bus  # noqa: E402
from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from tests.support.openai_server import FakeOpenAIServer, Reply, numbered_chunks  # noqa: E402

from bench.measure import Clock, Sample, end_run, interleave, median, paired_delta_per_chunk_us, prepare_run  # noqa: E402
from crewai import LLM, Agent, Crew, Task  # noqa: E402
from crewtrace.events import EventBus  # noqa: E402
from crewtrace.integrations.crewai import instrument_crewai  # noqa: E402
from crewtrace.telemetry import OTelBridge  # noqa: E402

Setup = Callable[[TracerProvider, MeterProvider], Callable[[], None]]
"""Instruments, returns the undo."""


def _crewtrace(tracer_provider: TracerProvider, meter_provider: MeterProvider) -> Callable[[], None]:
    bus = EventBus()
    bridge = OTelBridge(tracer_provider, meter_provider, capture_content=False, bus=bus)
    instrumentation = instrument_crewai(bus)

    def undo() -> None:
        instrumentation.close()
        bridge.close()

    return undo


def _openinference(tracer_provider: TracerProvider, meter_provider: MeterProvider) -> Callable[[], None]:
    from openinference.instrumentation.crewai import CrewAIInstrumentor

    instrumentor = CrewAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    return instrumentor.uninstrument  # type: ignore[no-any-return]


def _openllmetry(tracer_provider: TracerProvider, meter_provider: MeterProvider) -> Callable[[], None]:
    from opentelemetry.instrumentation.crewai import CrewAIInstrumentor

    instrumentor = CrewAIInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    return instrumentor.uninstrument  # type: ignore[no-any-return]


PEERS: dict[str, tuple[str, Setup]] = {
    "crewai + crewtrace": ("crewtrace", _crewtrace),
    "crewai + OpenInference": ("openinference.instrumentation.crewai", _openinference),
    "crewai + OpenLLMetry": ("opentelemetry.instrumentation.crewai", _openllmetry),
}
BASELINE = "crewai alone"


def _installed(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


def _crew(server: FakeOpenAIServer) -> Crew:
    def llm() -> LLM:
        return LLM(model="openai/bench-model", base_url=server.base_url, api_key="sk-bench", stream=True)

    researcher = Agent(role="Researcher", goal="Find facts.", backstory="Careful.", llm=llm(), max_iter=2)
    writer = Agent(role="Writer", goal="Write.", backstory="Clear.", llm=llm(), max_iter=2)
    return Crew(
        name="bench",
        agents=[researcher, writer],
        tasks=[
            Task(name="research", description="Research {topic}.", expected_output="Facts.", agent=researcher),
            Task(name="write", description="Write about {topic}.", expected_output="Text.", agent=writer),
        ],
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--chunks", type=int, default=200, help="chunks per LLM call (two calls per kickoff)")
    args = parser.parse_args(argv)
    chunks = ["Final Answer: ", *numbered_chunks(args.chunks - 1)]
    names = [BASELINE] + [name for name, (module, _) in PEERS.items() if _installed(module)]
    missing = [name for name, (module, _) in PEERS.items() if not _installed(module)]
    with FakeOpenAIServer(lambda body: Reply(chunks=chunks)) as server:
        crew = _crew(server)

        def run(name: str) -> Sample:
            exporter = InMemorySpanExporter()
            tracer_provider = TracerProvider()
            tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
            meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
            undo = PEERS[name][1](tracer_provider, meter_provider) if name in PEERS else None
            prepare_run()
            clock = Clock()
            crew.kickoff(inputs={"topic": "bench"})
            crewai_event_bus.flush()
            sample = clock.stop(2 * args.chunks)
            end_run()
            if undo is not None:
                undo()
            sample.extra["spans"] = len(exporter.get_finished_spans())
            tracer_provider.shutdown()
            meter_provider.shutdown()
            return sample

        samples = interleave(names, run, args.rounds, progress=lambda label: print(label, file=sys.stderr))
    base = samples[BASELINE]
    per_chunk = median(s.wall_ns / 1e3 / s.chunks for s in base)
    print(f"load average {os.getloadavg()}; {args.rounds} rounds; {args.chunks} chunks per call, 2 calls per kickoff")
    print("| scenario | µs per chunk (median) | added µs per chunk (paired) | added % | spans |")
    print("|---|---|---|---|---|")
    for name in names:
        mine = median(s.wall_ns / 1e3 / s.chunks for s in samples[name])
        added = paired_delta_per_chunk_us(samples[name], base) if name != BASELINE else 0.0
        spans = samples[name][-1].extra["spans"]
        print(f"| {name} | {mine:.1f} | {added:+.1f} | {100 * added / per_chunk:+.1f} % | {spans} |")
    for name in missing:
        print(f"| {name} | not installed here | | | |")
    print(f"at {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")


if __name__ == "__main__":
    main()
