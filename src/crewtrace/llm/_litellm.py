"""The one place litellm is imported, configured for offline use first.

litellm downloads a model price map at import and retries for seconds
without a network; the bundled copy is used unless the user chose otherwise.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any

from crewtrace.redaction import redact

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm
from litellm.exceptions import MidStreamFallbackError
from litellm.litellm_core_utils.thread_pool_executor import executor as logging_executor

litellm.suppress_debug_info = True  # no "Give Feedback" banners on stdout for every error

__all__ = [
    "SKIP_MCP_GATEWAY",
    "MidStreamFallbackError",
    "cost_of",
    "litellm",
    "logging_executor",
]  # logging_executor: litellm's pool for its logging handlers

# crewtrace's tools are plain OpenAI function definitions, never MCP servers: this request flag (the one litellm's
# own MCP handler sets on its inner calls) keeps ``tools=`` from importing litellm's MCP gateway, which needs the
# ``mcp`` package at 2.x. Without it crewtrace would need ``mcp>=2``, and could not be installed beside CrewAI 1.15
# (which needs ``mcp<2``).
SKIP_MCP_GATEWAY = {"_skip_mcp_handler": True}

_REDACTED_LOGGERS = ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "openai._base_client", "httpx")
"""litellm's loggers and those of the HTTP clients under it, which log each request's URL (a filter on a
logger sees only records logged to that logger itself, so each is named as it logs)."""


class _RedactKeys(logging.Filter):
    """litellm's own (debug) log can echo a provider's error body, and the HTTP clients under it log each
    request's URL, credentials included (the OpenAI SDK 2.x): scrub the keys crewtrace was given and any
    URL's credentials."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


for _name in _REDACTED_LOGGERS:
    logging.getLogger(_name).addFilter(_RedactKeys())


def cost_of(model: str, usage: Any, provider: str | None = None) -> float | None:
    """USD for ``usage`` of ``model``: the figure attached to it if that is a number, else litellm's prices.

    ``model`` is litellm's ``provider/model`` form, or the provider's own name with ``provider`` given.
    An attached cost that is not a finite, non-negative number (a string, a dict) is odd provider
    data: it is set aside, with a warning, and never fails a call that arrived whole.
    """
    if usage is None:
        return None
    cost = getattr(usage, "cost", None)
    if cost is not None:
        attached = _dollars(cost)
        if attached is not None:
            return attached
        logging.getLogger("crewtrace.llm").warning(
            "%s: the provider's usage.cost is not a number of dollars (a %s): using litellm's prices",
            model,
            type(cost).__name__,
        )
    try:
        prompt_cost, completion_cost = litellm.cost_per_token(
            model=model,
            custom_llm_provider=provider,
            prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
        )
    except Exception:  # an unpriced model is normal, not an error; so are token counts it cannot price
        return None
    return _dollars(prompt_cost + completion_cost)


def _dollars(cost: Any) -> float | None:
    """A cost as a float with 12 significant digits (price times tokens leaves float noise such as
    2.5499999999999997e-06 in logs and metrics); None if it is not a finite, non-negative number."""
    if isinstance(cost, bool) or not isinstance(cost, (int, float)):
        return None
    try:
        dollars = float(cost)
    except OverflowError:  # an int too large for a float
        return None
    if not math.isfinite(dollars) or dollars < 0:
        return None
    return float(f"{dollars:.12g}")
