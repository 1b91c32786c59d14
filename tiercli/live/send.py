"""Live mode: the calls a replay decides are misses or bypasses are sent to the Anthropic
Messages API through the official SDK, under a hard spend cap.

Which calls are sent does not depend on what the API answers (outcomes follow from the log's
requests, times and settings alone), so sending them K at a time keeps the replay's cache
semantics exactly as in simulation; only the order in which answers arrive changes."""

from __future__ import annotations

import os
import random
import threading
import time
import warnings
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, CancelledError, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import orjson

from tiercli.errors import TiercliError
from tiercli.ingest.events import Call
from tiercli.ingest.records import response_digest
from tiercli.economics.pricing import PICO, Pricer

DEFAULT_MAX_TOKENS = 1024
MAX_429_WITHOUT_RETRY_AFTER = 3


@dataclass
class LiveOptions:
    max_spend_usd: float | None = None
    limit: int | None = None
    concurrency: int = 1
    timeout_s: float = 60.0
    max_retries: int = 5
    retry_cap_s: float = 30.0  # no single wait, retry-after included, is longer


@dataclass
class LiveCall:
    """What one sent call did."""

    seq: int
    ok: bool = False
    error: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
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
    interrupted: bool = False


class Fatal(Exception):
    """An API error that ends the whole run."""


def api_key() -> str:
    key = os.environ.get("ANTHROPIC_API_KEY")
    if not key:
        raise TiercliError("live mode needs an API key: ANTHROPIC_API_KEY is not set",
                           hint="export ANTHROPIC_API_KEY=... (and ANTHROPIC_BASE_URL for a proxy); nothing was sent")
    return key


