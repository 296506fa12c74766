"""One LLM call's bookkeeping: events out, timings and text in, finished exactly once.

The sync and async paths of :class:`~crewtrace.llm.LLM` share it, so both
emit the same events with the same fields. Everything that can be decided
once per call (attribution, the bus and the run's sink, event base fields,
whether anyone listens to chunks) is decided here, before the first chunk;
each chunk event is one object shared by the bus and the run's sink.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any, NoReturn

from crewtrace.errors import ErrorType, LLMError, is_cancellation, llm_error_type
from crewtrace.events.base import TokenUsage
from crewtrace.events.bus import EventBus
from crewtrace.events.scope import current_scope, current_sink
from crewtrace.events.tool_calls import ToolCall, ToolCallBuffer
from crewtrace.events.types.llm import (
    LLMCallCompletedEvent,
    LLMCallFailedEvent,
    LLMCallStartedEvent,
    LLMStreamChunkEvent,
    StreamChunkType,
)
from crewtrace.llm._errors import to_llm_error
from crewtrace.llm._litellm import cost_of
from crewtrace.redaction import error_message, redact

_logger = logging.getLogger("crewtrace.llm")
_CANCELLED_MESSAGE = "stream abandoned before it finished (break, close, garbage collection or cancellation)"


@dataclass(frozen=True, slots=True)
class CallResult:
    """What a finished call produced, for callers that need more than the text."""

    text: str
    usage: TokenUsage | None
    cost_usd: float | None
    tool_calls: list[ToolCall]


@dataclass(frozen=True, slots=True)
class CallSettings:
    """What the recorder needs to know about the model: given, never read back from the ``LLM``."""

    source: object
    """Passed to handlers as the event's source (the ``LLM``)."""
    model: str
    """litellm's name for the model (``openai/gpt-4o-mini``): what is requested and priced."""
    request_model: str
    """The provider's name for it (``gpt-4o-mini``): what events report."""
    provider: str | None
    bus: EventBus | None
    """``None``: the bus of the crew run the call is made in (see ``RunSink``), else the default bus."""
    secrets: tuple[str, ...] = field(repr=False)  # a frame that prints its locals may show these settings
    base_url: str | None = field(default=None, repr=False)  # may hold credentials
    temperature: float | None = None
    max_tokens: int | None = None
    server_address: str | None = None
    server_port: int | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """What a finished stream delivered, as the recorder gathered it (for litellm's success logging)."""

    text: str
    usage: Any
    """The provider's usage object, or None if the stream sent none."""
    response_id: str | None
    response_model: str | None
    finish_reason: str | None
    tool_calls: list[ToolCall]
    time_to_first_chunk: float | None


