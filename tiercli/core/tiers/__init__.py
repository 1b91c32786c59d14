"""Cache tiers. Each is a small store with find / insert / remove_lead; the replay loop
(tiercli/engine/replay.py) holds the hit/miss logic once, for all of them."""

from __future__ import annotations

from typing import Protocol

from tiercli.core.events import Call
from tiercli.core.tiers.base import Entry, Origin
from tiercli.core.tiers.exact import ExactTier, PerWorkerTier
from tiercli.core.tiers.semantic import SemanticTier


class Tier(Protocol):
    name: str
    per_worker: bool  # one store per worker (L1), or one shared by all
    measures_latency: bool  # True: last_lookup_ms holds the measured time of the latest find
    evictions: int  # capacity evictions so far

    def find(self, call: Call, worker: str, t: float) -> tuple[Entry | None, float | None]:
        """The live entry serving this call at time t (None: a miss), and the best similarity
        seen (semantic tiers; None for exact ones). Marks a found entry used."""

    def insert(self, call: Call, worker: str, origin: Origin, t: float) -> None:
        """Store under the call's key, expiring at t + TTL; replaces a present key."""

    def remove_lead(self, lead: str, t: float, worker: str | None = None) -> int:
        """Drop every entry first filled by a call of this lead (per-worker tiers: from that
        worker's store only, when one is named); returns how many were live at t."""

    def announce_invalidation(self, lead: str) -> None:
        """Broadcast mode: a shared tier tells every worker's L1 to drop the lead's entries."""


__all__ = ["Entry", "ExactTier", "Origin", "PerWorkerTier", "SemanticTier", "Tier"]
