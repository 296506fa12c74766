"""docker-compose.yml, checked without Docker: schema, pinned images, loopback ports, mounts, wiring."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.support.stack_checks import check_compose_schema

SERVICES = {"otel-collector", "jaeger", "prometheus", "grafana"}


def _version(image: str) -> tuple[int, ...]:
    return tuple(int(part) for part in image.rsplit(":", 1)[1].lstrip("v").split("."))


def _host_port(address: str) -> tuple[str, int]:
    host, port = (urlsplit(address).netloc if "//" in address else address).rsplit(":", 1)
    return host, int(port)


def test_matches_the_compose_schema(root: Path) -> None:
    check_compose_schema(root)


def test_has_the_four_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == SERVICES


def test_images_are_pinned_to_exact_versions(compose: dict[str, Any]) -> None:
    images = {name: service["image"] for name, service in compose["services"].items()}
    for name, image in images.items():
        assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", image), f"{name}: {image} is not pinned to x.y.z"
    assert images["otel-collector"] == "otel/opentelemetry-collector-contrib:0.159.0"
    assert images["jaeger"].startswith("jaegertracing/jaeger:")
    # Later Jaeger builds drop the /api/traces and /api/services endpoints Grafana's data source uses.
    assert (2, 0, 0) <= _version(images["jaeger"]) <= (2, 20, 0)
    assert images["prometheus"].startswith("prom/prometheus:v3.")
    assert images["grafana"].startswith("grafana/grafana:12.")


def test_ports_are_published_on_loopback_only(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert isinstance(port, str) and port.startswith("127.0.0.1:"), f"{name}: {port!r}"


def test_published_ports_are_ones_the_services_listen_on(
    compose: dict[str, Any], listening_ports: dict[str, set[int]]
) -> None:
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            listening = listening_ports[name]
            assert int(port.rsplit(":", 1)[1]) in listening, f"{name} publishes {port}, listens on {listening}"


def test_bind_mounts_exist(root: Path, compose: dict[str, Any]) -> None:
    mounts = [volume.split(":")[0] for service in compose["services"].values() for volume in service.get("volumes", [])]
    assert mounts
    for source in mounts:
        assert source.startswith("./"), f"{source}: not a bind mount of a repository file"
        assert (root / source).exists(), f"{source} is mounted but missing"


def test_config_files_reach_their_services(compose: dict[str, Any]) -> None:
    """Each service is started on the config file the repository ships for it."""
    services = compose["services"]
    assert "./otel-collector.yaml:/etc/otelcol-contrib/config.yaml:ro" in services["otel-collector"]["volumes"]
    assert "--config=/etc/otelcol-contrib/config.yaml" in services["otel-collector"]["command"]
    assert "./deploy/jaeger.yaml:/etc/jaeger/config.yaml:ro" in services["jaeger"]["volumes"]
    assert "--config=/etc/jaeger/config.yaml" in services["jaeger"]["command"]
    assert "./prometheus.yml:/etc/prometheus/prometheus.yml:ro" in services["prometheus"]["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in services["prometheus"]["command"]


def test_prometheus_stores_exemplars(compose: dict[str, Any]) -> None:
    assert "--enable-feature=exemplar-storage" in compose["services"]["prometheus"]["command"]


def test_grafana_needs_no_login_and_opens_on_a_provisioned_dashboard(
    root: Path, compose: dict[str, Any], grafana_mounts: dict[str, str]
) -> None:
    env = compose["services"]["grafana"]["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] in {"Viewer", "Editor", "Admin"}
    home = Path(env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert (root / grafana_mounts[str(home.parent)] / home.name).is_file()
    assert grafana_mounts["/etc/grafana/provisioning/datasources"] == "./dashboards/provisioning/datasources"
    assert grafana_mounts["/etc/grafana/provisioning/dashboards"] == "./dashboards/provisioning/dashboards"


def test_services_reach_each_other_by_compose_name(
    stack_collector: dict[str, Any],
    scrape_targets: set[str],
    datasources: dict[str, dict[str, Any]],
    listening_ports: dict[str, set[int]],
) -> None:
    references = {
        # prometheus listens, debug writes to the collector's own log: the others send to a service.
        "collector exporter": [
            e["endpoint"] for n, e in stack_collector["exporters"].items() if n not in ("prometheus", "debug")
        ],
        "prometheus scrape target": sorted(scrape_targets),
        "grafana data source": [source["url"] for source in datasources.values()],
    }
    for what, targets in references.items():
        assert targets, what
        for target in targets:
            host, port = _host_port(target)
            assert port in listening_ports.get(host, set()), f"{what} {target}: no Compose service listens there"
