"""Fixtures of the telemetry tests: a bridge on the test's own providers and bus."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

from crewtrace.events import EventBus
from crewtrace.telemetry import OTelBridge


@pytest.fixture
def bridge(tracer_provider: TracerProvider, meter_provider: MeterProvider, bus: EventBus) -> Iterator[OTelBridge]:
    bridge = OTelBridge(tracer_provider, meter_provider, capture_content=False, bus=bus)
    yield bridge
    bridge.close()
