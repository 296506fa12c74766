"""``LLM``: a litellm-backed chat model whose calls and chunks become events."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

from crewtrace.events.bus import EventBus, crewtrace_event_bus
from crewtrace.llm._litellm import litellm
from crewtrace.llm._recorder import CallRecorder, CallResult
from crewtrace.redaction import register_secrets

__all__ = ["LLM", "Messages"]

_logger = logging.getLogger("crewtrace.llm")

Messages = str | Sequence[dict[str, Any]]
"""A prompt string (sent as one user message) or OpenAI-style chat messages."""


class LLM:
    """A chat model reached through litellm.

    With ``stream=True``, :meth:`call` streams internally and emits one
    ``LLMStreamChunkEvent`` per received chunk; :meth:`stream` and
    :meth:`astream` always stream and hand the text chunks to the caller as
    they arrive. Token usage is taken from the stream itself. The ``stream=``
    setting is kept as ``stream_enabled`` (``stream`` is the iterator method).
    """

    def __init__(
        self,
        model: str,
        *,
        stream: bool = False,
        temperature: float | None = None,
        max_tokens: int | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float | None = None,
        bus: EventBus | None = None,
        **litellm_kwargs: Any,
    ) -> None:
        if not isinstance(model, str) or not model.strip():
            raise ValueError(f"model must be a non-empty string like 'openai/gpt-4o-mini', got {model!r}")
        self.model = model
        self.stream_enabled = stream
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.base_url = base_url
        self.api_key = api_key
        self.timeout = timeout
        self.bus = crewtrace_event_bus if bus is None else bus
        self.litellm_kwargs = litellm_kwargs
        self.provider = _provider_of(model, base_url)
        # Keys to scrub from error messages: the one given, and the provider's from the environment.
        env_key = os.environ.get(f"{self.provider.upper()}_API_KEY") if self.provider else None
        self.secrets: tuple[str, ...] = tuple(key for key in (api_key, env_key) if key)
        register_secrets(self.secrets)
        address = urlsplit(base_url) if base_url else None
        self.server_address = address.hostname if address else None
        self.server_port = address.port if address else None

    def __repr__(self) -> str:
        return f"LLM(model={self.model!r}, stream={self.stream_enabled!r})"

    def stream(self, messages: Messages) -> Iterator[str]:
        """Stream the reply, yielding text chunks as they arrive (whatever ``stream=`` says)."""
        return self._stream(_normalise(messages))

    def call(self, messages: Messages) -> str:
        return self.invoke(messages).text

    async def acall(self, messages: Messages) -> str:
        return (await self.ainvoke(messages)).text

    def astream(self, messages: Messages) -> AsyncIterator[str]:
        """Async form of :meth:`stream`."""
        return self._astream(_normalise(messages))

    def invoke(
        self, messages: Messages, *, tools: list[dict[str, Any]] | None = None, bus: EventBus | None = None
    ) -> CallResult:
        """One call with optional tool definitions (OpenAI ``tools=`` entries); the result includes tool calls.

        Streams when the LLM was built with ``stream=True`` (chunk events as they arrive). ``bus``
        overrides the LLM's own for this call (a crew sends its LLM calls to its bus).
        """
        normalised = _normalise(messages)
        recorder = CallRecorder(self, normalised, stream=self.stream_enabled, bus=bus)
        if self.stream_enabled:
            for _ in self._stream(normalised, recorder, tools):
                pass
        else:
            try:
                recorder.on_response(litellm.completion(**self._request(normalised, stream=False, tools=tools)))
            except BaseException as exc:
                recorder.fail(exc)
        return recorder.completed()

    async def ainvoke(
        self, messages: Messages, *, tools: list[dict[str, Any]] | None = None, bus: EventBus | None = None
    ) -> CallResult:
        """Async form of :meth:`invoke`."""
        normalised = _normalise(messages)
        recorder = CallRecorder(self, normalised, stream=self.stream_enabled, bus=bus)
        if self.stream_enabled:
            async for _ in self._astream(normalised, recorder, tools):
                pass
        else:
            try:
                recorder.on_response(await litellm.acompletion(**self._request(normalised, stream=False, tools=tools)))
            except BaseException as exc:
                recorder.fail(exc)
        return recorder.completed()

    # The recorder is made inside the generators when not given, so that a
    # stream that is created but never iterated starts (and leaks) nothing.

    def _stream(
        self,
        messages: list[dict[str, Any]],
        recorder: CallRecorder | None = None,
        tools: list[dict[str, Any]] | None = None,
    ) -> Iterator[str]:
        if recorder is None:
            recorder = CallRecorder(self, messages, stream=True)
        response = None
        try:
            response = litellm.completion(**self._request(messages, stream=True, tools=tools))
            for raw in response:
                text = recorder.on_chunk(raw)
                if text is not None:
                    yield text
        except BaseException as exc:
            _close_sync(response)
            recorder.fail(exc)
        recorder.completed()

    async def _astream(
        self,
        messages: list[dict[str, Any]],
        recorder: CallRecorder | None = None,
        tools: list[dict[str, Any]] | None = None,
    ) -> AsyncIterator[str]:
        if recorder is None:
            recorder = CallRecorder(self, messages, stream=True)
        response = None
        try:
            response = await litellm.acompletion(**self._request(messages, stream=True, tools=tools))
            async for raw in response:
                text = recorder.on_chunk(raw)
                if text is not None:
                    yield text
        except BaseException as exc:
            if response is not None:
                await _aclose_quietly(response)
            recorder.fail(exc)
        recorder.completed()

    def _request(
        self, messages: list[dict[str, Any]], *, stream: bool, tools: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        request: dict[str, Any] = {**self.litellm_kwargs, "model": self.model, "messages": messages}
        if tools:
            request["tools"] = tools
        if stream:
            request["stream"] = True
            request["stream_options"] = {"include_usage": True}
        for key, value in (
            ("temperature", self.temperature),
            ("max_tokens", self.max_tokens),
            ("base_url", self.base_url),
            ("api_key", self.api_key),
            ("timeout", self.timeout),
        ):
            if value is not None:
                request[key] = value
        return request

    def _cost(self, usage: Any) -> float | None:
        """USD for this usage: litellm's own figure if it attached one, else its price map."""
        if usage is None:
            return None
        cost = getattr(usage, "cost", None)
        if cost is not None:
            return float(cost)
        try:
            prompt_cost, completion_cost = litellm.cost_per_token(
                model=self.model,
                prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
                completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
            )
        except Exception:  # an unpriced model is normal, not an error
            return None
        return float(prompt_cost + completion_cost)


def _normalise(messages: Messages) -> list[dict[str, Any]]:
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    normalised = list(messages)
    for i, message in enumerate(normalised):
        if not isinstance(message, dict) or "role" not in message:
            raise TypeError(
                f"messages[{i}] must be a dict with 'role' and 'content' (OpenAI chat format), got {message!r}"
            )
    if not normalised:
        raise ValueError("messages is empty: pass a prompt string or at least one chat message")
    return normalised


def _provider_of(model: str, base_url: str | None) -> str | None:
    try:
        return litellm.get_llm_provider(model=model, api_base=base_url)[1]
    except Exception:  # unknown provider: the call itself will fail with litellm's message
        return None


def _close_sync(response: Any) -> None:
    """Release the HTTP connection of an abandoned sync stream."""
    stream = getattr(response, "completion_stream", None)
    close = getattr(stream, "close", None)
    if close is None:
        return
    try:
        close()
    except Exception:
        _logger.debug("closing an abandoned stream failed", exc_info=True)


async def _aclose_quietly(response: Any) -> None:
    try:
        await response.aclose()
    except Exception:
        _logger.debug("closing an abandoned stream failed", exc_info=True)
