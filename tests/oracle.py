"""A second, deliberately naive implementation of the replay semantics, written straight from
the README's rules with plain lists and scans: slow, but easy to check by reading. The engine
must agree with it call for call."""

from __future__ import annotations

import datetime
import json
import re
import unicodedata
import zoneinfo

import msgspec
import numpy as np

from tiercli.core.answers import UNPARSABLE
from tiercli.core.events import Call, TagChange
from tiercli.core.events import NO_LEAD

UNREADABLE = object()


def _json_in(text):
    """The README's order, naively: the whole text; a fenced block's body; the value at a { or [."""
    candidates = [text.strip()]
    pieces = text.split("```")
    for body in pieces[1:-1:2]:  # between an opening and a closing fence
        first, newline, rest = body.partition("\n")
        if newline and all(c.isalnum() or c in "_.+-" for c in first.strip()):  # an info string line
            body = rest
        candidates.append(body.strip())
    for candidate in candidates:
        try:
            return json.loads(candidate, parse_constant=lambda name: 1 / 0)
        except (ValueError, ZeroDivisionError):
            pass
    decoder = json.JSONDecoder(parse_constant=lambda name: 1 / 0)
    for i, ch in enumerate(text):
        if ch in "{[":
            try:
                return decoder.raw_decode(text, i)[0]
            except (ValueError, ZeroDivisionError):
                pass
    return UNREADABLE


def _at(value, path):
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return UNREADABLE
    return value


PARAM_NAMES = ("temperature", "top_p", "top_k", "max_tokens", "stop_sequences", "tools", "tool_choice",
               "response_format", "thinking")


def keyed_by_params(events, settings, records):
    """The events with each call keyed by its request parameters as docs/logs/native.md "Log format" and
    "Replay semantics" say, naively: `records` (line -> the record as written); `events` read
    with key_params = "none", so their keys hold no parameter. A call's key becomes (that key,
    the JSON of the parameters its task's key_params keeps), and its `params` that JSON, which
    L3 compares."""
    out = []
    for ev in events:
        if isinstance(ev, Call) and not ev.keyless:
            record = records[ev.line]
            given = {("response_format" if k == "output_format" else k): v
                     for k, v in (record.get("params") or {}).items() if v is not None}
            if record.get("tools") is not None:
                given["tools"] = record["tools"]
            names = settings.task_options.get(ev.task, {}).get("key_params", settings.key_params)
            kept = {k: float(v) if k in ("temperature", "top_p") else v for k, v in given.items()
                    if k in PARAM_NAMES and k in names}
            text = json.dumps(kept, sort_keys=True) if kept else None
            ev = msgspec.structs.replace(ev, key=(ev.key, text), params=text)
        out.append(ev)
    return out


REQUEST_PARTS = ("system", "messages")


def _naive_messages(record):
    """(role, text) of each message of a record as written: a prompt is one user message; a
    content of blocks is their texts joined with newlines."""
    if record.get("prompt") is not None:
        return [("user", record["prompt"])]
    out = []
    for message in record["messages"]:
        content = message["content"]
        if not isinstance(content, str):
            content = "\n".join(block["text"] for block in content if block.get("type") == "text")
        out.append((message["role"], content))
    return out


def _naive_scope_value(name, record, tz):
    if name == "lead":
        return str(record.get("lead_id", record.get("contact_id")))
    if name in ("day", "hour"):
        ts = record["ts"]
        when = (datetime.datetime.fromisoformat(ts) if isinstance(ts, str)
                else datetime.datetime.fromtimestamp(ts, datetime.timezone.utc))
        when = when.astimezone(zoneinfo.ZoneInfo(tz) if tz else datetime.timezone.utc)
        return when.strftime("%Y-%m-%d") if name == "day" else when.strftime("%Y-%m-%dT%H")
    if name == "worker":
        return record.get("worker") or "default"
    value = record.get("attrs")
    for part in name.split(".")[1:]:
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def keyed_by_scope(events, settings, records):
    """The events with each call keyed by its task's key parts and scope as README "Keys and
    scope" says, naively: `records` (line -> the record as written); `events` read with the
    default key and no scope (and keyed_by_params, or read with the default key_params). A
    call's key becomes (task, model, its key parts' values, or its request key for key =
    "request"; its scope values; its parameters), and its `scope` the JSON of those values,
    which L3 compares."""
    out = []
    for ev in events:
        if isinstance(ev, Call) and not ev.keyless:
            record = records[ev.line]
            options = settings.task_options.get(ev.task, {})
            parts, scope = options.get("key", settings.key), options.get("scope", settings.scope)
            messages = _naive_messages(record)
            values = {"system": json.dumps(record.get("system")), "messages": json.dumps(messages),
                      "conversation": json.dumps(messages),
                      "last-user": next((text for role, text in reversed(messages) if role == "user"), "")}
            content = ev.key if tuple(parts) == REQUEST_PARTS else (ev.task, ev.model, tuple(values[p] for p in parts))
            scoped = [_naive_scope_value(name, record, settings.timezone) for name in scope]
            text = json.dumps(scoped) if scope else None
            ev = msgspec.structs.replace(ev, key=(content, text, ev.params), scope=text)
        out.append(ev)
    return out


