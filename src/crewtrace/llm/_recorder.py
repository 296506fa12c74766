"""One LLM call's bookkeeping: events out, timings and text in, finished exactly once.

The sync and async paths of :class:`~crewtrace.llm.LLM` share it, so both
emit the same events with the same fields. Everything that can be decided
once per call (attribution, event base fields, whether anyone listens to
chunks) is decided here, before the first chunk.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from crewtrace.errors import LLMError
from crewtrace.events.base import TokenUsage
from crewtrace.events.bus import EventBus
from crewtrace.events.scope import current_scope
from crewtrace.events.types.llm import (
    LLMCallCompletedEvent,
    LLMCallFailedEvent,
    LLMCallStartedEvent,
    LLMStreamChunkEvent,
)
from crewtrace.llm._errors import error_type_of, is_cancellation, redact, to_llm_error

if TYPE_CHECKING:
    from crewtrace.llm.client import LLM

_logger = logging.getLogger("crewtrace.llm")

_CANCELLED_MESSAGE = "stream abandoned before it finished (break, close, garbage collection or cancellation)"


@dataclass(frozen=True, slots=True)
class CallResult:
    """What a finished call produced, for callers that need more than the text."""

    text: str
    usage: TokenUsage | None
    cost_usd: float | None


class CallRecorder:
    """Feeds one call's raw litellm chunks in; emits started/chunk/completed/failed."""

    __slots__ = (
        "_base",
        "_bus",
        "_chunk_listeners",
        "_llm",
        "_started",
        "chunk_count",
        "finish_reason",
        "parts",
        "response_id",
        "response_model",
        "result",
        "time_to_first_chunk",
        "usage",
    )

    def __init__(self, llm: LLM, messages: list[dict[str, Any]], *, stream: bool) -> None:
        self._llm = llm
        self._bus: EventBus = llm.bus
        self._base: dict[str, Any] = {
            **current_scope().fields(),
            "call_id": uuid.uuid4().hex,
            "model": llm.model,
            "provider": llm.provider,
        }
        self.parts: list[str] = []
        self.chunk_count = 0
        self.time_to_first_chunk: float | None = None
        self.response_id: str | None = None
        self.response_model: str | None = None
        self.finish_reason: str | None = None
        self.usage: Any = None
        self.result: CallResult | None = None
        self._bus.emit(
            llm,
            LLMCallStartedEvent(
                **self._base,
                messages=messages,
                stream=stream,
                temperature=llm.temperature,
                max_tokens=llm.max_tokens,
                server_address=llm.server_address,
                server_port=llm.server_port,
            ),
        )
        self._chunk_listeners = self._bus.has_handlers(LLMStreamChunkEvent)
        self._started = time.perf_counter()

    @property
    def call_id(self) -> str:
        return self._base["call_id"]

    def on_chunk(self, raw: Any) -> str | None:
        """Take one raw stream chunk; return its text, if it has any. The hot path."""
        if self.response_id is None:
            self.response_id = raw.id
            self.response_model = raw.model
        usage = getattr(raw, "usage", None)
        if usage is not None:
            self.usage = usage
        choices = raw.choices
        if not choices:
            return None
        choice = choices[0]
        if choice.finish_reason:
            self.finish_reason = choice.finish_reason
        delta = choice.delta
        text = delta.content if delta is not None else None
        if not text:
            return None
        index = self.chunk_count
        if index == 0:
            self.time_to_first_chunk = time.perf_counter() - self._started
        self.chunk_count = index + 1
        self.parts.append(text)
        if self._chunk_listeners:
            self._bus.emit(
                self._llm,
                LLMStreamChunkEvent(**self._base, chunk=text, chunk_index=index, response_id=self.response_id),
            )
        return text

    def on_response(self, response: Any) -> None:
        """Take a non-streamed response."""
        self.response_id = response.id
        self.response_model = response.model
        self.usage = getattr(response, "usage", None)
        choice = response.choices[0]
        self.finish_reason = choice.finish_reason
        self.parts.append(choice.message.content or "")

    def completed(self) -> CallResult:
        if self.result is not None:
            return self.result
        usage = _token_usage(self.usage)
        cost = self._llm._cost(self.usage)
        self.result = CallResult(text="".join(self.parts), usage=usage, cost_usd=cost)
        self._bus.emit(
            self._llm,
            LLMCallCompletedEvent(
                **self._base,
                **self._timings(),
                response=self.result.text,
                usage=usage,
                finish_reason=self.finish_reason,
                response_id=self.response_id,
                response_model=self.response_model,
                cost_usd=cost,
            ),
        )
        return self.result

    def fail(self, exc: BaseException) -> NoReturn:
        """Record the failure once, then raise it as crewtrace's error.

        Cancellations (``GeneratorExit``, ``CancelledError``, ``KeyboardInterrupt``)
        are recorded with ``error_type='cancelled'`` and re-raised unchanged, as
        are errors that already are crewtrace's.
        """
        if self.result is not None:
            raise exc
        partial = "".join(self.parts)
        self.result = CallResult(text=partial, usage=_token_usage(self.usage), cost_usd=None)
        if is_cancellation(exc):
            message = _CANCELLED_MESSAGE
        else:
            message = redact(f"{type(exc).__name__}: {exc}", self._llm.api_key)
        self._bus.emit(
            self._llm,
            LLMCallFailedEvent(
                **self._base,
                **self._timings(),
                error=message,
                error_type=error_type_of(exc),
                partial_response=partial,
            ),
        )
        if is_cancellation(exc) or isinstance(exc, LLMError):
            raise exc
        raise to_llm_error(
            exc, model=self._llm.model, message=message, partial_text=partial, chunks_received=self.chunk_count
        ) from exc

    def _timings(self) -> dict[str, Any]:
        return {
            "chunk_count": self.chunk_count,
            "duration_s": time.perf_counter() - self._started,
            "time_to_first_chunk_s": self.time_to_first_chunk,
        }


def _token_usage(usage: Any) -> TokenUsage | None:
    if usage is None:
        return None
    return TokenUsage(
        input_tokens=getattr(usage, "prompt_tokens", 0) or 0,
        output_tokens=getattr(usage, "completion_tokens", 0) or 0,
    )
