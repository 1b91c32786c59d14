"""TieredCache: the configuration `tiercli replay` simulates, run in the application (issue 24).

    from tiercli.cache import TieredCache, outcome_of

    cache = TieredCache("tiercli.toml", redis_url="redis://cache:6379/0", log="cache.jsonl")
    client = cache.wrap(anthropic.Anthropic())          # or AsyncAnthropic()
    with cache.context(lead_id="L1", task_type="intent"):
        message = client.messages.create(model=..., max_tokens=..., messages=[...])
    outcome_of(message)   # {"outcome": "l1" | "l2" | "l3" | "miss" | "bypass", "source_ts", ...}

Every call is decided as `tiercli replay` decides it (docs/replay-semantics.md "Replay semantics"), by the same
code: the request becomes the log record tiercli.record writes, the record becomes a Call
through the log reader's own call_of_record (so the cache's keys, scopes and L3 texts are the
log's), and tiercli.core.lookup's look_up / store / is_stale / mismatch decide hits, copies
into the tiers above, stores, staleness and (in shadow mode) wrong answers. Time is `clock()`
(seconds): expiry is the storing call's time plus the TTL, and a hit never extends it.

What a running cache does apart from the replay, and why:
- Adaptive TTL counts the calls this process sees (a lead's velocity per process).
- Single-flight: while a miss of a key is at the API, identical calls (same key) in this
  process wait for its answer instead of calling the API again, threads and asyncio tasks
  alike. They report outcome "miss" with `coalesced: True` (stats "coalesced"; the log's
  `cache_coalesced`), and their source is the call that was in flight. The sequential replay,
  where the first call's answer is stored before the next call starts, serves them from L1:
  `tiercli verify` names such calls as coalesced. Shadow mode never coalesces (every call
  goes to the API).
- `worker`: a call's L1 is its metadata's `worker` when it gives one, else the cache's
  `worker` (one process is one worker; a round-robin `workers = N` is refused).
- Never breaking the application: no exception of the cache's own reaches the caller. A call
  the cache cannot handle (metadata missing, a request it cannot key, a failing tier, log or
  metrics) goes to the API unchanged and is counted in stats "cache_errors"; the API's own
  exceptions propagate unchanged. A Redis failure makes that tier a miss for the call (the
  tiers retry the connection in the background) and is counted in "redis_failures". An
  embedding model that cannot load turns L3 off with one warning (stats "l3_off").
- Shadow mode (`mode = "shadow"`): every call goes to the API and returns its answer; the
  cache looks up as if live (a would-be hit fills the tiers above it, a would-be miss stores
  the fresh answer), and outcome_of gives the would-be outcome with `mismatched`: whether
  the would-be answer differs from the fresh one under the task's answer rule (0 the same,
  1 differs, 2 unreadable under the rule).

Look-ups and stores of one process take one lock (the tiers are not thread-safe), so L2 round
trips and L3 embeddings of concurrent calls run one after another; the API calls do not. The
async client does the cache's work in the event loop: microseconds for L1, a Redis round trip
for L2, an embedding (milliseconds) for L3.
"""

from __future__ import annotations

import concurrent.futures
import copy
import logging
import math
import threading
import time
import uuid
import warnings
import weakref
from contextvars import ContextVar
from pathlib import Path

import pydantic
from anthropic.types import Message

from tiercli.cache.client import wrap as wrap_client
from tiercli.cache.keying import plain_request
from tiercli.cache.metrics import Metrics
from tiercli.cache.tiers import build_tiers, redis_client
from tiercli.core.answers import AnswerJudge
from tiercli.core.events import Call
from tiercli.core.lookup import Found, is_stale, look_up, mismatch, store
from tiercli.core.shape import CallShape
from tiercli.core.tiers import Origin
from tiercli.core.ttl import TtlPolicy
from tiercli.errors import shown
from tiercli.ingest.records import call_of_record
from tiercli.record import (CallLabels, JsonLines, message_text, request_fields, request_params, token_fields,
                            usage_counts, uses_tools)
from tiercli.redis.conn import _shown_detail, mask_url, url_problem
from tiercli.settings import CACHE_MODES, Settings, build_settings
from tiercli.store.embeddings import EmbeddingStore, embed_texts
from tiercli.store.onnx_embed import local_embedder
from tiercli.store.home import tiercli_home

log = logging.getLogger("tiercli.cache")

OUTCOMES = ("l1", "l2", "l3", "miss", "bypass")
# Origin.answer is the API Message's JSON with this one member more: the API latency of the call
# that filled the entry, which a hit's log line reports (what the API would have taken). The
# Message model keeps unknown members as extras; a hit drops it before returning the message.
LATENCY_MEMBER = "tiercli_latency_ms"
ANSWERS_PARSED = 1024  # answers kept parsed (a hit copies one: _Answers)


