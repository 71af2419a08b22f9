"""A small HTTP proxy in front of a real OpenAI-compatible server, for tests: it counts requests
in flight, and on demand fails the first requests with 503, fails every request with a given
status, or delays before answering."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx


class Proxy:
    def __init__(self, upstream: str):
        self.upstream = upstream.rstrip("/")
        self.lock = threading.Lock()
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.fail_first = 0
        self.always_status: int | None = None
        self.delay = 0.0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                self._relay(None)

            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                self._relay(self.rfile.read(length))

            def _relay(self, body):
                with proxy.lock:
                    proxy.requests += 1
                    number = proxy.requests
                    proxy.in_flight += 1
                    proxy.max_in_flight = max(proxy.max_in_flight, proxy.in_flight)
                try:
                    if proxy.delay:
                        time.sleep(proxy.delay)
                    if proxy.always_status or number <= proxy.fail_first:
                        status = proxy.always_status or 503
                        self._send(status, b'{"error": "injected by the test proxy"}', {"retry-after": "0"})
                        return
                    with httpx.Client(timeout=600) as client:
                        reply = client.request(self.command, proxy.upstream + self.path, content=body,
                                               headers={"content-type": "application/json"})
                    self._send(reply.status_code, reply.content, {})
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    pass
                except httpx.HTTPError:  # the upstream went away (end of the session)
                    try:
                        self._send(502, b'{"error": "upstream unreachable"}', {})
                    except OSError:
                        pass
                finally:
                    with proxy.lock:
                        proxy.in_flight -= 1

            def _send(self, status, payload, headers):
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(payload)

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):  # a client that hung up: not news
                pass

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def reset(self) -> None:
        with self.lock:
            self.requests = self.in_flight = self.max_in_flight = 0
        self.fail_first, self.always_status, self.delay = 0, None, 0.0

    def __enter__(self) -> Proxy:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
