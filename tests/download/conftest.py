"""A real HTTP server on 127.0.0.1 serving the repo's mirror, with injectable faults."""

from __future__ import annotations

import collections
import json
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MIRROR = REPO / "resources" / "mirror"


class FaultServer(ThreadingHTTPServer):
    """Serves ``root``; ``faults[path]`` is a list of actions consumed one per request.

    Actions: ``"404"``, ``"500"``, ``"429:<seconds>"``, ``"stall"`` (headers, then no body
    for ``stall_s``), ``"reset"`` (half the body, then a TCP reset), ``"short"`` (half the body
    with the full Content-Length, then close), ``"truncate"`` (a truncated gzip body with a
    matching Content-Length). ``"ok"`` or an exhausted list serves the file.
    ``routes[path]`` maps a path to a handler ``(handler, body) -> (status, bytes)`` (JSON APIs).
    """

    daemon_threads = True

    def __init__(self, root: Path) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.root = root
        self.faults: dict[str, list[str]] = {}
        self.routes: dict = {}
        self.requests: collections.Counter = collections.Counter()
        self.bodies: list[dict] = []
        self.stall_s = 1.0
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: FaultServer

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def _action(self) -> str:
        with self.server.lock:
            self.server.requests[self.path] += 1
            queue = self.server.faults.get(self.path)
            return queue.pop(0) if queue else "ok"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        self.server.bodies.append(body)
        action = self._action()
        if action != "ok":
            return self._status(int(action.split(":")[0]))
        status, payload = self.server.routes[self.path](self, body)
        self._send(status, payload)

    def do_GET(self) -> None:
        action = self._action()
        if self.path in self.server.routes and action == "ok":
            status, payload = self.server.routes[self.path](self, None)
            return self._send(status, payload)
        file = (self.server.root / self.path.lstrip("/")).resolve()
        if not file.is_relative_to(self.server.root.resolve()) or not file.is_file():
            return self._status(404)
        data = file.read_bytes()
        if action == "ok":
            return self._send(200, data)
        if action.startswith("429"):
            self.send_response(429)
            self.send_header("Retry-After", action.split(":")[1])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if action in ("404", "500", "503"):
            return self._status(int(action))
        if action == "stall":
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.flush()
            time.sleep(self.server.stall_s)
            return None
        if action == "truncate":
            return self._send(200, data[: len(data) // 2])
        half = data[: len(data) // 2]
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(half)
        self.wfile.flush()
        if action == "reset":
            # SO_LINGER 0: close() sends a TCP RST instead of a clean FIN.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()
        return None

    def _status(self, code: int) -> None:
        self._send(code, b"")

    def _send(self, code: int, payload: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def server():
    """The mirror over HTTP on an ephemeral loopback port; shut down after the test."""
    srv = FaultServer(MIRROR)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)
