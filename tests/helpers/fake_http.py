"""A 127.0.0.1 HTTP server answering POSTs from a script, for the HTTP oracles' tests
(tests/duel/test_oracles.py, tests/actors/test_oracle.py): it records every request."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeServer:
    """127.0.0.1 HTTP server answering from a script; handles at most `max_requests` requests."""

    def __init__(self, respond, max_requests: int = 64):
        self.requests: list[dict] = []
        self.respond = respond
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                status, payload, delay = outer.respond(len(outer.requests) - 1, body)
                if delay:
                    time.sleep(delay)
                try:
                    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.timeout = 0.05
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._stop = False
        self._max = max_requests
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self):
        while not self._stop and len(self.requests) < self._max:
            self.httpd.handle_request()

    def close(self):
        self._stop = True
        self._thread.join(timeout=5)
        self.httpd.server_close()
