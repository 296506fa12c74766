"""Turn whatever a call raised into crewtrace's error tree."""

from __future__ import annotations

from crewtrace.errors import LLMCallError, LLMError, LLMStreamError, error_type_of


def to_llm_error(exc: BaseException, *, model: str, message: str, partial_text: str, chunks_received: int) -> LLMError:
    error_type = error_type_of(exc)
    if chunks_received == 0:
        return LLMCallError(f"{model}: {message}", model=model, error_type=error_type)
    return LLMStreamError(
        f"{model}: stream broke after {chunks_received} chunks: {message}",
        model=model,
        error_type=error_type,
        partial_text=partial_text,
        chunks_received=chunks_received,
    )
