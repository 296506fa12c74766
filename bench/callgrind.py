"""Instructions a process executes between two points, counted by valgrind's callgrind.

Instruction counts do not depend on what else the machine is doing, which wall and CPU
time on a shared, loaded machine do. The process runs under callgrind with instrumentation
off (start-up at a fraction of callgrind's full cost); :meth:`Callgrind.count` switches it on
around one call, dumps the counters and reads them back, per thread. A :class:`Child` is such
a process: a bench module run with its own arguments, asked one JSON line at a time.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.server import ROOT, stop

_TOTALS = re.compile(r"^(?:totals|summary): (\d+)", re.MULTILINE)


class Callgrind:
    """Where the counts go; ``prefix`` is the command line to put in front of the measured program."""

    def __init__(self) -> None:
        if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
            raise RuntimeError("valgrind (with callgrind_control) is not installed")
        self.directory = Path(tempfile.mkdtemp(prefix="crewtrace-callgrind-"))
        self.prefix = [
            "valgrind", "--tool=callgrind", "--instr-atstart=no", "--separate-threads=yes",
            f"--callgrind-out-file={self.directory}/cg.%p", "--quiet",
        ]  # fmt: skip

    def count(self, pid: int, action: Callable[[], object]) -> dict[int, int]:
        """Run ``action`` with ``pid``'s instrumentation on; instructions per thread (1: the main thread)."""
        before = set(self.directory.glob(f"cg.{pid}.*"))
        self._control("--instr=on", pid)
        action()
        self._control("--instr=off", pid)
        self._control("--dump", pid)
        counts: dict[int, int] = {}
        for dump in sorted(set(self.directory.glob(f"cg.{pid}.*")) - before):
            thread = int(dump.name.rsplit("-", 1)[1])
            found = _TOTALS.findall(dump.read_text(errors="replace"))
            counts[thread] = counts.get(thread, 0) + (int(found[-1]) if found else 0)
        return counts

    def _control(self, command: str, pid: int) -> None:
        subprocess.run(["callgrind_control", command, str(pid)], check=True, capture_output=True, cwd=self.directory)

    def cleanup(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


class Child:
    """``python -m module *args`` (behind ``prefix``, e.g. :attr:`Callgrind.prefix`), answering each line with JSON."""

    def __init__(self, module: str, args: list[str], prefix: list[str] | None = None) -> None:
        path = os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))
        env = {**os.environ, "PYTHONPATH": path, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        env = {k: v for k, v in env.items() if not k.startswith("OTEL_")}
        self.process = subprocess.Popen(
            [*(prefix or []), sys.executable, "-m", module, *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def tell(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def ask(self, line: str | None = None) -> dict[str, Any]:
        assert self.process.stdout is not None
        if line is not None:
            self.tell(line)
        answer = self.process.stdout.readline()
        if not answer:
            raise RuntimeError(f"bench process {self.process.args} ended (exit {self.process.wait()})")
        parsed: dict[str, Any] = json.loads(answer)
        return parsed

    def close(self) -> None:
        stop(self.process, timeout=30)
