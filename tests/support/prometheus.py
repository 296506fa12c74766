"""A real Prometheus server (Debian's 2.42 binary) scraping test targets.

Proves that what crewtrace serves on /metrics is accepted by Prometheus itself,
exemplars included, rather than by a parser we wrote.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from .ports import free_port

MISSING_MESSAGE = "prometheus/promtool not found: install Debian's prometheus package (make system-deps)"


def prometheus_binary() -> str | None:
    """Path of the prometheus binary, or None when it is not installed."""
    return shutil.which("prometheus")


def require_prometheus() -> str:
    """Return the binary's path; skip the test locally, fail it under CI=true, when missing."""
    import pytest  # deferred: benchmarks import this module without pytest

    binary = prometheus_binary()
    if binary is None or shutil.which("promtool") is None:
        if os.environ.get("CI") == "true":
            pytest.fail(MISSING_MESSAGE)
        pytest.skip(MISSING_MESSAGE)
    return binary


class PrometheusError(RuntimeError):
    """Prometheus failed to start or answered a query with an error."""


class PrometheusServer:
    """Prometheus scraping `targets` ("host:port", path /metrics) every `scrape_interval`."""

    def __init__(self, targets: list[str], scrape_interval: str = "1s", *, tmp_path: Path) -> None:
        self.targets = targets
        self.scrape_interval = scrape_interval
        self.tmp_path = Path(tmp_path)
        self.port = 0
        self.log_path = self.tmp_path / "prometheus.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> PrometheusServer:
        """Write the config, launch prometheus and wait for /-/ready."""
        binary = prometheus_binary()
        if binary is None:
            raise PrometheusError(MISSING_MESSAGE)
        config = self.tmp_path / "prometheus.yml"
        config.write_text(
            json.dumps(
                {  # JSON is valid YAML; no yaml dependency needed
                    "global": {"scrape_interval": self.scrape_interval, "evaluation_interval": self.scrape_interval},
                    "scrape_configs": [
                        {
                            "job_name": "crewtrace",
                            "metrics_path": "/metrics",
                            "scrape_timeout": self.scrape_interval,
                            "static_configs": [{"targets": self.targets}],
                        }
                    ],
                }
            )
        )
        self.port = free_port()
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--enable-feature=exemplar-storage",
                ],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise PrometheusError(f"prometheus exited with {self._process.returncode}\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise PrometheusError(f"prometheus not ready after {timeout}s\n{self.log_tail()}")

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def log_tail(self, lines: int = 20) -> str:
        """Last lines of prometheus' stderr, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no prometheus log)"
        return "\n".join(text.splitlines()[-lines:])

    def _api(self, endpoint: str, params: dict[str, str]) -> Any:
        url = f"{self.url}/api/v1/{endpoint}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                payload = json.load(response)
        except urllib.error.HTTPError as exc:  # 4xx/5xx still carry the JSON error
            payload = json.load(exc)
        if payload.get("status") != "success":
            raise PrometheusError(f"{endpoint} {params}: {payload.get('errorType')}: {payload.get('error')}")
        return payload["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query; returns the result vector ({"metric": labels, "value": [ts, "v"]} ...)."""
        data = self._api("query", {"query": expr})
        result: list[dict[str, Any]] = data["result"]
        return result

    def wait_for(self, expr: str, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Poll `expr` until it returns a non-empty result (the first scrape lands ~5-6 s after start)."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if result:
                return result
            if time.monotonic() >= deadline:
                targets = self._api("targets", {}).get("activeTargets", [])
                health = [(t.get("scrapeUrl"), t.get("health"), t.get("lastError")) for t in targets]
                raise PrometheusError(f"{expr!r} still empty after {timeout}s; targets: {health}\n{self.log_tail()}")
            time.sleep(0.2)

    def query_exemplars(self, expr: str, start: float, end: float) -> list[dict[str, Any]]:
        """Exemplars of series matching `expr` between unix times `start` and `end`."""
        data = self._api("query_exemplars", {"query": expr, "start": str(start), "end": str(end)})
        return list(data or [])
