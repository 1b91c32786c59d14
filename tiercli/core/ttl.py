"""How long an entry lives: the tier's TTL, a task's own TTL ([tasks.NAME] in the config), and
optionally an adaptive TTL that shrinks with the lead's conversation velocity.

Adaptive TTL (README "Adaptive TTL"): with window W and scale V (calls per minute),
    velocity = calls of the lead in (t - W, t], counted at the storing call, / (W in minutes)
    ttl      = base_ttl / (1 + velocity / V)
so a quiet lead keeps nearly the full TTL and a lead texting fast gets a short one. A TTL of
"none" stays "none"."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from tiercli.core.events import Call

if TYPE_CHECKING:  # a type only: the settings import the core, not the other way
    from tiercli.settings import Settings

TIER_NAMES = ("l1", "l2", "l3")


class TtlPolicy:
    def __init__(self, settings: Settings):
        self.base = {tier: settings.ttl(tier) for tier in TIER_NAMES}
        self.by_task = {task: dict(ttls) for task, ttls in settings.task_ttls.items()}
        self.window = settings.adaptive_window
        self.scale = settings.adaptive_scale
        self.recent: dict[str, deque[float]] = {}
        self.divisor = 1.0  # of the call being replayed: 1 + velocity / scale

    def observe(self, call: Call) -> None:
        """Called for every call, in processing order, before its look-up."""
        if self.window is None:
            return
        times = self.recent.get(call.lead)
        if times is None:
            times = self.recent[call.lead] = deque()
        times.append(call.ts)
        while times and times[0] <= call.ts - self.window:
            times.popleft()
        velocity = len(times) / (self.window / 60)
        self.divisor = 1 + velocity / self.scale

    def ttl_of(self, tier: str) -> Callable[[Call], float | None]:
        base, by_task = self.base[tier], self.by_task

        def ttl(call: Call) -> float | None:
            task_ttls = by_task.get(call.task)
            value = task_ttls.get(tier, base) if task_ttls else base
            return None if value is None else value / self.divisor

        return ttl
