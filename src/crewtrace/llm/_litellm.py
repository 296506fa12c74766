"""The one place litellm is imported, configured for offline use first.

litellm downloads a model price map at import and retries for seconds
without a network; the bundled copy is used unless the user chose otherwise.
"""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm  # noqa: E402

litellm.suppress_debug_info = True  # no "Give Feedback" banners on stdout for every error

__all__ = ["litellm"]
