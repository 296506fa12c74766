"""What an LLM call cost, from one price list whichever path made the call.

crewtrace's LLM layer prices its own calls with litellm's price map. Paths that may
not import litellm (the CrewAI adapter: integrations see only events) ask
:func:`price` here, and get the same figure from the same function: the pricer that
the ``crewtrace.pricers`` entry point names (crewtrace's own, ``litellm``, is
:func:`crewtrace.llm.pricing.litellm_price`), or one set with :func:`set_pricer`.
An entry point, not an import: the events layer cannot import the LLM layer above it.
"""

from __future__ import annotations

import logging
import threading
from importlib.metadata import entry_points
from typing import Protocol

from crewtrace.events.base import TokenUsage

__all__ = ["PRICERS_GROUP", "Pricer", "load_pricer", "price", "set_pricer"]

_logger = logging.getLogger("crewtrace.events")

PRICERS_GROUP = "crewtrace.pricers"
_DEFAULT = "litellm"


class Pricer(Protocol):
    """USD for ``usage`` of ``model`` (as its provider names it) at ``provider``; ``None`` for an unpriced model."""

    def __call__(self, model: str, provider: str | None, usage: TokenUsage) -> float | None: ...


_lock = threading.Lock()
_pricer: Pricer | None = None
_loaded = False


def set_pricer(pricer: Pricer | None) -> None:
    """Price calls with ``pricer`` from now on; ``None`` goes back to the ``crewtrace.pricers`` entry point."""
    global _pricer, _loaded
    with _lock:
        _pricer, _loaded = pricer, pricer is not None


def load_pricer() -> Pricer | None:
    """The pricer, loaded now if it was not yet (loading litellm takes a second: do it before a run, not in one)."""
    global _pricer, _loaded
    with _lock:
        if not _loaded:
            _loaded = True
            try:
                (found,) = entry_points(group=PRICERS_GROUP, name=_DEFAULT)
                _pricer = found.load()
            except Exception:  # not installed as a distribution, or the price list failed to load
                _logger.warning("no pricer in the %s entry points: calls get no cost", PRICERS_GROUP, exc_info=True)
        return _pricer


def price(model: str, provider: str | None, usage: TokenUsage | None) -> float | None:
    """USD for a call's usage (``None`` without usage, or for a model the price list does not know)."""
    if usage is None:
        return None
    pricer = _pricer if _loaded else load_pricer()
    if pricer is None:
        return None
    try:
        return pricer(model, provider, usage)
    except Exception:  # pricing never breaks a call's telemetry
        _logger.debug("pricing %s/%s failed", provider, model, exc_info=True)
        return None
