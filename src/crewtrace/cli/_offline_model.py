"""An offline chat model for the demo, plugged into litellm as a custom provider.

It streams like a real model (a pause before the first chunk, short gaps
between chunks, usage in the last chunk) and calls tools when it is offered
some, so the whole pipeline (tool loop, chunk events, spans, metrics and
cost) runs with no network and no key.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import litellm
from litellm import CustomLLM
from litellm.types.utils import GenericStreamingChunk

import crewtrace.llm  # noqa: F401  (sets LITELLM_LOCAL_MODEL_COST_MAP before litellm loads)

PROVIDER = "crewtrace-offline"
MODEL = f"{PROVIDER}/demo"
# Priced like a small hosted model, so cost metrics have something to show.
_PRICE = {"input_cost_per_token": 1.5e-07, "output_cost_per_token": 6e-07}
_ROLE = re.compile(r"You are (.+?)\.")


@dataclass(frozen=True)
class ScriptedToolCall:
    name: str
    arguments: Mapping[str, Any]


@dataclass(frozen=True)
class Script:
    """What the model says for one agent role: tool calls first (if offered tools), then the answer."""

    answer: str
    tool_calls: Sequence[ScriptedToolCall] = ()


class OfflineModel(CustomLLM):
    def __init__(
        self, scripts: Mapping[str, Script], *, first_chunk_delay: float = 0.15, chunk_delay: float = 0.01
    ) -> None:
        super().__init__()
        self._scripts = scripts
        self._first_chunk_delay = first_chunk_delay
        self._chunk_delay = chunk_delay

    # litellm calls these with CustomLLM's long signature; only messages and optional_params matter here.
    def streaming(  # type: ignore[override]
        self,
        model: str,
        messages: list[Any],
        api_base: str,
        custom_prompt_dict: dict[str, Any],
        model_response: Any,
        print_verbose: Any,
        encoding: Any,
        api_key: Any,
        logging_obj: Any,
        optional_params: dict[str, Any],
        *args: Any,
        **kwargs: Any,
    ) -> Iterator[GenericStreamingChunk]:
        delays = self._delays()
        for chunk in self._chunks(messages, optional_params):
            time.sleep(next(delays))
            yield chunk

    async def astreaming(  # type: ignore[override]
        self,
        model: str,
        messages: list[Any],
        api_base: str,
        custom_prompt_dict: dict[str, Any],
        model_response: Any,
        print_verbose: Any,
        encoding: Any,
        api_key: Any,
        logging_obj: Any,
        optional_params: dict[str, Any],
        *args: Any,
        **kwargs: Any,
    ) -> AsyncIterator[GenericStreamingChunk]:
        delays = self._delays()
        for chunk in self._chunks(messages, optional_params):
            await asyncio.sleep(next(delays))
            yield chunk

    def _delays(self) -> Iterator[float]:
        yield self._first_chunk_delay
        while True:
            yield self._chunk_delay

    def _chunks(
        self, messages: list[dict[str, Any]], optional_params: Mapping[str, Any]
    ) -> Iterator[GenericStreamingChunk]:
        system = next((str(m.get("content")) for m in messages if m.get("role") == "system"), "")
        match = _ROLE.search(system)
        script = self._scripts.get(match.group(1) if match else "", Script(answer="I have nothing to add."))
        prompt_tokens = sum(len(str(m.get("content") or "").split()) for m in messages)
        offered = {tool["function"]["name"] for tool in optional_params.get("tools") or ()}
        calls = [call for call in script.tool_calls if call.name in offered]
        if calls and messages[-1].get("role") != "tool":
            yield from _tool_call_chunks(calls, prompt_tokens)
            return
        pieces = re.findall(r"\S*\s*", script.answer)
        for piece in filter(None, pieces):
            yield _chunk(text=piece)
        yield _chunk(finish_reason="stop", usage=(prompt_tokens, len(pieces)))


def _tool_call_chunks(calls: Sequence[ScriptedToolCall], prompt_tokens: int) -> Iterator[GenericStreamingChunk]:
    for index, call in enumerate(calls):
        yield _chunk(
            tool_use={
                "id": f"call_{index}",
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
                "index": index,
            }
        )
        arguments = json.dumps(dict(call.arguments))
        for start in range(0, len(arguments), 8):
            fragment = arguments[start : start + 8]
            yield _chunk(
                tool_use={
                    "id": None,
                    "type": "function",
                    "function": {"name": None, "arguments": fragment},
                    "index": index,
                }
            )
    yield _chunk(finish_reason="tool_calls", usage=(prompt_tokens, 10 * len(calls)))


def _chunk(
    *, text: str = "", tool_use: Any = None, finish_reason: str = "", usage: tuple[int, int] | None = None
) -> GenericStreamingChunk:
    return {
        "text": text,
        "tool_use": tool_use,
        "is_finished": bool(finish_reason),
        "finish_reason": finish_reason,
        "usage": None
        if usage is None
        else {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)},
        "index": 0,
    }


def install(scripts: Mapping[str, Script]) -> str:
    """Register the offline provider and its price with litellm; returns the model name to use."""
    handler = OfflineModel(scripts)
    others = [entry for entry in litellm.custom_provider_map if entry.get("provider") != PROVIDER]
    litellm.custom_provider_map = [*others, {"provider": PROVIDER, "custom_handler": handler}]
    litellm.register_model(
        {
            MODEL: {
                **_PRICE,
                "cache_creation_input_token_cost": 0.0,
                "cache_read_input_token_cost": 0.0,
                "litellm_provider": PROVIDER,
                "mode": "chat",
            }
        }
    )
    return MODEL
