"""Every dashboard query against a real Prometheus scraping ``crewtrace demo``'s own /metrics.

The demo runs its offline crew once and keeps serving (``--keep-alive``); Prometheus (Debian's
2.42, exemplar storage on) scrapes it every second. A query passes when it returns at least one
series and every value is a number, which is what a panel needs to show something.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator

import pytest
from tests.stack.dashboard_queries import PanelQuery, VariableQuery
from tests.support.demo_process import run_demo
from tests.support.polling import wait_until
from tests.support.ports import free_port
from tests.support.prometheus import PrometheusServer, require_prometheus

pytestmark = pytest.mark.integration

SERVICE = "crewtrace-demo"
TIMEOUT = 60.0


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """Prometheus first, then the demo, so that the scrapes see the crew while it runs."""
    require_prometheus()
    tmp = tmp_path_factory.mktemp("stack-live")
    port = free_port()
    with (
        PrometheusServer([f"127.0.0.1:{port}"], tmp_path=tmp) as server,
        run_demo("--metrics-port", str(port), "--keep-alive", log_dir=tmp),
    ):
        server.wait_for(f'gen_ai_client_operation_duration_seconds_count{{service_name="{SERVICE}"}}', TIMEOUT)
        yield server


def test_variable_has_values(prometheus: PrometheusServer, variable_query: VariableQuery) -> None:
    series = prometheus.wait_for(variable_query.promql(service=SERVICE), TIMEOUT)
    assert any(s["metric"].get(variable_query.label) for s in series), f"no {variable_query.label} label on {series}"


def test_panel_query_shows_data(prometheus: PrometheusServer, panel_query: PanelQuery) -> None:
    series = prometheus.wait_for(panel_query.promql(service=SERVICE), TIMEOUT)
    values = [float(s["value"][1]) for s in series]
    assert all(math.isfinite(v) for v in values), f"{panel_query.id}: {series}"


def test_exemplars_link_panels_to_traces(prometheus: PrometheusServer, exemplar_query: PanelQuery) -> None:
    """What Grafana fetches for a panel with exemplars on: its whole expression, sent to query_exemplars."""
    expr = exemplar_query.promql(service=SERVICE)
    found = wait_until(
        lambda: prometheus.query_exemplars(expr, start=time.time() - 3600, end=time.time() + 60),
        TIMEOUT,
        interval=0.5,
        what=f"exemplars for {expr}",
    )
    trace_ids = [e["labels"].get("trace_id", "") for group in found for e in group["exemplars"]]
    assert trace_ids and all(re.fullmatch(r"[0-9a-f]{32}", t) for t in trace_ids), found
