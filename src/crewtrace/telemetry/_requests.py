"""The context a recorded call's request is made in: crewtrace's chat span, the others standing down.

Entered (through :meth:`crewtrace.events.EventBus.request_context`) around the request
only, and only for a call the bridge records:

- the chat span is the current span, so instrumentations that honour no stand-down key
  (OpenInference) and HTTP client spans nest under it;
- opentelemetry-util-genai's inference key holds an :class:`InferenceData`: a nested
  util-genai instrumentation (the official OpenAI one) then records no span and no
  metric and publishes what it learned into it, which the bridge merges, its own values
  winning (:func:`published`);
- OpenLLMetry's key makes its LLM instrumentations skip the call;
- W3C trace context (``traceparent``, ``tracestate``) of the chat span goes to the server
  as headers. Only that propagator: never ``baggage``, where CrewAI keeps crew ids and a
  flow's inputs.

The general ``suppress_instrumentation`` key is not set: it would also silence HTTP
instrumentations and their trace context.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.genai.invocation import InferenceData

from crewtrace.telemetry import names

__all__ = ["published", "request_context"]

_PROPAGATOR = TraceContextTextMapPropagator()

# What a nested instrumentation may publish, and the span attribute each fills when crewtrace has none.
_PUBLISHED = (
    ("response_model", names.RESPONSE_MODEL),
    ("response_id", names.RESPONSE_ID),
    ("response_finish_reasons", names.RESPONSE_FINISH_REASONS),
    ("usage_input_tokens", names.USAGE_INPUT_TOKENS),
    ("usage_output_tokens", names.USAGE_OUTPUT_TOKENS),
    ("response_time_to_first_chunk", names.RESPONSE_TIME_TO_FIRST_CHUNK),
    ("server_address", names.SERVER_ADDRESS),
    ("server_port", names.SERVER_PORT),
)


@contextmanager
def request_context(span: Span, data: InferenceData) -> Iterator[dict[str, str]]:
    """Attach the context described above for the block; yield the trace-context headers to send."""
    context = trace.set_span_in_context(span)
    context = otel_context.set_value(names.INFERENCE_CONTEXT_KEY, data, context)
    context = otel_context.set_value(names.OPENLLMETRY_SUPPRESS_KEY, True, context)
    headers: dict[str, str] = {}
    _PROPAGATOR.inject(headers, context=context)
    token = otel_context.attach(context)
    try:
        yield headers
    finally:
        otel_context.detach(token)


def published(data: InferenceData | None) -> dict[str, Any]:
    """Span attributes from what nested instrumentations published (none if none did)."""
    if data is None:
        return {}
    values = {attribute: getattr(data, field) for field, attribute in _PUBLISHED}
    return {
        key: list(value) if isinstance(value, list) else value for key, value in values.items() if value is not None
    }
