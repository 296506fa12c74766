"""What a finished call must not leave behind in the bridge: open spans, or any of its objects.

Through the bridge's public ``open_spans()`` and the garbage collector; no private name is read,
so these checks hold whatever the bridge's bookkeeping classes are called.
"""

from __future__ import annotations

import gc
from collections import Counter

from crewtrace.telemetry import OTelBridge

TELEMETRY_PACKAGE = "crewtrace.telemetry"


def open_calls(bridge: OTelBridge) -> list[str]:
    """The LLM-call spans the bridge still holds open."""
    return [name for name in bridge.open_spans() if name.startswith("chat ")]


def open_state(bridge: OTelBridge) -> dict[str, int]:
    """How many spans the bridge still holds open: LLM calls, and the others (crew, task, agent, tool)."""
    calls = len(open_calls(bridge))
    return {"calls": calls, "spans": len(bridge.open_spans()) - calls}


def live_instances(package: str = TELEMETRY_PACKAGE) -> Counter[str]:
    """Instances of the classes defined in ``package`` still alive anywhere in the process, by class.

    Compare a count taken before a run with one taken after it: per-call bookkeeping that outlives
    its call shows as a class whose count grew.
    """
    gc.collect()
    prefix = f"{package}."
    counts: Counter[str] = Counter()
    for cls in map(type, gc.get_objects()):
        module = cls.__dict__.get("__module__")  # a type's own, never a descriptor it exposes for instances
        if isinstance(module, str) and (module == package or module.startswith(prefix)):
            counts[f"{module}.{cls.__qualname__}"] += 1
    return counts
