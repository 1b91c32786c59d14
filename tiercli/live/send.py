"""Live mode: the calls a replay decides are misses or bypasses are sent to the Anthropic
Messages API through the official SDK, under a hard spend cap.

Which calls are sent does not depend on what the API answers (outcomes follow from the log's
requests, times and settings alone), so sending them K at a time keeps the replay's cache
semantics exactly as in simulation; only the order in which answers arrive changes."""

from __future__ import annotations

import os
import random
from bisect import bisect_left
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, CancelledError, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from tiercli.errors import LogError, TiercliError
from tiercli.core.events import Call
from tiercli.economics.pricing import PICO, Pricer
from tiercli.live.journal import Journal
from tiercli.core.answers import AnswerJudge
from tiercli.core.shape import CallShape
from tiercli.engine.replay import BYPASS, MISS
from tiercli.ingest.logread import UTF8_BOM
from tiercli.ingest.records import _Bad, request_params  # the reader's own check and its problem
from tiercli.ingest.sources import expand, lines_of

DEFAULT_MAX_TOKENS = 1024
# The most output any Claude model allows (Opus 4.6; Sonnet 3.7 with its 128k-output beta): a
# log's max_tokens above it is an error, not a request the API would refuse after the plan.
MAX_TOKENS_BOUND = 128_000
MAX_429_WITHOUT_RETRY_AFTER = 3
# Tokens of the system prompt the API adds when a request has tools: documented as 313-530
# depending on the model and tool_choice; the tool definitions themselves are in the request.
TOOL_PROMPT_ALLOWANCE = 1000
# Blocks whose tokens all come from their own JSON text. Any other (image, document, file,
# search result...) can cost more tokens than it has bytes, so it is counted by the API.
TEXT_BLOCK_TYPES = frozenset({"text", "tool_use", "tool_result", "thinking"})
# count_tokens is free but, in Anthropic's words, an estimate: the bound takes twice it.
COUNT_TOKENS_MARGIN = 2


@dataclass
class LiveOptions:
    max_spend_usd: float | None  # None only when the user said --no-spend-cap
    limit: int | None = None
    concurrency: int = 1
    timeout_s: float = 60.0
    max_retries: int = 5
    retry_cap_s: float = 30.0  # no single wait, retry-after included, is longer


@dataclass
class LiveCall:
    """What one sent call did."""

    seq: int
    line: int = 0  # in the log
    ok: bool = False
    error: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0  # every cache write
    cache_write_1h_tokens: int = 0  # the 1-hour writes among them (billed at 2x input, not 1.25x)
    cost_pusd: int = 0
    latency_ms: float = float("nan")
    ttft_ms: float = float("nan")
    request_id: str | None = None
    response: str | None = None
    attempts: int = 0


@dataclass
class LiveRun:
    planned: int
    worst_case_pusd: int
    calls: dict[int, LiveCall] = field(default_factory=dict)  # by seq
    stopped: str | None = None  # why sending stopped early; None when every planned call was sent
    fatal: str | None = None  # an error that ended the run (billing, permission, rate limit...)
    spent_pusd: int = 0
    retries: int = 0
    interrupted: KeyboardInterrupt | None = None  # Ctrl-C, or SIGTERM/SIGHUP (tiercli.procs.Terminated)
    journal: Journal | None = None  # removed by the caller once the run is saved


class Fatal(Exception):
    """An API error that ends the whole run."""


class _Refused(Exception):
    """A 4xx that fails one request only."""


def api_key() -> str:
    key = os.environ.get("ANTHROPIC_API_KEY")
    if not key:
        raise TiercliError("live mode needs an API key: ANTHROPIC_API_KEY is not set",
                           hint="export ANTHROPIC_API_KEY=... (and ANTHROPIC_BASE_URL for a proxy); nothing was sent")
    return key


