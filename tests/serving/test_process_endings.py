"""Processes that end without ``atexit``: SIGTERM's default action, and forked pool workers (``os._exit``).

Celery's prefork workers (billiard's) are the one ending that needs deployment.md's line.

Each scenario is a fresh Python process that sets telemetry up as an application does
(``setup_telemetry`` with the endpoint from ``OTEL_*`` variables, no ``shutdown()`` call),
runs crews against the suite's fake OpenAI server and exports to the suite's OTLP receiver.
"""

from __future__ import annotations

import json
import signal
import sys
import textwrap
from pathlib import Path

import pytest
from tests.support.openai_server import FakeOpenAIServer
from tests.support.otlp_receiver import OTLPHttpReceiver
from tests.support.polling import wait_until
from tests.support.serving import (
    ENDLESS,
    ROOT,
    asked,
    histogram_count,
    python_blocks,
    replace_once,
    run_ids,
    running,
    server_env,
)

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and fork")]

DURATION = "gen_ai.client.operation.duration"
CREW = """
from crewtrace import LLM, Agent, Crew, Task

def run_crew(topic):
    writer = Agent(role="Writer", goal="Explain.", backstory="Brief.", llm=LLM("openai/test-model", stream=True))
    task = Task(name="explain", description="Explain {topic}.", expected_output="Two lines.", agent=writer)
    return Crew(name="ending", agents=[writer], tasks=[task]).kickoff(inputs={"topic": topic}).run_id
"""


def script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "job.py"
    path.write_text(f"ENDLESS_TOPIC = {ENDLESS!r}\n{CREW}{textwrap.dedent(body)}", encoding="utf-8")
    return path


def test_sigterm_with_its_default_action_flushes_then_the_process_dies_of_it(
    tmp_path: Path, model: FakeOpenAIServer
) -> None:
    job = script(
        tmp_path,
        """
        from crewtrace.telemetry import setup_telemetry

        setup_telemetry("plain-job")
        for i in range(3):
            print(run_crew(f"quick {i}"), flush=True)
        run_crew(ENDLESS_TOPIC)
        """,
    )
    with (
        OTLPHttpReceiver() as receiver,
        running([sys.executable, str(job)], server_env(receiver, model.base_url), ROOT) as process,
    ):
        finished = process.wait_for(r"^[0-9a-f]{32}$", count=3, stream="stdout")
        wait_until(lambda: asked(model, ENDLESS) == 1, what="the endless run")
        code = process.terminate()
        assert code == -signal.SIGTERM, f"the process must still die of SIGTERM\n{process.output()}"
        received = run_ids(receiver)
        assert set(finished) <= set(received) and len(received) == len(set(received)) == 4
        cut = [s for s in receiver.spans() if s.name == "chat test-model" and s.attributes.get("error.type")]
        assert [s.attributes["error.type"] for s in cut] == ["bridge_closed"], "the cut-off call says why it ended"
        assert sum(histogram_count(receiver, DURATION).values()) >= 3


def test_forked_pool_workers_export_every_run_when_they_exit(tmp_path: Path, model: FakeOpenAIServer) -> None:
    """Telemetry set up in the parent, then (in the same process, once that one is shut down) in the initializer."""
    job = script(
        tmp_path,
        """
        import json, multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        from crewtrace.telemetry import setup_telemetry

        def set_up():
            setup_telemetry("pool-initializer")

        def pooled(**options):
            context = multiprocessing.get_context("fork")
            with ProcessPoolExecutor(2, mp_context=context, **options) as pool:
                return list(pool.map(run_crew, [f"pooled {i}" for i in range(5)]))

        if __name__ == "__main__":
            telemetry = setup_telemetry("pool-parent")
            in_parent = pooled()
            telemetry.shutdown()
            print(json.dumps({"pool-parent": in_parent, "pool-initializer": pooled(initializer=set_up)}), flush=True)
        """,
    )
    env = server_env(receiver := OTLPHttpReceiver().start(), model.base_url)
    try:
        with running([sys.executable, str(job)], env, ROOT) as process:
            assert process.popen.wait(120) == 0, process.output()
        ran = json.loads(process.stdout().splitlines()[-1])
        for service, ids in ran.items():
            spans = [s for s in receiver.spans() if s.resource["service.name"] == service]
            received = [s.attributes["crewtrace.run.id"] for s in spans if s.name.startswith("invoke_workflow ")]
            assert sorted(received) == sorted(ids) and len(set(ids)) == 5, f"{service}: every run, once"
        assert sum(histogram_count(receiver, DURATION).values()) == 10
    finally:
        receiver.stop()


SEND = """
from tasks import explain_topic
for i in range({runs}):
    explain_topic.delay(f"queued {{i}}")
"""
"""Queues ``runs`` of deployment.md's Celery task, as an application would."""


def celery_tasks(queue: Path, hook: bool) -> str:
    """deployment.md's Celery app on a broker in files (no server); without the hook if asked."""
    (source,) = [b for b in python_blocks() if b.startswith("# tasks.py")]
    if not hook:
        source = replace_once(source, "    telemetry.shutdown()  # the one line", "    pass")
    folders = {"data_folder_in": str(queue), "data_folder_out": str(queue)}
    return f"{source}\napp.conf.broker_transport_options = {folders!r}\n"


@pytest.mark.parametrize("hook", [True, False], ids=["with the documented hook", "without it"])
def test_celery_prefork_workers_export_every_run_with_the_documented_hook(
    tmp_path: Path, model: FakeOpenAIServer, hook: bool
) -> None:
    """billiard's workers leave through ``os._exit`` before any finalizer: the one line in the docs is needed."""
    queue = tmp_path / "queue"
    queue.mkdir()
    (tmp_path / "tasks.py").write_text(celery_tasks(queue, hook), encoding="utf-8")
    # No export before the workers stop: what arrives is what their ending flushed.
    env = server_env(
        receiver := OTLPHttpReceiver().start(),
        model.base_url,
        CELERY_BROKER_URL="filesystem://",
        OTEL_BSP_SCHEDULE_DELAY="600000",
        OTEL_METRIC_EXPORT_INTERVAL="600000",
    )
    args = [sys.executable, "-m", "celery", "-A", "tasks", "worker", "--pool=prefork", "--concurrency=2"]
    args += ["--loglevel=INFO", "--without-heartbeat", "--without-gossip", "--without-mingle"]
    try:
        with running(args, env, tmp_path) as worker:
            worker.wait_for(r"celery@\S+ ready")
            with running([sys.executable, "-c", SEND.format(runs=6)], env, tmp_path) as sender:
                assert sender.popen.wait(60) == 0, sender.output()
            done = worker.wait_for(r"succeeded in [0-9.]+s: ", count=6)
            code = worker.terminate()  # Celery's warm shutdown: the pool's workers end, then the worker
            assert code == 0 and len(done) == 6, worker.output()
        received = run_ids(receiver)
        if hook:
            assert len(received) == len(set(received)) == 6, "every run, once"
            assert sum(histogram_count(receiver, DURATION).values()) == 6
        else:
            assert received == [] and receiver.metric_requests == [], "nothing else flushes these workers"
    finally:
        receiver.stop()
