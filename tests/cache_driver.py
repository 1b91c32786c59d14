"""Drives a recorded log through the real tiercli.cache.TieredCache (tests/test_cache_parity.py):
each call's request through the anthropic SDK over real HTTP to the local Messages server, which
answers it with the response the log recorded for that call; the cache's clock set to the call's
recorded time before it is sent; one cache in this process, or one per worker in processes of
their own sharing a real Redis, each call sent to the process of its recorded worker and waited
for, so that the processing order is the log's."""

from __future__ import annotations

import multiprocessing
import os
import traceback
from dataclasses import dataclass, field

from tiercli.core.events import Call, TagChange

DEFAULT_MAX_TOKENS = 1024  # what the SDK requires and a record may not give; no generated record uses it
TOOL = {"name": "lookup", "description": "Look a listing up.", "input_schema": {"type": "object"}}


def request_of(record: dict) -> dict:
    """The SDK's messages.create arguments of a native log record (docs/logs/native.md "Log format")."""
    params = record.get("params") or {}
    request = {"model": record["model"], "max_tokens": params.get("max_tokens", DEFAULT_MAX_TOKENS),
               "messages": record.get("messages") or [{"role": "user", "content": record["prompt"]}]}
    if record.get("system") is not None:
        request["system"] = record["system"]
    for name in ("stop_sequences", "tool_choice", "thinking"):
        if params.get(name) is not None:
            request[name] = params[name]
    if record.get("tools"):
        request["tools"] = record["tools"]
    elif record.get("use_tools"):
        request["tools"] = [TOOL]
    if record.get("streaming"):
        request["stream"] = True
    return request


def labels_of(record: dict, worker: bool) -> dict:
    """The call's tiercli metadata; with `worker`, its recorded worker too (one process, many L1s)."""
    labels = {"lead_id": record["lead_id"], "task_type": record["task_type"]}
    if record.get("attrs") is not None:
        labels["attrs"] = record["attrs"]
    if worker and record.get("worker") is not None:
        labels["worker"] = record["worker"]
    return labels


def usage_of(record: dict) -> dict:
    return {"input_tokens": record.get("input_tokens", 0), "output_tokens": record.get("output_tokens", 0),
            "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}


class CacheHost:
    """One TieredCache with a wrapped SDK client, and the clock the driver sets."""

    def __init__(self, config: str, base_url: str, *, redis_url: str | None, namespace: str, mode: str,
                 log: str, worker: str | None):
        import anthropic

        from tiercli.cache import TieredCache

        self.now = 0.0
        self.cache = TieredCache(config, redis_url=redis_url, namespace=namespace, clock=lambda: self.now, mode=mode,
                                 log=log, worker=worker)
        self.client = self.cache.wrap(anthropic.Anthropic(base_url=base_url, api_key="sk-ant-test-parity",
                                                          max_retries=0))

    def call(self, ts: float, request: dict, labels: dict) -> dict:
        """outcome_of the answer, with the answer's text."""
        from tiercli.cache import outcome_of

        self.now = ts
        answer = self.client.messages.create(**request, tiercli=labels)
        if request.get("stream"):
            text = "".join(event.delta.text for event in answer if event.type == "content_block_delta")
        else:
            text = "".join(block.text for block in answer.content if block.type == "text")
        return {**(outcome_of(answer) or {}), "text": text}

    def tag_change(self, ts: float, lead: str, tag: str, worker: str | None) -> None:
        """A tag change; a broadcast one waits until every process's L1 applied it (replay's
        next call sees it applied)."""
        self.now = ts
        self.cache.tag_change(lead, tag, worker=worker)
        if self.cache.settings.invalidation == "broadcast" and not self.cache.tiers.wait_invalidations(10.0):
            raise RuntimeError(f"the broadcast tag change of lead {lead} was not applied everywhere in 10 s")

    def stats(self) -> dict:
        return self.cache.stats()

    def close(self) -> None:
        self.cache.close()


def _serve(conn) -> None:
    """A worker process: a CacheHost at a time (op "open"), answering the driver's requests one
    at a time; "warm" loads the embedding model ahead (it is the caches' model: lru-cached)."""
    host = None
    while True:
        op, args = conn.recv()
        try:
            if op == "warm":
                from tiercli.store.embeddings import SentenceTransformerEmbedder

                SentenceTransformerEmbedder().load()
                result = None
            elif op == "open":  # in the driver's TIERCLI_HOME: its embedding store is the replay's
                options = dict(args[0])
                os.environ["TIERCLI_HOME"] = options.pop("home")
                host = CacheHost(**options)
                result = None
            elif op == "exit":
                return
            else:
                result = getattr(host, op)(*args)
            conn.send(("ok", result))
        except Exception:
            conn.send(("error", traceback.format_exc()))


class WorkerProcess:
    """A process of its own (spawned: no inherited threads or model) for one CacheHost at a time;
    it starts loading the embedding model at once, while the driver does its own work."""

    def __init__(self):
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child,), daemon=True)
        self.process.start()
        self.conn.send(("warm", ()))
        self.owed = 1  # answers not read yet

    def _answer(self):
        if not self.conn.poll(120):
            raise RuntimeError("the worker process did not answer in 120 s")
        self.owed -= 1
        status, value = self.conn.recv()
        if status != "ok":
            raise RuntimeError(f"in the worker process:\n{value}")
        return value

    def __getattr__(self, op):
        def remote(*args):
            while self.owed:
                self._answer()
            self.conn.send((op, args))
            self.owed += 1
            return self._answer()

        return remote

    def exit(self) -> None:
        """Asks the process to end (join() waits for it: exit every process first, then join)."""
        while self.owed:
            self._answer()
        self.conn.send(("exit", ()))

    def join(self) -> None:
        self.process.join(0.3)  # its cache is closed, its log written: no need to wait for the interpreter's exit
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