def load_requests(path: str, calls: list[Call], left_out: Counter | None = None) -> dict[int, dict]:
    """The recorded requests of these calls, read again from the log by line number through the
    reader replay uses (tiercli.ingest.sources: gzip and zstd, the line numbering, a leading BOM
    dropped as the native reader drops it). `left_out` counts the calls whose recorded
    parameters were not sent, by parameter (see sent_params)."""
    wanted = {c.line: c for c in calls}
    out: dict[int, dict] = {}
    if not wanted:
        return out
    takes = sdk_arguments()
    (source,) = expand([path])
    lines_wanted = sorted(wanted)
    for first_line, lines, block in lines_of(source):
        at = bisect_left(lines_wanted, first_line)
        if at == len(lines_wanted):
            break
        if lines_wanted[at] >= first_line + lines:
            continue  # no wanted line in this block
        if first_line == 1 and block.startswith(UTF8_BOM):
            block = block[len(UTF8_BOM):]
        for offset, raw in enumerate(block.split(b"\n")):
            call = wanted.get(first_line + offset)
            if call is not None:
                out[call.seq], unsent = request_of(_record_at(path, call.line, raw), call, path, takes)
                if left_out is not None:
                    left_out.update(unsent)
    missing = sorted(c.line for c in calls if c.seq not in out)
    if missing:
        raise LogError(path, missing[0], None, "this call's record is no longer there: the log changed "
                       "after it was read; nothing was sent", hint="run the replay again on a log that is not being written")
    return out


def _record_at(path: str, line: int, raw: bytes) -> dict:
    """The JSON object on a line the replay read as a call (the log may have changed since)."""
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError:
        record = None
    if not isinstance(record, dict):
        raise LogError(path, line, None, "this call's record is no longer a JSON object: the log changed "
                       "after it was read; nothing was sent", hint="run the replay again on a log that is not being written")
    return record


def _kind(value) -> str:
    """A field's value as an error may show it: numbers and booleans as written, anything else
    by its kind only (a record's text never appears in a message)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"{value:g}" if isinstance(value, float) else str(value)
    return {str: "text", list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def sdk_arguments() -> frozenset[str]:
    """The request fields the installed SDK sends (the arguments both messages.create and
    messages.stream take): the Messages API as this SDK knows it. anthropic 2.x has no
    temperature, top_p or top_k, and takes a structured answer's format as output_config."""
    import inspect

    from anthropic.resources.messages import Messages

    create, stream = (set(inspect.signature(f).parameters) for f in (Messages.create, Messages.stream))
    return frozenset(create & stream)


def _checked_max_tokens(value, field: str, call: Call, path: str) -> int:
    """A max_tokens of the log: a whole number from 1 to MAX_TOKENS_BOUND (7.0 is 7)."""
    whole = (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, float) and value.is_integer())
    if not whole or not 1 <= value <= MAX_TOKENS_BOUND:
        raise LogError(path, call.line, field, f"must be a whole number from 1 to {MAX_TOKENS_BOUND:,} "
                       f"(the most output a Claude model allows), got {_kind(value)}; nothing was sent",
                       hint="fix or remove it (without it, live mode sends max(1,024, 2 x the recorded output tokens))")
    return int(value)


def max_tokens_of(record: dict, params: dict, call: Call, path: str) -> int:
    """The max_tokens to send, checked: the record's params.max_tokens (the one a key holds),
    else its top-level max_tokens (both given: they must agree); neither: max(1024, 2 x the
    recorded output tokens), at most MAX_TOKENS_BOUND. `params`: the record's request_params."""
    top = record.get("max_tokens")
    top = None if top is None else _checked_max_tokens(top, "max_tokens", call, path)
    keyed = params.get("max_tokens")
    if keyed is None:
        return top if top is not None else min(max(DEFAULT_MAX_TOKENS, 2 * call.output_tokens), MAX_TOKENS_BOUND)
    keyed = _checked_max_tokens(keyed, "params.max_tokens", call, path)
    if top is not None and top != keyed:
        raise LogError(path, call.line, "params.max_tokens", f"is {keyed:,} but the top-level max_tokens is "
                       f"{top:,}: which one did the request send?; nothing was sent",
                       hint="keep one of them (params.max_tokens is the one the replay keys)")
    return keyed