def load_requests(path: str, calls: list[Call]) -> dict[int, dict]:
    """The recorded requests of these calls, read again from the log by line number."""
    wanted = {c.line: c for c in calls}
    out = {}
    with open(path, "rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            call = wanted.get(line_no)
            if call is not None:
                out[call.seq] = request_of(orjson.loads(raw), call)
    return out


def request_of(record: dict, call: Call) -> dict:
    """SDK arguments for a recorded call. max_tokens: the log's, else max(1024, 2 x the recorded
    output tokens). Tool definitions are sent when the log has them (`tools`)."""
    messages = record.get("messages") or [{"role": "user", "content": record["prompt"]}]
    request = {"model": call.model, "messages": messages,
               "max_tokens": int(record.get("max_tokens") or max(DEFAULT_MAX_TOKENS, 2 * call.output_tokens))}
    if record.get("system") is not None:
        request["system"] = record["system"]
    if record.get("tools"):
        request["tools"] = record["tools"]
    return request


def worst_case_pusd(call: Call, request: dict, pricer: Pricer) -> int:
    """An upper bound on what sending this call can cost: every input token at the dearest input
    rate (a cache write) and max_tokens of output. Input tokens as recorded, or, when they were
    estimated, at 2 characters per token (twice the estimate)."""
    input_tokens = call.input_tokens + call.cache_read_tokens + call.cache_write_tokens
    if call.tokens_estimated:
        input_tokens *= 2
    now = time.time()
    return (pricer.price(call.model, now, 0, request["max_tokens"], 0, input_tokens)
            if input_tokens else pricer.price(call.model, now, 0, request["max_tokens"]))


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
        a = self.anthropic
        result = LiveCall(call.seq)
        no_retry_after_429 = 0
        for attempt in range(self.options.max_retries + 1):
            result.attempts = attempt + 1
            try:
                self._once(call, request, result)
                result.ok = True
                return result
            except (a.AuthenticationError, a.PermissionDeniedError) as exc:
                raise Fatal(f"the API refused the key ({exc.status_code}): {self.scrub(_api_message(exc))}") from None
            except a.RateLimitError as exc:
                wait_s = _retry_after(exc)
                if wait_s is None:
                    no_retry_after_429 += 1
                    if no_retry_after_429 >= MAX_429_WITHOUT_RETRY_AFTER:
                        raise Fatal(f"rate limited {no_retry_after_429} times with no retry-after") from None
                self._pause(attempt, wait_s)
            except (a.InternalServerError, a.APIConnectionError) as exc:  # 500, 529 overloaded, timeouts
                if attempt == self.options.max_retries:
                    raise Fatal(f"the API kept failing after {attempt + 1} tries: {self.scrub(str(exc))}") from None
                self._pause(attempt, _retry_after(exc) if isinstance(exc, a.APIStatusError) else None)
            except a.APIStatusError as exc:
                text = self.scrub(_api_message(exc))
                if exc.status_code == 402 or "credit balance" in text or "billing" in text.lower():
                    raise Fatal(f"billing: {text}") from None
                result.error = f"{exc.status_code}: {text}"  # this request is bad; the others may be fine
                return result
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
        result.cache_write_tokens = getattr(usage, "cache_creation_input_tokens", 0) or 0
        result.response = "".join(b.text for b in message.content if getattr(b, "type", None) == "text")
        result.cost_pusd = self.pricer.price(call.model, time.time(), result.input_tokens, result.output_tokens,
                                             result.cache_read_tokens, result.cache_write_tokens)

    def _stream(self, request: dict, result: LiveCall, started: float):
        with self.client.messages.stream(**request) as stream:
            for _ in stream.text_stream:
                if result.ttft_ms != result.ttft_ms:  # NaN: the first text
                    result.ttft_ms = (time.perf_counter() - started) * 1000
            result.request_id = getattr(stream, "request_id", None)
            return stream.get_final_message()


def send_all(calls: list[Call], requests: dict[int, dict], options: LiveOptions, pricer: Pricer,
             progress: Callable[[int], None] | None = None) -> LiveRun:
    """Sends in processing order, up to `concurrency` at once. Before each call the spend so far
    plus the worst cases of the calls in flight plus this call's worst case must stay within the
    cap, so the cap is never passed. Ctrl-C stops sending; what was sent is kept."""
    sender = Sender(options, pricer)
    worst = {c.seq: worst_case_pusd(c, requests[c.seq], pricer) for c in calls}
    run = LiveRun(planned=len(calls), worst_case_pusd=sum(worst.values()))
    cap = None if options.max_spend_usd is None else round(options.max_spend_usd * PICO)
    reserved = 0
    in_flight: dict[Future, Call] = {}

    def settle(done) -> None:
        nonlocal reserved
        for future in done:
            call = in_flight.pop(future)
            reserved -= worst[call.seq]
            try:
                result = future.result()
            except Fatal as exc:
                run.fatal = run.fatal or str(exc)
                continue
            except CancelledError:  # never started (Ctrl-C)
                continue
            run.calls[call.seq] = result
            run.spent_pusd += result.cost_pusd
            if progress:
                progress(len(run.calls))

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
                if cap is not None and run.spent_pusd + reserved + worst[call.seq] > cap:
                    while in_flight:  # settle first: actual costs free what was reserved
                        settle(wait(in_flight, return_when=FIRST_COMPLETED).done)
                    if run.spent_pusd + worst[call.seq] > cap:
                        run.stopped = (f"--max-spend ${options.max_spend_usd:g} reached: ${run.spent_pusd / PICO:.4f} "
                                       f"spent, the next call could cost up to ${worst[call.seq] / PICO:.4f}")
                        break
                reserved += worst[call.seq]
                in_flight[pool.submit(sender.send, call, requests[call.seq])] = call
            while in_flight:
                settle(wait(in_flight, return_when=FIRST_COMPLETED).done)
        except KeyboardInterrupt:
            run.stopped = "interrupted (Ctrl-C)"
            run.interrupted = True
            for future in in_flight:
                future.cancel()
            while in_flight:  # calls already on the wire finish, so their cost is counted
                settle(wait(in_flight, return_when=FIRST_COMPLETED).done)
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


def merge_live(table, run: LiveRun, options: LiveOptions, recorded: dict[int, bytes | None]):
    """Live columns in the per-call table, and the summary's "live" section. `recorded`: each
    sent call's recorded response, to count how many live answers differ from the log's."""
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
    differ = sum(1 for seq, g in run.calls.items()
                 if g.ok and recorded.get(seq) is not None and response_digest(g.response or "") != recorded[seq])
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
    }
    return table, summary



def live_phase(replay_run, options: LiveOptions, confirm: Callable[[str], bool],
               progress_factory=None) -> LiveRun:
    """Sends a finished replay's misses and bypasses; updates its table and summary in place.
    `confirm(plan)` is asked before anything is sent; a False answer sends nothing."""
    from tiercli.engine.replay import BYPASS, MISS

    pricer = Pricer(replay_run.settings.prices)
    calls = [c for c, o in zip(replay_run.outcome.calls, replay_run.outcome.outcome) if o in (MISS, BYPASS)]
    api_key()  # before anything else: no key, nothing sent
    requests = load_requests(replay_run.log.path, calls)
    worst = sum(worst_case_pusd(c, requests[c.seq], pricer) for c in calls)
    bypassed = sum(1 for c in calls if c.bypass)
    plan = (f"live: {len(calls):,} calls to send ({len(calls) - bypassed:,} misses, {bypassed:,} bypassed), "
            f"worst case ${worst / PICO:,.4f}"
            + (f", capped at ${options.max_spend_usd:g}" if options.max_spend_usd is not None else ", no spend cap")
            + (f", at most {options.limit:,} calls" if options.limit is not None else ""))
    if not confirm(plan):
        raise TiercliError("live mode not confirmed: nothing was sent")
    update = progress_factory("sending", len(calls)) if progress_factory else None
    run = send_all(calls, requests, options, pricer, update)
    recorded = {c.seq: c.response_digest for c in calls}
    replay_run.table, replay_run.summary["live"] = merge_live(replay_run.table, run, options, recorded)
    return run
