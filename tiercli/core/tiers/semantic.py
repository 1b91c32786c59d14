"""The semantic tier (L3): a hit is the most similar live entry of the same task and model,
if its cosine similarity reaches the threshold. Vectors are unit-length, so cosine is a dot.

The answer is defined by each pair's own float32 dot product (np.dot of the entry's vector and
the query's): the highest among the live entries, ties to the most recently stored. Products
over many rows at once only narrow the search: their rounding differs from the pair's by at
most a known bound (`_slack`), so every live entry whose product comes within that bound of
the best one is scored again on its own, and the pair products decide. Three ways to narrow,
with the same answers:

- the scan: one matrix-vector product per look-up over the group's live rows (or over its
  distinct texts when entries share texts);
- blocked scoring, when the tier knows the calls to come (`expect`, which the replay calls):
  a group's upcoming look-ups, a block at a time, are scored in one matrix product against the
  entries live when the block starts. Each look-up then corrects for what changed since:
  entries stored inside the block are scored for it on their own, and entries that expired or
  were removed since are passed over when it picks its best;
- for large groups, the block's matrix product runs over the first PREFIX_SHARE of the
  coordinates only, after a rotation that puts most of the vectors' length there. The rest of
  a product is at most the product of the two remainders' lengths (Cauchy-Schwarz), so an entry
  whose bound falls short of a live entry's product cannot be the best; the few that remain
  are scored in full."""

from __future__ import annotations

import weakref
from collections.abc import Sequence

import numpy as np

from tiercli.core.events import Call
from tiercli.core.tiers.base import Entry, Origin, Store

PER_TEXT_BELOW = 0.5  # score per distinct text when there are fewer than this many per row
# A block holds between BLOCK_MIN and BLOCK_MAX upcoming look-ups, and about a quarter as many
# as there are live units to score (so that the entries stored inside a block, each scored on
# its own by the later look-ups, stay a small correction), with BLOCK_CELLS scores at most
# (64 MiB of float32). Below SCAN_BELOW live rows a group is scanned: too small to gain.
BLOCK_CELLS = 1 << 24
BLOCK_MIN, BLOCK_MAX = 32, 512
SCAN_BELOW = 1024
# Blocks over PRUNE_FROM units or more score a prefix of the rotated coordinates first (a
# quarter of them: 96 of the 384 of all-MiniLM-L6-v2), for vectors of up to PRUNE_MAX_DIM
# coordinates (finding the axes grows with its cube). Where that leaves more than PRUNE_USEFUL
# of the units to score in full, the group stops pruning for PRUNE_PAUSE blocks.
PRUNE_FROM = 4096
PRUNE_MAX_DIM = 1024
PREFIX_SHARE = 1 / 4
PRUNE_USEFUL = 1 / 8
PRUNE_PAUSE = 16
_NEVER = np.float32(-np.inf)
_NO_ROWS = np.zeros(0, dtype=np.int64)


def _slack(vectors: np.ndarray) -> float:
    """A bound on how far a product of two of these vectors computed in float32, in any order of
    summation (BLAS kernels, with or without FMA), is from the exact one: gamma_d * |x| * |y|
    (Higham, Accuracy and Stability of Numerical Algorithms, 3.1). Two computed products of a
    pair are within twice that of each other; a candidate must come within four times that of
    the best to possibly beat it; doubled again as a margin for the float32 comparisons."""
    dim = vectors.shape[1] if vectors.ndim == 2 else 0
    unit = 2.0 ** -24
    gamma = dim * unit / (1 - dim * unit)
    norm = float(np.sqrt(np.einsum("ij,ij->i", vectors, vectors, dtype=np.float64).max())) if len(vectors) else 1.0
    return 8 * gamma * max(norm, 1.0) ** 2


# Heads and tails (_Space.prefix) by id of the vectors array (and the heads' length), while the
# array lives: the tiers of a sweep's candidates share one array, and so one rotation.
_PREFIXES: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