def _params_of(record: dict, call: Call, path: str) -> dict:
    """The record's request parameters, checked as the replay's reader checks them."""
    try:
        return request_params(record.get("params"), record.get("tools"))
    except _Bad as bad:  # the reader accepted it: the log changed since
        raise LogError(path, call.line, bad.field, f"{bad.problem}; nothing was sent", bad.hint) from None


def _json_schema_format(value) -> bool:
    """Whether a recorded response_format (output_format) is the Messages API's structured
    answer format, {"type": "json_schema", "schema": {...}} (not OpenAI's json_schema object)."""
    return isinstance(value, dict) and set(value) == {"type", "schema"} and value["type"] == "json_schema" \
        and isinstance(value["schema"], dict)


def sent_params(params: dict, takes: frozenset[str]) -> tuple[dict, list[str]]:
    """The SDK arguments for a record's request parameters but max_tokens (a key holds them:
    live sends them too), and the names of those left out: a parameter the installed SDK
    does not take (`takes`, sdk_arguments); a tool_choice or thinking given as text (the API
    takes objects); a response_format other than {"type": "json_schema", "schema": {...}}, which
    is sent as output_config.format."""
    sent: dict = {}
    left_out: list[str] = []
    for name, value in params.items():
        if name == "max_tokens":
            continue
        if name == "response_format":
            if "output_config" in takes and _json_schema_format(value):
                sent["output_config"] = {"format": value}
            else:
                left_out.append(name)
        elif name in takes and (name not in ("tool_choice", "thinking") or isinstance(value, dict)):
            sent[name] = value
        else:
            left_out.append(name)
    return sent, left_out


def request_of(record: dict, call: Call, path: str, takes: frozenset[str]) -> tuple[dict, list[str]]:
    """SDK arguments for a recorded call (the record as the replay read it, so its messages or
    prompt and system are checked), and the names of the recorded request parameters left out
    (sent_params). max_tokens: see max_tokens_of. Tool definitions (`tools`, or params.tools)
    and the other recorded parameters are sent under the Messages API's names."""
    messages = record.get("messages") or [{"role": "user", "content": record["prompt"]}]
    params = _params_of(record, call, path)
    request = {"model": call.model, "messages": messages, "max_tokens": max_tokens_of(record, params, call, path)}
    if record.get("system") is not None:
        request["system"] = record["system"]
    sent, left_out = sent_params(params, takes)
    request.update(sent)
    return request, left_out


def left_out_note(left_out: Counter) -> str | None:
    """One line for the plan: the recorded parameters live does not send (by sent_params'
    reasons), and in how many calls."""
    if not left_out:
        return None
    import anthropic

    takes = sdk_arguments()
    reasons: dict[str, list[str]] = {}
    for name, count in sorted(left_out.items()):
        if name == "response_format" and "output_config" in takes:
            why = 'the API takes only {"type": "json_schema", "schema": {...}}, sent as output_config.format'
        elif name in takes:
            why = "given as text: the API takes an object"
        else:
            why = f"the installed anthropic {anthropic.__version__}'s messages.create has no such argument"
        reasons.setdefault(why, []).append(f"{name} in {count:,} call{'s' if count != 1 else ''}")
    return ("note: live does not send some recorded request parameters: "
            + "; ".join(f"{', '.join(names)} ({why})" for why, names in reasons.items())
            + ". Their live answers may differ for it")


def _text_only(content) -> bool:
    if content is None or isinstance(content, str):
        return True
    if not isinstance(content, list):
        return False
    return all(isinstance(b, dict) and b.get("type") in TEXT_BLOCK_TYPES
               and (b["type"] != "tool_result" or _text_only(b.get("content"))) for b in content)


def counted_by_size(request: dict) -> bool:
    """True when every block of the request is text-like, so its size bounds its tokens."""
    return _text_only(request.get("system")) and all(
        isinstance(m, dict) and _text_only(m.get("content")) for m in request["messages"])


