"""A collector that hangs: it accepts TCP connections and never reads or answers anything.

What a stuck OTLP collector (or LLM endpoint) looks like to a client: the connection is made, then
every request waits for its timeout.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from types import TracebackType


class Blackhole:
    """Listening on 127.0.0.1 from construction; :meth:`close` resets every connection it accepted."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self._sock.settimeout(0.05)
        self._accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="test-blackhole", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        port: int = self._sock.getsockname()[1]
        return port

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def connections(self) -> int:
        """Connections accepted so far."""
        return len(self._accepted)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            self._accepted.append(conn)

    def close(self) -> None:
        """Reset every accepted connection, so clients stuck on it fail now rather than at their timeout."""
        self._stop.set()
        self._thread.join(5)
        for conn in self._accepted:
            with contextlib.suppress(OSError):
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
        self._sock.close()

    def __enter__(self) -> Blackhole:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
