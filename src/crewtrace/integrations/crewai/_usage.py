"""Token usage for the calls whose completed event CrewAI sends without it, from CrewAI's own count.

CrewAI runs some calls' tools itself (a reasoning plan's ``create_reasoning_plan``) and then
emits the call's completed event without usage, although its LLM object counted it
(``get_token_usage_summary()``: running totals and a request count). The totals are read when a
call's started event arrives and again when its completed event arrives; the difference is the
call's usage when exactly one request was counted in between, else unknown (another call on the
same LLM object ended in between): never a neighbour's tokens.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

from crewtrace.events import TokenUsage

__all__ = ["UsageCounters"]

_logger = logging.getLogger("crewtrace.integrations.crewai")
_MAX_CALLS = 4_096

Totals = tuple[int, int, int]  # prompt tokens, completion tokens, requests


class UsageCounters:
    """Reads of LLM objects' usage totals by call id; not thread-safe (the caller holds a lock)."""

    def __init__(self, found: dict[str, TokenUsage]) -> None:
        self._before: OrderedDict[str, Totals] = OrderedDict()
        self._found = found  # usage worked out for calls whose completed event has none, until the translator takes it

    def started(self, call_id: str, llm: Any) -> None:
        totals = _totals(llm)
        if totals is not None:
            _put(self._before, call_id, totals)

    def completed(self, call_id: str, llm: Any) -> None:
        before = self._before.pop(call_id, None)
        after = _totals(llm)
        if before is None or after is None or after[2] - before[2] != 1:
            return
        _put(self._found, call_id, TokenUsage(input_tokens=after[0] - before[0], output_tokens=after[1] - before[1]))


def _totals(llm: Any) -> Totals | None:
    summary = getattr(llm, "get_token_usage_summary", None)
    if summary is None:
        return None
    try:
        usage = summary()
        return int(usage.prompt_tokens), int(usage.completion_tokens), int(usage.successful_requests)
    except Exception:  # an LLM class of the user's own without CrewAI's counters
        _logger.debug("no usage totals on %s", type(llm).__name__, exc_info=True)
        return None


def _put(store: dict[str, Any], key: str, value: Any) -> None:
    store[key] = value
    if len(store) > _MAX_CALLS:
        del store[next(iter(store))]
