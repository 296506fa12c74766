"""Shared fixtures for the stack tests: the repository's config files, the dashboards' queries, promtool.

The dashboard queries are parametrized here (``panel_query``, ``exemplar_query``, ``variable_query``)
so the static checks (promtool) and the live check (a real Prometheus scraping the demo) run over
the same list, read from the dashboard JSON files.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.stack.dashboard_queries import load_dashboards, panel_queries, variable_queries
from tests.support.prometheus import require_prometheus

ROOT = Path(__file__).resolve().parents[2]


_QUERIES: dict[str, Callable[[], list[Any]]] = {
    "panel_query": panel_queries,
    # Failed-call panels have exemplars only after a failure, which the demo never has: their
    # exemplars are the same mechanism as the others, and their queries are checked as panels.
    "exemplar_query": lambda: [q for q in panel_queries() if q.exemplar and 'error_type!=""' not in q.expr],
    "variable_query": variable_queries,
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    for fixture, queries in _QUERIES.items():
        if fixture in metafunc.fixturenames:
            metafunc.parametrize(fixture, queries(), ids=lambda query: query.id)


def _load_yaml(relative: str) -> Any:
    return yaml.safe_load((ROOT / relative).read_text())


def _server_endpoints(config: dict[str, Any]) -> dict[str, str]:
    """``component.path -> host:port`` for everything a Collector config listens on."""
    found: dict[str, str] = {}

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "endpoint" and isinstance(value, str):
                    found[path] = value
                else:
                    walk(value, f"{path}.{key}")

    for kind in ("receivers", "extensions"):
        walk(config.get(kind) or {}, kind)
    for name, exporter in (config.get("exporters") or {}).items():
        if name.split("/")[0] == "prometheus":  # the one exporter that serves instead of sending
            walk(exporter, f"exporters.{name}")
    return found


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def load_yaml() -> Callable[[str], Any]:
    """Parse a YAML file given by its path in the repository."""
    return _load_yaml


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    return _load_yaml("docker-compose.yml")


@pytest.fixture(scope="session")
def stack_collector() -> dict[str, Any]:
    return _load_yaml("otel-collector.yaml")


@pytest.fixture(scope="session")
def scrape_targets() -> set[str]:
    """Every static target prometheus.yml scrapes."""
    jobs = _load_yaml("prometheus.yml")["scrape_configs"]
    return {target for job in jobs for group in job["static_configs"] for target in group["targets"]}


@pytest.fixture(scope="session")
def grafana_mounts(compose: dict[str, Any]) -> dict[str, str]:
    """The Grafana container's bind mounts: container path -> ./source."""
    volumes = (volume.split(":") for volume in compose["services"]["grafana"]["volumes"])
    return {target: source for source, target, *_ in volumes}


@pytest.fixture(scope="session")
def dashboards() -> dict[str, dict[str, Any]]:
    return load_dashboards()


@pytest.fixture(scope="session")
def datasources() -> dict[str, dict[str, Any]]:
    """Provisioned Grafana data sources by uid."""
    provisioned = _load_yaml("dashboards/provisioning/datasources/datasources.yaml")
    return {source["uid"]: source for source in provisioned["datasources"]}


@pytest.fixture(scope="session")
def server_endpoints() -> Callable[[dict[str, Any]], dict[str, str]]:
    return _server_endpoints


@pytest.fixture(scope="session")
def listening_ports() -> dict[str, set[int]]:
    """Container ports each Compose service listens on, read from its config where it has one."""

    def ports(config: str) -> set[int]:
        return {int(endpoint.rsplit(":", 1)[1]) for endpoint in _server_endpoints(_load_yaml(config)).values()}

    return {
        "otel-collector": ports("otel-collector.yaml"),
        "jaeger": ports("deploy/jaeger.yaml"),
        "prometheus": {9090},
        "grafana": {3000},
    }


@pytest.fixture(scope="session")
def promtool() -> str:
    require_prometheus()  # skips locally, fails under CI=true, when prometheus/promtool are missing
    path = shutil.which("promtool")
    assert path
    return path
