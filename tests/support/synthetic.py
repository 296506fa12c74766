"""Synthetic LLM calls: the events one call emits, fed straight to a bus.

The bridge sees only events, so this is its real input, without an HTTP server or litellm:
what the soak, cardinality and export-queue tests use to push many calls through quickly.
"""

from __future__ import annotations

from typing import Any

from crewtrace.events import (
    EventBus,
    LLMCallCompletedEvent,
    LLMCallFailedEvent,
    LLMCallStartedEvent,
    LLMStreamChunkEvent,
    TokenUsage,
)

MODEL = "openai/test-model"


def call_fields(call_id: str, **fields: Any) -> dict[str, Any]:
    """The fields every event of one call carries: its id, model and provider, plus ``fields`` (agent, task, ...)."""
    return {"call_id": call_id, "model": MODEL, "provider": "openai", **fields}


def started(fields: dict[str, Any], *, stream: bool = True, **extra: Any) -> LLMCallStartedEvent:
    return LLMCallStartedEvent(**fields, messages=[], stream=stream, **extra)


def chunk(fields: dict[str, Any], index: int, **extra: Any) -> LLMStreamChunkEvent:
    """Chunk ``index``: distinct text per index, as a real stream has."""
    return LLMStreamChunkEvent(**fields, chunk=f"w{index} ", chunk_index=index, **extra)


def completed(fields: dict[str, Any], chunks: int, **extra: Any) -> LLMCallCompletedEvent:
    """The end of a call that streamed ``chunks`` chunks (usage: one input token, one output token per chunk)."""
    values: dict[str, Any] = {
        "response": "",
        "usage": TokenUsage(input_tokens=1, output_tokens=chunks),
        "chunk_count": chunks,
        "duration_s": 0.2,
        "time_to_first_chunk_s": 0.05 if chunks else None,
        **extra,
    }
    return LLMCallCompletedEvent(**fields, **values)


def failed(fields: dict[str, Any], chunks: int, error_type: str) -> LLMCallFailedEvent:
    return LLMCallFailedEvent(**fields, error="boom", error_type=error_type, chunk_count=chunks, duration_s=0.2)


def emit_call(
    bus: EventBus,
    call_id: str,
    *,
    chunks: int = 0,
    stream: bool = True,
    error_type: str | None = None,
    start_ns: int | None = None,
    cost_usd: float | None = None,
    **fields: Any,
) -> None:
    """Started, ``chunks`` chunk events, then completed (or failed with ``error_type``).

    ``fields`` go on every event (``model``, ``agent_role``, ``task_name``, ``run_id`` ...). With
    ``start_ns`` the events carry their own timestamps, 1 µs apart, instead of the clock's.
    """
    base = call_fields(call_id, **fields)

    def at(step: int) -> dict[str, int]:
        return {} if start_ns is None else {"timestamp_ns": start_ns + step * 1000}

    bus.emit(None, started(base, stream=stream, **at(0)))
    for index in range(chunks):
        bus.emit(None, chunk(base, index, **at(index + 1)))
    if error_type is not None:
        bus.emit(None, failed(base, chunks, error_type))
    else:
        bus.emit(None, completed(base, chunks, cost_usd=cost_usd, **at(chunks + 1)))
