"""A CMS's webhook endpoint for tests: a real HTTP server on a free port of 127.0.0.1 that records
every request and checks each with the ``standardwebhooks`` library on demand."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook

from tests.servers import free_ports


class Receiver:
    """A CMS's webhook endpoint: records every request; ``answer`` says what it replies."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_ports(1)[0]
        self.calls: list[tuple[dict[str, str], bytes]] = []
        self.answer: Callable[[int], tuple[int, dict[str, str]]] = lambda n: (200, {})
        self.server: ThreadingHTTPServer | None = None
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/cms/webhooks?desk=thoi-su"

    def start(self, tls: ssl.SSLContext | None = None) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(min(int(self.headers.get("content-length", "0")), 1 << 20))
                with receiver.lock:
                    receiver.calls.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    status, headers = receiver.answer(len(receiver.calls))
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def verified(self, secret: str) -> list[dict[str, Any]]:
        """Every request, each checked with the standardwebhooks library (raises if one fails)."""
        with self.lock:
            calls = list(self.calls)
        return [Webhook(secret).verify(body, headers) for headers, body in calls]

    def ids(self) -> list[str]:
        with self.lock:
            return [headers["webhook-id"] for headers, _ in self.calls]
