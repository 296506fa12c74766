"""prometheus.yml (and the no-Docker variant) pass Debian's promtool 2.42 and scrape the collector."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.support.stack_checks import check_promtool_config


@pytest.mark.parametrize("config", ["prometheus.yml", "deploy/prometheus-local.yml"])
def test_promtool_accepts_config(promtool: str, root: Path, config: str) -> None:
    check_promtool_config(promtool, root, config)


def test_scrapes_the_collectors_prometheus_exporter(scrape_targets: set[str], stack_collector: dict[str, Any]) -> None:
    port = stack_collector["exporters"]["prometheus"]["endpoint"].rsplit(":", 1)[1]
    assert scrape_targets == {f"otel-collector:{port}"}
