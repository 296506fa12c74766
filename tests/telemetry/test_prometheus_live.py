"""A real Prometheus scraping ``crewtrace demo``'s /metrics: per-agent and per-task numbers via PromQL.

The demo runs its offline two-agent crew once and keeps serving metrics (``--keep-alive``);
Prometheus (Debian's binary, exemplar storage on) scrapes it every second. The expected numbers
come from the summary table the demo printed, which is computed from the events alone, so the
metrics are checked against an independent tally of the same run.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.support.demo_process import DemoProcess, run_demo
from tests.support.polling import wait_until
from tests.support.ports import free_port
from tests.support.prometheus import PrometheusServer, require_prometheus

pytestmark = pytest.mark.integration

SERVICE = "crewtrace-demo"
AGENT_TASKS = {"Researcher": "research_topic", "Writer": "write_summary"}
TIMEOUT = 30.0


@dataclass(frozen=True)
class Row:
    agent: str
    task: str
    calls: int
    failed: int
    chunks: int
    tokens_in: int
    tokens_out: int


@dataclass
class Live:
    demo: DemoProcess
    prometheus: PrometheusServer
    rows: dict[str, Row]  # by agent
    started: float


def parse_summary(stdout: str) -> dict[str, Row]:
    """The demo's summary table, by column heading: header, a line of dashes per column, one row per agent."""
    lines = stdout.splitlines()
    dashes = next(i for i, line in enumerate(lines) if line.startswith("-----") and set(line) <= {"-", " "})
    spans = [(m.start(), m.end()) for m in re.finditer(r"-+", lines[dashes])]

    def cells(line: str) -> list[str]:
        # The last column may be wider than its dashes; every other one ends where its dashes do.
        bounds = [(start, end) for start, end in spans[:-1]] + [(spans[-1][0], len(line))]
        return [line[start:end].strip() for start, end in bounds]

    heading = cells(lines[dashes - 1])
    rows: dict[str, Row] = {}
    for line in lines[dashes + 1 :]:
        if not line.strip():
            break
        row = dict(zip(heading, cells(line), strict=False))
        rows[row["agent"]] = Row(
            row["agent"],
            row["task"],
            int(row["calls"]),
            int(row["failed"]),
            int(row["chunks"]),
            int(row["tokens in"]),
            int(row["tokens out"]),
        )
    return rows


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    require_prometheus()
    tmp: Path = tmp_path_factory.mktemp("prometheus-live")
    port = free_port()
    started = time.time()
    with run_demo("--metrics-port", str(port), "--keep-alive", log_dir=tmp) as demo:
        assert demo.port == port and demo.metrics_url == f"http://127.0.0.1:{port}/metrics"
        demo.wait_for_output(r"^keeping telemetry alive")  # the crew ran; the table is printed
        rows = parse_summary(demo.stdout_text())
        assert {a: r.task for a, r in rows.items()} == AGENT_TASKS, demo.stdout_text()
        with PrometheusServer([f"127.0.0.1:{port}"], tmp_path=tmp) as prometheus:
            prometheus.wait_for(f'gen_ai_client_operation_duration_seconds_count{{service_name="{SERVICE}"}}', TIMEOUT)
            yield Live(demo, prometheus, rows, started)
        # SIGTERM while it keeps telemetry alive: a clean shutdown, exit 0, promptly (a demo that does not
        # react is killed after a minute; one second or a few, on a loaded machine, is what it takes).
        stopping = time.monotonic()
        code = demo.stop(timeout=60)
        elapsed = time.monotonic() - stopping
    assert code == 0, f"demo exited with {code}:\n{demo.stderr_text()[-3000:]}"
    assert elapsed < 30.0, f"demo took {elapsed:.1f} s to exit after SIGTERM"


def by_label(live: Live, expr: str, label: str) -> dict[str, float]:
    result = live.prometheus.wait_for(expr, TIMEOUT)
    values = {series["metric"].get(label, ""): float(series["value"][1]) for series in result}
    assert len(values) == len(result), f"{label} does not tell the series of {expr} apart: {result}"
    return values


def per_agent(live: Live, metric: str) -> dict[str, float]:
    return by_label(live, f"sum by (gen_ai_agent_name) ({metric})", "gen_ai_agent_name")


