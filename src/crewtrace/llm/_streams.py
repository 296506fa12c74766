"""Which way a provider's stream reaches the recorder: read directly, or through litellm's wrapper.

litellm hands every stream over inside its ``CustomStreamWrapper``, which turns each
provider's format into OpenAI's. In litellm 1.106 the wrapper costs 500-1,000 µs per
chunk whatever the provider: it submits success logging to a thread pool for every
chunk, formats every chunk for a debug line nobody reads, grows the text so far by
string concatenation and runs ``post_call_rules`` over it (quadratic in stream
length), and keeps every chunk (about 440 MB for 100,000 chunks).

*Direct path.* When the stream under the wrapper is the OpenAI SDK's own
(``openai.Stream`` / ``openai.AsyncStream``), its chunks already are OpenAI's wire
format, which the recorder reads as is: crewtrace reads that stream's events itself
(``_sse``: a text delta as its text, any other chunk as the SDK's model), then does
once what the wrapper does once: reports the finished call to litellm's logging (the
user's success callbacks see it once, with usage and cost), counts tokens if the
server sent no usage, maps a failure to the exception the wrapper would raise and
reports it to litellm's failure callbacks. The connection is closed through the
wrapper, as before.

*Wrapped path.* Any other stream is consumed through litellm's wrapper, unchanged.

Checked with litellm 1.106 against a local OpenAI-compatible server: ``openai/``
(with or without ``base_url``), ``custom_openai/``, ``litellm_proxy/``,
``lm_studio/``, ``nvidia_nim/``, ``cerebras/`` and ``perplexity/`` take the direct
path. ``hosted_vllm/``, ``deepseek/``, ``together_ai/``, ``groq/``, ``openrouter/``,
``fireworks_ai/``, ``xai/``, ``mistral/`` (litellm parses their SSE itself), and
every non-OpenAI format (``anthropic/``, ``gemini/``, ``bedrock/``, ``ollama/``,
custom providers such as the demo's, ``mock_response=``) keep the wrapper. The
choice is made per call from the stream's type, so a provider litellm moves to or
from the OpenAI client changes path by itself.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import socket
import traceback
from typing import Any

import openai

from crewtrace.llm._litellm import MidStreamFallbackError, litellm, logging_executor
from crewtrace.llm._recorder import Reply
from crewtrace.llm._sse import achunks, chunks

__all__ = ["ProviderStream"]

_logger = logging.getLogger("crewtrace.llm")
_pending: set[asyncio.Task[None]] = set()  # success reports in flight (the loop keeps only weak references)


class ProviderStream:
    """One call's stream as litellm returned it, and the path its chunks take."""

    __slots__ = ("_logging", "_model", "_provider", "_wrapper", "chunks", "direct")

    def __init__(self, wrapper: Any, *, is_async: bool, model: str) -> None:
        self._wrapper = wrapper
        inner: Any = getattr(wrapper, "completion_stream", None)
        self.direct = isinstance(inner, openai.AsyncStream if is_async else openai.Stream)
        self.chunks: Any = (achunks(inner) if is_async else chunks(inner)) if self.direct else wrapper
        """What to iterate: the OpenAI SDK's stream's events (direct, see ``_sse``) or litellm's wrapper."""
        self._logging: Any = getattr(wrapper, "logging_obj", None)
        self._model = model
        self._provider: str = getattr(wrapper, "custom_llm_provider", None) or "openai"

    def error(self, exc: BaseException, *, received: bool) -> BaseException:
        """What the wrapper would have raised for ``exc``, reported to litellm's failure callbacks as it would."""
        if not self.direct or not isinstance(exc, Exception):
            return exc
        mapped = _mid_stream_error(exc, self._model, self._provider, received=received)
        if self._logging is not None:
            _submit(self._logging.failure_handler, mapped, traceback.format_exc())
        return mapped

    def finish(self, reply: Reply, messages: list[dict[str, Any]]) -> Any:
        """After the last chunk: report success to litellm once; return the usage counted if the server sent none."""
        if not self.direct:
            return None
        usage = self._usage(reply, messages)
        response = self._assembled(reply, usage)
        if response is not None:
            _submit(self._logging.success_handler, response, None, None, False)
        return usage

    async def afinish(self, reply: Reply, messages: list[dict[str, Any]]) -> Any:
        """Async form of :meth:`finish`; also lets the wrapper restore litellm's correlation context."""
        if not self.direct:
            return None
        usage = self._usage(reply, messages)
        response = self._assembled(reply, usage)
        await self.aclose()
        if response is None:
            return usage
        try:
            report = self._logging.dispatch_success_handlers(response, cache_hit=False, prefer_async_handlers=True)
            task = asyncio.ensure_future(report)
        except Exception:
            _logger.debug("reporting a finished stream to litellm failed", exc_info=True)
            return
        _pending.add(task)
        task.add_done_callback(_pending.discard)
        return usage

    def close(self) -> None:
        """Release the HTTP connection of an abandoned sync stream, now.

        Left to the garbage collector, a half-read response is closed whenever a collection runs,
        in whichever thread, even one inside the connection pool's lock: httpcore then waits on
        its own lock for ever. So the stream is closed here, and so is the line reader under
        litellm's own parsers (litellm 1.106 gives their sync form no ``close``).
        """
        inner = getattr(self._wrapper, "completion_stream", None)
        for close in (
            self.chunks.close if self.direct else None,  # the event reader: it closes the response too
            getattr(inner, "close", None),
            getattr(getattr(inner, "streaming_response", None), "close", None),
        ):
            if close is None:
                continue
            try:
                close()
            except Exception:
                _logger.debug("closing an abandoned stream failed", exc_info=True)

    def abort(self) -> None:
        """Cut the connection from any thread, so that a read waiting on a silent server returns at once.

        Closing the response from another thread would leave a read blocked in ``recv`` waiting;
        shutting the socket down wakes it. A stream whose socket cannot be reached (one that
        litellm parses itself) is not cut: it stops at its next chunk.
        """
        response = getattr(getattr(self._wrapper, "completion_stream", None), "response", None)
        network = (getattr(response, "extensions", None) or {}).get("network_stream")
        try:
            sock = network.get_extra_info("socket") if network is not None else None
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
        except Exception:  # already closed
            _logger.debug("cutting an abandoned stream's connection failed", exc_info=True)

    async def aclose(self) -> None:
        try:
            if self.direct:
                await self.chunks.aclose()  # the event reader: it closes the response too
            await self._wrapper.aclose()
        except Exception:
            _logger.debug("closing an abandoned stream failed", exc_info=True)

    def _usage(self, reply: Reply, messages: list[dict[str, Any]]) -> Any:
        """The server's usage, or, as litellm's wrapper does, what litellm's token counter makes of the call."""
        if reply.usage is not None:
            return reply.usage
        try:
            prompt = litellm.token_counter(model=self._model, messages=messages)
            completion = litellm.token_counter(model=self._model, text=reply.text, count_response_tokens=True)
        except Exception:  # counting must never break the user's call
            _logger.debug("counting the tokens of a stream without usage failed", exc_info=True)
            return None
        return litellm.Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)

    def _assembled(self, reply: Reply, usage: Any) -> Any:
        """The finished call as litellm's logging expects it (an assembled ``ModelResponse``)."""
        if self._logging is None:
            return None
        try:
            if reply.time_to_first_chunk is not None and self._logging.completion_start_time is None:
                first = self._logging.start_time + datetime.timedelta(seconds=reply.time_to_first_chunk)
                self._logging.update_completion_start_time(completion_start_time=first)
            dumped = usage.model_dump(exclude_none=True, warnings=False) if hasattr(usage, "model_dump") else {}
            tool_calls = [call.model_dump(exclude={"index"}) for call in reply.tool_calls]
            message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
            if tool_calls:
                message["tool_calls"] = tool_calls
            return litellm.ModelResponse(
                id=reply.response_id,
                model=reply.response_model or self._model,
                choices=[{"index": 0, "finish_reason": reply.finish_reason or "stop", "message": message}],
                usage=litellm.Usage(**dumped),
            )
        except Exception:  # reporting must never break the user's call
            _logger.debug("assembling a finished stream for litellm's logging failed", exc_info=True)
            return None


def _mid_stream_error(exc: Exception, model: str, provider: str, *, received: bool) -> Exception:
    """litellm's mapping of a stream failure, as its wrapper does it (so crewtrace's error types stay the same)."""
    mapped: Exception
    if isinstance(exc, openai.OpenAIError):
        mapped = exc
    else:
        try:
            litellm.exception_type(
                model=model, custom_llm_provider=provider, original_exception=exc, completion_kwargs={}, extra_kwargs={}
            )
            mapped = exc  # exception_type always raises; this is not reached
        except Exception as raised:
            mapped = raised
    status = getattr(mapped, "status_code", None)
    if isinstance(status, int) and 400 <= status < 500 and status != 429:
        return mapped  # not retriable: litellm raises it as is
    return MidStreamFallbackError(
        message=str(mapped),
        model=model,
        llm_provider=provider,
        original_exception=mapped,
        is_pre_first_chunk=not received,
    )


def _submit(function: Any, *args: Any) -> None:
    """Run a litellm logging handler on litellm's own logging thread pool, off the caller's path."""
    try:
        logging_executor.submit(function, *args)
    except Exception:
        _logger.debug("reporting to litellm's logging failed", exc_info=True)
