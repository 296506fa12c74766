"""Turn whatever a call raised into crewtrace's error tree, carrying no secret however it is printed."""

from __future__ import annotations

from collections.abc import Iterable

from crewtrace.errors import LLMCallError, LLMError, LLMStreamError, llm_error_type
from crewtrace.redaction import error_message


class ProviderError(Exception):
    """Stands in for the provider's exception as the ``__cause__`` of crewtrace's error.

    A provider's message may echo the API key, and a traceback or ``logger.exception``
    prints the whole chain: the stand-in carries the original's type name and its
    redacted, bounded message (:func:`crewtrace.redaction.error_message`) with the
    original traceback, and nothing else.
    """


def sanitised(exc: BaseException, secrets: Iterable[str]) -> ProviderError:
    stand_in = ProviderError(error_message(exc, secrets)).with_traceback(exc.__traceback__)
    stand_in.__suppress_context__ = True
    return stand_in


def to_llm_error(
    exc: BaseException,
    *,
    model: str,
    message: str,
    partial_text: str,
    chunks_received: int,
    secrets: Iterable[str] = (),
) -> LLMError:
    """crewtrace's error for ``exc``, chained to a sanitised stand-in instead of ``exc`` itself."""
    error_type = llm_error_type(exc)
    error: LLMError
    if chunks_received == 0:
        error = LLMCallError(f"{model}: {message}", model=model, error_type=error_type)
    else:
        error = LLMStreamError(
            f"{model}: stream broke after {chunks_received} chunks: {message}",
            model=model,
            error_type=error_type,
            partial_text=partial_text,
            chunks_received=chunks_received,
        )
    error.__cause__ = sanitised(exc, secrets)  # also sets __suppress_context__
    return error
