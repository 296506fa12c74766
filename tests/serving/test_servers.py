"""The documented service under real multi-worker servers: it boots, and every run arrives once, through SIGTERM.

docs/deployment.md's recipe (a Starlette app streaming a crew's run) runs under
``uvicorn --workers 4`` and gunicorn with uvicorn workers, with and without ``--preload``,
exporting OTLP to the suite's receiver; its model is the suite's fake OpenAI server. Nobody
calls ``shutdown()``: the servers are stopped with SIGTERM, as deployments stop them, while a
run is still streaming. Each server is started once and every assertion about it shares it
(each worker imports litellm cold: seconds per process).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from tests.support.openai_server import FakeOpenAIServer
from tests.support.otlp_receiver import OTLPHttpReceiver
from tests.support.polling import wait_until
from tests.support.ports import free_port
from tests.support.prometheus import require_prometheus
from tests.support.serving import (
    SLOW,
    STARTED,
    asked,
    children,
    get,
    histogram_count,
    python_blocks,
    recipe,
    replace_once,
    run_ids,
    running,
    server_env,
    serving,
    yaml_blocks,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find the workers"),
]

DURATION = "gen_ai.client.operation.duration"


def runs(base_url: str, count: int, prefix: str) -> list[str]:
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(get, [f"{base_url}/run?topic={prefix}-{i}" for i in range(count)]))
    assert all(answer.startswith("data: ") for answer in answers), answers
    return answers


def arrived(receiver: OTLPHttpReceiver, count: int) -> list[str]:
    """Every run id received, once the receiver holds ``count`` runs' metrics as well."""
    wait_until(lambda: sum(histogram_count(receiver, DURATION).values()) >= count, 15, what=f"{count} runs' metrics")
    return run_ids(receiver)


def test_uvicorn_with_4_workers_boots_reports_every_run_once_and_loses_nothing_at_sigterm(
    tmp_path: Path, model: FakeOpenAIServer
) -> None:
    (tmp_path / "app.py").write_text(recipe())
    port, metrics_port = free_port(), free_port()
    with OTLPHttpReceiver() as receiver:
        # Every worker also asks for the same /metrics port: the service must boot all the same.
        env = server_env(
            receiver,
            model.base_url,
            OTEL_METRICS_EXPORTER="otlp,prometheus",
            OTEL_EXPORTER_PROMETHEUS_PORT=str(metrics_port),
        )
        args = [sys.executable, "-m", "uvicorn", "app:app", "--workers", "4", "--port", str(port)]
        with running(args, env, tmp_path) as server, ThreadPoolExecutor(1) as pool:
            server.wait_for(STARTED, count=4)
            warnings = server.wait_for(r"crewtrace: .* already serves the metrics of process \d+.*", count=3)
            assert all("docs/deployment.md" in line for line in warnings), "each says what to do instead, in one line"
            assert 'service_name="crew-service"' in get(f"http://127.0.0.1:{metrics_port}/metrics")
            base_url = f"http://127.0.0.1:{port}"
            runs(base_url, 16, "run")

            in_flight = pool.submit(get, f"{base_url}/run?topic={SLOW}")
            wait_until(lambda: asked(model, SLOW) == 1, what="the slow run reached the model")
            code = server.terminate()
            assert in_flight.result(timeout=30).count("data: ") == 20, "the graceful stop let the last run finish"
        assert code == 0, server.output()
        ids = arrived(receiver, 17)
    assert len(ids) == 17 and len(set(ids)) == 17, "every run once, the one cut by SIGTERM included"
    counts = histogram_count(receiver, DURATION)
    assert sum(counts.values()) == 17 and len(counts) >= 2, counts


def import_time(source: str) -> str:
    """The recipe with ``setup_telemetry`` at import, as the docs allow under servers without ``--preload``."""
    source = replace_once(source, '    setup_telemetry("crew-service")', "    pass  #")
    return replace_once(source, "\napp = Starlette(", '\ntelemetry = setup_telemetry("crew-service")\napp = Starlette(')


