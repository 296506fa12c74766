"""Plug a model of your own into crewtrace's LLM layer: a litellm custom provider, and its prices.

This is the public seam for code outside ``crewtrace.llm`` (the offline demo model, tests, an
application's own stand-in model). It imports litellm through the one module that configures it
first (offline price map), so importing it never makes litellm reach for the network.

Example::

    from crewtrace.llm.providers import CustomLLM, register_model_prices, register_provider

    class Echo(CustomLLM): ...

    register_provider("echo", Echo())
    register_model_prices("echo/v1", input_cost_per_token=1e-7, output_cost_per_token=4e-7)
    LLM("echo/v1", stream=True)
"""

from __future__ import annotations

# isort: off
from crewtrace.errors import ConfigurationError
from crewtrace.llm._litellm import litellm  # first: it sets LITELLM_LOCAL_MODEL_COST_MAP before litellm loads
from litellm.llms.custom_llm import CustomLLM
from litellm.types.utils import GenericStreamingChunk

# isort: on

__all__ = ["CustomLLM", "GenericStreamingChunk", "register_model_prices", "register_provider"]


def register_provider(name: str, handler: CustomLLM) -> None:
    """Route models named ``"{name}/..."`` to ``handler``; registering a name again replaces its handler."""
    if not name or "/" in name:
        raise ConfigurationError(f"provider name must be non-empty and contain no '/', got {name!r}")
    if not isinstance(handler, CustomLLM):
        raise ConfigurationError(f"handler must be a crewtrace.llm.providers.CustomLLM, got {type(handler).__name__}")
    others = [entry for entry in litellm.custom_provider_map if entry.get("provider") != name]
    litellm.custom_provider_map = [*others, {"provider": name, "custom_handler": handler}]


def register_model_prices(model: str, *, input_cost_per_token: float, output_cost_per_token: float) -> None:
    """Price a ``"provider/name"`` chat model, so calls to it report token cost (``gen_ai.usage.cost``)."""
    provider, _, name = model.partition("/")
    if not provider or not name:
        raise ConfigurationError(f"model must be 'provider/name', got {model!r}")
    litellm.register_model(
        {
            model: {
                "input_cost_per_token": input_cost_per_token,
                "output_cost_per_token": output_cost_per_token,
                "cache_creation_input_token_cost": 0.0,
                "cache_read_input_token_cost": 0.0,
                "litellm_provider": provider,
                "mode": "chat",
            }
        }
    )
