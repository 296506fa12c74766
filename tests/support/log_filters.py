"""crewtrace's export-log filters on the SDK's export loggers: ``setup_telemetry`` adds one, shutdown removes it."""

from __future__ import annotations

import logging

from crewtrace.telemetry import _log_filter

SDK_EXPORT_LOGGERS = _log_filter.SDK_EXPORT_LOGGERS


def repeat_filters(logger: logging.Logger) -> list[logging.Filter]:
    """crewtrace's RepeatFilters on a logger (the SDK adds filters of its own, e.g. its DuplicateFilter)."""
    return [f for f in logger.filters if isinstance(f, _log_filter.RepeatFilter)]


def export_log_filters() -> dict[str, int]:
    """How many RepeatFilters each of the SDK's export loggers carries."""
    return {name: len(repeat_filters(logging.getLogger(name))) for name in SDK_EXPORT_LOGGERS}
