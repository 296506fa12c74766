"""``LLM``: a litellm-backed chat model whose calls and chunks become events."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

from crewtrace.errors import ConfigurationError
from crewtrace.events.bus import EventBus
from crewtrace.llm._litellm import SKIP_MCP_GATEWAY, litellm
from crewtrace.llm._recorder import CallRecorder, CallResult, CallSettings
from crewtrace.llm._settings import validated
from crewtrace.llm._startup import await_started, wait_started
from crewtrace.llm._streams import ProviderStream
from crewtrace.redaction import provider_key, register_secrets, secrets_in_settings, secrets_in_url

__all__ = ["LLM", "Messages"]

Messages = str | Sequence[dict[str, Any]]
"""A prompt string (sent as one user message) or OpenAI-style chat messages."""

NO_KEY = "no-key-needed"
"""Sent as the API key to a ``base_url`` when no key is given anywhere: local servers need none, the SDK wants one."""


class LLM:
    """A chat model reached through litellm.

    With ``stream=True`` (kept as ``llm.stream``, as in CrewAI), :meth:`call`
    streams internally and emits one ``LLMStreamChunkEvent`` per received
    chunk; :meth:`iter_text` and :meth:`aiter_text` always stream and hand the
    text chunks to the caller as they arrive. Token usage is taken from the
    stream itself.

    ``request_model`` and ``provider`` are the model as its provider names it and the
    provider (``gpt-4o-mini`` and ``openai`` for ``openai/gpt-4o-mini``): what its events,
    spans and metrics report.

    Streams from providers that litellm serves through the OpenAI SDK
    (``openai/`` and other OpenAI-compatible ones) are read directly from the
    SDK's stream; the others through litellm's stream wrapper (see
    ``crewtrace.llm._streams`` and docs/benchmarks.md for which take which path).
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
        validated(
            model=model,
            temperature=temperature,
            max_tokens=max_tokens,
            base_url=base_url,
            api_key=api_key,
            timeout=timeout,
        )
        self.model = model
        self.stream = stream
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.base_url = base_url
        self.api_key = api_key
        self.timeout = timeout
        self.bus = bus
        """Where its events go; ``None``: the bus of the crew run it is called in, else ``crewtrace_event_bus``."""
        self.litellm_kwargs = litellm_kwargs
        self.request_model, self.provider = _split_model(model, base_url)
        # Secrets to scrub from everything recorded: the key given, the provider's from the environment,
        # the credentials in the base URL and the secret-looking settings passed on to litellm.
        env_key = provider_key(self.provider)
        self.secrets: tuple[str, ...] = tuple(
            secret
            for secret in (api_key, env_key, *secrets_in_url(base_url), *secrets_in_settings(litellm_kwargs))
            if secret
        )
        register_secrets(self.secrets)
        self._request_key = api_key
        if api_key is None and base_url is not None and not (env_key or litellm.api_key):
            self._request_key = NO_KEY
        address = urlsplit(base_url) if base_url else None
        self.server_address = address.hostname if address else None
        self.server_port = address.port if address else None

    def __repr__(self) -> str:
        return f"LLM(model={self.model!r}, stream={self.stream!r})"

    def warm_up(self) -> None:
        """Pay litellm's one-time start-up (lazy imports, request pipeline) now, if this process has not.

        The first call pays it anyway, before its clock starts (so no call reports it); this is for
        paying it at a moment of your choosing. Sends nothing over the network.
        """
        wait_started()

    def iter_text(self, messages: Messages) -> Iterator[str]:
        """Stream the reply, yielding its text chunks as they arrive (whatever ``stream=`` says)."""
        return self._stream(_normalise(messages))

    def call(self, messages: Messages) -> str:
        return self.invoke(messages).text

    async def acall(self, messages: Messages) -> str:
        return (await self.ainvoke(messages)).text

    def aiter_text(self, messages: Messages) -> AsyncIterator[str]:
        """Async form of :meth:`iter_text`."""
        return self._astream(_normalise(messages))

    def invoke(
        self,
        messages: Messages,
        *,
        tools: list[dict[str, Any]] | None = None,
        bus: EventBus | None = None,
        stream: bool | None = None,
    ) -> CallResult:
        """One call with optional tool definitions (OpenAI ``tools=`` entries); the result includes tool calls.

        Streams (chunk events as they arrive) when ``stream`` says so, or if it is ``None`` when the LLM
        was built with ``stream=True``. ``bus`` overrides the LLM's own for this call (a crew sends its
        agents' LLM calls to its bus).
        """
        normalised = _normalise(messages)
        streamed = self.stream if stream is None else stream
        wait_started()
        recorder = CallRecorder(self._settings(bus), normalised, stream=streamed)
        if streamed:
            for _ in self._stream(normalised, recorder, tools):
                pass
        else:
            try:
                with recorder.request() as headers:
                    response = litellm.completion(**self._request(normalised, headers, stream=False, tools=tools))
                recorder.on_response(response)
            except BaseException as exc:
                recorder.fail(exc)
        return recorder.completed()

    async def ainvoke(
        self,
        messages: Messages,
        *,
        tools: list[dict[str, Any]] | None = None,
        bus: EventBus | None = None,
        stream: bool | None = None,
    ) -> CallResult:
        """Async form of :meth:`invoke`."""
        normalised = _normalise(messages)
        streamed = self.stream if stream is None else stream
        await await_started()
        recorder = CallRecorder(self._settings(bus), normalised, stream=streamed)
        if streamed:
            async for _ in self._astream(normalised, recorder, tools):
                pass
        else:
            try:
                with recorder.request() as headers:
                    response = await litellm.acompletion(
                        **self._request(normalised, headers, stream=False, tools=tools)
                    )
                recorder.on_response(response)
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
            wait_started()
            recorder = CallRecorder(self._settings(), messages, stream=True)
        stream: ProviderStream | None = None
        try:
            with recorder.request() as headers:
                response = litellm.completion(**self._request(messages, headers, stream=True, tools=tools))
            stream = ProviderStream(response, is_async=False, model=self.model)
            with recorder.watching(stream.abort):
                on_chunk = recorder.on_chunk
                for raw in stream.chunks:
                    text = on_chunk(raw)
                    if text is not None:
                        yield text
            recorder.counted(stream.finish(recorder.reply(), messages))
        except BaseException as exc:
            if stream is not None:
                stream.close()
                exc = recorder.stopped or stream.error(exc, received=recorder.chunk_count > 0)
            recorder.fail(exc)
        recorder.completed()

    async def _astream(
        self,
        messages: list[dict[str, Any]],
        recorder: CallRecorder | None = None,
        tools: list[dict[str, Any]] | None = None,
    ) -> AsyncIterator[str]:
        if recorder is None:
            await await_started()
            recorder = CallRecorder(self._settings(), messages, stream=True)
        stream: ProviderStream | None = None
        try:
            with recorder.request() as headers:
                response = await litellm.acompletion(**self._request(messages, headers, stream=True, tools=tools))
            stream = ProviderStream(response, is_async=True, model=self.model)
            with recorder.watching(stream.abort):
                on_chunk = recorder.on_chunk
                async for raw in stream.chunks:
                    text = on_chunk(raw)
                    if text is not None:
                        yield text
            recorder.counted(await stream.afinish(recorder.reply(), messages))
        except BaseException as exc:
            if stream is not None:
                await stream.aclose()
                exc = recorder.stopped or stream.error(exc, received=recorder.chunk_count > 0)
            recorder.fail(exc)
        recorder.completed()

    def _settings(self, bus: EventBus | None = None) -> CallSettings:
        return CallSettings(
            source=self,
            model=self.model,
            request_model=self.request_model,
            provider=self.provider,
            bus=self.bus if bus is None else bus,
            secrets=self.secrets,
            base_url=self.base_url,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            server_address=self.server_address,
            server_port=self.server_port,
        )

    def _request(
        self,
        messages: list[dict[str, Any]],
        headers: dict[str, str],
        *,
        stream: bool,
        tools: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """litellm's arguments; ``headers`` (a listener's, e.g. W3C trace context) go with the user's ``extra_headers``.

        Given to litellm rather than left to an HTTP instrumentation: its async path uses aiohttp, which none covers.
        """
        request: dict[str, Any] = {**self.litellm_kwargs, "model": self.model, "messages": messages}
        if headers:
            request["extra_headers"] = {**(self.litellm_kwargs.get("extra_headers") or {}), **headers}
        if tools:
            request["tools"] = tools
            request.update(SKIP_MCP_GATEWAY)
        if stream:
            request["stream"] = True
            request["stream_options"] = {"include_usage": True}
        for key, value in (
            ("temperature", self.temperature),
            ("max_tokens", self.max_tokens),
            ("base_url", self.base_url),
            ("api_key", self._request_key),
            ("timeout", self.timeout),
        ):
            if value is not None:
                request[key] = value
        return request


def _normalise(messages: Messages) -> list[dict[str, Any]]:
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    normalised = list(messages)
    for i, message in enumerate(normalised):
        if not isinstance(message, dict) or "role" not in message:
            raise ConfigurationError(
                f"messages[{i}] must be a dict with 'role' and 'content' (OpenAI chat format), got {message!r}"
            )
    if not normalised:
        raise ConfigurationError("messages is empty: pass a prompt string or at least one chat message")
    return normalised


def _split_model(model: str, base_url: str | None) -> tuple[str, str | None]:
    """The model as its provider names it, and litellm's provider for it.

    A bare name litellm cannot place is refused here, not deep in a call; an unknown prefix is kept as it is.
    """
    try:
        request_model, provider = litellm.get_llm_provider(model=model, api_base=base_url)[:2]
    except Exception:
        if "/" not in model:
            hint = f"'openai/{model}' for an OpenAI-compatible server" if base_url else f"'openai/{model}'"
            raise ConfigurationError(
                f"model {model!r} needs its provider prefix, e.g. {hint} (litellm's provider/model form)"
            ) from None
        return model, None  # an unknown prefix: the call itself fails with litellm's message (and an event)
    return str(request_model), str(provider)
