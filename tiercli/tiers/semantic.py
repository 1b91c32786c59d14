"""The semantic tier (L3): a hit is the most similar live entry of the same task and model,
if its cosine similarity reaches the threshold. Vectors are unit-length, so cosine is a dot."""

from __future__ import annotations

import numpy as np

from tiercli.events import Call
from tiercli.tiers.base import Entry, Origin, Store


class _Group:
    """The entries of one (task, model): their vectors as rows, in store order."""

    def __init__(self, dim: int):
        self.vectors = np.zeros((16, dim), dtype=np.float32)
        self.expiry = np.full(16, -np.inf)  # a removed row expires at -inf: never live
        self.keys: list[str | None] = []
        self.dead = 0

    def append(self, vector: np.ndarray, expiry: float, key: bytes) -> int:
        row = len(self.keys)
        if row == len(self.expiry):
            size = 2 * row
            self.vectors = np.resize(self.vectors, (size, self.vectors.shape[1]))
            self.expiry = np.resize(self.expiry, size)
            self.expiry[row:] = -np.inf
        self.vectors[row] = vector
        self.expiry[row] = expiry
        self.keys.append(key)
        return row

    def kill(self, row: int) -> None:
        self.expiry[row] = -np.inf
        self.keys[row] = None
        self.dead += 1


class SemanticTier(Store):
    per_worker = False

    def __init__(self, name: str, ttl_of, max_entries: int | None, threshold: float,
                 vectors: np.ndarray, row_of_text: dict[str, int]):
        super().__init__(name, ttl_of, max_entries)
        self.threshold = threshold
        self.vectors = vectors  # one unit-length row per distinct call text
        self.row_of_text = row_of_text
        self.groups: dict[tuple[str, str], _Group] = {}
        self.group_of: dict[str, tuple[str, str]] = {}

    def find(self, call: Call, worker: str, t: float) -> tuple[Entry | None, float | None]:
        group = self.groups.get((call.task, call.model))
        if group is None or len(group.keys) == group.dead:
            return None, None
        n = len(group.keys)
        sims = np.where(group.expiry[:n] > t, group.vectors[:n] @ self.vectors[self.row_of_text[call.text]], -np.inf)
        row = n - 1 - int(np.argmax(sims[::-1]))  # the most similar; ties: the most recently stored
        similarity = float(sims[row])
        if similarity == -np.inf:  # nothing live
            return None, None
        if similarity < self.threshold:
            return None, similarity
        key = group.keys[row]
        self.touch(key)
        return self.entries[key], similarity

    def insert(self, call: Call, worker: str, origin: Origin, t: float) -> None:
        entry = Entry(call.key, self.expiry_for(call, t), origin)
        group_key = (call.task, call.model)
        if call.key in self.entries:
            self.discard(call.key)  # before put() so the old row dies before the new one is added
        group = self.groups.get(group_key)
        if group is None:
            group = self.groups[group_key] = _Group(self.vectors.shape[1])
        self.put(entry, t)
        entry.slot = group.append(self.vectors[self.row_of_text[call.text]], entry.expiry, call.key)
        self.group_of[call.key] = group_key

    def remove_lead(self, lead: str, t: float, worker: str | None = None) -> int:
        return self.remove_lead_entries(lead, t)

    def _removed(self, entry: Entry) -> None:
        group_key = self.group_of.pop(entry.key)
        group = self.groups[group_key]
        group.kill(entry.slot)
        if group.dead > 1024 and group.dead * 2 > len(group.keys):
            self._compact(group_key, group)

    def _compact(self, group_key: tuple[str, str], group: _Group) -> None:
        rows = [r for r, key in enumerate(group.keys) if key is not None]
        fresh = _Group(self.vectors.shape[1])
        for row in rows:
            key = group.keys[row]
            self.entries[key].slot = fresh.append(group.vectors[row], group.expiry[row], key)
        self.groups[group_key] = fresh