# --- outcome_of: what the cache did for a message it returned ------------------------------------

# id(returned object) -> (a weak reference to it, its outcome); dropped when the object is
_outcomes: dict[int, tuple[weakref.ref, dict]] = {}


def outcome_of(message) -> dict | None:
    """What the cache did for an object its wrapped client returned (a Message, or a bypassed
    stream): {"outcome", "source_ts", "source_lead", "similarity", "seq", "source_seq", "stale",
    "cross_lead", "coalesced", "would_be", "mismatched"}. `outcome` is "l1" | "l2" | "l3" |
    "miss" | "bypass"; in shadow mode the would-be one (`would_be` True; the answer is the
    API's) and `mismatched` 0 | 1 | 2 (None in live mode). None for any other object."""
    found = _outcomes.get(id(message))
    return dict(found[1]) if found is not None and found[0]() is message else None


def _remember(returned, outcome: dict) -> None:
    key = id(returned)
    # a weak reference's callback, not weakref.finalize: a tenth of the cost on every call
    _outcomes[key] = weakref.ref(returned, lambda _, key=key: _outcomes.pop(key, None)), outcome


# --- building the cache ---------------------------------------------------------------------------

def _settings_of(config) -> Settings:
    if config is None:
        return Settings()
    if isinstance(config, Settings):
        return config
    if isinstance(config, (str, Path)):
        return build_settings(Path(config), {})
    raise TypeError(f"config must be a path of a TOML config, a Settings or None, got {type(config).__name__}")


def refuse_what_a_running_cache_cannot_do(settings: Settings) -> None:
    """ValueError naming the setting, for what only a replay of a whole log can do."""
    if settings.workers is not None:
        raise ValueError(f"workers = {settings.workers}: round-robin workers are a simulation of workers; "
                         f"a running process is its own worker: remove workers from the config and give "
                         f"TieredCache(worker=...) (or each call's worker metadata)")
    texts = {"l3_text": settings.l3_text} if "l3" in settings.tiers else {}
    texts.update({f"tasks.{task}.l3_text": options["l3_text"] for task, options in settings.task_options.items()
                  if "l3_text" in options and not settings.off_for_task("l3", task)})
    for name, text in texts.items():
        if text.startswith("strip-template"):
            raise ValueError(f"{name} = {text!r}: the template is learned from a whole log, which a running cache "
                             f"does not have: set {name} to the text tune-ttl found for the task (e.g. "
                             f"\"last-user\" or a regex:PATTERN), or turn L3 off for it")
    if settings.l2_redis_url == "embedded":
        raise ValueError("l2_redis_url = \"embedded\" starts a private server for one replay: give the cache a "
                         "Redis its processes share (TieredCache(redis_url=...)), or none to keep L2 in process")


def request_record(meta: dict, kwargs: dict, worker: str, streaming: bool, t: float = 0.0) -> dict:
    """A request's log record (docs/logs/native.md "Log format"; the cache's log line before its answer), its
    fields as tiercli.record builds them: what call_of_record keys."""
    record = {"ts": t, **request_fields(meta, kwargs), "worker": worker}
    params = request_params(kwargs)
    if params:
        record["params"] = params
    if streaming:
        record["streaming"] = True
    if uses_tools(kwargs):
        record["use_tools"] = True
    return record


