"""The table per agent and task: LLM calls, failures, chunks, tokens, time to first chunk, and cost.

``crewtrace demo`` fills it from the events of its run (which carry litellm's cost); ``crewtrace
watch`` from the spans it receives (:meth:`UsageTable.from_spans`), where cost is not recorded.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

from crewtrace.cli.spans import SpanRecord
from crewtrace.cli.terminal import clip, text_width
from crewtrace.cli.waterfall import format_seconds
from crewtrace.telemetry import names

__all__ = ["CallTotals", "UsageTable"]

# gen_ai.operation.name values of a model call, in the conventions' vocabulary.
_LLM_OPERATIONS = frozenset({names.OP_CHAT, "text_completion", "generate_content"})
_COLUMN = 24  # widest agent or task name shown in full
_NONE = "-"


@dataclass
class CallTotals:
    """What the LLM calls and tool calls of one agent on one task add up to."""

    calls: int = 0
    failed: int = 0
    tool_calls: int = 0
    chunks: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    cost_unknown: int = 0  # completed calls litellm has no price for
    first_chunk_s: float = 0.0  # summed over the calls that received a first chunk
    first_chunks: int = 0


class UsageTable:
    """Totals per (agent, task); thread-safe to fill."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], CallTotals] = {}
        self._lock = threading.Lock()

    def add_call(
        self,
        agent: str | None,
        task: str | None,
        *,
        failed: bool,
        chunks: int = 0,
        input_tokens: int = 0,
        output_tokens: int = 0,
        first_chunk_s: float | None = None,
        cost_usd: float | None = None,
    ) -> None:
        """One LLM call. ``first_chunk_s`` None: no chunk arrived. ``cost_usd`` None on a completed call: unknown."""
        with self._lock:
            row = self.rows.setdefault((agent or _NONE, task or _NONE), CallTotals())
            row.calls += 1
            row.chunks += chunks
            row.input_tokens += input_tokens
            row.output_tokens += output_tokens
            if first_chunk_s is not None:
                row.first_chunk_s += first_chunk_s
                row.first_chunks += 1
            if failed:
                row.failed += 1
            elif cost_usd is None:
                row.cost_unknown += 1
            else:
                row.cost_usd += cost_usd

    def add_tool_call(self, agent: str | None, task: str | None) -> None:
        with self._lock:
            self.rows.setdefault((agent or _NONE, task or _NONE), CallTotals()).tool_calls += 1

    @classmethod
    def from_spans(cls, spans: Iterable[SpanRecord]) -> UsageTable:
        """The model and tool calls among ``spans``, each under the agent and task of its nearest ancestor.

        A model call is a span whose ``gen_ai.operation.name`` is a model operation (``chat``, ...), or
        that names a ``gen_ai.request.model`` without an operation, as older instrumentations do.
        """
        spans = list(spans)
        by_id = {span.span_id: span for span in spans}
        table = cls()
        for span in spans:
            operation = span.attributes.get(names.OPERATION_NAME)
            agent = _inherited(span, names.AGENT_NAME, by_id)
            task = _inherited(span, names.TASK_NAME, by_id)
            if operation == names.OP_EXECUTE_TOOL:
                table.add_tool_call(agent, task)
            elif operation in _LLM_OPERATIONS or (operation is None and names.REQUEST_MODEL in span.attributes):
                table.add_call(
                    agent,
                    task,
                    failed=span.failed,
                    chunks=span.count(names.STREAM_CHUNK_COUNT),
                    input_tokens=span.count(names.USAGE_INPUT_TOKENS),
                    output_tokens=span.count(names.USAGE_OUTPUT_TOKENS),
                    first_chunk_s=span.number(names.RESPONSE_TIME_TO_FIRST_CHUNK),
                )
        return table

    def totals(self) -> CallTotals:
        total = CallTotals()
        with self._lock:
            for row in self.rows.values():
                for name, value in vars(row).items():
                    setattr(total, name, getattr(total, name) + value)
        return total

    def render(self, *, cost: bool = True) -> str:
        """The table, then notes after a blank line; fits 80 columns for names up to 24 characters.

        Columns are found by their heading (tests and scripts parse them). ``cost=False`` leaves out
        the cost, for spans, which do not record it.
        """
        header = ("agent", "task", "calls", "failed", "chunks", "tokens in", "tokens out", "ttfc")
        lines = [header]
        with self._lock:
            rows = sorted(self.rows.items())
        for (agent, task), row in rows:
            lines.append(
                (
                    clip(agent, _COLUMN),
                    clip(task, _COLUMN),
                    str(row.calls),
                    str(row.failed),
                    str(row.chunks),
                    str(row.input_tokens),
                    str(row.output_tokens),
                    _mean_first_chunk(row),
                )
            )
        widths = [max(text_width(line[i]) for line in lines) for i in range(len(header))]
        rendered = [
            "  ".join(cell + " " * (w - text_width(cell)) for cell, w in zip(line, widths, strict=True)).rstrip()
            for line in lines
        ]
        rendered.insert(1, "  ".join("-" * w for w in widths))
        total = self.totals()
        tokens = f"total: {total.input_tokens} tokens in, {total.output_tokens} out"
        rendered += [
            "",
            f"ttfc: mean time to first chunk per call; tool calls: {total.tool_calls}",
            f"{tokens}, {_cost(total)}" if cost else tokens,
        ]
        return "\n".join(rendered)


def _mean_first_chunk(row: CallTotals) -> str:
    return format_seconds(row.first_chunk_s / row.first_chunks) if row.first_chunks else "none"


def _cost(total: CallTotals) -> str:
    if total.calls == total.failed:
        return "no call completed"
    if total.cost_unknown == 0:
        return f"cost ${total.cost_usd:.6f} (litellm's prices)"
    unknown = f"unknown for {total.cost_unknown} call{'s' if total.cost_unknown > 1 else ''}"
    if total.cost_usd == 0:
        return f"cost {unknown} (litellm has no price for the model)"
    return f"cost ${total.cost_usd:.6f} + {unknown} (litellm's prices)"


def _inherited(span: SpanRecord, key: str, by_id: dict[str, SpanRecord]) -> str | None:
    """``key`` on the span or its nearest ancestor that has it (agent and task names sit on their own spans)."""
    seen: set[str] = set()
    current: SpanRecord | None = span
    while current is not None and current.span_id not in seen:
        value = current.attributes.get(key)
        if isinstance(value, str) and value:
            return value
        seen.add(current.span_id)
        current = by_id.get(current.parent_id) if current.parent_id else None
    return None
