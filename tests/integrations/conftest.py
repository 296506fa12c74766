"""Real CrewAI crews against the local OpenAI-compatible server, offline; instrumented onto a private bus."""

from __future__ import annotations

import os

# Before CrewAI is imported: no telemetry or tracing calls home from the tests.
os.environ["CREWAI_DISABLE_TELEMETRY"] = "true"
os.environ["CREWAI_TRACING_ENABLED"] = "false"
os.environ["OTEL_SDK_DISABLED"] = "false"

import ipaddress
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

from crewtrace.events import EventBus
from crewtrace.telemetry import OTelBridge


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Fail any connection CrewAI (or anything else) tries to open beyond 127.0.0.1: the tests run offline."""
    attempts: list[Any] = []
    connect = socket.socket.connect

    def loopback_only(sock: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and not _is_loopback(host):
            attempts.append(address)
            raise OSError(f"tests run offline: connection to {address!r} refused")
        return connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", loopback_only)
    yield attempts
    assert attempts == [], f"something tried to reach the network: {attempts}"


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@pytest.fixture
def instrumentation(bus: EventBus) -> Iterator[Any]:
    """``instrument_crewai(bus)``, closed after the test (imported here: only CrewAI's tests use it)."""
    from crewtrace.integrations.crewai import instrument_crewai

    handle = instrument_crewai(bus)
    yield handle
    handle.close()


@pytest.fixture
def bridge(
    tracer_provider: TracerProvider,
    meter_provider: MeterProvider,
    bus: EventBus,
    instrumentation: Any,
) -> Iterator[OTelBridge]:
    bridge = OTelBridge(tracer_provider, meter_provider, capture_content=False, bus=bus)
    yield bridge
    bridge.close()