class TieredCache:
    """L1/L2/L3 with the replay's semantics, around the Anthropic SDK's messages.create.

    config: a TOML config path (as `tiercli replay --config`), a Settings, or None (defaults).
    redis_url: shares L2 and L3 (and the call order, tag changes) between processes; None: the
        config's l2_redis_url, else everything in this process.
    namespace: the Redis keys' prefix (`{namespace}:{cache}:...`).
    clock: the time source in seconds (time.time); tests and replays drive it.
    mode: "live" | "shadow"; None: the config's `mode` ("live" by default).
    log: a path: one tiercli log line per call (hits too) and per tag change, which `tiercli
        replay` and `tiercli verify` read.
    worker: this process's worker (its L1), "default" when None.
    embedder: an Embedder for L3 (default: the config's l3_model, else all-MiniLM-L6-v2, through
        the config's embedder backend, loaded at the first L3 look-up); embedding_store: keep vectors in TIERCLI_HOME's store, shared
        with replay. meter_provider: OpenTelemetry's (None: the global one; tiercli[otel])."""

    def __init__(self, config=None, *, redis_url: str | None = None, namespace: str = "tiercli",
                 clock=time.time, mode: str | None = None, log: str | Path | None = None,
                 worker: str | None = None, embedder=None, embedding_store: bool = True, meter_provider=None):
        settings = _settings_of(config)
        refuse_what_a_running_cache_cannot_do(settings)
        if mode is not None and mode not in CACHE_MODES:
            raise ValueError(f"mode: must be one of {', '.join(CACHE_MODES)}, got {shown(mode)}")
        if worker is not None and (not isinstance(worker, str) or not worker):
            raise ValueError(f"worker: must be a non-empty string, got {shown(worker)}")
        self.settings = settings
        self.mode = mode or settings.mode
        self.shadow = self.mode == "shadow"
        self.clock = clock
        self.worker = worker or "default"
        self.prefix = f"{namespace}:{{cache}}:"
        self.shape = CallShape(settings)
        self.judge = AnswerJudge(settings)
        self.metrics = Metrics(meter_provider)
        self._labels = CallLabels("cache")
        self._log = JsonLines(Path(log)) if log is not None else None
        self._lock = threading.RLock()  # the tiers, the flights and the counters below
        self._stats = _Stats(self.mode)
        self._call_redis_failed: ContextVar[bool] = ContextVar(f"tiercli_cache_redis_{id(self)}", default=False)
        self._warned: set[str] = set()
        self._embedding = _Embedding(settings, embedder, embedding_store, self._l3_failed)
        url = redis_url if redis_url is not None else settings.l2_redis_url
        if url is not None and (problem := url_problem(url)) is not None:
            raise ValueError(f"redis_url {mask_url(url)}: {problem}")
        self.redis_url = url
        self._redis = redis_client(url) if url else None
        # Each cache's lines name it: a restarted process appending to the same log starts a new
        # run, which `verify` replays from empty tiers (with Redis the runs share one cache_seq
        # order and are replayed together)
        self.run_id = uuid.uuid4().hex[:12]
        self._run_fields = {"cache_run": self.run_id, **({"cache_redis": True} if url else {})}
        policy = TtlPolicy(settings)
        self._ttl_policy = policy if policy.window is not None else None  # adaptive: observed per call
        self.tiers = build_tiers(settings, redis_client=self._redis, prefix=self.prefix, embed=self._embedding.embed,
                                 on_failure=self._redis_failed, ttl_policy=policy)
        self._shared = _SharedCounters(self.tiers.health, self.prefix)
        self._latency = {tier.name: settings.latency_ms(tier.name) for tier in self.tiers}
        self._tiers_of_task: dict[str, tuple[list, list[float]]] = {}
        self._flights: dict[bytes, _Flight] = {}
        self._answers = _Answers()
        self._last_worker: dict[str, str] = {}  # lead -> the worker of its latest call (a local tag change's L1)
        self._closed = False

    # --- the application's side ------------------------------------------------------------------

    def wrap(self, client):
        """The Anthropic or AsyncAnthropic client with messages.create through the cache."""
        return wrap_client(client, self)

    def context(self, *, lead_id: str | int | None = None, task_type: str | None = None,
                worker: str | None = None, attrs: dict | None = None):
        """Metadata for the calls made inside (as tiercli.record's); a call's tiercli={...}
        overrides it key by key."""
        return self._labels.context(lead_id=lead_id, task_type=task_type, worker=worker, attrs=attrs)

    def stats(self) -> dict:
        """Counts since the cache started: calls, per outcome ("l1" ... "bypass"; shadow mode:
        would-be), per task, coalesced, stale, cross_lead, shadow_mismatched, cache_errors,
        redis_failures, tag_changes, and l3_off (why L3 is off, or None)."""
        with self._lock:
            return self._stats.snapshot(self._embedding.off_reason)

    def tag_change(self, lead_id: str | int, tag: str, *, broadcast: bool | None = None,
                   worker: str | None = None) -> None:
        """The lead's tag changed: its entries leave L2 and L3, and one L1 (`worker`, else the
        worker of the lead's latest call in this process, else this cache's) or, with
        `broadcast` (None: the config's invalidation), every process's L1. Its seq is recorded
        (in Redis when shared), so that older entries of the lead serve stale hits as in replay.
        Never raises for a failure of the cache's own (counted in cache_errors)."""
        try:
            self._tag_change(str(lead_id), str(tag), broadcast, worker)
        except Exception as exc:
            self._cache_error("tag change", exc)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        _quietly(self.tiers.close)
        if self._redis is not None:
            _quietly(self._redis.close)
        self._embedding.close()
        if self._log is not None:
            _quietly(self._log.close)

    def __enter__(self) -> TieredCache:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- one call: begin (before the API), then finish (after it) --------------------------------

    def begin(self, kwargs: dict, streaming: bool = False) -> _Pending:
        """The call's look-up, before any API call: pops `tiercli` from kwargs. Never raises: a
        call the cache cannot handle is a pass-through. `streaming`: messages.stream()."""
        started = time.perf_counter()
        per_call = kwargs.pop("tiercli", None)
        self._call_redis_failed.set(False)
        try:
            return self._begin(kwargs, per_call, started, streaming or kwargs.get("stream") is True)
        except Exception as exc:
            self._cache_error("look-up", exc)
            return _Pending(PASS, started)

    def _begin(self, kwargs: dict, per_call, started: float, streaming: bool) -> _Pending:
        meta = self._labels.of_call(per_call)
        worker = str(meta.get("worker") or self.worker)
        plain = plain_request(meta, kwargs, self.shape)  # None: the request's Call is its record's
        record = None if plain is not None and self._log is None else request_record(meta, kwargs, worker, streaming)
        with self._lock:
            t = float(self.clock())
            call = plain.call(t, worker, streaming) if plain is not None else None
            if record is not None:
                record["ts"] = t
            if call is None:
                record = record or request_record(meta, kwargs, worker, streaming, t)
                call = call_of_record(record, 0, None, self.shape, {})
            call.seq, last_tag_seq = self._shared.next_seq(call.lead)
            self._last_worker[call.lead] = worker
            if self._ttl_policy is not None:
                self._ttl_policy.observe(call)
            pending = _Pending(BYPASS if call.bypass else MISS, started, call, record, worker, t)
            if call.bypass:
                return pending
            pending.tiers, latencies = self._tiers_for(call.task)
            if not self.shadow:
                flight = self._flights.get(call.key)
                if flight is not None:  # an identical call is at the API: wait for its answer
                    pending.kind, pending.flight = FOLLOWER, flight
                    return pending
            pending.found = look_up(pending.tiers, latencies, call, worker, t)
            entry = pending.found.entry
            if entry is not None:
                pending.kind = HIT
                pending.stale = is_stale(entry.origin, call, last_tag_seq)
            elif not self.shadow:
                pending.flight = self._flights[call.key] = _Flight(call.seq)
        if pending.kind == HIT and not self.shadow:
            pending.served, pending.served_ms = self._answers.served(entry.origin.answer)
        return pending

    def _tiers_for(self, task: str) -> tuple[list, list[float]]:
        found = self._tiers_of_task.get(task)
        if found is None:
            on = [tier for tier in self.tiers if not self.settings.off_for_task(tier.name, task)]
            if any(tier.name == "l3" for tier in on) and not self._embedding.ready():
                return self._without_l3(task, on)
            found = self._tiers_of_task[task] = (on, [self._latency[tier.name] for tier in on])
        return found

    def _without_l3(self, task: str, on: list) -> tuple[list, list[float]]:
        on = [tier for tier in on if tier.name != "l3"]
        found = self._tiers_of_task[task] = (on, [self._latency[tier.name] for tier in on])
        return found

    def finish(self, pending: _Pending, message, api_ms: float | None):
        """After the API answered (`message`; None for a call it did not make: a live hit or a
        coalesced call): stores, logs and remembers the outcome. Returns what the caller gets."""
        try:
            return self._finish(pending, message, api_ms)
        except Exception as exc:
            self._cache_error("store", exc)
            self.failed(pending)
            return message if message is not None else pending.served

    def _finish(self, p: _Pending, message, api_ms: float | None):
        call = p.call
        if p.kind == PASS:
            return message
        if p.kind == BYPASS:
            return self._done(p, message, "bypass", api_ms=api_ms)
        if p.kind == HIT and not self.shadow:
            origin = p.found.entry.origin
            return self._done(p, p.served, p.tiers[p.found.level].name, origin=origin, api_ms=p.served_ms)
        if p.kind == FOLLOWER:
            return self._done(p, p.served, "miss", origin=p.coalesced_from, coalesced=True, api_ms=p.served_ms)
        # the API answered: a live miss, or any shadow call
        text = message_text(message)
        digest = self.shape.digest(call.task, text)
        fresh = Origin(call.seq, call.lead, p.t, digest, answer_bytes(message, api_ms))
        if p.kind == HIT:  # shadow: the would-be hit's answer against the fresh one
            origin = p.found.entry.origin
            mismatched = mismatch(origin.response_digest, digest, call.task, self._judge_for(call.task, origin, digest))
            self.shape.answer_texts.pop(digest, None)
            return self._done(p, message, p.tiers[p.found.level].name, origin=origin, api_ms=api_ms,
                              mismatched=mismatched)
        self.shape.answer_texts.pop(digest, None)
        with self._lock:
            try:
                store(p.tiers, call, p.worker, fresh, p.t)
            finally:
                self._release(p, fresh)
        return self._done(p, message, "miss", api_ms=api_ms, mismatched=0 if self.shadow else None)

    def _release(self, p: _Pending, origin: Origin | None) -> None:
        """The flight this call led ends: its followers get `origin` (None: they call the API)."""
        flight = p.flight if p.kind == MISS else None
        if flight is None or flight.future.done():
            return
        with self._lock:
            if self._flights.get(p.call.key) is flight:
                del self._flights[p.call.key]
        try:
            flight.future.set_result(origin)
        except concurrent.futures.InvalidStateError:  # cancelled meanwhile: no one waits on it
            pass

    def failed(self, pending: _Pending) -> None:
        """The API raised for this call: its followers call the API themselves."""
        try:
            self._release(pending, None)
        except Exception as exc:
            self._cache_error("single-flight", exc)

    def follow(self, pending: _Pending, origin: Origin | None) -> bool:
        """A coalesced call got its leader's origin: True when it can be served from it (else
        the caller calls the API, and the call is finished as a miss of its own)."""
        try:
            if origin is not None and origin.answer is not None:
                pending.served, pending.served_ms = self._answers.served(origin.answer)
                pending.coalesced_from = origin
                return True
        except Exception as exc:
            self._cache_error("single-flight", exc)
        with self._lock:  # a miss of its own: it stores its answer, and leads no flight
            pending.kind, pending.flight = MISS, None
            pending.found = Found(-1, None, math.nan, 0.0)
        return False

    def _judge_for(self, task: str, origin: Origin, fresh: bytes | None):
        """The judge when the task's rule is embedding:T (its two answers embedded), else None."""
        if not self.judge.uses_embedding or self.settings.answer_rule(task).kind != "embedding":
            return None
        served, vectors = origin.response_digest, self.judge.answer_vectors
        if served is None or fresh is None or served == fresh:
            return None
        vectors.clear()  # only this comparison's two answers
        vectors[served] = self._embedding.embed(message_text(self._answers.served(origin.answer)[0]).strip())
        vectors[fresh] = self._embedding.embed(self.shape.answer_texts.get(fresh, ""))
        return self.judge

    def _done(self, p: _Pending, returned, outcome: str, *, origin: Origin | None = None, api_ms: float | None,
              coalesced: bool = False, mismatched: int | None = None):
        call = p.call
        similarity = p.found.similarity if p.found is not None else math.nan
        cross_lead = origin is not None and origin.lead != call.lead
        result = {"outcome": outcome, "source_ts": origin.ts if origin else None,
                  "source_lead": origin.lead if origin else None,
                  "similarity": None if math.isnan(similarity) else float(similarity),
                  "seq": call.seq, "source_seq": origin.seq if origin else None, "stale": p.stale,
                  "cross_lead": cross_lead, "coalesced": coalesced, "would_be": self.shadow,
                  # shadow: 0 for a would-be miss or bypass (nothing would have been served), as its log line
                  "mismatched": (mismatched or 0) if self.shadow else None}
        redis_failed = self._call_redis_failed.get()
        with self._lock:
            self._stats.count(result, call.task)
        if returned is not None:
            _remember(returned, result)
        self._write_call(p, returned, result, api_ms, redis_failed)
        try:
            self.metrics.call(outcome, call.task, cross_lead=cross_lead and outcome in ("l1", "l2", "l3"),
                              similarity=result["similarity"], mismatched=mismatched)
        except Exception as exc:
            self._cache_error("metrics", exc)
        return returned

    def _write_call(self, p: _Pending, returned, result: dict, api_ms: float | None, redis_failed: bool) -> None:
        if self._log is None:
            return
        line = dict(p.record)
        if returned is not None and hasattr(returned, "usage"):  # a Message (not a stream)
            line.update(token_fields(usage_counts(returned.usage)))
            line["response"] = message_text(returned)
            request_id = getattr(returned, "_request_id", None)
            if request_id and result["outcome"] in ("miss", "bypass") and not result["coalesced"]:
                line["request_id"] = request_id
        if api_ms is not None:
            line["latency_ms"] = round(api_ms, 3)
        line.update(cache_seq=result["seq"], cache_outcome=result["outcome"], cache_source=result["source_seq"],
                    cache_source_lead=result["source_lead"], cache_source_ts=result["source_ts"],
                    cache_similarity=result["similarity"], cache_stale=result["stale"],
                    cache_cross_lead=result["cross_lead"], cache_mode=self.mode,
                    cache_latency_ms=round((time.perf_counter() - p.started) * 1000, 3), **self._run_fields)
        if self.shadow:
            line["cache_mismatched"] = result["mismatched"]
        if result["coalesced"]:
            line["cache_coalesced"] = True
        if redis_failed:  # a Redis operation failed during this call
            line["cache_redis_failed"] = True
        if redis_failed or self.tiers.redis_up is False:  # the shared tiers were not used for this call
            line["cache_redis_down"] = True
        if self._embedding.off_reason is not None and not self.settings.off_for_task("l3", p.call.task):
            line["cache_l3_off"] = True
        try:
            self._log.write(line)
        except Exception as exc:
            self._cache_error("log", exc)

    # --- tag changes ---------------------------------------------------------------------------

    def _tag_change(self, lead: str, tag: str, broadcast: bool | None, worker: str | None) -> None:
        if broadcast is None:
            broadcast = self.settings.invalidation == "broadcast"
        self._call_redis_failed.set(False)
        with self._lock:
            t = float(self.clock())
            seq = self._shared.tag_change(lead)
            local = worker or self._last_worker.get(lead) or self.worker  # as replay: the tag change's own first
            for tier in self.tiers:
                if not tier.per_worker:
                    tier.remove_lead(lead, t)
            if broadcast:  # every other process's L1 drops the lead's entries filled before `seq`
                self.tiers.announce_invalidation(lead, seq)
            for tier in self.tiers:
                if tier.per_worker:
                    tier.remove_lead(lead, t, None if broadcast else local)
            self._stats.tag_changes += 1
        if self._log is not None:
            line = {"type": "tag_change", "ts": t, "lead_id": lead, "tag": tag, "worker": local, "cache_seq": seq,
                    "cache_mode": self.mode, **self._run_fields}
            if broadcast:
                line["cache_broadcast"] = True
            try:
                self._log.write(line)
            except Exception as exc:
                self._cache_error("log", exc)

    # --- failures --------------------------------------------------------------------------------

    def _cache_error(self, where: str, exc: Exception) -> None:
        """A failure in the cache's own work: counted, logged (the first of each kind with its
        traceback), never raised."""
        with self._lock:
            self._stats.cache_errors += 1
        kind = f"{where}: {type(exc).__name__}"
        first = kind not in self._warned
        self._warned.add(kind)
        log.warning("tiercli.cache: %s failed, the call goes to the API unchanged: %s", where,
                    said(exc), exc_info=exc if first else None)

    def _redis_failed(self, tier: str, exc: Exception) -> None:
        """A Redis operation failed (a tier's, or the shared counters'): the call goes on without it."""
        self._call_redis_failed.set(True)
        with self._lock:
            self._stats.redis_failures += 1
        try:
            self.metrics.redis_failure(tier)
        except Exception:
            pass
        if f"redis {tier}" not in self._warned:
            self._warned.add(f"redis {tier}")
            log.warning("tiercli.cache: Redis at %s failed (%s: %s); serving from this process and the API "
                        "while it reconnects", mask_url(self.redis_url or ""), tier, _redis_detail(exc, self.redis_url))

    def _l3_failed(self, reason: str) -> None:
        """The embedding model cannot load: L3 is off from now on, said once."""
        with self._lock:
            self._tiers_of_task.clear()
        message = f"tiercli.cache: L3 is off: {reason}"
        warnings.warn(message, RuntimeWarning, stacklevel=2)
        log.warning(message)


