"""``verbose=True``: a task's progress on the ``crewtrace.crew`` logger, readable without set-up.

Only names, durations and token counts: filled-in prompts and answers are
content and never logged.
"""

from __future__ import annotations

import logging
import sys
import threading

_logger = logging.getLogger("crewtrace.crew")
_lock = threading.Lock()


def progress_logger() -> logging.Logger:
    """The logger, given a stderr handler at INFO if the application configured no logging."""
    with _lock:
        if not _logger.hasHandlers():
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logging.Formatter("[crewtrace] %(message)s"))
            _logger.addHandler(handler)
        if not _logger.isEnabledFor(logging.INFO):
            _logger.setLevel(logging.INFO)
    return _logger
