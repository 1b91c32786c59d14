"""The semantic tier (L3): a hit is the most similar live entry of the same task and model,
if its cosine similarity reaches the threshold. Vectors are unit-length, so cosine is a dot.
With a ClusterIndex (large logs), a group's entries are kept in blocks by cluster and only the
clusters that could hold a better entry are scanned (see clusters.py): the same answer."""

from __future__ import annotations

import numpy as np

from tiercli.events import Call
from tiercli.tiers.base import Entry, Origin, Store
from tiercli.tiers.clusters import ClusterIndex


class _Block:
    """Entries of one (task, model) whose texts fall in one cluster: vectors as rows, in store
    order, each with its store stamp (ties between blocks go to the most recent)."""

    def __init__(self, dim: int):
        self.vectors = np.zeros((16, dim), dtype=np.float32)
        self.expiry = np.full(16, -np.inf)  # a removed row expires at -inf: never live
        self.stamps: list[int] = []
        self.keys: list[bytes | None] = []
        self.dead = 0

    def append(self, vector: np.ndarray, expiry: float, key: bytes, stamp: int) -> int:
        row = len(self.keys)
        if row == len(self.expiry):
            size = 2 * row
            self.vectors = np.resize(self.vectors, (size, self.vectors.shape[1]))
            self.expiry = np.resize(self.expiry, size)
            self.expiry[row:] = -np.inf
        self.vectors[row] = vector
        self.expiry[row] = expiry
        self.keys.append(key)
        self.stamps.append(stamp)
        return row

    def kill(self, row: int) -> None:
        self.expiry[row] = -np.inf
        self.keys[row] = None
        self.dead += 1

    def best(self, query: np.ndarray, t: float) -> tuple[float, int]:
        """The highest similarity among live rows (-inf: none) and its row (ties: the latest)."""
        n = len(self.keys)
        sims = np.where(self.expiry[:n] > t, self.vectors[:n] @ query, -np.inf)
        row = n - 1 - int(np.argmax(sims[::-1]))
        return float(sims[row]), row


class SemanticTier(Store):
    per_worker = False

    def __init__(self, name: str, ttl_of, max_entries: int | None, threshold: float,
                 vectors: np.ndarray, row_of_text: dict[str, int], index: ClusterIndex | None = None):
        super().__init__(name, ttl_of, max_entries)
        self.threshold = threshold
        self.vectors = vectors  # one unit-length row per distinct call text
        self.row_of_text = row_of_text
        self.index = index  # None: one block per group, scanned whole
        self.groups: dict[tuple[str, str], dict[int, _Block]] = {}
        self.place: dict[bytes, tuple[tuple[str, str], int]] = {}  # key -> (group, cluster)
        self.stamps = 0

    def find(self, call: Call, worker: str, t: float) -> tuple[Entry | None, float | None]:
        blocks = self.groups.get((call.task, call.model))
        if not blocks:
            return None, None
        query = self.vectors[self.row_of_text[call.text]]
        best, best_stamp, best_block, best_row = -np.inf, -1, None, -1
        if self.index is None or len(blocks) == 1:
            visits = [(np.inf, block) for block in blocks.values()]
        else:
            bounds = self.index.bounds(query)
            visits = sorted(((bounds[c], block) for c, block in blocks.items()), key=_by_bound, reverse=True)
        for bound, block in visits:
            if bound < best:  # no member of this cluster, or of any after it, can do better
                break
            similarity, row = block.best(query, t)
            if similarity > best or (similarity == best > -np.inf and block.stamps[row] > best_stamp):
                best, best_stamp, best_block, best_row = similarity, block.stamps[row], block, row
        if best_block is None:  # nothing live
            return None, None
        # The reported (and compared) similarity is this pair's own dot product: a matrix
        # product's rounding depends on the block it ran over, this does not.
        best = float(np.dot(best_block.vectors[best_row], query))
        if best < self.threshold:
            return None, best
        key = best_block.keys[best_row]
        self.touch(key)
        return self.entries[key], best

    def insert(self, call: Call, worker: str, origin: Origin, t: float) -> None:
        entry = Entry(call.key, self.expiry_for(call, t), origin)
        if call.key in self.entries:
            self.discard(call.key)  # before put() so the old row dies before the new one is added
        self.put(entry, t)
        row = self.row_of_text[call.text]
        place = ((call.task, call.model), 0 if self.index is None else int(self.index.cluster_of_row[row]))
        blocks = self.groups.setdefault(place[0], {})
        block = blocks.get(place[1])
        if block is None:
            block = blocks[place[1]] = _Block(self.vectors.shape[1])
        self.stamps += 1
        entry.slot = block.append(self.vectors[row], entry.expiry, call.key, self.stamps)
        self.place[call.key] = place

    def remove_lead(self, lead: str, t: float, worker: str | None = None) -> int:
        return self.remove_lead_entries(lead, t)

    def _removed(self, entry: Entry) -> None:
        group_key, cluster = self.place.pop(entry.key)
        blocks = self.groups[group_key]
        block = blocks[cluster]
        block.kill(entry.slot)
        if block.dead == len(block.keys):
            del blocks[cluster]
            if not blocks:
                del self.groups[group_key]
        elif block.dead > 1024 and block.dead * 2 > len(block.keys):
            blocks[cluster] = self._compacted(block)

    def _compacted(self, block: _Block) -> _Block:
        fresh = _Block(self.vectors.shape[1])
        for row, key in enumerate(block.keys):
            if key is not None:
                self.entries[key].slot = fresh.append(block.vectors[row], block.expiry[row], key, block.stamps[row])
        return fresh


def _by_bound(visit: tuple[float, _Block]) -> float:
    return visit[0]