# --- a call in progress ----------------------------------------------------------------------------

PASS, BYPASS, HIT, MISS, FOLLOWER = "pass", "bypass", "hit", "miss", "follower"


class _Pending:
    """One call between its look-up and its answer."""

    __slots__ = ("kind", "started", "call", "record", "worker", "t", "tiers", "found", "stale", "flight",
                 "served", "served_ms", "coalesced_from")

    def __init__(self, kind: str, started: float, call: Call | None = None, record: dict | None = None,
                 worker: str | None = None, t: float = 0.0):
        self.kind, self.started, self.call, self.record, self.worker, self.t = kind, started, call, record, worker, t
        self.tiers: list = []
        self.found: Found | None = None
        self.stale = False
        self.flight: _Flight | None = None
        self.served = None  # the Message a live hit or a coalesced call returns
        self.served_ms: float | None = None  # the API latency of the call that filled its entry
        self.coalesced_from: Origin | None = None

    @property
    def follows(self) -> bool:
        """An identical call is at the API: this one waits for its answer (`flight`)."""
        return self.kind == FOLLOWER

    @property
    def answered(self) -> bool:
        """Served without the API: a live hit (or, after TieredCache.follow, a coalesced call)."""
        return self.served is not None


class _Flight:
    """A miss at the API; identical calls wait on `future` (its origin; None: call the API)."""

    __slots__ = ("future", "seq")

    def __init__(self, seq: int):
        self.future: concurrent.futures.Future = concurrent.futures.Future()
        self.seq = seq


