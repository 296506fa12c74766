"""Every span name, attribute key, metric name and context key the bridge writes, in one place.

GenAI semantic-convention names come from ``opentelemetry-semantic-conventions``
(its ``_incubating`` modules are where the package publishes the GenAI names, which
are still at Development status); what the conventions do not define is
``crewtrace.*``, with one exception, ``gen_ai.usage.cost`` (see there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as GenAI
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics as GenAIMetrics
from opentelemetry.semconv.attributes import error_attributes, server_attributes, service_attributes
from opentelemetry.util.genai.environment_variables import (
    OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT,
    OTEL_INSTRUMENTATION_GENAI_EMIT_EVENT,
)
from opentelemetry.util.genai.invocation import CLIENT_INFERENCE_CONTEXT_KEY

# Operations (span name prefixes and gen_ai.operation.name values).
OP_CHAT: Final = GenAI.GenAiOperationNameValues.CHAT.value
OP_INVOKE_AGENT: Final = GenAI.GenAiOperationNameValues.INVOKE_AGENT.value
OP_INVOKE_WORKFLOW: Final = GenAI.GenAiOperationNameValues.INVOKE_WORKFLOW.value
OP_EXECUTE_TOOL: Final = GenAI.GenAiOperationNameValues.EXECUTE_TOOL.value
OP_EXECUTE_TASK: Final = "execute_task"  # tasks have no convention
OP_RETRIEVAL: Final = GenAI.GenAiOperationNameValues.RETRIEVAL.value
OP_PLAN: Final = "plan"  # a well-known value of the newer GenAI conventions, not yet in the semconv package
# Span name prefixes of what the conventions do not name (no gen_ai.operation.name on these spans).
SPAN_FLOW_METHOD: Final = "execute_flow_method"
SPAN_MEMORY_SAVE: Final = "save_memory"
SPAN_GUARDRAIL: Final = "apply_guardrail"

# GenAI attributes.
OPERATION_NAME: Final = GenAI.GEN_AI_OPERATION_NAME
PROVIDER_NAME: Final = GenAI.GEN_AI_PROVIDER_NAME
REQUEST_MODEL: Final = GenAI.GEN_AI_REQUEST_MODEL
REQUEST_STREAM: Final = GenAI.GEN_AI_REQUEST_STREAM
REQUEST_TEMPERATURE: Final = GenAI.GEN_AI_REQUEST_TEMPERATURE
REQUEST_MAX_TOKENS: Final = GenAI.GEN_AI_REQUEST_MAX_TOKENS
RESPONSE_MODEL: Final = GenAI.GEN_AI_RESPONSE_MODEL
RESPONSE_ID: Final = GenAI.GEN_AI_RESPONSE_ID
RESPONSE_FINISH_REASONS: Final = GenAI.GEN_AI_RESPONSE_FINISH_REASONS
RESPONSE_TIME_TO_FIRST_CHUNK: Final = GenAI.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK
USAGE_INPUT_TOKENS: Final = GenAI.GEN_AI_USAGE_INPUT_TOKENS
USAGE_OUTPUT_TOKENS: Final = GenAI.GEN_AI_USAGE_OUTPUT_TOKENS
TOKEN_TYPE: Final = GenAI.GEN_AI_TOKEN_TYPE
TOKEN_TYPE_INPUT: Final = GenAI.GenAiTokenTypeValues.INPUT.value
TOKEN_TYPE_OUTPUT: Final = GenAI.GenAiTokenTypeValues.OUTPUT.value
AGENT_NAME: Final = GenAI.GEN_AI_AGENT_NAME
AGENT_ID: Final = GenAI.GEN_AI_AGENT_ID
WORKFLOW_NAME: Final = GenAI.GEN_AI_WORKFLOW_NAME
INPUT_MESSAGES: Final = GenAI.GEN_AI_INPUT_MESSAGES
OUTPUT_MESSAGES: Final = GenAI.GEN_AI_OUTPUT_MESSAGES
TOOL_NAME: Final = GenAI.GEN_AI_TOOL_NAME
TOOL_CALL_ID: Final = GenAI.GEN_AI_TOOL_CALL_ID
TOOL_TYPE: Final = GenAI.GEN_AI_TOOL_TYPE
DATA_SOURCE_ID: Final = GenAI.GEN_AI_DATA_SOURCE_ID
REQUEST_TOP_K: Final = GenAI.GEN_AI_REQUEST_TOP_K
RETRIEVAL_QUERY_TEXT: Final = GenAI.GEN_AI_RETRIEVAL_QUERY_TEXT  # content: opt-in
TOOL_CALL_ARGUMENTS: Final = GenAI.GEN_AI_TOOL_CALL_ARGUMENTS  # content: opt-in
TOOL_CALL_RESULT: Final = GenAI.GEN_AI_TOOL_CALL_RESULT  # content: opt-in
ERROR_TYPE: Final = error_attributes.ERROR_TYPE
SERVER_ADDRESS: Final = server_attributes.SERVER_ADDRESS
SERVER_PORT: Final = server_attributes.SERVER_PORT
SERVICE_NAME: Final = service_attributes.SERVICE_NAME

# crewtrace attributes.
RUN_ID: Final = "crewtrace.run.id"
TASK_NAME: Final = "crewtrace.task.name"
TASK_ID: Final = "crewtrace.task.id"
TASK_DESCRIPTION: Final = "crewtrace.task.description"  # content: opt-in
TASK_OUTPUT: Final = "crewtrace.task.output"  # content: opt-in
TOOL_REQUESTED_NAME: Final = "crewtrace.tool.requested_name"  # content: opt-in
"""A tool name the model asked for that is not one of the agent's tools (``gen_ai.tool.name`` says ``_UNKNOWN``)."""
STREAM_CHUNK_COUNT: Final = "crewtrace.stream.chunk_count"
"""Exact number of chunks a call received, whatever the chunk events were coalesced into."""
FLOW_NAME: Final = "crewtrace.flow.name"
FLOW_RUN_ID: Final = "crewtrace.flow.run.id"
FLOW_METHOD: Final = "crewtrace.flow.method"
FLOW_METHOD_KIND: Final = "crewtrace.flow.method.kind"
"""``start``, ``listen`` or ``router``."""
FLOW_ROUTE: Final = "crewtrace.flow.route"
"""The route a router method chose."""
FLOW_OUTCOME: Final = "crewtrace.flow.outcome"
"""``paused`` on a flow run or method that stopped to wait for human feedback."""
STEP_ID: Final = "crewtrace.step.id"
RETRIEVAL_SOURCE: Final = "crewtrace.retrieval.source"
"""``memory`` or ``knowledge``."""
RETRIEVAL_RESULT_COUNT: Final = "crewtrace.retrieval.result_count"
GUARDRAIL_NAME: Final = "crewtrace.guardrail.name"
GUARDRAIL_TYPE: Final = "crewtrace.guardrail.type"
GUARDRAIL_ATTEMPT: Final = "crewtrace.guardrail.attempt"
GUARDRAIL_PASSED: Final = "crewtrace.guardrail.passed"
GUARDRAIL_FEEDBACK: Final = "crewtrace.guardrail.feedback"  # content: opt-in
PLAN_ATTEMPT: Final = "crewtrace.plan.attempt"
PLAN_READY: Final = "crewtrace.plan.ready"