def _same_json(x, y) -> bool:
    if isinstance(x, bool) or isinstance(y, bool) or x is None or y is None:
        return type(x) is type(y) and x == y
    if isinstance(x, (int, float)) and isinstance(y, (int, float)):
        return x == y
    if isinstance(x, dict) and isinstance(y, dict):
        return x.keys() == y.keys() and all(_same_json(x[k], y[k]) for k in x)
    if isinstance(x, list) and isinstance(y, list):
        return len(x) == len(y) and all(map(_same_json, x, y))
    return type(x) is type(y) and x == y


def _read(rule, text):
    """What the rule compares of an answer, or UNREADABLE."""
    if rule.kind in ("exact", "embedding"):
        return text.strip()
    if rule.kind == "normalized":
        return " ".join("".join(c for c in text.casefold() if not unicodedata.category(c).startswith("P")).split())
    if rule.kind == "json":
        found = _json_in(text)
        values = UNREADABLE if found is UNREADABLE else [_at(found, f) for f in rule.fields]
        return UNREADABLE if values is UNREADABLE or any(v is UNREADABLE for v in values) else values
    if rule.kind == "regex":
        match = re.search(rule.pattern, text)
        return UNREADABLE if match is None or match.group(1) is None else match.group(1)
    return None  # any


def answers_mismatch(settings, task, a, b, vector_of_answer) -> int:
    """0 the same, 1 different, 2 different because one cannot be read; from the texts."""
    if a is None or b is None:
        return 0
    rule = settings.answer_rule(task)
    ra, rb = _read(rule, a), _read(rule, b)
    if ra is UNREADABLE or rb is UNREADABLE:
        return 2
    if rule.kind == "json":
        return 0 if all(map(_same_json, ra, rb)) else 1
    if rule.kind == "embedding":
        cos = float(np.dot(vector_of_answer[ra], vector_of_answer[rb]))
        return 0 if ra == rb or cos >= rule.threshold else 1
    return 0 if ra == rb else 1


