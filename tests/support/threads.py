"""Background threads telemetry starts, found by the names the SDK and crewtrace give them."""

from __future__ import annotations

import threading


def sdk_threads() -> set[threading.Thread]:
    """Worker threads of the SDK (batch span processor, periodic metric reader) and crewtrace's shutdown."""
    return {
        t
        for t in threading.enumerate()
        if t.is_alive() and (t.name.startswith("Otel") or t.name == "crewtrace-telemetry-shutdown")
    }
