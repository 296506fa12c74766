"""``BaseEvent.assemble``: the hot paths' events are the same events as validated ones."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from crewtrace.events import ExecutionScope, LLMStreamChunkEvent, StreamChunkType


def fields() -> dict[str, object]:
    scope = ExecutionScope(flow_name="f", run_id="r", task_name="t", agent_role="a")
    template = scope.stamp(LLMStreamChunkEvent, call_id="c", model="m", provider="openai", chunk="", chunk_index=0)
    return {**template.__dict__, "event_id": "e-7", "timestamp_ns": 1_700_000_000_000_000_000}


def test_an_assembled_event_equals_the_validated_one_and_behaves_like_it() -> None:
    values = {**fields(), "chunk": "hi", "chunk_index": 3, "chunk_type": StreamChunkType.REASONING}
    assembled = LLMStreamChunkEvent.assemble(dict(values))
    validated = LLMStreamChunkEvent(**values)
    assert assembled == validated
    assert assembled.model_dump() == validated.model_dump()
    assert assembled.timestamp == validated.timestamp
    assert assembled.model_fields_set == validated.model_fields_set
    copied = assembled.model_copy(update={"chunk": "there"})
    assert copied.chunk == "there" and assembled.chunk == "hi", "a copy does not touch the original"
    with pytest.raises(ValidationError):
        assembled.chunk = "changed"  # type: ignore[misc]
