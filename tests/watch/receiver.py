"""A real HTTP receiver on loopback for the sinks' tests: records every POST, answers
with the statuses a test scripts per path (200 once the script runs out), or hangs."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True, slots=True)
class Received:
    path: str
    headers: dict[str, str]
    body: Any
    at: float  # time.monotonic() when it arrived


class Receiver:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.scripts: dict[str, deque[int]] = {}
        self.hanging: set[str] = set()
        self.trickling: set[str] = set()
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.base = ""

    def url(self, path: str) -> str:
        return self.base + path

    def script(self, path: str, *statuses: int) -> None:
        self.scripts[path] = deque(statuses)

    def hang(self, path: str) -> None:
        self.hanging.add(path)

    def trickle(self, path: str) -> None:
        """Answer 200 but send the body a byte every 0.1 s: no single read ever waits
        long, so only a deadline on the whole attempt stops it."""
        self.trickling.add(path)

    def bodies(self, path: str) -> list[Any]:
        with self.lock:
            return [r.body for r in self.received if r.path == path]

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.path == path]

    def _answer(self, path: str) -> int:
        with self.lock:
            script = self.scripts.get(path)
            return script.popleft() if script else 200


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            with receiver.lock:
                receiver.received.append(
                    Received(self.path, dict(self.headers), json.loads(raw), time.monotonic())
                )
            if self.path in receiver.hanging:
                receiver.release.wait(30)
                return
            if self.path in receiver.trickling:
                self.send_response(200)
                self.send_header("Content-Length", "100")
                self.end_headers()
                for _ in range(100):
                    if receiver.release.wait(0.1):
                        return
                    self.wfile.write(b" ")
                    self.wfile.flush()
                return
            status = receiver._answer(self.path)
            body = b'{"status":"ok"}' if status < 300 else b'{"error":"scripted"}'
            self.send_response(status)
            if status == 429:
                self.send_header("Retry-After", "0")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up on a hanging request: expected here


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    server = _Server(("127.0.0.1", 0), _handler(receiver))
    host, port = server.server_address[:2]
    receiver.base = f"http://{host!s}:{port}"
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="test-receiver", daemon=True
    )
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)
