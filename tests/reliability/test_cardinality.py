"""Metric cardinality stays capped, and so does the size of ``/metrics``.

10,000 tasks without names and with distinct descriptions (each labelled by the first words
of its description, as ``Task.label`` does), 1,000 distinct error types: every label keeps
at most ``max_label_values`` (100) values, then ``_OTHER``; the ``/metrics`` page stops
growing once the caps are reached. Calls are fed to the bus as events (the bridge only
sees events), which is what the LLM layer emits for each call.

Measured here (two cores): ~47 KB of ``/metrics`` per (agent, task) pair, ~4.7 MB in all
for one agent and the 101 task values the cap allows. Agent/task *pairs* are capped too (at
``max_label_values``): without that, 20 agents x 50 tasks made a ~35 MB page.

Covered elsewhere: the cap itself with 10 tasks and ``max_label_values=3``
(tests/telemetry/test_bridge.py).
"""

from __future__ import annotations

import logging
import time
import urllib.request
from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.support.synthetic import emit_call

from crewtrace import Task
from crewtrace.events import (
    EventBus,
)
from crewtrace.telemetry import Telemetry

CAP = 100  # OTelBridge's default max_label_values
METRICS_BOUND = 6_000_000  # bytes of /metrics (text format) once every label is at its cap, one agent


def feed_calls(
    bus: EventBus, first: int, last: int, *, agent: Callable[[int], str], task: Callable[[int], str]
) -> None:
    """One streamed call per n: started, two chunks, then completed (every 10th fails with its own error type)."""
    for n in range(first, last):
        emit_call(
            bus,
            f"call-{n}",
            chunks=2,
            error_type=f"ProviderError{n}" if n % 10 == 0 else None,
            cost_usd=0.0001,
            model="openai/gpt-4o-mini",
            run_id=f"run-{n}",
            task_id=f"task-{n}",
            task_name=task(n),
            agent_id=f"agent-id-{n}",
            agent_role=agent(n),
        )


def unnamed_task_label(n: int) -> str:
    task = Task(description=f"Summarise support ticket {n} for the billing team", expected_output="A summary.")
    assert task.name is None
    return task.label


def scrape(telemetry: Telemetry, openmetrics: bool = False) -> str:
    assert telemetry.metrics_url is not None
    headers = {"Accept": "application/openmetrics-text"} if openmetrics else {}
    request = urllib.request.Request(telemetry.metrics_url, headers=headers)
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.read().decode()


def label_values(text: str, label: str) -> set[str]:
    return {
        sample.labels[label]
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.labels.get(label)
    }


def test_ten_thousand_distinct_tasks_keep_labels_capped_and_metrics_small(
    bus: EventBus,
    telemetries: Callable[..., Telemetry],
    caplog: pytest.LogCaptureFixture,
    measure: Callable[[str, object], None],
) -> None:
    caplog.set_level(logging.WARNING, logger="crewtrace.telemetry")
    telemetry = telemetries("svc-cardinality", prometheus_port=0, bus=bus)
    labels = [unnamed_task_label(n) for n in range(10_000)]
    assert len(set(labels)) == 10_000, "every description gives its own label"

    feed_calls(bus, 0, 1_000, agent=lambda n: "Analyst", task=labels.__getitem__)
    after_1k = scrape(telemetry)
    started = time.perf_counter()
    feed_calls(bus, 1_000, 10_000, agent=lambda n: "Analyst", task=labels.__getitem__)
    fed = time.perf_counter() - started
    text = scrape(telemetry)
    openmetrics = scrape(telemetry, openmetrics=True)

    tasks = label_values(text, "crewtrace_task_name")
    errors = label_values(text, "error_type")
    assert len(tasks) <= CAP + 1 and "_OTHER" in tasks, f"{len(tasks)} task label values"
    assert len(errors) <= CAP + 1 and "_OTHER" in errors, f"{len(errors)} error_type values"
    assert set(labels[:CAP]) <= tasks, "the first values keep their own label"
    chunks = sum(
        s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
        if s.name == "crewtrace_stream_chunks_total"
    )
    assert chunks == 20_000, "capping labels loses no measurement"

    size, size_1k = len(text.encode()), len(after_1k.encode())
    assert size < METRICS_BOUND, f"/metrics is {size:,} bytes"
    assert size < size_1k * 1.05, f"/metrics kept growing after the caps were reached: {size_1k:,} -> {size:,} bytes"
    assert len(openmetrics.encode()) < METRICS_BOUND * 1.05

    capped = [r for r in caplog.records if r.name == "crewtrace.telemetry" and "distinct values" in r.getMessage()]
    labels = sorted(r.args[1] for r in capped if r.args[1] != "attribution label combinations")
    assert labels == ["crewtrace.task.name", "error.type"], "one warning per capped label"
    counts = telemetry.bridge.label_value_counts()
    assert counts and all(n <= CAP for n in counts.values()), f"the caps bound memory too: {counts}"

    measure("feeding 9,000 calls (36,000 events) through the bridge", f"{fed:.2f} s")
    measure(
        "/metrics after 1,000 / 10,000 distinct unnamed tasks (text format)",
        f"{size_1k:,} / {size:,} bytes, {text.count(chr(10)):,} lines, {len(tasks)} task label values",
    )
    measure("/metrics after 10,000 tasks (OpenMetrics)", f"{len(openmetrics.encode()):,} bytes")


def test_agent_and_task_combinations_keep_metrics_small(
    bus: EventBus,
    telemetries: Callable[..., Telemetry],
    caplog: pytest.LogCaptureFixture,
    measure: Callable[[str, object], None],
) -> None:
    """20 agents x 50 tasks: each label is under its cap, but 1,000 pairs would multiply every series."""
    caplog.set_level(logging.WARNING, logger="crewtrace.telemetry")
    telemetry = telemetries("svc-combinations", prometheus_port=0, bus=bus)
    feed_calls(bus, 0, 1_000, agent=lambda n: f"Agent {n % 20}", task=lambda n: unnamed_task_label(n // 20))
    text = scrape(telemetry)
    pairs = {
        (sample.labels.get("gen_ai_agent_name"), sample.labels.get("crewtrace_task_name"))
        for family in text_string_to_metric_families(text)
        if family.name == "crewtrace_stream_chunks"
        for sample in family.samples
    }
    measure("/metrics for 20 agents x 50 tasks (text format)", f"{len(text.encode()):,} bytes, {len(pairs)} pairs")
    assert len(pairs) <= CAP + 1 and ("_OTHER", "_OTHER") in pairs, f"{len(pairs)} agent/task pairs"
    assert len(text.encode()) < METRICS_BOUND
    assert any(
        "attribution label combinations" in r.getMessage() for r in caplog.records if r.name == "crewtrace.telemetry"
    )