def anthropic_tool(request: dict) -> tuple[int, str] | None:
    """(index, type) of the first tool that is not a plain custom tool: server tools (web search,
    web fetch, code execution) add what they fetch or run to the input, and Anthropic-defined
    client tools have definitions far larger than their JSON; neither cost has a bound."""
    for i, tool in enumerate(request.get("tools") or ()):
        kind = tool.get("type") if isinstance(tool, dict) else type(tool).__name__
        if kind not in (None, "custom"):
            return i, str(kind)
    return None


def size_bound(request: dict) -> int:
    """The request's size in bytes of UTF-8 JSON, as a bound on its input tokens: every token
    covers at least one byte of text, and the JSON of each message, block and field (quotes,
    keys, escapes, the model name, max_tokens) outweighs the few tokens of turn framing the API
    adds. Tools add the tool-use system prompt, which is not in the request."""
    return len(orjson.dumps(request)) + (TOOL_PROMPT_ALLOWANCE if request.get("tools") else 0)


def input_bound(request: dict, count_tokens: Callable[[dict], int]) -> int:
    """An upper bound on the input tokens a request is billed for, whatever the log recorded:
    its size, or, for a request with images, documents or other non-text blocks, twice what
    the API's count_tokens says (and never less than its size)."""
    if counted_by_size(request):
        return size_bound(request)
    return max(size_bound(request), COUNT_TOKENS_MARGIN * count_tokens(request))


def worst_case_pusd(call: Call, request: dict, pricer: Pricer, input_tokens_bound: int) -> int:
    """An upper bound on what sending this call can cost: every input token at the dearest input
    rate, and max_tokens of output. The dearest rate: a one-hour cache write as priced (the
    config's cache_write_1h_per_mtok, or genai-prices'), and never below 2x the input price, the
    API's one-hour rate, whatever the request marks (a log may not show every marker), nor
    below a 5-minute write as priced. Input tokens: the larger of the bound from the request
    itself and the log's record (which may understate: it is what the log says)."""
    recorded = call.input_tokens + call.cache_read_tokens + call.cache_write_tokens
    tokens = max(input_tokens_bound, recorded)
    now, model, output = time.time(), call.model, request["max_tokens"]
    twice_input = pricer.price(model, now, tokens, output) + pricer.price(model, now, tokens, 0)
    return max(twice_input, pricer.price(model, now, 0, output, 0, tokens),
               pricer.price(model, now, 0, output, 0, tokens, tokens))


def asks_one_hour(request: dict) -> bool:
    """Whether any block or tool of the request is marked cache_control {"ttl": "1h"}."""
    stack = [request.get("tools"), request.get("system"), request["messages"]]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            marker = value.get("cache_control")
            if isinstance(marker, dict) and marker.get("ttl") == "1h":
                return True
            stack.extend(v for v in value.values() if isinstance(v, (dict, list)))
        elif isinstance(value, list):
            stack.extend(v for v in value if isinstance(v, (dict, list)))
    return False


def cache_writes(usage, one_hour_asked: bool) -> tuple[int, int]:
    """(all cache-write tokens, the 1-hour ones among them) of an answer's usage. The API splits
    cache_creation_input_tokens by TTL in usage.cache_creation (ephemeral_5m_input_tokens,
    ephemeral_1h_input_tokens). Writes it does not split (a gateway that drops the breakdown, a
    stream whose last count grew) are priced as 1-hour writes when the request asked for a
    1-hour TTL anywhere: the dearer rate, so what is counted as spent is never below the bill."""
    total = getattr(usage, "cache_creation_input_tokens", 0) or 0
    split = getattr(usage, "cache_creation", None)
    five_minutes = (getattr(split, "ephemeral_5m_input_tokens", 0) or 0) if split is not None else 0
    one_hour = (getattr(split, "ephemeral_1h_input_tokens", 0) or 0) if split is not None else 0
    total = max(total, five_minutes + one_hour)
    if one_hour_asked:
        one_hour = total - five_minutes
    return total, one_hour


