"""What CrewAI applications beyond one crew need in the integration tests.

Structured replies for CrewAI's own analysis calls (memory, planning), an embedder pointed at the
suite's server, a reasoning model as CrewAI's documented custom LLM (``BaseLLM``) whose thinking
streams as CrewAI's thinking chunks, and waiting for spans by name.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import openai
from crewai import BaseLLM
from crewai.events.types.llm_events import LLMCallType
from crewai.llms.base_llm import llm_call_context
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from tests.integrations.crewai_crews import API_KEY
from tests.support.openai_server import FakeOpenAIServer, Reply
from tests.support.polling import await_until, wait_until

FINAL = Reply(chunks=["Final Answer: ", "all ", "done"])


def structured(body: dict[str, Any]) -> Reply | None:
    """For a request asking for JSON of a schema (CrewAI's memory analysis, its planner): a minimal valid instance."""
    response_format = body.get("response_format") or {}
    schema = (response_format.get("json_schema") or {}).get("schema")
    if schema is None:
        return None
    return Reply(chunks=[json.dumps(_instance(schema, schema.get("$defs", {})))])


def structured_or(default: Callable[[dict[str, Any]], Reply]) -> Callable[[dict[str, Any]], Reply]:
    """A responder: structured replies where a schema is asked for, ``default`` otherwise."""

    def respond(body: dict[str, Any]) -> Reply:
        return structured(body) or default(body)

    return respond


def _instance(schema: dict[str, Any], defs: dict[str, Any]) -> Any:
    if "$ref" in schema:
        return _instance(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [o for o in schema[key] if o.get("type") != "null"] or schema[key]
            return _instance(options[0], defs)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: _instance(properties[name], defs) for name in schema.get("required", properties)}
    if kind == "array":
        return [_instance(schema.get("items", {"type": "string"}), defs)]
    return {"string": "note", "integer": 1, "number": 0.5, "boolean": True}.get(kind)


def embedder(server: FakeOpenAIServer) -> dict[str, Any]:
    """CrewAI's embedder configuration for OpenAI's embeddings API at the suite's server."""
    return {"provider": "openai", "config": {"api_key": API_KEY, "api_base": server.base_url, "model_name": "embed"}}


class ReasoningModel(BaseLLM):
    """A reasoning model behind an OpenAI-compatible server, as CrewAI's custom LLM: its thinking is streamed
    as CrewAI's thinking chunks, its answer as text chunks (CrewAI's own providers do this for Gemini only)."""

    def __init__(self, server: FakeOpenAIServer) -> None:
        super().__init__(model="reasoner", temperature=None)
        self._client = openai.OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0)

    def call(
        self,
        messages: Any,
        tools: Any = None,
        callbacks: Any = None,
        available_functions: Any = None,
        from_task: Any = None,
        from_agent: Any = None,
        response_model: Any = None,
    ) -> str:
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        with llm_call_context():
            self._emit_call_started_event(messages=messages, from_task=from_task, from_agent=from_agent, stream=True)
            text, usage = "", None
            stream = self._client.chat.completions.create(
                model=self.model, messages=messages, stream=True, stream_options={"include_usage": True}
            )
            for chunk in stream:
                if chunk.usage is not None:
                    usage = chunk.usage.model_dump()
                if not chunk.choices:
                    continue
                delta = chunk.choices[0].delta
                thinking = (delta.model_extra or {}).get("reasoning_content")
                if thinking:
                    self._emit_thinking_chunk_event(thinking, from_task=from_task, from_agent=from_agent)
                if delta.content:
                    text += delta.content
                    self._emit_stream_chunk_event(delta.content, from_task=from_task, from_agent=from_agent)
            self._emit_call_completed_event(
                text, LLMCallType.LLM_CALL, from_task=from_task, from_agent=from_agent, messages=messages, usage=usage
            )
        return text

    def supports_function_calling(self) -> bool:
        return False


def _exported(exporter: InMemorySpanExporter, names: tuple[str, ...]) -> Callable[[], list[ReadableSpan] | None]:
    def ready() -> list[ReadableSpan] | None:
        spans = list(exporter.get_finished_spans())
        found = {s.name for s in spans}
        return spans if all(name in found for name in names) else None

    return ready


def wait_for_spans(exporter: InMemorySpanExporter, *names: str) -> list[ReadableSpan]:
    """Every span once spans named ``names`` (each at least once) are exported (CrewAI's pool runs late)."""
    return wait_until(_exported(exporter, names), what=f"spans {names}")


async def await_spans(exporter: InMemorySpanExporter, *names: str) -> list[ReadableSpan]:
    """:func:`wait_for_spans` in a coroutine (the event loop runs meanwhile)."""
    return await await_until(_exported(exporter, names), what=f"spans {names}")


def named(spans: Iterable[ReadableSpan], prefix: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name.startswith(prefix)]