def test_operations_per_agent_match_the_demo_summary(live: Live) -> None:
    counts = per_agent(live, "gen_ai_client_operation_duration_seconds_count")
    assert counts == {agent: float(row.calls) for agent, row in live.rows.items()}
    assert counts["Writer"] == 1.0, "the writer answers in one call"
    assert counts["Researcher"] >= 1.0, "the researcher calls its model once per tool round"
    assert all(row.failed == 0 for row in live.rows.values())


def test_chunks_per_task_match_the_demo_summary(live: Live) -> None:
    chunks = by_label(live, "sum by (crewtrace_task_name) (crewtrace_stream_chunks_total)", "crewtrace_task_name")
    expected = {row.task: float(row.chunks) for row in live.rows.values()}
    assert chunks == expected
    assert all(value > 10 for value in chunks.values()), "streamed in many chunks"


def test_output_tokens_per_agent_match_the_demo_summary(live: Live) -> None:
    out = by_label(live, 'gen_ai_client_token_usage_sum{gen_ai_token_type="output"}', "gen_ai_agent_name")
    assert out == {agent: float(row.tokens_out) for agent, row in live.rows.items()}
    tokens_in = by_label(live, 'gen_ai_client_token_usage_sum{gen_ai_token_type="input"}', "gen_ai_agent_name")
    assert tokens_in == {agent: float(row.tokens_in) for agent, row in live.rows.items()}


def test_series_carry_agent_task_and_service_name(live: Live) -> None:
    series = live.prometheus.wait_for('{__name__=~"gen_ai_.+|crewtrace_.+"}', TIMEOUT)
    assert series
    for s in series:
        labels = s["metric"]
        assert labels.get("service_name") == SERVICE, labels
        assert labels["gen_ai_workflow_name"] == "demo-crew", labels
        if labels["__name__"].startswith("gen_ai_workflow_duration"):
            continue  # a whole run's: no agent or task
        assert AGENT_TASKS[labels["gen_ai_agent_name"]] == labels["crewtrace_task_name"], labels
        if labels["__name__"].startswith("gen_ai_client_"):
            assert labels["gen_ai_operation_name"] == "chat" and labels.get("gen_ai_provider_name"), labels
    names = {s["metric"]["__name__"] for s in series}
    assert {
        "gen_ai_client_operation_duration_seconds_count",
        "gen_ai_client_token_usage_sum",
        "crewtrace_stream_chunks_total",
        "crewtrace_stream_active",
    } <= names


def test_no_stream_is_left_active(live: Live) -> None:
    active = by_label(live, "crewtrace_stream_active", "gen_ai_agent_name")
    assert active == {"Researcher": 0.0, "Writer": 0.0}


def test_chunk_timing_histograms_exist_per_agent(live: Live) -> None:
    first = per_agent(live, "gen_ai_client_operation_time_to_first_chunk_seconds_count")
    assert first == {agent: float(row.calls) for agent, row in live.rows.items()}, "one per streamed call"
    per_chunk = per_agent(live, "gen_ai_client_operation_time_per_output_chunk_seconds_count")
    expected = {agent: float(row.chunks - row.calls) for agent, row in live.rows.items()}
    assert per_chunk == expected, "one gap per chunk after the first of each call"


def test_cost_is_reported(live: Live) -> None:
    cost = per_agent(live, "gen_ai_usage_cost_USD_sum")
    assert set(cost) == set(AGENT_TASKS)
    assert all(value > 0 for value in cost.values()), cost


def test_duration_exemplars_carry_trace_ids(live: Live) -> None:
    expr = "gen_ai_client_operation_duration_seconds_bucket"
    found = wait_until(
        lambda: live.prometheus.query_exemplars(expr, start=live.started - 60, end=time.time() + 60),
        TIMEOUT,
        interval=0.5,
        what=f"exemplars for {expr}",
    )
    by_agent: dict[str, set[str]] = {}
    for group in found:
        agent = group["seriesLabels"].get("gen_ai_agent_name", "")
        for exemplar in group["exemplars"]:
            trace_id = exemplar["labels"].get("trace_id", "")
            assert re.fullmatch(r"[0-9a-f]{32}", trace_id) and trace_id != "0" * 32, exemplar
            assert re.fullmatch(r"[0-9a-f]{16}", exemplar["labels"].get("span_id", "")), exemplar
            by_agent.setdefault(agent, set()).add(trace_id)
    assert set(by_agent) == set(AGENT_TASKS), found
    assert len(set().union(*by_agent.values())) == 1, "both calls belong to the one trace of the crew run"
