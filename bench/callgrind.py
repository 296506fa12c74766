"""Instructions a process executes between two points, counted by valgrind's callgrind.

Instruction counts do not depend on what else the machine is doing, which wall and CPU
time on a shared, loaded machine do. The process runs under callgrind with instrumentation
off (start-up at a fraction of callgrind's full cost); :meth:`Callgrind.count` switches it on
around one call, dumps the counters and reads them back, per thread.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

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
