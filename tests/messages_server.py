"""A local HTTP server that speaks enough of the Anthropic Messages API for tests: JSON
responses with usage, SSE streams, and scripted faults (429 with or without retry-after, 529
overloaded, 500, slow replies, billing and permission errors). The SDK talks to it over real
HTTP; nothing is monkeypatched."""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


TOOL_PROMPT_TOKENS = 346  # the tool-use system prompt, as documented for recent models
MEDIA_TOKENS = 1600  # an image or a document block, however few bytes it takes in the request


def _content_tokens(content) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        return len(content.encode())
    total = 0
    for block in content:
        kind = block.get("type")
        if kind == "text":
            total += len(block["text"].encode())
        elif kind == "thinking":
            total += len(block.get("thinking", "").encode())
        elif kind == "tool_use":
            total += len(block.get("name", "").encode()) + len(json.dumps(block.get("input"), ensure_ascii=False).encode())
        elif kind == "tool_result":
            total += _content_tokens(block.get("content"))
        else:
            total += MEDIA_TOKENS
    return total


def true_input_tokens(body: dict) -> int:
    """What a request's input truly costs, as adversarially as a real tokenizer may: one token
    per UTF-8 byte of text, 4 per message and 3 per request of framing, the tool-use system
    prompt when there are tools, MEDIA_TOKENS per image or document, whatever the log says."""
    tokens = 3 + _content_tokens(body.get("system"))
    tokens += sum(4 + _content_tokens(m.get("content")) for m in body.get("messages", []))
    if body.get("tools"):
        tokens += TOOL_PROMPT_TOKENS + len(json.dumps(body["tools"], ensure_ascii=False).encode())
    return tokens


def _ttl_of(part) -> str | None:
    marker = part.get("cache_control") if isinstance(part, dict) else None
    return marker.get("ttl", "5m") if isinstance(marker, dict) else None


def cache_split(body: dict) -> tuple[int, int, int]:
    """(uncached input, 5-minute writes, 1-hour writes) of a request on a cold cache, as the API
    bills breakpoints: the parts in the cache's order (tools, system blocks, then each message's
    blocks), the prefix up to the last block marked with a 1-hour TTL written for an hour, from
    there to the last marked block for 5 minutes, the rest uncached. Nothing is ever read (the
    dearest case); the three add up to true_input_tokens."""
    parts = []  # (tokens, ttl or None), in order
    if body.get("tools"):
        ttls = [_ttl_of(tool) for tool in body["tools"] if _ttl_of(tool)]
        parts.append((TOOL_PROMPT_TOKENS + len(json.dumps(body["tools"], ensure_ascii=False).encode()),
                      "1h" if "1h" in ttls else ttls[-1] if ttls else None))
    system = body.get("system")
    if isinstance(system, list):
        parts += [(_content_tokens([block]), _ttl_of(block)) for block in system]
    else:
        parts.append((_content_tokens(system), None))
    for message in body.get("messages", []):
        content = message.get("content")
        parts.append((4, None))
        if isinstance(content, list):
            parts += [(_content_tokens([block]), _ttl_of(block)) for block in content]
        else:
            parts.append((_content_tokens(content), None))
    cumulative, one_hour_end, written_end = 3, 0, 0
    for tokens, ttl in parts:
        cumulative += tokens
        if ttl == "1h":
            one_hour_end = cumulative
        if ttl is not None:
            written_end = cumulative
    return cumulative - written_end, max(written_end - one_hour_end, 0), one_hour_end


def _text_of(body: dict) -> str:
    last = body["messages"][-1]["content"]
    return last if isinstance(last, str) else "\n".join(b.get("text", "") for b in last if b.get("type") == "text")


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a killed client: expected in tests
            super().handle_error(request, client_address)


class MessagesServer:
    """`faults` is a queue of what the next requests get, e.g. ("429", {"retry-after": "0.05"}),
    ("529", {}), ("500", {}), ("slow", {"seconds": 2}), ("billing", {}), ("permission", {}); when
    empty, requests succeed. Replies say "live answer to: <last user text>" and report the
    request's true_input_tokens (input) and the reply's words (output). /v1/messages/count_tokens
    answers true_input_tokens too; it takes no fault and is not an attempt (it is never billed).
    Blocks marked cache_control are billed as cache writes (cache_split), split by TTL in
    usage.cache_creation as the API reports it, unless `split_writes` is False (a gateway that
    drops the breakdown)."""

    def __init__(self, split_writes: bool = True):
        self.split_writes = split_writes
        self.faults: deque = deque()
        self.requests: list[dict] = []  # bodies of requests that were answered (not faulted)
        self.counted: list[dict] = []  # bodies sent to count_tokens
        self.attempts = 0
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        # (text, usage): every request's answer while set, in place of "live answer to: ..." (the
        # cache parity test sets each recorded call's own answer before sending it)
        self.reply: tuple[str, dict] | None = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK wait per reply

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path.rstrip("/").endswith("/count_tokens"):
                    with server.lock:
                        server.counted.append(body)
                    return self.json(200, {"input_tokens": true_input_tokens(body)})
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
                words = f"live answer to: {_text_of(body)}".split()
                text = " ".join(words[:body.get("max_tokens", len(words))])  # the API stops at max_tokens
                uncached, five_minutes, one_hour = cache_split(body)
                usage = {"input_tokens": uncached, "output_tokens": len(text.split()),
                         "cache_read_input_tokens": 0, "cache_creation_input_tokens": five_minutes + one_hour}
                if server.split_writes:
                    usage["cache_creation"] = {"ephemeral_5m_input_tokens": five_minutes,
                                               "ephemeral_1h_input_tokens": one_hour}
                if server.reply is not None:
                    text, usage = server.reply[0], dict(server.reply[1])
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

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        # a short poll: shutdown() waits up to one interval, at every test's teardown
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> "MessagesServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
