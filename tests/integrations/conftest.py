"""Real CrewAI crews against the local OpenAI-compatible server, offline; instrumented onto a private bus."""

from __future__ import annotations

import os

# Before CrewAI is imported: no telemetry or tracing calls home from the tests.
os.environ["CREWAI_DISABLE_TELEMETRY"] = "true"
os.environ["CREWAI_TRACING_ENABLED"] = "false"
os.environ["OTEL_SDK_DISABLED"] = "false"

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

from crewtrace.events import EventBus
from crewtrace.integrations.crewai import CrewAIInstrumentation, instrument_crewai
from crewtrace.telemetry import OTelBridge


@pytest.fixture
def instrumentation(bus: EventBus) -> Iterator[CrewAIInstrumentation]:
    handle = instrument_crewai(bus)
    yield handle
    handle.close()


@pytest.fixture
def bridge(
    tracer_provider: TracerProvider,
    meter_provider: MeterProvider,
    bus: EventBus,
    instrumentation: CrewAIInstrumentation,
) -> Iterator[OTelBridge]:
    bridge = OTelBridge(tracer_provider, meter_provider, capture_content=False, bus=bus)
    yield bridge
    bridge.close()
