"""The bridge's metric instruments, with the names, units and buckets the conventions give.

The semantic-conventions helpers set no buckets, and the SDK's default
buckets are for milliseconds: every histogram here passes its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry.metrics import Counter, Histogram, Meter, UpDownCounter

from crewtrace.telemetry import names

_DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
_TOKEN_BUCKETS = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip
# Per-chunk gaps are far below the call-duration buckets: add sub-10 ms ones.
_CHUNK_GAP_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, *_DURATION_BUCKETS)
_COST_BUCKETS = (0.00001, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0)
_WORKFLOW_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)
_AGENT_BUCKETS = (0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 51.2, 102.4, 204.8, 409.6)
_TOOL_BUCKETS = _DURATION_BUCKETS


@dataclass(frozen=True, slots=True)
class Instruments:
    operation_duration: Histogram
    token_usage: Histogram
    time_to_first_chunk: Histogram
    time_per_output_chunk: Histogram
    stream_chunks: Counter
    stream_active: UpDownCounter
    usage_cost: Histogram
    tool_calls: Counter
    tool_errors: Counter
    execute_tool_duration: Histogram
    invoke_agent_duration: Histogram
    workflow_duration: Histogram
    guardrail_rejections: Counter


def create_instruments(meter: Meter) -> Instruments:
    return Instruments(
        operation_duration=meter.create_histogram(
            names.METRIC_OPERATION_DURATION,
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=list(_DURATION_BUCKETS),
        ),
        token_usage=meter.create_histogram(
            names.METRIC_TOKEN_USAGE,
            unit="{token}",
            description="Number of input and output tokens used, as the stream reported them.",
            explicit_bucket_boundaries_advisory=list(_TOKEN_BUCKETS),
        ),
        time_to_first_chunk=meter.create_histogram(
            names.METRIC_TIME_TO_FIRST_CHUNK,
            unit="s",
            description="Time from the request to the first streamed chunk.",
            explicit_bucket_boundaries_advisory=list(_DURATION_BUCKETS),
        ),
        time_per_output_chunk=meter.create_histogram(
            names.METRIC_TIME_PER_OUTPUT_CHUNK,
            unit="s",
            description="Time between consecutive streamed chunks, after the first.",
            explicit_bucket_boundaries_advisory=list(_CHUNK_GAP_BUCKETS),
        ),
        stream_chunks=meter.create_counter(
            names.METRIC_STREAM_CHUNKS, unit="{chunk}", description="Streamed chunks received."
        ),
        stream_active=meter.create_up_down_counter(
            names.METRIC_STREAM_ACTIVE, unit="{stream}", description="Streams in progress."
        ),
        usage_cost=meter.create_histogram(
            names.METRIC_USAGE_COST,
            unit="USD",
            description="Cost of a call in US dollars, from litellm's price map where it knows the model.",
            explicit_bucket_boundaries_advisory=list(_COST_BUCKETS),
        ),
        tool_calls=meter.create_counter(
            names.METRIC_TOOL_CALLS, unit="{call}", description="Tool calls agents made, failed ones included."
        ),
        tool_errors=meter.create_counter(
            names.METRIC_TOOL_ERRORS,
            unit="{call}",
            description="Tool calls that failed (their error went back to the model).",
        ),
        execute_tool_duration=meter.create_histogram(
            names.METRIC_EXECUTE_TOOL_DURATION,
            unit="s",
            description="The duration of a single tool execution.",
            explicit_bucket_boundaries_advisory=list(_TOOL_BUCKETS),
        ),
        invoke_agent_duration=meter.create_histogram(
            names.METRIC_INVOKE_AGENT_DURATION,
            unit="s",
            description="The end-to-end duration of a single agent invocation.",
            explicit_bucket_boundaries_advisory=list(_AGENT_BUCKETS),
        ),
        workflow_duration=meter.create_histogram(
            names.METRIC_WORKFLOW_DURATION,
            unit="s",
            description="GenAI workflow duration: one crew run, or one flow run.",
            explicit_bucket_boundaries_advisory=list(_WORKFLOW_BUCKETS),
        ),
        guardrail_rejections=meter.create_counter(
            names.METRIC_GUARDRAIL_REJECTIONS,
            unit="{rejection}",
            description="Guardrail checks that rejected a task's output and sent it back to the agent.",
        ),
    )
