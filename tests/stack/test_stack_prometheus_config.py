"""prometheus.yml (and the no-Docker variant) pass Debian's promtool 2.42 and scrape the collector."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest


@pytest.mark.parametrize("config", ["prometheus.yml", "deploy/prometheus-local.yml"])
def test_promtool_accepts_config(promtool: str, root: Path, config: str) -> None:
    result = subprocess.run([promtool, "check", "config", config], cwd=root, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_scrapes_the_collectors_prometheus_exporter(scrape_targets: set[str], stack_collector: dict[str, Any]) -> None:
    port = stack_collector["exporters"]["prometheus"]["endpoint"].rsplit(":", 1)[1]
    assert scrape_targets == {f"otel-collector:{port}"}
