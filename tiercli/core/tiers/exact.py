"""Exact-match tiers: a hit needs the same request key. L2 is one shared ExactTier; L1 is one
ExactTier per worker (PerWorkerTier)."""

from __future__ import annotations

from collections.abc import Callable

from tiercli.core.events import Call
from tiercli.core.tiers.base import INF, Entry, Origin, Store


class ExactTier(Store):
    per_worker = False

    def find(self, call: Call, worker: str, t: float) -> tuple[Entry | None, None]:
        return self.live(call.key, t), None

    def insert(self, call: Call, worker: str, origin: Origin, t: float) -> None:
        ttl = self.ttl_of(call)  # expiry_for, inline: once per miss and per copy
        self.put(Entry(call.key, INF if ttl is None else t + ttl, origin), t)

    def remove_lead(self, lead: str, t: float, worker: str | None = None) -> int:
        return self.remove_lead_entries(lead, t)


class PerWorkerTier:
    """One in-process cache per worker; capacity applies to each worker's cache."""

    per_worker = True
    measures_latency = False

    def __init__(self, name: str, ttl_of: Callable[[Call], float | None], max_entries: int | None):
        self.name, self.ttl_of, self.max_entries = name, ttl_of, max_entries
        self.workers: dict[str, ExactTier] = {}

    def of(self, worker: str) -> ExactTier:
        store = self.workers.get(worker)
        if store is None:
            store = self.workers[worker] = ExactTier(f"{self.name}[{worker}]", self.ttl_of, self.max_entries)
        return store

    def find(self, call: Call, worker: str, t: float) -> tuple[Entry | None, None]:
        store = self.workers.get(worker)  # none yet: this worker has stored nothing
        return (None if store is None else store.live(call.key, t)), None

    def insert(self, call: Call, worker: str, origin: Origin, t: float) -> None:
        store = self.workers.get(worker)  # of(), inline: once per miss
        (self.of(worker) if store is None else store).insert(call, worker, origin, t)

    def remove_lead(self, lead: str, t: float, worker: str | None = None) -> int:
        stores = self.workers.values() if worker is None else [self.of(worker)]
        return sum(store.remove_lead_entries(lead, t) for store in stores)

    def announce_invalidation(self, lead: str) -> None:
        pass

    @property
    def evictions(self) -> int:
        return sum(s.evictions for s in self.workers.values())

    def __len__(self) -> int:
        return sum(len(s) for s in self.workers.values())
