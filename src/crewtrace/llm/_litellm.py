"""The one place litellm is imported, configured for offline use first.

litellm downloads a model price map at import and retries for seconds
without a network; the bundled copy is used unless the user chose otherwise.
"""

from __future__ import annotations

import logging
import os

from crewtrace.redaction import redact

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm

litellm.suppress_debug_info = True  # no "Give Feedback" banners on stdout for every error

__all__ = ["litellm"]

_LITELLM_LOGGERS = ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy")


class _RedactKeys(logging.Filter):
    """litellm's own (debug) log can echo a provider's error body: scrub the keys crewtrace was given."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


for _name in _LITELLM_LOGGERS:
    logging.getLogger(_name).addFilter(_RedactKeys())