class CallRecorder:
    """Feeds one call's raw litellm chunks in; emits started/chunk/completed/failed."""

    __slots__ = (
        "_base",
        "_bus",
        "_chunk_fields",
        "_chunk_listeners",
        "_deliver",
        "_generation",
        "_settings",
        "_sink",
        "_source",
        "_started",
        "_tool_calls",
        "chunk_count",
        "finish_reason",
        "parts",
        "response_id",
        "response_model",
        "result",
        "stopped",
        "time_to_first_chunk",
        "usage",
    )

    def __init__(self, settings: CallSettings, messages: list[dict[str, Any]], *, stream: bool) -> None:
        self._settings = settings
        self._source = settings.source
        sink = current_sink()
        self._sink = sink
        self._bus: EventBus = sink.bus if settings.bus is None else settings.bus
        self._deliver = sink.deliver if sink.takes_chunks else None
        self.stopped: BaseException | None = None
        """Why the run cut this call's stream (see :meth:`watching`), if it did."""
        self._base: dict[str, Any] = {
            **current_scope().attribution(),
            "call_id": uuid.uuid4().hex,
            "model": settings.request_model,
            "provider": settings.provider,
        }
        self.parts: list[str] = []
        self.chunk_count = 0
        self.time_to_first_chunk: float | None = None
        self.response_id: str | None = None
        self.response_model: str | None = None
        self.finish_reason: str | None = None
        self.usage: Any = None
        self.result: CallResult | None = None
        self._tool_calls = ToolCallBuffer()
        self._chunk_fields: dict[str, Any] | None = None
        # Read before emitting "started": a listener registered from then on changes the generation.
        self._generation = self._bus.generation
        self._chunk_listeners = self._bus.has_handlers(LLMStreamChunkEvent)
        # The started event's timestamp and the clock of the call's timings are read together, before the
        # event is built: a thread switch in between would make the call's duration outlast its span.
        timestamp_ns, self._started = time.time_ns(), time.perf_counter()
        started = LLMCallStartedEvent(
            **self._base,
            timestamp_ns=timestamp_ns,
            messages=messages,
            stream=stream,
            temperature=settings.temperature,
            max_tokens=settings.max_tokens,
            server_address=settings.server_address,
            server_port=settings.server_port,
        )
        try:
            self._bus.emit(self._source, started)
        except BaseException as exc:  # KeyboardInterrupt from a handler: whoever saw "started" sees the end
            self.fail(exc)

    @property
    def call_id(self) -> str:
        call_id: str = self._base["call_id"]
        return call_id

    def request(self) -> AbstractContextManager[dict[str, str]]:
        """The context to make this call's request in, as listeners ask (their headers to send): the request only."""
        return self._bus.request_context(self.call_id)

    def on_chunk(self, raw: Any) -> str | None:
        """Take one raw stream chunk, or a text delta as its text (``_sse``); return its text, if any. The hot path."""
        if raw.__class__ is str:
            return self._on_text(raw)
        if self.response_id is None:
            self.response_id = _text(raw.id)
            # litellm sets chunk.model to the requested model; what the server named is kept aside.
            hidden = getattr(raw, "_hidden_params", None) or {}
            self.response_model = hidden.get("provider_response_model") or raw.model
        # usage is an undeclared field of litellm's chunk model: reading the extras directly avoids
        # pydantic's raising __getattr__ on every chunk that has none (~1.5 us each).
        extra = raw.model_extra
        usage = extra.get("usage") if extra else getattr(raw, "usage", None)
        if usage is not None:
            self.usage = usage
        choices = raw.choices
        if not choices:
            return None
        choice = choices[0]
        if choice.finish_reason:
            self.finish_reason = choice.finish_reason
        delta = choice.delta
        if delta is None:
            return None
        if delta.tool_calls:
            self._on_tool_call_fragments(delta.tool_calls)
        return self._on_text(delta.content)

    def _on_text(self, text: str | None) -> str | None:
        if not text:
            return None
        index = self._next_index()
        self.parts.append(text)
        listening = self._listening()
        if listening or self._deliver is not None:
            self._emit_chunk(listening, text, index, StreamChunkType.TEXT, None)
        return text

    def _emit_chunk(self, listening: bool, text: str, index: int, kind: StreamChunkType, call: ToolCall | None) -> None:
        """One event for the bus (if anyone listens) and the run's sink (if it takes chunks).

        What a chunk's event shares with its call is validated once, at the first; a chunk adds its own
        values, all typed (the text a ``str``, the response id made text when it was read).
        """
        fields = self._chunk_fields
        if fields is None:
            fields = self._chunk_fields = LLMStreamChunkEvent(**self._base, chunk="", chunk_index=0).shared_fields()
        event = LLMStreamChunkEvent.assemble(
            {
                **fields,
                "chunk": text,
                "chunk_index": index,
                "response_id": self.response_id,
                "chunk_type": kind,
                "tool_call": call,
            }
        )
        if listening:
            self._bus.emit(self._source, event)
        if self._deliver is not None:
            self._deliver(event)

    def _listening(self) -> bool:
        """Whether anyone listens to chunks now: one int compared per chunk, handlers looked up on change."""
        generation = self._bus.generation
        if generation != self._generation:
            self._generation = generation
            self._chunk_listeners = self._bus.has_handlers(LLMStreamChunkEvent)
        return self._chunk_listeners

    def _next_index(self) -> int:
        index = self.chunk_count
        if index == 0:
            self.time_to_first_chunk = time.perf_counter() - self._started
        self.chunk_count = index + 1
        return index

    def _on_tool_call_fragments(self, fragments: Any) -> None:
        """Each fragment of a tool call is a chunk too: counted, timed and emitted like text."""
        for position, fragment in enumerate(fragments):
            function = fragment.function
            arguments = (function.arguments if function is not None else None) or ""
            call = self._tool_calls.add(
                fragment.index if fragment.index is not None else position,
                fragment.id,
                function.name if function is not None else None,
                arguments,
            )
            index = self._next_index()
            listening = self._listening()
            if listening or self._deliver is not None:
                self._emit_chunk(listening, arguments, index, StreamChunkType.TOOL_CALL, call)

    @contextmanager
    def watching(self, abort_stream: Callable[[], None]) -> Iterator[None]:
        """While the stream is read, the run may cut it from another thread (its consumer left while the
        model is silent): ``abort_stream`` closes the connection, :attr:`stopped` then says why."""

        def abort(reason: BaseException) -> None:
            self.stopped = reason
            abort_stream()

        unwatch = self._sink.watch(abort)
        try:
            yield
        finally:
            unwatch()

    def on_response(self, response: Any) -> None:
        """Take a non-streamed response."""
        self.response_id = response.id
        self.response_model = response.model
        self.usage = getattr(response, "usage", None)
        choice = response.choices[0]
        self.finish_reason = choice.finish_reason
        self.parts.append(choice.message.content or "")
        for index, call in enumerate(choice.message.tool_calls or ()):
            self._tool_calls.add(index, call.id, call.function.name, call.function.arguments or "")

    def reply(self) -> Reply:
        """What the stream delivered so far."""
        return Reply(
            text="".join(self.parts),
            usage=self.usage,
            response_id=self.response_id,
            response_model=self.response_model,
            finish_reason=self.finish_reason,
            tool_calls=self._tool_calls.calls(),
            time_to_first_chunk=self.time_to_first_chunk,
        )

    def counted(self, usage: Any) -> None:
        """Usage counted locally for a stream whose server reported none (litellm's token counter)."""
        if self.usage is None:
            self.usage = usage

    def completed(self) -> CallResult:
        """Emit the completed event once; an interrupt before it was built ends the call as failed."""
        if self.result is not None:
            return self.result
        try:
            usage = self._usage()
            cost = cost_of(self._settings.model, self.usage)
            tool_calls = self._tool_calls.calls()
            result = CallResult(text="".join(self.parts), usage=usage, cost_usd=cost, tool_calls=tool_calls)
            event = LLMCallCompletedEvent(
                **self._base,
                **self._timings(),
                response=result.text,
                usage=usage,
                finish_reason=_text(self.finish_reason),
                response_id=_text(self.response_id),
                response_model=_text(self.response_model),
                cost_usd=cost,
                tool_calls=tool_calls,
            )
        except BaseException as exc:  # e.g. Ctrl-C in the cost lookup: nothing was delivered yet
            self.fail(exc)
        self.result = result
        # The bus delivers to every handler before it re-raises a handler's interrupt: the call has ended.
        self._bus.emit(self._source, event)
        return result

    def fail(self, exc: BaseException) -> NoReturn:
        """Record the failure once, then raise it as crewtrace's error.

        Cancellations (``GeneratorExit``, ``CancelledError``, ``KeyboardInterrupt``)
        are recorded with ``error_type='cancelled'`` and re-raised unchanged, as
        are other ``BaseException``s and errors that already are crewtrace's.
        Anything else becomes an :class:`~crewtrace.errors.LLMError` chained to a
        sanitised stand-in, so no printing of the chain shows a secret.
        """
        if self.result is not None:
            raise exc
        partial = "".join(self.parts)
        self.result = CallResult(text=partial, usage=self._usage(), cost_usd=None, tool_calls=[])
        cancelled = is_cancellation(exc)
        error_type = llm_error_type(exc)
        message = _CANCELLED_MESSAGE if cancelled else self._describe(exc, error_type)
        self._bus.emit(
            self._source,
            LLMCallFailedEvent(
                **self._base,
                **self._timings(),
                error=message,
                error_type=error_type,
                partial_response=partial,
            ),
        )
        if cancelled or isinstance(exc, LLMError) or not isinstance(exc, Exception):
            raise exc
        error = to_llm_error(
            exc,
            model=self._settings.model,
            message=message,
            partial_text=partial,
            chunks_received=self.chunk_count,
            secrets=self._settings.secrets,
        )
        # This frame stays in the error's traceback, where anything that prints locals (capture_locals,
        # loguru, Sentry) reads it: it must not keep the provider's exception, whose message holds the key.
        del exc
        try:
            raise error
        finally:  # raised while handling the provider's exception: drop the implicit link to it, printed or not
            error.__context__ = None

    def _describe(self, exc: BaseException, error_type: str) -> str:
        message = error_message(exc, self._settings.secrets)
        url = self._settings.base_url
        if url and self.chunk_count == 0 and error_type == ErrorType.CONNECTION:
            tried = redact(url)  # the URL as given, less any credentials in it
            if tried not in message:
                message = f"{message} (tried {tried})"
        return message

    def _usage(self) -> TokenUsage | None:
        """The provider's usage as TokenUsage; counts that are not token counts leave it out, with a warning."""
        usage = self.usage
        if usage is None:
            return None
        reported = TokenUsage.reported(getattr(usage, "prompt_tokens", None), getattr(usage, "completion_tokens", None))
        if reported is None:
            _logger.warning(
                "%s: the provider's usage has token counts that are not whole numbers (%s, %s): usage left out",
                self._settings.model,
                type(getattr(usage, "prompt_tokens", None)).__name__,
                type(getattr(usage, "completion_tokens", None)).__name__,
            )
        return reported

    def _timings(self) -> dict[str, Any]:
        return {
            "chunk_count": self.chunk_count,
            "duration_s": time.perf_counter() - self._started,
            "time_to_first_chunk_s": self.time_to_first_chunk,
        }


def _text(value: object) -> str | None:
    """A text field of the provider's reply (an id, a model name, a finish reason) as text, whatever it sent."""
    return value if value is None or isinstance(value, str) else str(value)
