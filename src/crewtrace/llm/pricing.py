"""litellm's price map as crewtrace's pricer: the ``litellm`` entry of the ``crewtrace.pricers`` entry points.

Paths that cannot import litellm (the CrewAI adapter) price calls through
:func:`crewtrace.events.pricing.price`, which loads this; crewtrace's own calls are
priced by the same function, so a call costs the same whichever path made it.
"""

from __future__ import annotations

from crewtrace.events import TokenUsage
from crewtrace.llm._litellm import cost_of, litellm

__all__ = ["litellm_price"]


def litellm_price(model: str, provider: str | None, usage: TokenUsage) -> float | None:
    """USD for ``usage`` of ``model`` (the provider's name for it) at ``provider``, from litellm's price map."""
    return cost_of(
        model,
        litellm.Usage(prompt_tokens=usage.input_tokens, completion_tokens=usage.output_tokens),
        provider,
    )