@pytest.mark.parametrize(
    ("preload", "setup"), [(True, "lifespan"), (False, "import")], ids=["preload, lifespan", "no preload, import"]
)
def test_gunicorn_with_uvicorn_workers_loses_nothing_when_a_worker_or_the_server_stops(
    tmp_path: Path, model: FakeOpenAIServer, preload: bool, setup: str
) -> None:
    (tmp_path / "app.py").write_text(recipe() if setup == "lifespan" else import_time(recipe()))
    port = free_port()
    with OTLPHttpReceiver() as receiver:
        args = [sys.executable, "-m", "gunicorn", "app:app", "-w", "2", "-k", "uvicorn_worker.UvicornWorker"]
        args += ["-b", f"127.0.0.1:{port}", "--graceful-timeout", "30", *(["--preload"] if preload else [])]
        before = asked(model, SLOW)
        with running(args, server_env(receiver, model.base_url), tmp_path) as server, ThreadPoolExecutor(1) as pool:
            server.wait_for(STARTED, count=2)
            base_url = f"http://127.0.0.1:{port}"
            runs(base_url, 8, "before")

            # SIGTERM to the worker that is streaming a run: it finishes it, exports, and dies of the signal.
            in_flight = pool.submit(get, f"{base_url}/run?topic={SLOW}")
            wait_until(lambda: asked(model, SLOW) == before + 1, what="the slow run reached the model")
            (worker,) = wait_until(lambda: serving(children(server.pid), port), what="the busy worker")
            os.kill(worker, signal.SIGTERM)
            assert in_flight.result(timeout=30).count("data: ") == 20
            server.wait_for(rf"Worker \(pid:{worker}\) was sent SIGTERM", stream="stderr")
            server.wait_for(STARTED, count=3)  # gunicorn replaced it
            runs(base_url, 6, "after")
            code = server.terminate()
        assert code == 0, server.output()
        ids = arrived(receiver, 15)
    assert len(ids) == 15 and len(set(ids)) == 15, "every run once"
    counts = histogram_count(receiver, DURATION)
    assert sum(counts.values()) == 15 and len(counts) >= 2, counts


def per_worker_ports(source: str) -> str:
    """The recipe with deployment.md's per-worker lifespan (a port each, and a file_sd target file each)."""
    (block,) = [b for b in python_blocks() if "file_sd" in b or "TARGETS" in b]
    start, end = source.index("@asynccontextmanager\n"), source.index("    yield\n") + len("    yield\n")
    return source[:start] + block + source[end:]


@pytest.mark.integration
def test_a_port_per_worker_found_through_file_sd_shows_every_run_once(tmp_path: Path, model: FakeOpenAIServer) -> None:
    require_prometheus()  # promtool checks the documented scrape config
    (tmp_path / "app.py").write_text(per_worker_ports(recipe()))
    targets = tmp_path / "targets"
    targets.mkdir()
    (config,) = [b for b in yaml_blocks() if "file_sd_configs" in b]
    (tmp_path / "prometheus.yml").write_text(config.replace("/run/crewtrace-targets", str(targets)))
    promtool = subprocess.run(
        ["promtool", "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True
    )
    assert promtool.returncode == 0, promtool.stdout + promtool.stderr
    port = free_port()
    with OTLPHttpReceiver() as receiver:
        env = server_env(receiver, model.base_url, CREWTRACE_TARGETS=str(targets), OTEL_METRICS_EXPORTER="none")
        args = [sys.executable, "-m", "uvicorn", "app:app", "--workers", "2", "--port", str(port)]
        with running(args, env, tmp_path) as server:
            server.wait_for(STARTED, count=2)
            files = sorted(targets.glob("*.json"))
            assert len(files) == 2, files
            runs(f"http://127.0.0.1:{port}", 6, "discovered")
            total = 0.0
            for file in files:  # what Prometheus does with file_sd: scrape every target listed
                (group,) = json.loads(file.read_text())
                (target,) = group["targets"]
                page = get(f"http://{target}/metrics")
                total += sum(
                    sample.value
                    for family in text_string_to_metric_families(page)
                    for sample in family.samples
                    if sample.name == "gen_ai_client_operation_duration_seconds_count"
                )
            assert total == 6, "every run once, over the workers' ports"
            assert server.terminate() == 0, server.output()
        assert sorted(targets.glob("*.json")) == [], "each worker removed its target as it stopped"
