"""The replay of a sweep's candidates, with what they share computed once (README "How the
sweep shares work").

A tune-ttl candidate changes TTLs and the L3 threshold only. Everything else a replay works out
is the same for every candidate, so `SharedReplay` works it out once per sweep:

- each call's key, worker, lead and task as small integers (the workers as the sequential
  replay assigns them, round-robin included), and each tag change's worker;
- for each call, the seq of its lead's latest tag change before it (what `stale` compares);
- for each distinct L3 text of an L3 group (task, model, keyed request parameters and scope:
  tiers/semantic.py `l3_group`), the other texts of that group whose products
  with it reach the lowest threshold any candidate uses (less a rounding margin), best first.

A candidate then replays over integers: its exact tiers are dictionaries, and its L3 look-up
walks the query's list of near texts for the first that has a live entry, instead of scoring
every live entry. The answers are the engine's (tiercli/engine/replay.py and its tiers), call
for call; tests/test_shared_replay.py checks that on random logs and on the sample.

Why the L3 answer is the same. The tier's answer is the live entry with the highest pair
product (np.dot of the entry's vector and the query's), ties to the latest stored, and a hit
when that product reaches the threshold. Entries of one text share a vector, so the latest live
one stands for them all; and within a (task, model) one TTL holds, so expiries grow with store
order and a text has a live entry exactly when its latest valid entry (not replaced, not
removed by a tag change) has not expired. The lists hold every text whose matrix product is
within the slack of the lowest threshold (tiers/semantic.py `_slack`: a matrix product and a
pair product of the same two vectors differ by less than a quarter of it). A text left out has
a pair product under the threshold, so it can be the best live entry only when the look-up
misses anyway. In the list, the first text with a live entry has the highest matrix product
among them; any text whose matrix product is a slack or more below it has a lower pair product,
so the pair products of the texts within the slack decide, ties to the latest stored.

Not shared (`unsupported` says why, and the sweep replays such candidates with the engine): a
capacity limit (LRU order is state a dictionary does not keep), L2 in Redis, and the adaptive
TTL (an entry's TTL then varies within a (task, model))."""

from __future__ import annotations

from array import array
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from tiercli.core.answers import UNPARSABLE, AnswerJudge
from tiercli.engine.replay import BYPASS, MISS, OUTCOMES, ReplayOutcome, fixed_workers
from tiercli.core.tiers.semantic import _slack, l3_group
from tiercli.core.events import Call, Event, TagChange
from tiercli.settings import TIER_NAMES, Settings

L1, L2, L3 = (OUTCOMES.index(t) for t in TIER_NAMES)
INF = float("inf")
NO_ANSWER, UNREADABLE = -1, -2  # a call's answer id when none was recorded, or it is UNPARSABLE
# texts scored at once when the near lists are made: up to 1,024, and 4M scores (16 MB, and
# bounded temporaries when nearly every pair is near)
NEAR_BLOCK, NEAR_BLOCK_CELLS = 1024, 1 << 22
NEAR_MAX_PAIRS = 50_000_000  # 400 MB of near lists at most (8 bytes a pair)
# and at most this many products to make them (each group's distinct texts squared): about a
# minute of BLAS on 2 cores, against a replay's blocked scoring of the same texts
NEAR_MAX_PRODUCTS = 4_000_000_000
WALK = 16  # near texts a look-up tries one by one before comparing the rest at once


def unsupported(settings: Settings) -> str | None:
    """Why candidates with these settings are replayed by the engine instead (None: shared)."""
    capped = settings.capped_tiers()
    if capped:
        return f"{capped[0]} has a capacity limit"
    if settings.l2_redis_url:
        return "L2 lives in Redis"
    if settings.adaptive_window is not None:
        return "the TTL is adaptive"
    return None