@dataclass
class Driven:
    """What driving a log gave: per call of the log (in processing order) the cache's outcome
    and answer text, and the cache logs written."""

    served: list[dict] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    stats: list[dict] = field(default_factory=list)


def drive(read, records: dict[int, dict], server, config: str, folder, *, pool: dict | None, redis_url: str | None,
          namespace: str, mode: str) -> Driven:
    """The log's events (`read`: the log read, `records`: line -> its record) through one cache
    in this process (each call naming its recorded worker, so L1 is per worker as in replay), or
    through one cache in each `pool` process (worker name -> WorkerProcess), each call sent to
    the process of its recorded worker, a tag change to the process of its recorded worker, else
    of the lead's latest call's (replay's local invalidation)."""
    common = {"config": config, "base_url": server.url, "redis_url": redis_url, "namespace": namespace,
              "mode": mode}
    workers = sorted({e.worker or "default" for e in read.events if isinstance(e, Call)})
    driven = Driven()
    if pool is not None:
        hosts = {worker: pool[worker] for worker in workers}
        for worker, host in hosts.items():
            log = str(folder / f"cache-{mode}-{worker}.jsonl")
            driven.logs.append(log)
            host.open({**common, "log": log, "worker": worker, "home": os.environ["TIERCLI_HOME"]})
    else:
        log = str(folder / f"cache-{mode}.jsonl")
        driven.logs.append(log)
        one = CacheHost(**common, log=log, worker=None)
        hosts = dict.fromkeys(workers, one)
    last_worker: dict[str, str] = {}
    try:
        for event in read.events:
            record = records[event.line]
            if isinstance(event, TagChange):
                worker = event.worker if event.worker is not None else last_worker.get(event.lead, workers[0])
                hosts[worker].tag_change(event.ts, event.lead, event.tag, None if pool else worker)
                continue
            worker = event.worker or "default"
            last_worker[event.lead] = worker
            server.reply = (record.get("response") or "", usage_of(record))
            driven.served.append(hosts[worker].call(event.ts, request_of(record), labels_of(record, pool is None)))
    finally:
        server.reply = None
        for host in dict.fromkeys(hosts.values()):
            driven.stats.append(host.stats())
            host.close()
    return driven