def _api_message(exc) -> str:
    """The API's own words ("Your credit balance is too low..."), not the SDK's wrapping."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict) and isinstance(body.get("error"), dict) and body["error"].get("message"):
        return str(body["error"]["message"])
    return str(getattr(exc, "message", exc))


def _retry_after(exc) -> float | None:
    try:
        value = exc.response.headers.get("retry-after")
        return None if value is None else max(0.0, float(value))
    except (AttributeError, ValueError):
        return None


class Sender:
    """One call through the SDK, with our own retry rules (the SDK's are off)."""

    def __init__(self, options: LiveOptions, pricer: Pricer):
        import anthropic

        self.anthropic = anthropic
        self.options, self.pricer = options, pricer
        self.key = api_key()
        self.client = anthropic.Anthropic(api_key=self.key, max_retries=0, timeout=options.timeout_s)
        self.retries = 0
        self.lock = threading.Lock()

    def scrub(self, text: str) -> str:
        return text.replace(self.key, "***")

    def send(self, call: Call, request: dict) -> LiveCall:
        result = LiveCall(call.seq, call.line)

        def attempt(number: int) -> None:
            result.attempts = number
            self._once(call, request, result)

        try:
            self._retrying(attempt)
            result.ok = True
        except _Refused as exc:
            result.error = str(exc)  # this request is bad; the others may be fine
        return result

    def count_tokens(self, request: dict) -> int:
        """Input tokens of a request by the API's own count (a free endpoint)."""
        args = {k: v for k, v in request.items() if k in ("model", "messages", "system", "tools")}
        return self._retrying(lambda number: self.client.messages.count_tokens(**args).input_tokens)

    def _retrying(self, attempt: Callable[[int], object]):
        """attempt(number) with our retry rules; Fatal ends the run, _Refused fails this request."""
        a = self.anthropic
        no_retry_after_429 = 0
        for number in range(self.options.max_retries + 1):
            try:
                return attempt(number + 1)
            except (a.AuthenticationError, a.PermissionDeniedError) as exc:
                raise Fatal(f"the API refused the key ({exc.status_code}): {self.scrub(_api_message(exc))}") from None
            except a.RateLimitError as exc:
                wait_s = _retry_after(exc)
                if wait_s is None:
                    no_retry_after_429 += 1
                    if no_retry_after_429 >= MAX_429_WITHOUT_RETRY_AFTER:
                        raise Fatal(f"rate limited {no_retry_after_429} times with no retry-after") from None
                self._pause(number, wait_s)
            except (a.InternalServerError, a.APIConnectionError) as exc:  # 500, 529 overloaded, timeouts
                if number == self.options.max_retries:
                    raise Fatal(f"the API kept failing after {number + 1} tries: {self.scrub(str(exc))}") from None
                self._pause(number, _retry_after(exc) if isinstance(exc, a.APIStatusError) else None)
            except a.APIStatusError as exc:
                text = self.scrub(_api_message(exc))
                if exc.status_code == 402 or "credit balance" in text or "billing" in text.lower():
                    raise Fatal(f"billing: {text}") from None
                raise _Refused(f"{exc.status_code}: {text}") from None
        raise Fatal(f"rate limited: still 429 after {self.options.max_retries + 1} tries")

    def _pause(self, attempt: int, retry_after: float | None) -> None:
        with self.lock:
            self.retries += 1
        if retry_after is None:  # exponential backoff with full jitter
            retry_after = random.uniform(0, 0.5 * 2 ** attempt)
        time.sleep(min(retry_after, self.options.retry_cap_s))

    def _once(self, call: Call, request: dict, result: LiveCall) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the SDK warns about deprecated model names
            started = time.perf_counter()
            if call.streaming:
                message = self._stream(request, result, started)
            else:
                message = self.client.messages.create(**request)
                result.request_id = getattr(message, "_request_id", None)
            result.latency_ms = (time.perf_counter() - started) * 1000
        usage = message.usage
        result.input_tokens = usage.input_tokens or 0
        result.output_tokens = usage.output_tokens or 0
        result.cache_read_tokens = getattr(usage, "cache_read_input_tokens", 0) or 0
        result.cache_write_tokens, result.cache_write_1h_tokens = cache_writes(usage, asks_one_hour(request))
        result.response = "".join(b.text for b in message.content if getattr(b, "type", None) == "text")
        result.cost_pusd = self.pricer.price(call.model, time.time(), result.input_tokens, result.output_tokens,
                                             result.cache_read_tokens, result.cache_write_tokens,
                                             result.cache_write_1h_tokens)

    def _stream(self, request: dict, result: LiveCall, started: float):
        with self.client.messages.stream(**request) as stream:
            for _ in stream.text_stream:
                if result.ttft_ms != result.ttft_ms:  # NaN: the first text
                    result.ttft_ms = (time.perf_counter() - started) * 1000
            result.request_id = getattr(stream, "request_id", None)
            return stream.get_final_message()


def _journal_entry(result: LiveCall) -> dict:
    return {"seq": result.seq, "line": result.line, "ok": result.ok, "error": result.error,
            "input_tokens": result.input_tokens, "output_tokens": result.output_tokens,
            "cache_read_tokens": result.cache_read_tokens, "cache_write_tokens": result.cache_write_tokens,
            "cache_write_1h_tokens": result.cache_write_1h_tokens, "cost_pusd": result.cost_pusd,
            "cost_usd": result.cost_pusd / PICO, "latency_ms": result.latency_ms,
            "ttft_ms": result.ttft_ms, "request_id": result.request_id, "attempts": result.attempts}


def send_all(calls: list[Call], requests: dict[int, dict], worst: dict[int, int], options: LiveOptions,
             sender: "Sender", journal: Journal, progress: Callable[[int], None] | None = None) -> LiveRun:
    """Sends in processing order, up to `concurrency` at once. Before each call the spend so far
    plus the worst cases of the calls in flight plus this call's worst case must stay within the
    cap, so the cap is never passed. Each answered call is in the journal, on disk, before the
    next one goes out. Ctrl-C or SIGTERM stops sending; calls on the wire finish and are kept."""
    run = LiveRun(planned=len(calls), worst_case_pusd=sum(worst.values()), journal=journal)
    cap = None if options.max_spend_usd is None else round(options.max_spend_usd * PICO)
    in_flight: dict[Future, Call] = {}

    def settle(done) -> None:
        # Safe to repeat if a signal cuts it short: a call leaves in_flight only once it is kept.
        for future in done:
            call = in_flight[future]
            if call.seq not in run.calls:
                try:
                    result = future.result()
                except Fatal as exc:
                    run.fatal = run.fatal or str(exc)
                    result = None
                except CancelledError:  # never started
                    result = None
                if result is not None:
                    run.calls[call.seq] = result
                    run.spent_pusd += result.cost_pusd
                    try:
                        journal.record(_journal_entry(result))
                    except OSError as exc:  # no durable record of what is billed: send no more
                        run.fatal = run.fatal or f"cannot write the live journal {journal.path}: {exc.strerror or exc}"
                    if progress:
                        progress(len(run.calls))
            del in_flight[future]

    def settle_all() -> None:
        while in_flight:
            settle(wait(in_flight, return_when=FIRST_COMPLETED).done)

    with ThreadPoolExecutor(max_workers=options.concurrency) as pool:
        try:
            for call in calls:
                while len(in_flight) >= options.concurrency:
                    settle(wait(in_flight, return_when=FIRST_COMPLETED).done)
                if run.fatal:
                    break
                if options.limit is not None and len(run.calls) + len(in_flight) >= options.limit:
                    run.stopped = f"--limit {options.limit} reached"
                    break
                reserved = sum(worst[c.seq] for c in in_flight.values())
                if cap is not None and run.spent_pusd + reserved + worst[call.seq] > cap:
                    settle_all()  # settle first: actual costs free what was reserved
                    if run.spent_pusd + worst[call.seq] > cap:
                        run.stopped = (f"--max-spend ${options.max_spend_usd:g} reached: ${run.spent_pusd / PICO:.4f} "
                                       f"spent, the next call could cost up to ${worst[call.seq] / PICO:.4f}")
                        break
                in_flight[pool.submit(sender.send, call, requests[call.seq])] = call
            settle_all()
        except KeyboardInterrupt as interrupt:  # Ctrl-C, or SIGTERM/SIGHUP as tiercli.procs.Terminated
            run.stopped = f"interrupted ({'Ctrl-C' if type(interrupt) is KeyboardInterrupt else interrupt})"
            run.interrupted = interrupt
            for future in in_flight:
                future.cancel()
            settle_all()  # calls already on the wire finish, so their cost is counted
    run.spent_pusd = sum(c.cost_pusd for c in run.calls.values())  # exact even if a signal cut an update
    if run.fatal and not run.stopped:
        run.stopped = run.fatal
    run.retries = sender.retries
    return run


def _stats(values) -> dict:
    import numpy as np

    values = np.asarray([v for v in values if v == v], dtype=np.float64)  # drop NaN
    if values.size == 0:
        return {"count": 0, "mean": None, "p50": None, "p95": None}
    p50, p95 = np.percentile(values, [50, 95])
    return {"count": int(values.size), "mean": float(values.mean()), "p50": float(p50), "p95": float(p95)}


def merge_live(table, run: LiveRun, options: LiveOptions, recorded: dict[int, tuple[str, bytes | None]],
               settings=None, left_out: Counter | None = None):
    """Live columns in the per-call table, and the summary's "live" section. `recorded`: each
    sent call's task and recorded answer digest, to count how many live answers differ from
    the log's under the task's answer rule (docs/answers.md "Answer rules"). Tasks judged by meaning
    (embedding:T) are not compared: their live answers are not embedded. `left_out`: the
    planned calls whose recorded parameters were not sent, by parameter (sent_params)."""
    import numpy as np

    seqs = table["seq"].to_numpy()
    got = [run.calls.get(int(s)) for s in seqs]
    table = table.assign(
        live_sent=np.array([g is not None for g in got]),
        live_ok=np.array([bool(g and g.ok) for g in got]),
        live_pusd=np.array([g.cost_pusd if g else 0 for g in got], dtype=np.int64),
        live_ms=np.array([g.latency_ms if g else np.nan for g in got]),
        live_ttft_ms=np.array([g.ttft_ms if g else np.nan for g in got]),
        live_input_tokens=np.array([g.input_tokens if g else 0 for g in got], dtype=np.int64),
        live_output_tokens=np.array([g.output_tokens if g else 0 for g in got], dtype=np.int64),
        live_request_id=[g.request_id if g else None for g in got],
        live_response=[g.response if g else None for g in got],
    )
    sent = table[table["live_sent"]]
    shape, judge = CallShape(settings), AnswerJudge(settings)
    differ = not_compared = 0
    for seq, g in run.calls.items():
        task, digest = recorded.get(seq, (None, None))
        if not g.ok or digest is None:
            continue
        if shape.rule(task).kind == "embedding":
            not_compared += 1
        elif judge.differ(task, digest, shape.digest(task, g.response or "")):
            differ += 1
    summary = {
        "planned": run.planned,
        "sent": int(len(run.calls)),
        "failed": int(sum(1 for g in run.calls.values() if not g.ok)),
        "complete": run.stopped is None and len(run.calls) == run.planned,
        "stopped": run.stopped,
        "fatal": run.fatal,
        "retries": run.retries,
        "concurrency": options.concurrency,
        "max_spend_usd": options.max_spend_usd,
        "worst_case_usd": run.worst_case_pusd / PICO,
        "recorded_usd": int(sent["baseline_pusd"].sum()) / PICO,
        "live_usd": run.spent_pusd / PICO,
        "latency_ms": {"recorded": _stats(sent["baseline_ms"]), "live": _stats(sent["live_ms"])},
        "ttft_ms": _stats(sent["live_ttft_ms"]),
        "responses_differ": differ,
        "responses_not_compared": not_compared,  # tasks whose answer rule is embedding:T
        "params_left_out": dict(sorted((left_out or {}).items())),
    }
    return table, summary



def _bounds(calls: list[Call], requests: dict[int, dict], sender: Sender, options: LiveOptions,
            path: str) -> tuple[dict[int, int], int]:
    """Each call's bound on input tokens (see input_bound), and how many calls have none. With a
    cap, a request whose cost has no bound is refused before anything is sent; without one
    (--no-spend-cap), nothing is counted and such calls are bounded by their size alone."""
    capped = options.max_spend_usd is not None
    tool_of = {c.seq: anthropic_tool(requests[c.seq]) for c in calls}
    by_size = {c.seq: counted_by_size(requests[c.seq]) for c in calls}
    unbounded = [c for c in calls if tool_of[c.seq] is not None]
    if capped and unbounded:
        call = unbounded[0]
        index, kind = tool_of[call.seq]
        raise LogError(path, call.line, f"tools[{index}].type",
                       f"{kind!r} is not a custom tool: what it fetches or runs is billed as input, "
                       "so no spend cap can bound it; nothing was sent",
                       hint="replay without that call, or pass --no-spend-cap if you mean it")
    sized = {c.seq: size_bound(requests[c.seq]) for c in calls if by_size[c.seq] or not capped}
    if not capped:
        return sized, sum(1 for c in calls if tool_of[c.seq] is not None or not by_size[c.seq])
    to_count = [c for c in calls if c.seq not in sized]
    if to_count:
        def count(call: Call) -> int:
            try:
                return input_bound(requests[call.seq], sender.count_tokens)
            except (Fatal, _Refused) as exc:
                raise LogError(path, call.line, None, f"its request holds non-text content, and the API "
                               f"could not count its tokens: {exc}; nothing was sent",
                               hint="the spend cap needs a bound on every call's cost "
                               "(or pass --no-spend-cap if you mean it)") from None

        with ThreadPoolExecutor(max_workers=options.concurrency) as pool:
            sized.update(zip((c.seq for c in to_count), pool.map(count, to_count)))
    return sized, 0


def live_phase(replay_run, options: LiveOptions, confirm: Callable[[str], bool],
               progress_factory=None) -> LiveRun:
    """Sends a finished replay's misses and bypasses; updates its table and summary in place.
    `confirm(plan)` is asked before anything is sent; a False answer sends nothing. The caller
    removes the returned run's journal once the run is saved."""
    pricer = Pricer(replay_run.settings.prices)
    calls = [c for c, o in zip(replay_run.outcome.calls, replay_run.outcome.outcome) if o in (MISS, BYPASS)]
    sender = Sender(options, pricer)  # no key, nothing sent
    left_out: Counter = Counter()
    requests = load_requests(replay_run.log.path, calls, left_out)
    bounds, unbounded = _bounds(calls, requests, sender, options, replay_run.log.path)
    worst = {c.seq: worst_case_pusd(c, requests[c.seq], pricer, bounds[c.seq]) for c in calls}
    bypassed = sum(1 for c in calls if c.bypass)
    cap = options.max_spend_usd
    plan = (f"live: {len(calls):,} calls to send ({len(calls) - bypassed:,} misses, {bypassed:,} bypassed), "
            f"worst case ${sum(worst.values()) / PICO:,.4f}"
            + (f" plus what {unbounded:,} calls with non-text content or Anthropic tools add" if unbounded else "")
            + (f", capped at ${cap:g}" if cap is not None else ", NO spend cap (--no-spend-cap)")
            + (f", at most {options.limit:,} calls" if options.limit is not None else "")
            + (f"\n{left_out_note(left_out)}" if left_out else ""))
    if not confirm(plan):
        raise TiercliError("live mode not confirmed: nothing was sent")
    log = replay_run.log
    journal = Journal.start(replay_run.id, {
        "log": {"path": str(Path(log.path).resolve()), "size": log.size, "sha256": log.sha256},
        "settings": replay_run.settings.resolved(), "max_spend_usd": cap, "limit": options.limit,
        "planned": len(calls), "worst_case_usd": sum(worst.values()) / PICO})
    update = progress_factory("sending", len(calls)) if progress_factory else None
    run = send_all(calls, requests, worst, options, sender, journal, update)
    recorded = {c.seq: (c.task, c.response_digest) for c in calls}
    replay_run.table, replay_run.summary["live"] = merge_live(replay_run.table, run, options, recorded,
                                                              replay_run.settings, left_out)
    return run