@dataclass(frozen=True, slots=True)
class AttributionKey:
    """How one attribution field of the events is recorded: span attribute, metric label, usage-log key."""

    field: str
    """The event's field (one of ``crewtrace.events.ATTRIBUTION_FIELDS``)."""
    span_attribute: str
    metric_label: str | None
    """``None`` for ids: a label per run or per task instance would make a series per run."""
    usage_key: str


ATTRIBUTION: Final = (
    AttributionKey("flow_name", FLOW_NAME, FLOW_NAME, "flow"),
    AttributionKey("flow_run_id", FLOW_RUN_ID, None, "flow_run_id"),
    AttributionKey("flow_method", FLOW_METHOD, FLOW_METHOD, "flow_method"),
    AttributionKey("run_id", RUN_ID, None, "run_id"),
    AttributionKey("crew_name", WORKFLOW_NAME, WORKFLOW_NAME, "crew"),
    AttributionKey("task_id", TASK_ID, None, "task_id"),
    AttributionKey("task_name", TASK_NAME, TASK_NAME, "task"),
    AttributionKey("agent_id", AGENT_ID, None, "agent_id"),
    AttributionKey("agent_role", AGENT_NAME, AGENT_NAME, "agent"),
    AttributionKey("step_id", STEP_ID, None, "step_id"),
)
"""The attribution table: every attribution field once, and what each becomes. Everything loops over it."""