class _Space:
    """The tier's vectors (one row per distinct text) and what every group's scoring shares: the
    slack, and (made when a block first needs it) each vector's first coordinates after a
    rotation, with the length of the rest."""

    def __init__(self, vectors: np.ndarray):
        self.vectors = vectors
        self.slack = _slack(vectors)
        self.dim = vectors.shape[1] if vectors.ndim == 2 else 0
        self.prefix_dims = max(8, int(self.dim * PREFIX_SHARE) // 8 * 8)

    def prefix(self) -> tuple[np.ndarray, np.ndarray]:
        """(heads, tails): per vector its first coordinates in the basis of the principal axes
        of the vectors' second moment (float32), and the length of its remaining coordinates
        (float64), the two computed in float64 so that head.head + tail * tail bounds the product
        of any two vectors up to float32 rounding."""
        key = (id(self.vectors), self.prefix_dims)
        made = _PREFIXES.get(key)
        if made is None:
            made = _PREFIXES[key] = self._rotate()
            weakref.finalize(self.vectors, _PREFIXES.pop, key, None)
        return made

    def _rotate(self) -> tuple[np.ndarray, np.ndarray]:
        vectors = self.vectors
        # Any orthonormal columns keep the bound exact; the principal axes (from a sample) make it tight.
        sample = vectors[::max(1, len(vectors) // 4096)].astype(np.float64)
        axes = np.linalg.eigh(sample.T @ sample)[1]  # by increasing eigenvalue
        basis = np.ascontiguousarray(axes[:, ::-1][:, :self.prefix_dims])
        heads = np.empty((len(vectors), self.prefix_dims), dtype=np.float32)
        tails = np.empty(len(vectors))
        for at in range(0, len(vectors), 8192):  # float64 in slices: a bounded copy
            chunk = vectors[at:at + 8192].astype(np.float64)
            head = chunk @ basis
            heads[at:at + 8192] = head
            tails[at:at + 8192] = np.sqrt(np.maximum(np.einsum("ij,ij->i", chunk, chunk)
                                                     - np.einsum("ij,ij->i", head, head), 0.0))
        return heads, tails


class _Queue:
    """The upcoming look-ups of one group, in processing order: each call's seq and the row of
    its text among the tier's vectors."""

    def __init__(self, seqs: list[int], rows: list[int]):
        self.seqs = np.asarray(seqs, dtype=np.int64)
        self.rows = np.asarray(rows, dtype=np.int64)
        self.cursor = 0

    def position(self, seq: int, text_row: int) -> int:
        """Where this call stands in the queue, or -1 when it is not there."""
        seqs, at = self.seqs, self.cursor
        if not (at < len(seqs) and seqs[at] == seq):
            at = int(np.searchsorted(seqs, seq))
            if at == len(seqs) or seqs[at] != seq:
                return -1
        if self.rows[at] != text_row:
            return -1
        self.cursor = at + 1
        return at


class _Block:
    """A run of upcoming look-ups of a group, scored against the units (distinct texts, or rows)
    that were live when the run started. Either every score (`scores`), or, pruned, the scores
    of the rotated heads (`heads`) with what bounds the rest: each query's tail length, each
    unit's, and per query the full score of the unit with the best head (`bound`)."""

    __slots__ = ("first", "end", "epoch", "rows_then", "t", "per_text", "units", "unit_expiry", "column_of",
                 "scores", "tops", "heads", "query_tails", "unit_tails", "unit_tail_max", "bound", "asked", "kept")

    def __init__(self, first, end, epoch, rows_then, t, per_text, units, unit_expiry, column_of):
        self.first, self.end, self.epoch, self.rows_then, self.t = first, end, epoch, rows_then, t
        self.per_text, self.units, self.unit_expiry = per_text, units, unit_expiry
        self.column_of = column_of  # look-up (position - first) -> its row of scores (queries repeat texts)
        self.scores = self.tops = self.heads = None
        self.asked = self.kept = 0  # look-ups answered from a pruned block, and the units they scored in full


def l3_group(call: Call) -> tuple[str, str, bytes | None, bytes | None]:
    """Which entries a call's L3 look-up searches, and which group its entry joins: those of its
    task and model stored under the same keyed request parameters (Call.params) and the same
    scope values (Call.scope), so a semantic hit never serves an answer asked for under other
    parameters, nor another scope's (another lead's, ZIP's, day's: docs/keys-and-scope.md "Keys and scope")."""
    return call.task, call.model, call.params, call.scope


class _Group:
    """The entries of one l3_group (task, model, parameters, scope): their vectors as rows, in store order, and the
    distinct texts among them, each scored once when many entries share a text."""

    def __init__(self, dim: int):
        self.vectors = np.zeros((16, dim), dtype=np.float32)
        self.expiry = np.full(16, -np.inf)  # a removed row expires at -inf: never live
        self.text_of = np.zeros(16, dtype=np.int64)  # each row's index into text_vectors
        self.keys: list[bytes | None] = []
        self.dead = 0
        self.live_from = 0  # rows before it are expired or removed
        self.text_vectors = np.zeros((16, dim), dtype=np.float32)
        self.text_index: dict[int, int] = {}  # universe row of a text -> its index here
        # Per text, for blocked scoring: its rows (ascending), its latest row, and an upper
        # bound of its rows' expiry (a removal does not lower it; a compaction recomputes it).
        self.rows_of_text: list[list[int]] = []
        self.last_row = np.zeros(16, dtype=np.int64)
        self.text_expiry = np.full(16, -np.inf)
        self.text_rows = np.zeros(16, dtype=np.int64)  # each text's row among the tier's vectors
        self.epoch = 0  # bumped when a compaction renumbers the rows
        self.queue: _Queue | None = None
        self.block: _Block | None = None
        self.prune_paused = 0  # blocks to go before pruning is tried again

    def append(self, vector: np.ndarray, text_row: int, expiry: float, key: bytes) -> int:
        row = len(self.keys)
        if row == len(self.expiry):
            size = 2 * row
            self.vectors = np.resize(self.vectors, (size, self.vectors.shape[1]))
            self.text_of = np.resize(self.text_of, size)
            self.expiry = np.resize(self.expiry, size)
            self.expiry[row:] = -np.inf
        text = self.text_index.get(text_row)
        if text is None:
            text = self.text_index[text_row] = len(self.text_index)
            if text == len(self.text_vectors):
                size = 2 * text
                self.text_vectors = np.resize(self.text_vectors, (size, self.text_vectors.shape[1]))
                self.last_row = np.resize(self.last_row, size)
                self.text_expiry = np.resize(self.text_expiry, size)
                self.text_rows = np.resize(self.text_rows, size)
            self.text_vectors[text] = vector
            self.text_rows[text] = text_row
            self.text_expiry[text] = -np.inf
            self.rows_of_text.append([])
        self.vectors[row] = vector
        self.text_of[row] = text
        self.expiry[row] = expiry
        self.keys.append(key)
        self.rows_of_text[text].append(row)
        self.last_row[text] = row
        if expiry > self.text_expiry[text]:
            self.text_expiry[text] = expiry
        return row

    def kill(self, row: int) -> None:
        self.expiry[row] = -np.inf
        self.keys[row] = None
        self.dead += 1

    def compact(self) -> list[bytes]:
        """Drops the removed rows, in place and in order (texts stay); returns the keys by row."""
        rows = np.array([row for row, key in enumerate(self.keys) if key is not None], dtype=np.int64)
        size = max(16, 2 * len(rows))

        def kept(values: np.ndarray, fill: float) -> np.ndarray:
            out = np.full((size, *values.shape[1:]), fill, dtype=values.dtype)
            out[:len(rows)] = values[rows]
            return out

        self.vectors, self.text_of = kept(self.vectors, 0), kept(self.text_of, 0)
        self.expiry = kept(self.expiry, -np.inf)
        self.keys = [self.keys[row] for row in rows]
        self.dead = self.live_from = 0
        texts = len(self.text_index)
        self.rows_of_text = [[] for _ in range(texts)]
        for row, text in enumerate(self.text_of[:len(rows)].tolist()):
            self.rows_of_text[text].append(row)
        self.last_row[:texts] = [found[-1] if found else -1 for found in self.rows_of_text]
        self.text_expiry[:texts] = -np.inf
        np.maximum.at(self.text_expiry, self.text_of[:len(rows)], self.expiry[:len(rows)])
        self.epoch += 1
        self.block = None
        return self.keys

    def skip_expired(self, t: float) -> int:
        """Moves `live_from` past the expired prefix and returns it. The look-up times of a
        replay never go back, so rows before it stay expired or removed."""
        n, start, expiry = len(self.keys), self.live_from, self.expiry
        while start < n and expiry[start] <= t:
            start += 1
        self.live_from = start
        return start

    def latest_per_text(self, rows: np.ndarray) -> np.ndarray:
        """The latest of the given rows (ascending) of each text: rows that share a text share
        their vector, so the pair products tie and the most recently stored one wins."""
        if len(rows) < 2:
            return rows
        backwards = rows[::-1]
        _, first = np.unique(self.text_of[backwards], return_index=True)
        return backwards[first]

    def pick(self, rows: np.ndarray, query: np.ndarray) -> tuple[int, float]:
        """Among candidate rows: the highest pair product, ties to the most recently stored."""
        best_row, best = -1, -np.inf
        for row in sorted(rows.tolist()):
            similarity = float(np.dot(self.vectors[row], query))
            if similarity >= best:
                best_row, best = row, similarity
        return best_row, best

    def scan(self, query: np.ndarray, t: float, slack: float) -> tuple[int, float]:
        """The live row most similar to the query and its similarity, or (-1, nan). Scores each
        distinct text once when texts repeat, as a cache's entries often do (a product over
        fewer rows), else each row."""
        n, start = len(self.keys), self.skip_expired(t)
        if start == n:
            return -1, np.nan
        texts = len(self.text_index)
        if texts < PER_TEXT_BELOW * (n - start):
            sims = np.take(self.text_vectors[:texts] @ query, self.text_of[start:n])
        else:
            sims = self.vectors[start:n] @ query
        np.copyto(sims, _NEVER, where=self.expiry[start:n] <= t)
        top = sims.max()
        if top == _NEVER:
            return -1, np.nan
        near = np.flatnonzero(sims >= top - np.float32(slack)) + start
        return self.pick(self.latest_per_text(near), query)

    def blocked(self, position: int, query: np.ndarray, t: float, space: _Space) -> tuple[int, float]:
        """As scan(), for the look-up at this position of the queue, from its block's scores."""
        block, slack = self.block, space.slack
        if block is None or not block.first <= position < block.end or block.epoch != self.epoch or t < block.t:
            if len(self.keys) - self.skip_expired(t) < SCAN_BELOW:
                self.block = None
                return self.scan(query, t, slack)
            block = self.block = self._new_block(position, t, space)
        column = block.column_of[position - block.first]
        if block.heads is None:
            old, old_top = self._old_candidates(block, column, t, slack)
        else:
            found = self._old_candidates_pruned(block, column, query, t, slack)
            if block.asked >= 8 and block.kept > PRUNE_USEFUL * len(block.units) * block.asked:
                self.prune_paused = PRUNE_PAUSE  # the bounds do not prune enough to pay: the
                self.block = None  # next look-up starts a block of full scores
            if found is None:  # every entry that could bound the rest died since the block began
                return self.scan(query, t, slack)
            old, old_top = found
        candidates = [old] if len(old) else []
        top = old_top
        n, then = len(self.keys), block.rows_then
        if n > then:  # stored inside the block: scored for this look-up on their own
            sims = self.vectors[then:n] @ query
            if sims.max() >= top - np.float32(slack):  # else none of them can be the best
                np.copyto(sims, _NEVER, where=self.expiry[then:n] <= t)
                new_top = sims.max()
                if new_top != _NEVER:
                    top = max(top, new_top)
                    candidates.append(np.flatnonzero(sims >= top - np.float32(slack)) + then)
        if top == _NEVER:
            return -1, np.nan
        if len(candidates) == 2 and old_top < top - np.float32(slack):
            candidates = candidates[1:]  # every old candidate is out of reach of the new best
        rows = candidates[0] if len(candidates) == 1 else np.sort(np.concatenate(candidates))
        return self.pick(self.latest_per_text(rows), query)

    def _new_block(self, position: int, t: float, space: _Space) -> _Block:
        """Scores the look-ups from this position on against the units live now: the distinct
        texts that still have a live row when entries share texts, else the live rows."""
        n, start = len(self.keys), self.skip_expired(t)
        live_rows = np.flatnonzero(self.expiry[start:n] > t) + start
        texts = len(self.text_index)
        live_texts = np.flatnonzero(self.text_expiry[:texts] > t)
        per_text = len(live_texts) < PER_TEXT_BELOW * len(live_rows)
        if per_text:
            units = live_texts
            unit_expiry = self.text_expiry[units]
        else:
            units = live_rows
            unit_expiry = self.expiry[units]
        size = max(1, min(BLOCK_MAX, BLOCK_CELLS // max(len(units), 1), max(BLOCK_MIN, len(units) // 4)))
        end = min(position + size, len(self.queue.seqs))
        texts_asked, column_of = np.unique(self.queue.rows[position:end], return_inverse=True)
        block = _Block(position, end, self.epoch, n, t, per_text, units, unit_expiry, column_of)
        queries = space.vectors[texts_asked]
        prune = len(units) >= max(PRUNE_FROM, 1) and space.prefix_dims < space.dim <= PRUNE_MAX_DIM
        if prune and not self.prune_paused:
            heads, tails = space.prefix()
            unit_text_rows = self.text_rows[units if per_text else self.text_of[units]]
            block.heads = heads[texts_asked] @ heads[unit_text_rows].T
            block.query_tails, block.unit_tails = tails[texts_asked], tails[unit_text_rows]
            block.unit_tail_max = float(block.unit_tails.max())
            # Each query's best head, scored in full: a live entry to measure the bounds against.
            best_head = block.heads.argmax(axis=1)
            block.bound = np.einsum("ij,ij->i", queries, self._unit_vectors(block, best_head), dtype=np.float32)
        else:
            self.prune_paused = max(0, self.prune_paused - 1)
            if per_text:
                unit_vectors = self.text_vectors[:texts] if len(units) == texts else self.text_vectors[units]
            else:
                unit_vectors = self.vectors[start:n] if len(units) == n - start else self.vectors[units]
            block.scores = queries @ unit_vectors.T
            block.tops = block.scores.max(axis=1) if len(units) else np.full(len(queries), _NEVER)
        return block

    def _unit_vectors(self, block: _Block, units: np.ndarray) -> np.ndarray:
        return (self.text_vectors if block.per_text else self.vectors)[block.units[units]]

    def _old_candidates(self, block: _Block, column: int, t: float, slack: float) -> tuple[np.ndarray, np.float32]:
        """Among the rows stored before the block, those live at t whose block score is within
        the slack of the best live one's, and that best score."""
        top = block.tops[column]
        if top == _NEVER:
            return _NO_ROWS, _NEVER
        scores = block.scores[column]
        near = np.flatnonzero(scores >= top - np.float32(slack))  # usually the best alone
        if len(near) == 1 and (row := self._live_row(block, int(near[0]), t)) >= 0:
            return np.array([row]), top
        rows = self._live_rows(block, near, t)
        found = rows >= 0
        if found[scores[near] == top].any():  # the best unit is still live: the usual case
            return rows[found], top
        # The best ones died since the block began: take the live units' best, masking the
        # units dead by their expiry bound, then any that a removal killed, until one is live.
        scores = np.where(block.unit_expiry > t, scores, _NEVER)
        scores[near[~found]] = _NEVER
        while True:
            top = scores.max()
            if top == _NEVER:
                return _NO_ROWS, _NEVER
            near = np.flatnonzero(scores >= top - np.float32(slack))
            rows = self._live_rows(block, near, t)
            found = rows >= 0
            if found[scores[near] == top].any():
                return rows[found], top
            scores[near[~found]] = _NEVER

    def _old_candidates_pruned(self, block: _Block, column: int, query: np.ndarray, t: float,
                               slack: float) -> tuple[np.ndarray, np.float32] | None:
        """As _old_candidates, from a pruned block; None when no live unit scores within the
        slack of the block's bound any more (the look-up is then scanned).

        Why it is exact, with g = slack / 8 (the rounding bound of one product): a unit is
        passed over when its head score plus the product of the two tail lengths falls short of
        the bound by two slacks (16 g). Its exact product is at most that sum plus the rounding
        of the float32 heads and of their product (under g / 4), and its pair product is
        within g of the exact one: below the bound less 14 g. A live unit that scores within a
        slack (8 g) of the bound has a pair product above the bound less 10 g. So a unit passed
        over can neither beat nor tie it."""
        margin = 2 * slack
        heads, bound, query_tail = block.heads[column], float(block.bound[column]), float(block.query_tails[column])
        units = np.flatnonzero(heads >= bound - margin - query_tail * block.unit_tail_max)
        if len(units) > 16:  # the same with each unit's own tail length
            units = units[heads[units] + query_tail * block.unit_tails[units] >= bound - margin]
        block.asked += 1
        block.kept += len(units)
        scores = self._unit_vectors(block, units) @ query
        while len(units):
            top = scores.max()
            if top < bound - slack:
                break
            near = np.flatnonzero(scores >= top - np.float32(slack))
            if len(near) == 1 and (row := self._live_row(block, int(units[near[0]]), t)) >= 0:
                return np.array([row]), top  # the best alone, and live: the usual case
            rows = self._live_rows(block, units[near], t)
            live = rows >= 0
            if live[scores[near] == top].any():  # the best is live
                return rows[live], top
            keep = np.ones(len(units), dtype=bool)  # some of the best died since the block began
            keep[near[~live]] = False
            units, scores = units[keep], scores[keep]
        return None

    def _live_row(self, block: _Block, unit: int, t: float) -> int:
        """_live_rows for one unit, without arrays (most look-ups have one candidate)."""
        if not block.per_text:
            row = int(block.units[unit])
            return row if self.expiry[row] > t else -1
        text = int(block.units[unit])
        for row in reversed(self.rows_of_text[text]):  # the latest first: usually it
            if row < block.rows_then and self.expiry[row] > t:
                return row
        return -1

    def _live_rows(self, block: _Block, units: np.ndarray, t: float) -> np.ndarray:
        """For each unit: its latest row stored before the block that is live at t, or -1."""
        expiry, then = self.expiry, block.rows_then
        if not block.per_text:
            rows = block.units[units]
            return np.where(expiry[rows] > t, rows, -1)
        texts = block.units[units]
        rows = self.last_row[texts]  # a unit's text has rows (its expiry bound was above the block's time)
        ok = (rows < then) & (expiry[rows] > t)
        if ok.all():
            return rows
        rows = rows.copy()
        for i in np.flatnonzero(~ok).tolist():  # walk back past rows stored since, or dead
            rows[i] = -1
            for row in reversed(self.rows_of_text[texts[i]]):
                if row < then and expiry[row] > t:
                    rows[i] = row
                    break
        return rows


class SemanticTier(Store):
    per_worker = False

    def __init__(self, name: str, ttl_of, max_entries: int | None, threshold: float,
                 vectors: np.ndarray, row_of_text: dict[str, int], threshold_of=None):
        super().__init__(name, ttl_of, max_entries)
        self.threshold = threshold
        self.threshold_of = threshold_of  # task -> its threshold ([tasks.NAME] l3_threshold); None: one for all
        self.vectors = vectors  # one unit-length row per distinct call text
        self.row_of_text = row_of_text
        self.groups: dict[tuple, _Group] = {}  # by l3_group
        self.group_of: dict[bytes, tuple] = {}
        self.queues: dict[tuple, _Queue] = {}
        self.space = _Space(vectors)

    def expect(self, calls: Sequence[Call]) -> None:
        """The calls to come, in processing order (the replay gives them all before the first
        event): each group's look-ups are then scored a block at a time. A look-up of a call
        not among them is scanned, with the same answer."""
        seqs: dict[tuple, list[int]] = {}
        rows: dict[tuple, list[int]] = {}
        row_of_text = self.row_of_text
        for call in calls:
            if call.bypass or call.keyless:
                continue
            row = row_of_text.get(call.text)
            if row is None:  # not embedded: L3 is off for its task
                continue
            group_key = l3_group(call)
            found = seqs.get(group_key)
            if found is None:
                found = seqs[group_key] = []
                rows[group_key] = []
            found.append(call.seq)
            rows[group_key].append(row)
        self.queues = {}
        for group_key, group_seqs in seqs.items():
            if all(a < b for a, b in zip(group_seqs, group_seqs[1:])):  # else searchsorted cannot place a call
                self.queues[group_key] = _Queue(group_seqs, rows[group_key])
        for group_key, group in self.groups.items():
            group.queue, group.block = self.queues.get(group_key), None

    def find(self, call: Call, worker: str, t: float) -> tuple[Entry | None, float | None]:
        group = self.groups.get(l3_group(call))
        if group is None or len(group.keys) == group.dead:
            return None, None
        text_row = self.row_of_text[call.text]
        query = self.vectors[text_row]
        position = -1 if group.queue is None else group.queue.position(call.seq, text_row)
        if position < 0:
            row, similarity = group.scan(query, t, self.space.slack)
        else:
            row, similarity = group.blocked(position, query, t, self.space)
        if row < 0:  # nothing live
            return None, None
        threshold = self.threshold if self.threshold_of is None else self.threshold_of(call.task)
        if similarity < threshold:
            return None, similarity
        key = group.keys[row]
        self.touch(key)
        return self.entries[key], similarity

    def insert(self, call: Call, worker: str, origin: Origin, t: float) -> None:
        entry = Entry(call.key, self.expiry_for(call, t), origin)
        group_key = l3_group(call)
        if call.key in self.entries:
            self.discard(call.key)  # before put() so the old row dies before the new one is added
        self.put(entry, t)  # may drop other entries (capacity, expiry) and so compact the group
        group = self.groups.get(group_key)
        if group is None:
            group = self.groups[group_key] = _Group(self.vectors.shape[1])
            group.queue = self.queues.get(group_key)
        text_row = self.row_of_text[call.text]
        entry.slot = group.append(self.vectors[text_row], text_row, entry.expiry, call.key)
        self.group_of[call.key] = group_key

    def remove_lead(self, lead: str, t: float, worker: str | None = None) -> int:
        return self.remove_lead_entries(lead, t)

    def _removed(self, entry: Entry) -> None:
        group = self.groups[self.group_of.pop(entry.key)]
        group.kill(entry.slot)
        if group.dead > 1024 and group.dead * 2 > len(group.keys):
            for row, key in enumerate(group.compact()):
                self.entries[key].slot = row
