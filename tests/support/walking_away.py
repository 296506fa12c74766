"""Every way a consumer walks away from an LLM stream after two chunks, as application code does it.

Each function takes an :class:`~crewtrace.LLM` streaming :data:`CHUNKS`, consumes two chunks, walks
away, and returns how many it consumed. An abandoned async generator is finalised by the event loop:
:func:`settle` waits for the bridge to see every call end.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest
from tests.support.leaks import open_calls
from tests.support.polling import await_until

from crewtrace import LLM
from crewtrace.telemetry import OTelBridge

CHUNKS = [f"c{i} " for i in range(5)]


def abandon_by_break(llm: LLM) -> int:
    for n, _ in enumerate(llm.iter_text("x"), start=1):
        if n == 2:
            break
    return 2


def abandon_by_close(llm: LLM) -> int:
    stream = llm.iter_text("x")
    next(stream)
    next(stream)
    stream.close()
    return 2


def abandon_by_dropping(llm: LLM) -> int:
    stream = llm.iter_text("x")
    next(stream)
    next(stream)
    del stream  # no close(): reference counting finalises the generator
    return 2


def abandon_in_a_reference_cycle(llm: LLM) -> int:
    holder: dict[str, Any] = {"stream": llm.iter_text("x")}
    holder["self"] = holder
    next(holder["stream"])
    next(holder["stream"])
    del holder
    gc.collect()  # only the cycle collector can finalise it
    return 2


async def abandon_async_by_break(llm: LLM) -> int:
    n = 0
    async for _ in llm.aiter_text("x"):
        n += 1
        if n == 2:
            break
    return 2


async def abandon_async_by_aclose(llm: LLM) -> int:
    stream = llm.aiter_text("x")
    await stream.__anext__()
    await stream.__anext__()
    await stream.aclose()  # type: ignore[attr-defined]
    return 2


async def abandon_async_by_cancelling_the_consumer(llm: LLM) -> int:
    """The consumer task is cancelled while it works on a chunk (not inside the generator)."""
    got_two = asyncio.Event()

    async def consumer() -> None:
        n = 0
        async for _ in llm.aiter_text("x"):
            n += 1
            if n == 2:
                got_two.set()
                await asyncio.Event().wait()  # busy with the chunk until cancelled

    task = asyncio.create_task(consumer())
    await got_two.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return 2


SYNC_WAYS = [abandon_by_break, abandon_by_close, abandon_by_dropping, abandon_in_a_reference_cycle]
ASYNC_WAYS = [abandon_async_by_break, abandon_async_by_aclose, abandon_async_by_cancelling_the_consumer]


async def settle(bridge: OTelBridge, timeout: float = 2.0) -> None:
    """An abandoned async generator is finalised by the event loop (aclose() scheduled by its GC hook)."""
    await await_until(lambda: not open_calls(bridge), timeout, what="every abandoned call ended")
