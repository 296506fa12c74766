"""Turn whatever a call raised into crewtrace's error tree, carrying no secret however it is printed."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Iterable

from crewtrace.errors import LLMCallError, LLMError, LLMStreamError, llm_error_type
from crewtrace.redaction import bound, error_message, redact


class ProviderError(Exception):
    """Stands in for the provider's exception as the ``__cause__`` of crewtrace's error.

    A provider's message may echo the API key, and a traceback or ``logger.exception``
    prints the whole chain; the provider's traceback frames hold the key among their
    locals (the request's ``api_key``, headers), which ``capture_locals``, loguru's
    diagnose mode and Sentry print. So the stand-in carries the original's type name and
    its redacted, bounded message (:func:`crewtrace.redaction.error_message`), and the
    original traceback only as redacted text (``provider_traceback``, shown as a note
    where Python prints notes): no frame, no local, no link to the original.
    """

    def __init__(self, message: str, provider_traceback: str = "") -> None:
        super().__init__(message)
        self.provider_traceback = provider_traceback


_MAX_TRACEBACK_CHARS = 20_000


def sanitised(exc: BaseException, secrets: Iterable[str]) -> ProviderError:
    try:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    except Exception:  # formatting must never replace the error being reported
        text = ""
    provider_traceback = bound(redact(text, secrets), _MAX_TRACEBACK_CHARS)
    stand_in = ProviderError(error_message(exc, secrets), provider_traceback)
    if provider_traceback and sys.version_info >= (3, 11):
        stand_in.add_note(f"The provider's traceback, redacted:\n{provider_traceback.rstrip()}")
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
