"""How an LLM call's request is made: the context it runs in and the headers it carries, as listeners ask.

Whoever makes or records a call's request (crewtrace's LLM layer, the CrewAI
adapter's hook at CrewAI's LLM entry point) enters
:meth:`EventBus.request_context(call_id) <crewtrace.events.EventBus.request_context>`
around it, after emitting the call's started event. Each listener that registered a
:data:`RequestHook` (the telemetry bridge: its chat span as the current span, the keys
that make nested GenAI instrumentations stand down, W3C trace context headers) gets
to enter a context there. Once per call, never per chunk.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager

__all__ = ["RequestHook", "request_context"]

_logger = logging.getLogger("crewtrace.events")

RequestHook = Callable[[str], "AbstractContextManager[Mapping[str, str]] | None"]
"""Called with a call's id once its started event was delivered: a context to make the request in (entered
around it, giving the headers to send), or ``None`` to leave that call alone."""


@contextmanager
def request_context(hooks: Sequence[RequestHook], call_id: str) -> Iterator[dict[str, str]]:
    """Every hook's context for ``call_id``, entered in registration order; their headers, later ones winning.

    A hook that fails is logged and skipped: making the request matters more than recording it.
    """
    headers: dict[str, str] = {}
    with ExitStack() as stack:
        for hook in hooks:
            try:
                entered = hook(call_id)
                if entered is not None:
                    headers.update(stack.enter_context(entered))
            except Exception:
                _logger.exception("request hook %r failed for call %s", hook, call_id)
        yield headers
