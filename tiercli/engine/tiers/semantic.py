"""The semantic tier (L3): a hit is the most similar live entry of the same task and model,
if its cosine similarity reaches the threshold. Vectors are unit-length, so cosine is a dot."""

from __future__ import annotations

import numpy as np

from tiercli.ingest.events import Call
from tiercli.engine.tiers.base import Entry, Origin, Store

PER_TEXT_BELOW = 0.5  # score per distinct text when there are fewer than this many per row


class _Group:
    """The entries of one (task, model): their vectors as rows, in store order, and the
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
                self.text_vectors = np.resize(self.text_vectors, (2 * text, self.text_vectors.shape[1]))
            self.text_vectors[text] = vector
        self.vectors[row] = vector
        self.text_of[row] = text
        self.expiry[row] = expiry
        self.keys.append(key)
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

        self.vectors, self.text_of, self.expiry = kept(self.vectors, 0), kept(self.text_of, 0), kept(self.expiry, -np.inf)
        self.keys = [self.keys[row] for row in rows]
        self.dead = self.live_from = 0
        return self.keys

    def best(self, query: np.ndarray, t: float) -> int:
        """The row of the live entry most similar to the query (ties: the most recently
        stored), or -1. Rows before `live_from` are expired or removed; the look-up times of a
        replay never go back, so they stay so. Scores each distinct text once when texts
        repeat, as a cache's entries often do (a product over fewer rows), else each row."""
        n, start, expiry = len(self.keys), self.live_from, self.expiry
        while start < n and expiry[start] <= t:
            start += 1
        self.live_from = start
        if start == n:
            return -1
        texts = len(self.text_index)
        if texts < PER_TEXT_BELOW * (n - start):
            sims = np.take(self.text_vectors[:texts] @ query, self.text_of[start:n])
        else:
            sims = self.vectors[start:n] @ query
        np.copyto(sims, _NEVER, where=expiry[start:n] <= t)
        top = sims.max()
        if top == _NEVER:
            return -1
        return start + int(np.flatnonzero(sims == top)[-1])


_NEVER = np.float32(-np.inf)


class SemanticTier(Store):
    per_worker = False

    def __init__(self, name: str, ttl_of, max_entries: int | None, threshold: float,
                 vectors: np.ndarray, row_of_text: dict[str, int], threshold_of=None):
        super().__init__(name, ttl_of, max_entries)
        self.threshold = threshold
        self.threshold_of = threshold_of  # task -> its threshold ([tasks.NAME] l3_threshold); None: one for all
        self.vectors = vectors  # one unit-length row per distinct call text
        self.row_of_text = row_of_text
        self.groups: dict[tuple[str, str], _Group] = {}
        self.group_of: dict[str, tuple[str, str]] = {}

    def find(self, call: Call, worker: str, t: float) -> tuple[Entry | None, float | None]:
        group = self.groups.get((call.task, call.model))
        if group is None or len(group.keys) == group.dead:
            return None, None
        query = self.vectors[self.row_of_text[call.text]]
        row = group.best(query, t)
        if row < 0:  # nothing live
            return None, None
        # Reported and compared: the pair's own dot product, whichever product found the row
        # (a matrix product's rounding depends on the rows it ran over).
        similarity = float(np.dot(group.vectors[row], query))
        threshold = self.threshold if self.threshold_of is None else self.threshold_of(call.task)
        if similarity < threshold:
            return None, similarity
        key = group.keys[row]
        self.touch(key)
        return self.entries[key], similarity

    def insert(self, call: Call, worker: str, origin: Origin, t: float) -> None:
        entry = Entry(call.key, self.expiry_for(call, t), origin)
        group_key = (call.task, call.model)
        if call.key in self.entries:
            self.discard(call.key)  # before put() so the old row dies before the new one is added
        self.put(entry, t)  # may drop other entries (capacity, expiry) and so compact the group
        group = self.groups.get(group_key)
        if group is None:
            group = self.groups[group_key] = _Group(self.vectors.shape[1])
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