# Chunk span events.
CHUNK_EVENT: Final = "crewtrace.stream.chunk"
CHUNK_INDEX: Final = "crewtrace.chunk.index"
CHUNK_SIZE: Final = "crewtrace.chunk.size"
CHUNK_COUNT: Final = "crewtrace.chunk.count"
"""How many consecutive chunks one span event stands for (1 unless coalesced)."""
CHUNK_ELAPSED: Final = "crewtrace.chunk.elapsed"
"""Seconds from the request to the (last) chunk of the event."""
CHUNK_TEXT: Final = "crewtrace.chunk.text"  # content: opt-in
CHUNK_TYPE: Final = "crewtrace.chunk.type"
"""``text``, ``tool_call`` (argument fragments of a tool call), ``reasoning``, or ``mixed`` for a coalesced group
of more than one of them."""

# Metrics.
METRIC_OPERATION_DURATION: Final = GenAIMetrics.GEN_AI_CLIENT_OPERATION_DURATION
METRIC_TOKEN_USAGE: Final = GenAIMetrics.GEN_AI_CLIENT_TOKEN_USAGE
METRIC_TIME_TO_FIRST_CHUNK: Final = GenAIMetrics.GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK
METRIC_TIME_PER_OUTPUT_CHUNK: Final = GenAIMetrics.GEN_AI_CLIENT_OPERATION_TIME_PER_OUTPUT_CHUNK
METRIC_STREAM_CHUNKS: Final = "crewtrace.stream.chunks"
METRIC_STREAM_ACTIVE: Final = "crewtrace.stream.active"
METRIC_USAGE_COST: Final = "gen_ai.usage.cost"
"""Not an OpenTelemetry convention (the GenAI conventions define no cost), kept on purpose: OpenLIT and
other GenAI instrumentations already record cost under this name, so their dashboards, and crewtrace's,
read one Prometheus series, ``gen_ai_usage_cost_USD``. Should the conventions define a cost, follow them."""
METRIC_TOOL_CALLS: Final = "crewtrace.tool.calls"
METRIC_TOOL_ERRORS: Final = "crewtrace.tool.errors"
# The conventions define these three (semantic-conventions-genai's model/gen-ai/metrics.yaml); the
# semantic-conventions package has no constants for them yet. opentelemetry-util-genai 1.3b0 calls the
# first gen_ai.invoke_workflow.duration; the conventions say gen_ai.workflow.duration.
METRIC_WORKFLOW_DURATION: Final = "gen_ai.workflow.duration"
METRIC_INVOKE_AGENT_DURATION: Final = "gen_ai.invoke_agent.duration"
METRIC_EXECUTE_TOOL_DURATION: Final = "gen_ai.execute_tool.duration"
METRIC_GUARDRAIL_REJECTIONS: Final = "crewtrace.guardrail.rejections"

# Events (the OpenTelemetry Logs API).
INFERENCE_DETAILS_EVENT: Final = "gen_ai.client.inference.operation.details"
"""Opt-in: one per call, its request and response (and, as the capture mode says, its messages)."""

# Context keys that make nested GenAI instrumentations stand down around a request crewtrace records.
INFERENCE_CONTEXT_KEY: Final = CLIENT_INFERENCE_CONTEXT_KEY
"""opentelemetry-util-genai's: an outer inference's data; a nested one records nothing and publishes into it."""
OPENLLMETRY_SUPPRESS_KEY: Final = "suppress_language_model_instrumentation"
"""OpenLLMetry's (traceloop's ``SUPPRESS_LANGUAGE_MODEL_INSTRUMENTATION_KEY``): its LLM instrumentations skip."""

# Logging and environment.
USAGE_LOGGER: Final = "crewtrace.usage"
ENV_CAPTURE_CONTENT: Final = OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT
ENV_EMIT_EVENT: Final = OTEL_INSTRUMENTATION_GENAI_EMIT_EVENT
