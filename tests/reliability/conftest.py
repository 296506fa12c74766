"""Shared fixtures of the fault suite: faults, abandonment, load, secrets, bad configuration.

Everything is real: litellm over HTTP against ``tests.support.openai_server``, the
OpenTelemetry SDK, the OTLP exporters, prometheus_client. What this file adds:

- a *blackhole* collector (accepts TCP connections, never answers) and a refused endpoint;
- (``telemetries`` and the clean ``OTEL_*`` environment come from ``tests/conftest.py``);
- ``pipeline``: a bridge on a private bus over SDK providers with the SDK's own metrics
  (``otel.sdk.span.live`` ...) turned on (``tests/support/pipeline.py``);
- (``measure``, which records the figures docs/guarantees.md quotes, is in ``tests/conftest.py``);
- a background thread dying with an exception fails the test, here a failure rather than a warning.

Tests that take more than a few seconds carry ``@pytest.mark.slow``; the soak and memory tests also
carry ``@pytest.mark.soak`` (run once, at the newest versions). Nothing is skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.blackhole import Blackhole
from tests.support.log_filters import SDK_EXPORT_LOGGERS, repeat_filters
from tests.support.pipeline import Pipeline
from tests.support.ports import free_port

from crewtrace.events import EventBus

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A background thread that dies with an exception is a failure in the fault suite, not a warning."""
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning"))


# -- log filters ----------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_stray_log_filters() -> Iterator[None]:
    """Each test starts with no RepeatFilter on the SDK's export loggers and leaves none behind.

    A telemetry another test never shut down (or a setup that failed half-way) keeps its filter
    there; having seen a warning, it would hide that warning from the next test for a minute.
    Filters present before the test are put back after it.
    """
    loggers = [logging.getLogger(name) for name in SDK_EXPORT_LOGGERS]
    stashed = {logger.name: repeat_filters(logger) for logger in loggers}
    for logger in loggers:
        for existing in stashed[logger.name]:
            logger.removeFilter(existing)
        # The SDK's own DuplicateFilter drops a record equal to the previous one within a 20 s window,
        # across tests: forget the previous test's last record.
        for sdk_filter in logger.filters:
            if hasattr(sdk_filter, "last_log"):
                del sdk_filter.last_log
    yield
    for logger in loggers:
        for stray in repeat_filters(logger):
            logger.removeFilter(stray)
        for existing in stashed[logger.name]:
            logger.addFilter(existing)


# -- dead collectors --------------------------------------------------------------------------


@pytest.fixture
def blackhole() -> Iterator[Blackhole]:
    with Blackhole() as hole:
        yield hole


@pytest.fixture
def refused_endpoint() -> str:
    """An OTLP endpoint nobody listens on: every connection is refused."""
    return f"http://127.0.0.1:{free_port()}"


# -- a bridge over SDK providers with the SDK's own metrics ------------------------------------


@pytest.fixture
def pipeline(bus: EventBus, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pipeline]:
    """OTelBridge on the private bus, with in-memory span and metric export and the SDK's own metrics on."""
    monkeypatch.setenv("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "true")
    built = Pipeline.build(bus)
    yield built
    built.close()
