"""A local HTTP server that speaks enough of the Anthropic Messages API for tests: JSON
responses with usage, SSE streams, and scripted faults (429 with or without retry-after, 529
overloaded, 500, slow replies, billing and permission errors). The SDK talks to it over real
HTTP; nothing is monkeypatched."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _text_of(body: dict) -> str:
    last = body["messages"][-1]["content"]
    return last if isinstance(last, str) else "\n".join(b.get("text", "") for b in last if b.get("type") == "text")


class MessagesServer:
    """`faults` is a queue of what the next requests get, e.g. ("429", {"retry-after": "0.05"}),
    ("529", {}), ("500", {}), ("slow", {"seconds": 2}), ("billing", {}), ("permission", {}); when
    empty, requests succeed. Replies say "live answer to: <last user text>" and count tokens
    as len(text) // 4 (input) and the reply's words (output)."""

    def __init__(self):
        self.faults: deque = deque()
        self.requests: list[dict] = []  # bodies of requests that were answered (not faulted)
        self.attempts = 0
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with server.lock:
                    server.attempts += 1
                    fault = server.faults.popleft() if server.faults else None
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    self.answer(body, fault)
                finally:
                    with server.lock:
                        server.in_flight -= 1

            def answer(self, body, fault):
                if self.path.rstrip("/").endswith("/count_tokens"):
                    return self.json(200, {"input_tokens": len(json.dumps(body)) // 4})
                kind, options = fault if fault else ("ok", {})
                if kind == "429":
                    return self.error(429, "rate_limit_error", "rate limited", options)
                if kind == "529":
                    return self.error(529, "overloaded_error", "Overloaded", options)
                if kind == "500":
                    return self.error(500, "api_error", "internal error", options)
                if kind == "billing":
                    return self.error(400, "invalid_request_error",
                                      "Your credit balance is too low to access the Anthropic API.", options)
                if kind == "permission":
                    return self.error(403, "permission_error", "Your API key does not have permission", options)
                if kind == "slow":
                    time.sleep(options.get("seconds", 1))
                with server.lock:
                    server.requests.append(body)
                text = f"live answer to: {_text_of(body)}"
                usage = {"input_tokens": max(1, len(json.dumps(body.get("messages"))) // 4), "output_tokens": len(text.split()),
                         "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}
                message = {"id": f"msg_{uuid.uuid4().hex[:12]}", "type": "message", "role": "assistant",
                           "model": body.get("model"), "content": [{"type": "text", "text": text}],
                           "stop_reason": "end_turn", "stop_sequence": None, "usage": usage}
                if body.get("stream"):
                    return self.sse(message, text)
                self.json(200, message)

            def headers_out(self, status, content_type, extra=None):
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("request-id", f"req_{uuid.uuid4().hex[:16]}")
                for key, value in (extra or {}).items():
                    self.send_header(key, value)

            def json(self, status, payload, extra=None):
                data = json.dumps(payload).encode()
                self.headers_out(status, "application/json", extra)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def error(self, status, kind, message, options):
                extra = {k: v for k, v in options.items() if k == "retry-after"}
                self.json(status, {"type": "error", "error": {"type": kind, "message": message}}, extra)

            def sse(self, message, text):
                self.headers_out(200, "text/event-stream")
                self.send_header("cache-control", "no-cache")
                self.send_header("connection", "close")
                self.end_headers()
                start = dict(message, content=[], stop_reason=None,
                             usage=dict(message["usage"], output_tokens=1))
                events = [("message_start", {"type": "message_start", "message": start}),
                          ("content_block_start", {"type": "content_block_start", "index": 0,
                                                   "content_block": {"type": "text", "text": ""}})]
                words = text.split(" ")
                for i, word in enumerate(words):
                    piece = word if i == 0 else " " + word
                    events.append(("content_block_delta", {"type": "content_block_delta", "index": 0,
                                                           "delta": {"type": "text_delta", "text": piece}}))
                events += [("content_block_stop", {"type": "content_block_stop", "index": 0}),
                           ("message_delta", {"type": "message_delta",
                                              "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                              "usage": {"output_tokens": message["usage"]["output_tokens"]}}),
                           ("message_stop", {"type": "message_stop"})]
                for name, payload in events:
                    self.wfile.write(f"event: {name}\ndata: {json.dumps(payload)}\n\n".encode())
                    self.wfile.flush()
                self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "MessagesServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
