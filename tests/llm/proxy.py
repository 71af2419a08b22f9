"""A small HTTP proxy for tests, in front of a real OpenAI-compatible server or of the fake model
(tests/fake_backend.py) answering chat completions itself. It counts requests in flight and
answers, and on demand fails the first requests with 503, fails every request with a given status,
holds requests until the test releases them, or holds them until a number are in flight at once:
deterministic stand-ins for "slow" and "concurrent" that no timing can break."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from thresher.llm import GenerationParams

# The tokens whose log-probabilities the fake server reports at a reply's first position (what a
# server's `top_logprobs` would list): the score digits.
FAKE_TOP_TOKENS = tuple(str(i) for i in range(10))


def fake_completion(fake, body: dict) -> dict:
    """An OpenAI chat.completion for `body`, computed by the fake model; with `logprobs`, the first
    position's top tokens over FAKE_TOP_TOKENS (a trailing assistant message is a prefilled reply)."""
    messages = body["messages"]
    prefix = ""
    if messages[-1]["role"] == "assistant":
        messages, prefix = messages[:-1], messages[-1]["content"]
    params = GenerationParams(max_new_tokens=body.get("max_tokens") or 16, temperature=body.get("temperature") or 0.0,
                              stop=tuple(body.get("stop") or ()), seed=body.get("seed"))
    reply = fake.generate([messages], params)[0]
    choice: dict = {"index": 0, "message": {"role": "assistant", "content": reply.text},
                    "finish_reason": reply.finish_reason, "logprobs": None}
    if body.get("logprobs"):
        values = fake.next_token_logprobs([messages], FAKE_TOP_TOKENS, assistant_prefix=prefix)[0].logprobs
        top = sorted(values.items(), key=lambda kv: -kv[1])[: body.get("top_logprobs") or 1]
        entries = [{"token": t, "logprob": v, "bytes": None} for t, v in top]
        choice["logprobs"] = {"content": [{**entries[0], "top_logprobs": entries}]}
    return {"id": "fake-completion", "object": "chat.completion", "created": 0, "model": body.get("model"),
            "choices": [choice], "usage": {"prompt_tokens": reply.prompt_tokens,
                                           "completion_tokens": reply.completion_tokens,
                                           "total_tokens": reply.prompt_tokens + reply.completion_tokens}}


class Proxy:
    def __init__(self, upstream: str | None = None, *, fake=None, served_model: str | None = None):
        """Relay to `upstream`, or (upstream None) answer with `fake`, a FakeBackend, for requests
        naming `served_model` (others get 404, as a real server answers an unknown model)."""
        if (upstream is None) == (fake is None):
            raise ValueError("give an upstream URL or a fake model, not both")
        self.upstream = upstream.rstrip("/") if upstream else None
        self.fake, self.served_model = fake, served_model
        self.lock = threading.Lock()
        self.in_flight_changed = threading.Condition(self.lock)
        self.reset()
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
                    proxy.in_flight_changed.notify_all()
                    release, gate = proxy.release, proxy.gate
                    if gate:  # wait (bounded) until `gate` requests are in flight together
                        proxy.in_flight_changed.wait_for(lambda: proxy.max_in_flight >= gate, timeout=10)
                try:
                    if proxy.hold:
                        release.wait(timeout=60)  # until the test releases it (reset)
                    if proxy.always_status or number <= proxy.fail_first:
                        status = proxy.always_status or 503
                        self._send(status, b'{"error": "injected by the test proxy"}', {"retry-after": "0"})
                        return
                    if proxy.fake is not None:
                        status, payload = self._fake(body)
                        self._send(status, payload, {})
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
                        proxy.in_flight_changed.notify_all()

            def _fake(self, body) -> tuple[int, bytes]:
                if self.command != "POST" or not self.path.endswith("/chat/completions"):
                    return 200, json.dumps({"object": "list", "data": [{"id": proxy.served_model}]}).encode()
                request = json.loads(body)
                if request.get("model") != proxy.served_model:
                    return 404, json.dumps({"error": f"model {request.get('model')!r} is not served"}).encode()
                return 200, json.dumps(fake_completion(proxy.fake, request)).encode()

            def _send(self, status, payload, headers):
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(payload)
                with proxy.lock:
                    proxy.answered += 1

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
        """Counters to zero, no failures, no holding; requests still held are released."""
        with self.lock:
            previous = getattr(self, "release", None)
            self.requests = self.in_flight = self.max_in_flight = self.answered = 0
            self.fail_first, self.always_status = 0, None
            self.hold, self.gate = False, 0
            self.release = threading.Event()
        if previous is not None:
            previous.set()

    def __enter__(self) -> Proxy:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.reset()
        self.server.shutdown()
        self.server.server_close()