class _NearTexts:
    """Per L3 text: the texts of its (task, model) whose matrix product with it reaches
    `threshold` less the slack, highest first, in one CSR layout (`starts`, `ids`, `scores`).
    Texts are numbered group by group, so each group is one contiguous range."""

    def __init__(self, vectors: np.ndarray | None, text_rows: np.ndarray, group_bounds: list[tuple[int, int]],
                 threshold: float, slack: float):
        self.threshold = threshold
        products = sum((end - first) ** 2 for first, end in group_bounds)
        if products > NEAR_MAX_PRODUCTS:
            raise _TooNear(f"the L3 near lists would take {products:,} products of vectors to make "
                           f"(more than {NEAR_MAX_PRODUCTS:,}: a (task, model) has too many distinct texts)")
        floor = np.float32(threshold - slack)
        counts = np.zeros(len(text_rows), dtype=np.int64)
        ids_parts, score_parts, pairs = [], [], 0
        for first, end in group_bounds:
            own = vectors[text_rows[first:end]]
            block = max(16, min(NEAR_BLOCK, NEAR_BLOCK_CELLS // (end - first)))
            for at in range(0, end - first, block):
                scores = own[at:at + block] @ own.T
                rows, cols = np.nonzero(scores >= floor)
                values = scores[rows, cols]
                order = np.lexsort((-values, rows))  # by query text, then highest first
                counts[first + at:first + at + len(scores)] = np.bincount(rows, minlength=len(scores))
                ids_parts.append((cols[order] + first).astype(np.int32))
                score_parts.append(values[order])
                pairs += len(rows)
                if pairs > NEAR_MAX_PAIRS:
                    raise _TooNear(f"the L3 near lists would hold more than {NEAR_MAX_PAIRS:,} pairs of texts")
        self.starts = [0, *np.cumsum(counts).tolist()]
        self.ids = np.concatenate(ids_parts) if ids_parts else np.zeros(0, dtype=np.int32)
        self.scores = np.concatenate(score_parts) if score_parts else np.zeros(0, dtype=np.float32)
        self.itemize()

    def itemize(self) -> None:
        """Moves the lists into arrays of the standard library, whose items read one at a time
        as Python numbers, and keeps `ids` and `scores` as numpy views of them (one copy)."""
        self.id_items, self.score_items = array("i", self.ids.tobytes()), array("f", self.scores.tobytes())
        self.ids = np.frombuffer(self.id_items, dtype=np.int32)
        self.scores = np.frombuffer(self.score_items, dtype=np.float32)

    @property
    def pairs(self) -> int:
        return len(self.id_items)


class _TooNear(Exception):
    """The near lists would take more memory than they are worth: the engine replays instead."""


class SharedReplay:
    """What a sweep's candidates share, and `run(settings)`: a candidate's replay outcome,
    equal to engine.replay's call for call in outcome, stale, mismatched, source, look-up
    latency and worker. `similarity` is kept for L3 hits only (NaN elsewhere): no figure of a
    sweep reads it."""

    def __init__(self, events: Sequence[Event], base: Settings, vectors: np.ndarray | None,
                 row_of_text: dict[str, int] | None, judge: AnswerJudge):
        self.base, self.vectors = base, vectors
        self.judge = judge if judge.uses_embedding else None  # as the engine: digests decide the rest
        self.calls: list[Call] = [e for e in events if isinstance(e, Call)]
        self.broadcast = base.invalidation == "broadcast"
        ids: dict[str, dict] = {"key": {}, "lead": {}, "task": {}, "worker": {}, "answer": {}}

        def number(kind: str, value) -> int:
            found = ids[kind].get(value)
            if found is None:
                found = ids[kind][value] = len(ids[kind])
            return found

        text_ids: dict[tuple, int] = {}  # (l3_group, text row) -> its number, in first-seen order
        last_tag_seq: dict[str, int] = {}
        # One tuple per event. A call: (index, kind, key, (worker, key), lead, task, L3 text),
        # kind 0 looked up, 1 bypassed, 2 keyless; a tag change: (-1, lead, its worker or -1).
        steps: list[tuple] = []
        self.worker_of_call: list[str] = []
        self.lead_of, self.seq_of, self.tag_before, self.answer_of, self.ts_of = [], [], [], [], []
        self.key_of, self.text_of = [], []
        untexted: set[str] = set()  # tasks with a looked-up call whose text has no vector
        for event, name in fixed_workers(events, base):
            lead = number("lead", event.lead)
            if isinstance(event, TagChange):
                steps.append((-1, lead, -1 if name is None else number("worker", name)))
                last_tag_seq[event.lead] = event.seq
                continue
            call, index = event, len(self.worker_of_call)
            worker = number("worker", name)
            self.worker_of_call.append(name)
            self.lead_of.append(lead)
            self.seq_of.append(call.seq)
            self.ts_of.append(call.ts)
            self.tag_before.append(last_tag_seq.get(call.lead, -1))
            digest = call.response_digest
            self.answer_of.append(NO_ANSWER if digest is None else UNREADABLE if digest == UNPARSABLE
                                  else number("answer", digest))
            task = number("task", call.task)
            if call.bypass or call.keyless:
                steps.append((index, 1 if call.bypass else 2, -1, None, lead, task, -1))
                self.key_of.append(-1)
                self.text_of.append(-1)
                continue
            key = number("key", call.key)
            row = None if row_of_text is None else row_of_text.get(call.text)
            text = -1
            if row is None:
                untexted.add(call.task)
            else:
                text = text_ids.setdefault((l3_group(call), row), len(text_ids))
            steps.append((index, 0, key, (worker, key), lead, task, text))
            self.key_of.append(key)
            self.text_of.append(text)
        self.task_names = list(ids["task"])
        self.untexted = untexted
        self.n_calls, self.n_leads = len(self.worker_of_call), len(ids["lead"])
        self.answer_digests = list(ids["answer"])
        self.tag_changes = sum(1 for step in steps if step[0] < 0)
        # The L3 texts renumbered group by group, so that each group is a range.
        by_group: dict[tuple, list[tuple[int, int]]] = {}
        for (group, row), text in text_ids.items():
            by_group.setdefault(group, []).append((text, row))
        renumber = [0] * len(text_ids)
        rows, self.group_bounds = [], []
        for members in by_group.values():
            self.group_bounds.append((len(rows), len(rows) + len(members)))
            for text, row in members:
                renumber[text] = len(rows)
                rows.append(row)
        self.text_rows = np.asarray(rows, dtype=np.int64)
        self.n_texts = len(rows)
        self.text_of = [renumber[t] if t >= 0 else -1 for t in self.text_of]
        self.steps = [s if s[0] < 0 or s[6] < 0 else (*s[:6], renumber[s[6]]) for s in steps]
        self.slack = _slack(vectors) if vectors is not None and self.n_texts else 0.0
        self.near: _NearTexts | None = None
        self.too_near: str | None = None  # why there are no near lists, when they would be too large
        self.pair_products: dict[int, float] = {}  # query text * n_texts + entry text -> np.dot of the two

    # --- what is shared -------------------------------------------------------------------------

    def unsupported(self, settings: Settings) -> str | None:
        """Why these settings' replay cannot run here (None: it can)."""
        reason = unsupported(settings)
        if reason is not None:
            return reason
        if (settings.workers, settings.invalidation) != (self.base.workers, self.base.invalidation):
            return "the workers or the invalidation differ from the sweep's"
        l3_tasks = self._l3_tasks(settings)
        if l3_tasks:
            if self.untexted.intersection(l3_tasks):
                return "some L3 texts have no vectors"
            if self.too_near is not None:
                return self.too_near
            if self.n_texts and (self.near is None or self.near.threshold > self._lowest(settings, l3_tasks)):
                return "its L3 threshold is below the lowest the sweep prepared for"
        return None

    def _l3_tasks(self, settings: Settings) -> list[str]:
        return [task for task in self.task_names if not settings.off_for_task("l3", task)]

    @staticmethod
    def _lowest(settings: Settings, l3_tasks: list[str]) -> float:
        return min(settings.threshold_for(task) for task in l3_tasks)

    def prepare(self, candidates: Sequence[Settings]) -> None:
        """Makes the near lists down to the lowest threshold these settings use for a task with L3 on."""
        floors = [self._lowest(s, tasks) for s in candidates if (tasks := self._l3_tasks(s))]
        if not floors or not self.n_texts or self.too_near is not None:
            return
        lowest = min(floors)
        if self.near is None or self.near.threshold > lowest:
            try:
                self.near = _NearTexts(self.vectors, self.text_rows, self.group_bounds, lowest, self.slack)
            except _TooNear as exc:  # candidates with L3 on are replayed by the engine
                self.near, self.too_near = None, str(exc)

    def _pair_product(self, query: int, text: int) -> float:
        found = self.pair_products.get(query * self.n_texts + text)
        if found is None:
            vectors = self.vectors
            # the engine's order: the entry's vector, then the query's (tiers/semantic.py pick)
            found = float(np.dot(vectors[self.text_rows[text]], vectors[self.text_rows[query]]))
            self.pair_products[query * self.n_texts + text] = found
        return found

    # --- one candidate --------------------------------------------------------------------------

    def run(self, settings: Settings) -> ReplayOutcome:
        reason = self.unsupported(settings)
        if reason is not None:
            raise ValueError(f"a shared replay cannot run these settings: {reason}")
        n = self.n_calls
        outcome, stale, mismatched = array("b", bytes(n)), array("b", bytes(n)), array("b", bytes(n))
        source_seq = array("q", [-1]) * n
        lookup_ms = array("d", [0.0]) * n
        similarity = array("d", [float("nan")]) * n
        # per task: which tiers are on, their TTLs, the look-up latency of a hit at each and of a miss
        on, ttls, hit_ms, miss_ms, thresholds = [], [], [], [], []
        for task in self.task_names:
            on.append([not settings.off_for_task(t, task) for t in TIER_NAMES])
            ttls.append([INF if (v := settings.task_ttl(t, task)) is None else v for t in TIER_NAMES])
            total, at_level = 0.0, [0.0, 0.0, 0.0]
            for level, tier in enumerate(TIER_NAMES):
                if on[-1][level]:
                    total += settings.latency_ms(tier)
                    at_level[level] = total
            hit_ms.append(at_level)
            miss_ms.append(total)
            thresholds.append(settings.threshold_for(task))
        l1_store: dict[tuple, tuple] = {}  # (worker, key) -> (expiry, origin call, event position)
        l2_store: dict[int, tuple] = {}  # key -> the same
        shared_cut: dict[int, int] = {}  # lead -> position of its latest tag change
        l1_cut: dict[int, int] = {}  # broadcast: lead; else worker * leads + lead -> that position
        worker_stride = 0 if self.broadcast else self.n_leads
        # L3: the current entry of each key, the entries each text was stored with (latest last)
        # and each lead stored, and per text the expiry and origin of its latest valid entry
        l3_key: dict[int, int] = {}
        l3_expiry: dict[int, float] = {}
        of_text: dict[int, list[int]] = defaultdict(list)
        of_lead: dict[int, list[int]] = defaultdict(list)
        text_expiry = np.full(self.n_texts, -INF)
        text_latest = [-1] * self.n_texts
        lead_of, seq_of, tag_before, answer_of, ts_of = self.lead_of, self.seq_of, self.tag_before, self.answer_of, self.ts_of
        key_of, text_of = self.key_of, self.text_of
        near = self.near
        starts = near.starts if near is not None else []
        near_ids = near.ids if near is not None else None
        ids, scores = (near.id_items, near.score_items) if near is not None else (None, None)
        slack = self.slack
        live_until = [-INF] * self.n_texts  # text_expiry as a list: items read one at a time
        pair_product = self._pair_product
        differs: dict[tuple, int] = {}
        judge, digests = self.judge, self.answer_digests

        for position, step in enumerate(self.steps):
            index = step[0]
            if index < 0:  # a tag change
                lead = step[1]
                shared_cut[lead] = position
                if self.broadcast:
                    l1_cut[lead] = position
                elif step[2] >= 0:
                    l1_cut[step[2] * worker_stride + lead] = position
                gone = of_lead.pop(lead, None)
                if gone:
                    touched = set()
                    for origin in gone:
                        if l3_key.get(key_of[origin]) == origin:
                            del l3_key[key_of[origin]]
                            touched.add(text_of[origin])
                    for text in touched:
                        stack = of_text[text]
                        while stack and l3_key.get(key_of[stack[-1]]) != stack[-1]:
                            stack.pop()
                        text_expiry[text] = live_until[text] = l3_expiry[stack[-1]] if stack else -INF
                        text_latest[text] = stack[-1] if stack else -1
                continue
            _, kind, key, worker_key, lead, task, text = step
            if kind:
                outcome[index] = BYPASS if kind == 1 else MISS
                continue
            t = ts_of[index]
            on1, on2, on3 = on[task]
            found = -1
            if on1:
                entry = l1_store.get(worker_key)
                if entry is not None and t < entry[0] \
                        and l1_cut.get(worker_key[0] * worker_stride + lead_of[entry[1]], -1) < entry[2]:
                    found, level = entry[1], L1
            if found < 0 and on2:
                entry = l2_store.get(key)
                if entry is not None and t < entry[0] and shared_cut.get(lead_of[entry[1]], -1) < entry[2]:
                    found, level = entry[1], L2
                    if on1:
                        l1_store[worker_key] = (t + ttls[task][0], found, position)
            if found < 0 and on3:
                # the first text of the query's near list with a live entry: a walk over its
                # head, then one vector comparison over the rest (dense groups, short TTLs)
                first, end = starts[text], starts[text + 1]
                at, head_end = -1, first + WALK
                if head_end > end:
                    head_end = end
                for j in range(first, head_end):
                    if live_until[ids[j]] > t:
                        at = j
                        break
                if at < 0 and head_end < end:
                    live = text_expiry[near_ids[head_end:end]] > t
                    j = int(live.argmax())
                    if live[j]:
                        at = head_end + j
                if at >= 0:
                    best_text = ids[at]
                    best = pair_product(text, best_text)
                    edge = scores[at] - slack
                    j = at + 1
                    while j < end and scores[j] >= edge:  # within the slack: the pair products decide
                        other = ids[j]
                        if live_until[other] > t:
                            product = pair_product(text, other)
                            if product > best or (product == best and text_latest[other] > text_latest[best_text]):
                                best, best_text = product, other
                        j += 1
                    if best >= thresholds[task]:
                        found, level = text_latest[best_text], L3
                        similarity[index] = best
                        if on1:
                            l1_store[worker_key] = (t + ttls[task][0], found, position)
                        if on2:
                            l2_store[key] = (t + ttls[task][1], found, position)
            if found < 0:  # a miss: stored in every tier on for the task
                task_ttls = ttls[task]
                if on1:
                    l1_store[worker_key] = (t + task_ttls[0], index, position)
                if on2:
                    l2_store[key] = (t + task_ttls[1], index, position)
                if on3:
                    expiry = t + task_ttls[2]
                    replaced = l3_key.get(key)
                    l3_key[key] = index
                    if replaced is not None and text_of[replaced] != text:
                        # the key's entry had another text (key parts that leave the L3 text out,
                        # key = "scope-only" say): it is gone from that text's entries
                        stack = of_text[text_of[replaced]]
                        while stack and l3_key.get(key_of[stack[-1]]) != stack[-1]:
                            stack.pop()
                        gone_text = text_of[replaced]
                        text_expiry[gone_text] = live_until[gone_text] = l3_expiry[stack[-1]] if stack else -INF
                        text_latest[gone_text] = stack[-1] if stack else -1
                    l3_expiry[index] = expiry
                    of_text[text].append(index)
                    text_expiry[text] = live_until[text] = expiry
                    text_latest[text] = index
                    of_lead[lead].append(index)
                outcome[index] = MISS
                lookup_ms[index] = miss_ms[task]
                continue
            outcome[index] = level
            lookup_ms[index] = hit_ms[task][level]
            source_seq[index] = seq_of[found]
            if lead_of[found] == lead and seq_of[found] < tag_before[index]:
                stale[index] = 1
            a, b = answer_of[found], answer_of[index]
            if a == NO_ANSWER or b == NO_ANSWER or (a == b and a != UNREADABLE):
                continue
            if a == UNREADABLE or b == UNREADABLE:
                mismatched[index] = 2
            elif judge is None:
                mismatched[index] = 1
            else:
                pair = (task, a, b)
                verdict = differs.get(pair)
                if verdict is None:
                    verdict = differs[pair] = 1 if judge.differ(self.task_names[task], digests[a], digests[b]) else 0
                mismatched[index] = verdict
        result = ReplayOutcome(calls=self.calls, worker=self.worker_of_call, outcome=outcome, stale=stale,
                               mismatched=mismatched, similarity=similarity, source_seq=source_seq,
                               lookup_ms=lookup_ms)
        result.tag_changes = self.tag_changes
        return result
