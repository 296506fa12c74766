"""The local OpenAI-compatible server the benchmark streams from.

It is the test suite's ``FakeOpenAIServer`` with a responder that reads the
wanted chunk count from the prompt (``"chunks=1000"``), so one server serves
every stream length. Run it in a subprocess (the default: it then has its own
GIL and, on a 2-core machine, its own core) or in-process (its threads then
compete with the measured client for the GIL).

``python -m bench.server`` serves until its stdin closes and prints
``PORT <n>`` once it listens.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.openai_replies import Reply, last_user_text, numbered_chunks  # noqa: E402
from tests.support.openai_server import FakeOpenAIServer  # noqa: E402

_CHUNKS = re.compile(r"chunks=(\d+)")


def prompt_for(chunks: int) -> str:
    """The prompt that asks the bench server for ``chunks`` content chunks."""
    return f"Stream me chunks={chunks} please"


@functools.lru_cache(maxsize=16)
def _chunks(n: int) -> tuple[str, ...]:
    return tuple(numbered_chunks(n))


def responder(body: dict[str, Any]) -> Reply:
    match = _CHUNKS.search(last_user_text(body))
    n = int(match.group(1)) if match else 10
    return Reply(chunks=list(_chunks(n)))


class BenchServer:
    """A running bench server, in-process or in a subprocess; a context manager."""

    def __init__(self, mode: str = "subprocess") -> None:
        if mode not in ("subprocess", "inproc"):
            raise ValueError(f"server mode must be 'subprocess' or 'inproc', got {mode!r}")
        self.mode = mode
        self._fake: FakeOpenAIServer | None = None
        self._proc: subprocess.Popen[str] | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> BenchServer:
        if self.mode == "inproc":
            self._fake = FakeOpenAIServer(responder).start()
            self.port = self._fake.port
            return self
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench.server"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().strip()
        if not line.startswith("PORT "):
            self._proc.kill()
            raise RuntimeError(f"bench server did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fake is not None:
            self._fake.stop()
            self._fake = None
        if self._proc is not None:
            stop(self._proc, timeout=10)
            self._proc = None


def stop(process: subprocess.Popen[str], timeout: float) -> None:
    """End a bench process that reads commands from stdin: close it, wait ``timeout`` seconds, then kill."""
    assert process.stdin is not None
    process.stdin.close()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def main() -> None:
    with FakeOpenAIServer(responder) as fake:
        print(f"PORT {fake.port}", flush=True)
        sys.stdin.read()  # serve until the parent closes our stdin (or dies)


if __name__ == "__main__":
    main()