def oracle_replay(events, settings, vector_of_text=None, responses=None,
                  vector_of_answer=None, cross_lead: list | None = None) -> tuple[list[str], list[bool], list[int]]:
    """Outcomes, stale flags and mismatched codes (0, 1, or 2: an answer unreadable) per call.
    `responses` (line -> recorded response): judge answers from their texts under the tasks'
    rules (docs/answers.md "Answer rules"), else from the digests the engine also sees;
    `vector_of_answer`: stripped answer text -> vector, for embedding rules. `cross_lead`, when
    given, receives per call 1 for a hit on an entry first filled by another lead, 2 when the
    hit's call or the entry's has no lead, else 0 (docs/replay-semantics.md "Replay semantics")."""
    clock = [0]

    def tick():
        clock[0] += 1
        return clock[0]

    enabled = set(settings.tiers)
    l1: dict[str, list[dict]] = {}
    l2: list[dict] = []
    l3: list[dict] = []
    last_tag: dict[str, int] = {}
    last_worker: dict[str, str] = {}
    outcomes, stale, mismatched = [], [], []
    n_calls = 0

    seen_calls: list = []  # (lead, ts) of calls so far, for the adaptive TTL

    def ttl_for(tier, call):
        ttl = settings.task_ttls.get(call.task, {}).get(tier, getattr(settings, f"{tier}_ttl"))
        if ttl is None or settings.adaptive_window is None:
            return ttl
        window = settings.adaptive_window
        recent = sum(1 for lead, ts in seen_calls if lead == call.lead and ts > call.ts - window)
        return ttl / (1 + (recent / (window / 60)) / settings.adaptive_scale)

    def on(tier, call):  # enabled, and not turned off for the call's task by a TTL of 0 or its tiers
        listed = settings.task_options.get(call.task, {}).get("tiers")
        return (tier in enabled and settings.task_ttls.get(call.task, {}).get(tier, getattr(settings, f"{tier}_ttl")) != 0
                and (listed is None or tier in listed))

    def expiry(ttl, t):
        return float("inf") if ttl is None else t + ttl

    def live(cache, key, t):
        for e in cache:
            if e["key"] == key and t < e["expiry"]:
                return e
        return None

    def store(cache, cap, entry, t):
        for e in list(cache):
            if e["key"] == entry["key"]:
                cache.remove(e)
        if cap is not None and len(cache) + 1 > cap:
            for e in [e for e in cache if t >= e["expiry"]]:
                cache.remove(e)
            while len(cache) + 1 > cap:
                cache.remove(min(cache, key=lambda e: e["used"]))
        entry["used"] = tick()
        cache.append(entry)

    def lead_of_hit(origin_lead, call):  # origin_lead None: not a hit
        if cross_lead is not None:
            cross_lead.append(0 if origin_lead is None else 2 if NO_LEAD in (origin_lead, call.lead)
                              else int(origin_lead != call.lead))

    def judge(origin, call):
        lead_of_hit(origin["lead"], call)
        stale.append(origin["lead"] == call.lead and origin["seq"] < last_tag.get(call.lead, -1))
        if responses is not None:
            mismatched.append(answers_mismatch(settings, call.task, origin["answer"], responses[call.line],
                                               vector_of_answer))
            return
        a, b = origin["response"], call.response_digest
        if a is None or b is None:
            mismatched.append(0)
        elif UNPARSABLE in (a, b):
            mismatched.append(2)
        else:
            mismatched.append(int(a != b))

    for ev in events:
        t = ev.ts
        if isinstance(ev, TagChange):
            last_tag[ev.lead] = ev.seq
            l2[:] = [e for e in l2 if e["origin"]["lead"] != ev.lead]
            l3[:] = [e for e in l3 if e["origin"]["lead"] != ev.lead]
            if settings.invalidation == "broadcast":
                targets = list(l1)
            elif ev.worker is not None and settings.workers is None:
                targets = [ev.worker]
            else:
                targets = [last_worker[ev.lead]] if ev.lead in last_worker else []
            for w in targets:
                if w in l1:
                    l1[w][:] = [e for e in l1[w] if e["origin"]["lead"] != ev.lead]
            continue
        call: Call = ev
        worker = f"w{n_calls % settings.workers + 1}" if settings.workers else (call.worker or "default")
        n_calls += 1
        last_worker[call.lead] = worker
        seen_calls.append((call.lead, call.ts))
        mine = l1.setdefault(worker, [])
        if call.bypass:
            outcomes.append("bypass"); stale.append(False); mismatched.append(False); lead_of_hit(None, call)
            continue
        if call.keyless:
            outcomes.append("miss"); stale.append(False); mismatched.append(False); lead_of_hit(None, call)
            continue
        hit = None
        if on("l1", call):
            e = live(mine, call.key, t)
            if e is not None:
                e["used"] = tick()
                hit = ("l1", e["origin"])
        if hit is None and on("l2", call):
            e = live(l2, call.key, t)
            if e is not None:
                e["used"] = tick()
                hit = ("l2", e["origin"])
                if on("l1", call):
                    store(mine, settings.l1_max_entries,
                          {"key": call.key, "expiry": expiry(ttl_for("l1", call), t), "origin": e["origin"]}, t)
        if hit is None and on("l3", call):
            q = vector_of_text[call.text]
            best, best_sim = None, None
            for e in l3:  # in store order, so ">=" keeps the most recently stored of equal ones
                if (e["task"], e["model"], e["params"], e["scope"]) == (call.task, call.model, call.params, call.scope) \
                        and t < e["expiry"]:
                    sim = float(np.dot(e["vec"], q))
                    if best is None or sim >= best_sim:
                        best, best_sim = e, sim
            if best is not None and best_sim >= settings.threshold_for(call.task):
                best["used"] = tick()
                hit = ("l3", best["origin"])
                for name, cache, cap in (("l1", mine, settings.l1_max_entries), ("l2", l2, settings.l2_max_entries)):
                    if on(name, call):
                        store(cache, cap, {"key": call.key, "expiry": expiry(ttl_for(name, call), t), "origin": best["origin"]}, t)
        if hit is not None:
            outcomes.append(hit[0])
            judge(hit[1], call)
            continue
        origin = {"lead": call.lead, "seq": call.seq, "response": call.response_digest,
                  "answer": None if responses is None else responses[call.line]}
        if on("l1", call):
            store(mine, settings.l1_max_entries, {"key": call.key, "expiry": expiry(ttl_for("l1", call), t), "origin": origin}, t)
        if on("l2", call):
            store(l2, settings.l2_max_entries, {"key": call.key, "expiry": expiry(ttl_for("l2", call), t), "origin": origin}, t)
        if on("l3", call):
            store(l3, settings.l3_max_entries, {"key": call.key, "expiry": expiry(ttl_for("l3", call), t), "origin": origin, "params": call.params, "scope": call.scope,
                                                "task": call.task, "model": call.model, "vec": vector_of_text[call.text]}, t)
        outcomes.append("miss"); stale.append(False); mismatched.append(False); lead_of_hit(None, call)
    return outcomes, stale, mismatched