def answer_bytes(message, api_ms: float | None) -> bytes:
    """Origin.answer: the Message's JSON, with the API latency as one member more."""
    body = message.model_dump_json()
    return (body[:-1] + f',"{LATENCY_MEMBER}":{"null" if api_ms is None else repr(round(api_ms, 3))}}}').encode()


class _Answers:
    """The Messages that entries serve: each answer (Origin.answer) parsed once, then copied for
    every hit (a copy costs half a parse), so that no caller can change another's answer by
    changing the Message it got. The latest ANSWERS_PARSED answers are kept."""

    def __init__(self):
        self._parsed: dict[bytes, tuple[Message, float | None]] = {}
        self._lock = threading.Lock()  # for adding (reads take none)

    def served(self, answer: bytes | None) -> tuple[Message, float | None]:
        """(a new Message of the answer, the API latency of the call that filled the entry)."""
        found = self._parsed.get(answer)
        if found is None:
            if answer is None:
                raise ValueError("the entry holds no answer (filled by a replay, not by a running cache)")
            message = Message.model_validate_json(answer)
            extra = message.__pydantic_extra__
            latency = extra.pop(LATENCY_MEMBER, None) if extra else None
            message.__pydantic_fields_set__.discard(LATENCY_MEMBER)
            found = message, latency
            with self._lock:
                self._parsed[answer] = found
                if len(self._parsed) > ANSWERS_PARSED:
                    del self._parsed[next(iter(self._parsed))]  # the oldest
        return _copied(found[0]), found[1]


