"""``crewtrace watch`` as a user runs it, in a subprocess, on ports the kernel picks; its output read as it grows."""

from __future__ import annotations

import re
import signal
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from tests.cli.running import crewtrace_command, user_env
from tests.support.polling import wait_until

_LISTENING = re.compile(r"receiving OTLP on 127\.0\.0\.1:(\d+) \(gRPC\) and http://127\.0\.0\.1:(\d+) \(HTTP\)")


class WatchProcess:
    """``crewtrace watch --grpc-port 0 --http-port 0 [args]``; ``grpc_endpoint`` / ``http_endpoint`` once started."""

    def __init__(self, *args: str) -> None:
        self._args = args
        self._dir = tempfile.TemporaryDirectory(prefix="crewtrace-watch-")
        self._stdout = Path(self._dir.name) / "stdout"
        self._stderr = Path(self._dir.name) / "stderr"
        self.process: subprocess.Popen[bytes] | None = None
        self.grpc_port = 0
        self.http_port = 0

    def __enter__(self) -> WatchProcess:
        with self._stdout.open("wb") as out, self._stderr.open("wb") as err:
            self.process = subprocess.Popen(
                crewtrace_command("watch", "--grpc-port", "0", "--http-port", "0", *self._args),
                env=user_env(),
                stdout=out,
                stderr=err,
            )
        match = wait_until(lambda: _LISTENING.search(self.stderr()) or self._exited(), timeout=60, what="watch's ports")
        assert isinstance(match, re.Match), f"crewtrace watch did not start:\n{self.stderr()}"
        self.grpc_port, self.http_port = int(match[1]), int(match[2])
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._dir.cleanup()

    @property
    def grpc_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def stdout(self) -> str:
        return self._stdout.read_text(encoding="utf-8")

    def stderr(self) -> str:
        return self._stderr.read_text(encoding="utf-8")

    def wait_for_output(self, pattern: str, count: int = 1, timeout: float = 60) -> str:
        """Wait until ``pattern`` (a regular expression) matched stdout ``count`` times; returns stdout."""
        wait_until(
            lambda: len(re.findall(pattern, self.stdout(), re.MULTILINE)) >= count or self._exited(),
            timeout=timeout,
            what=f"{count} x {pattern!r} from crewtrace watch",
        )
        assert not self._exited(), f"crewtrace watch exited:\n{self.stderr()}"
        return self.stdout()

    def interrupt(self) -> int:
        """Ctrl-C; returns the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(30)

    def _exited(self) -> bool:
        return self.process is not None and self.process.poll() is not None
