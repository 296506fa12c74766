"""Real web servers (uvicorn, gunicorn) and plain scripts in subprocesses, exporting to the suite's receiver.

The application is docs/deployment.md's recipe, taken from the document as it stands, so
the tests run what a user copies. Helpers read what arrived at the OTLP receiver back as
runs: every workflow span, and each metric's latest cumulative total per process.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .openai_replies import Reply, last_user_text, numbered_chunks
from .openai_server import FakeOpenAIServer
from .otlp_decode import attributes
from .otlp_receiver import OTLPHttpReceiver
from .polling import wait_until

ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENT = ROOT / "docs" / "deployment.md"
STARTED = "Application startup complete"
"""What uvicorn logs once a worker ran its lifespan's startup."""
SLOW = "slow-topic"
"""A run whose topic holds this streams for about 2 s: it is still running when a test sends SIGTERM."""
ENDLESS = "endless-topic"
"""A run whose topic holds this streams for a minute: SIGTERM cuts it."""


def paced_reply(body: dict[str, Any]) -> Reply:
    """The fake model's answer, paced by the topic in the prompt: quick, :data:`SLOW` or :data:`ENDLESS`."""
    prompt = last_user_text(body)
    if SLOW in prompt:
        return Reply(chunks=numbered_chunks(20), delay=0.1)
    if ENDLESS in prompt:
        return Reply(chunks=numbered_chunks(600), delay=0.1)
    return Reply(chunks=["Tracing ", "follows ", "a request."])


def asked(model: FakeOpenAIServer, topic: str) -> int:
    """How many requests the model got for ``topic``."""
    return sum(topic in last_user_text(r.body) for r in model.requests)


def python_blocks(path: Path = DEPLOYMENT) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.DOTALL)


def yaml_blocks(path: Path = DEPLOYMENT) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.DOTALL)


def recipe() -> str:
    """The documented service (the block that starts with ``# app.py``)."""
    (block,) = [b for b in python_blocks() if b.startswith("# app.py")]
    return block


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"the recipe changed: {old!r} is not in it once"
    return text.replace(old, new)


def server_env(receiver: OTLPHttpReceiver, llm_base_url: str, **extra: str) -> dict[str, str]:
    """What a deployment sets: the collector's endpoint, and where the model is (the suite's fake server)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PYTHONPATH"))}
    env.update(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OPENAI_BASE_URL": llm_base_url,
            "OPENAI_API_KEY": "sk-serving-test",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


class Process:
    """A subprocess whose output goes to files (never a full pipe), readable at any time."""

    def __init__(self, args: Sequence[str], env: Mapping[str, str], cwd: Path) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="crewtrace-serving-"))
        self._out = self._dir / "stdout"
        self._err = self._dir / "stderr"
        with self._out.open("wb") as out, self._err.open("wb") as err:
            self.popen = subprocess.Popen(list(args), stdout=out, stderr=err, env=dict(env), cwd=cwd)
        self.pid = self.popen.pid

    def stdout(self) -> str:
        return self._out.read_text(errors="replace")

    def stderr(self) -> str:
        return self._err.read_text(errors="replace")

    def output(self) -> str:
        return f"--- stdout ---\n{self.stdout()[-6000:]}\n--- stderr ---\n{self.stderr()[-6000:]}"

    def wait_for(self, pattern: str, count: int = 1, timeout: float = 90.0, stream: str = "stderr") -> list[str]:
        """Wait until ``pattern`` (a regex) appears ``count`` times in the stream; fail with the output if it exits."""
        regex = re.compile(pattern, re.MULTILINE)

        def found() -> list[str] | None:
            text = self.stderr() if stream == "stderr" else self.stdout()
            matches = [m.group(0) for m in regex.finditer(text)]
            if len(matches) >= count:
                return matches
            assert self.popen.poll() is None, f"exited with {self.popen.returncode} first:\n{self.output()}"
            return None

        try:
            return wait_until(found, timeout, interval=0.1, what=f"{count} x {pattern!r}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.output()}") from None

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait for the exit code (negative: the signal that ended it)."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running {timeout} s after SIGTERM:\n{self.output()}") from None

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()


@contextlib.contextmanager
def running(args: Sequence[str], env: Mapping[str, str], cwd: Path) -> Iterator[Process]:
    """A :class:`Process` that is killed (with its children) if the block leaves it running."""
    process = Process(args, env, cwd)
    try:
        yield process
    finally:
        for child in children(process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        process.kill()


def children(pid: int) -> list[int]:
    """Live child processes of ``pid`` (Linux's /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                # pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ')'.
                fields = stat[stat.rindex(")") + 2 :].split()
                if int(fields[1]) == pid and fields[0] != "Z":
                    found.append(int(entry.name))
    return sorted(found)


def get(url: str, timeout: float = 60.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body: bytes = response.read()
    return body.decode()


def run_ids(receiver: OTLPHttpReceiver) -> list[str]:
    """The run id of every workflow span received (one per run, if nothing was exported twice)."""
    return [s.attributes["crewtrace.run.id"] for s in receiver.spans() if s.name.startswith("invoke_workflow ")]


def histogram_count(receiver: OTLPHttpReceiver, name: str) -> dict[str, int]:
    """Points recorded into histogram ``name``, per process (``service.instance.id``): each one's latest total."""
    latest: dict[str, tuple[int, int]] = {}
    for request in receiver.metric_requests:
        for resource_metrics in request.resource_metrics:
            instance = str(attributes(resource_metrics.resource.attributes)["service.instance.id"])
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    if metric.name == name and metric.WhichOneof("data") == "histogram":
                        points = metric.histogram.data_points
                        when = max((p.time_unix_nano for p in points), default=0)
                        if when >= latest.get(instance, (0, 0))[0]:
                            latest[instance] = (when, sum(p.count for p in points))
    return {instance: count for instance, (_, count) in latest.items()}


def serving(pids: Sequence[int], port: int) -> list[int]:
    """Which of ``pids`` hold an open connection a client made to ``port`` (Linux's /proc): who serves a request.

    Workers share the listening socket; only the one that accepted a connection holds it.
    """
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                established = fields[3] == "01"
                if established and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{fields[9]}]")
    holding = []
    for pid in pids:
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) in inodes for fd in Path(f"/proc/{pid}/fd").iterdir()):
                holding.append(pid)
    return holding