_IMMUTABLE = frozenset((str, int, float, bool, bytes, type(None)))
_is_model: dict[type, bool] = {}  # type -> whether it is a pydantic model (isinstance on them is slow)


def _copied(value):
    """A deep copy of a pydantic model (the SDK's Message) made of models, lists, dicts and
    immutable values: a fifth of model_copy(deep=True)'s time."""
    kind = type(value)
    if kind is list:
        return [item if type(item) in _IMMUTABLE else _copied(item) for item in value]
    if kind is dict:
        return {name: item if type(item) in _IMMUTABLE else _copied(item) for name, item in value.items()}
    model = _is_model.get(kind)
    if model is None:
        model = _is_model[kind] = issubclass(kind, pydantic.BaseModel)
    if not model:
        return value if kind in _IMMUTABLE else copy.deepcopy(value)
    fields = value.__dict__.copy()
    for name, item in fields.items():
        if type(item) not in _IMMUTABLE:
            fields[name] = _copied(item)
    copied = _new_object(kind)
    extra, private = value.__pydantic_extra__, value.__pydantic_private__
    _set_attribute(copied, "__dict__", fields)
    _set_attribute(copied, "__pydantic_extra__", _copied(extra) if extra else None if extra is None else {})
    _set_attribute(copied, "__pydantic_fields_set__", value.__pydantic_fields_set__.copy())
    _set_attribute(copied, "__pydantic_private__", None if private is None else _copied(private))
    return copied


_new_object, _set_attribute = object.__new__, object.__setattr__  # as pydantic's own copy sets a model's parts


# --- stats --------------------------------------------------------------------------------------

class _Stats:
    def __init__(self, mode: str):
        self.mode = mode
        self.outcomes = dict.fromkeys(OUTCOMES, 0)
        self.by_task: dict[str, dict[str, int]] = {}
        self.coalesced = self.stale = self.cross_lead = self.shadow_mismatched = 0
        self.cache_errors = self.redis_failures = self.tag_changes = 0

    def count(self, result: dict, task: str) -> None:
        outcome = result["outcome"]
        self.outcomes[outcome] += 1
        per_task = self.by_task.get(task)
        if per_task is None:
            per_task = self.by_task[task] = dict.fromkeys(OUTCOMES, 0)
        per_task[outcome] += 1
        self.coalesced += result["coalesced"]
        self.stale += result["stale"]
        self.cross_lead += result["cross_lead"] and outcome in ("l1", "l2", "l3")
        self.shadow_mismatched += bool(result["mismatched"])

    def snapshot(self, l3_off: str | None) -> dict:
        return {"mode": self.mode, "calls": sum(self.outcomes.values()), **self.outcomes,
                "by_task": {task: dict(counts) for task, counts in sorted(self.by_task.items())},
                "coalesced": self.coalesced, "stale": self.stale, "cross_lead": self.cross_lead,
                "shadow_mismatched": self.shadow_mismatched, "cache_errors": self.cache_errors,
                "redis_failures": self.redis_failures, "tag_changes": self.tag_changes, "l3_off": l3_off}


# --- what processes share through Redis: the call order and the leads' tag changes ---------------

class _SharedCounters:
    """seq (one counter for calls and tag changes, in processing order) and each lead's latest
    tag change seq: `{prefix}seq` and the hash `{prefix}tagseq` when Redis is used (`health`,
    the tiers' guard: a failure is reported as the tiers' are, and while Redis is down both go
    on in process, from the last seq seen). Each is one round trip, a Lua script that runs
    alone: a call takes its seq and reads its lead's latest tag change at once, and a tag change
    takes its seq and records it at once, so a call sees exactly the tag changes before it in
    seq order, whichever process made them."""

    # KEYS: seq, tagseq; ARGV: lead. Seqs count from 0, as a log's lines; -1: no tag change yet.
    _CALL = """
local seq = redis.call('INCR', KEYS[1]) - 1
local tag_seq = redis.call('HGET', KEYS[2], ARGV[1])
return {seq, tag_seq and tonumber(tag_seq) or -1}
"""
    _TAG_CHANGE = """
local seq = redis.call('INCR', KEYS[1]) - 1
redis.call('HSET', KEYS[2], ARGV[1], seq)
return seq
"""

    def __init__(self, health, prefix: str):
        self.health = health
        self.keys = [prefix + "seq", prefix + "tagseq"]
        self.seq = -1
        self.tag_seqs: dict[str, int] = {}  # this process's tag changes (what is known while Redis is down)
        if health is not None:
            self._call = health.client.register_script(self._CALL)
            self._tag_change = health.client.register_script(self._TAG_CHANGE)

    def next_seq(self, lead: str) -> tuple[int, int]:
        """A call of `lead`: (its seq, the seq of the lead's latest tag change before it)."""
        shared = None if self.health is None else \
            self.health.run("seq", lambda: self._call(keys=self.keys, args=[lead]))
        if shared is None:
            self.seq += 1
            return self.seq, self.tag_seqs.get(lead, -1)
        self.seq = int(shared[0])
        return self.seq, int(shared[1])

    def tag_change(self, lead: str) -> int:
        """A tag change of `lead`: its seq, recorded as the lead's latest."""
        shared = None if self.health is None else \
            self.health.run("seq", lambda: self._tag_change(keys=self.keys, args=[lead]))
        self.seq = self.seq + 1 if shared is None else int(shared)
        self.tag_seqs[lead] = self.seq
        return self.seq


def _redis_detail(exc: Exception, url: str | None) -> str:
    return _shown_detail(exc, url or "")


def said(exc: Exception) -> str:
    """An exception's text as the cache may show it: secrets masked, cut to 160 characters."""
    return shown(str(exc) or type(exc).__name__, limit=160, quote=False)


def _quietly(action) -> None:
    try:
        action()
    except Exception:
        pass


# --- L3's embeddings ----------------------------------------------------------------------------

class _Embedding:
    """embed(text) -> the unit float32 vector L3 compares, through TIERCLI_HOME's embedding store
    (shared with replay; one SQLite connection per thread). The model loads at the first L3
    look-up; if it cannot, L3 is off (`off_reason`), said once through `on_off`."""

    def __init__(self, settings: Settings, embedder, use_store: bool, on_off):
        self.settings, self.embedder, self.use_store, self.on_off = settings, embedder, use_store, on_off
        self.off_reason: str | None = None
        self._loaded = False
        self._local = threading.local()
        self._stores: list = []
        self._lock = threading.Lock()

    def ready(self) -> bool:
        """Whether L3 can embed: loads the model the first time (seconds)."""
        if self._loaded:
            return True
        if self.off_reason is not None:
            return False
        try:
            if self.embedder is None:
                self.embedder = local_embedder(self.settings.embedder, self.settings.l3_model)
            load = getattr(self.embedder, "load", None)
            if load is not None:
                load()
            self._loaded = True
        except Exception as exc:
            self.off_reason = f"the embedding model did not load: {said(exc)}"
            self.on_off(self.off_reason)
        return self._loaded

    def embed(self, text: str):
        """The text's vector (the L3 tier keeps the latest ones: a miss searches, then stores)."""
        if not self.ready():
            raise RuntimeError(f"L3 is off: {self.off_reason}")
        vectors, _ = embed_texts([text], self.embedder, self._store())
        return vectors[0]

    def _store(self):
        if not self.use_store:
            return None
        store = getattr(self._local, "store", None)
        if store is None:
            try:
                store = EmbeddingStore(tiercli_home() / "embeddings.sqlite")
            except Exception as exc:  # the store is only a cache of vectors: embed without it
                self.use_store = False
                log.warning("tiercli.cache: the embedding store is not used: %s", said(exc))
                return None
            self._local.store = store
            with self._lock:
                self._stores.append(store)
        return store

    def close(self) -> None:
        with self._lock:
            stores, self._stores = self._stores, []
        for store in stores:
            _quietly(store.close)
