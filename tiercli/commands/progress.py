"""Progress on stderr, so stdout pipes cleanly: on a terminal, bars with the total, the time
spent and an estimate of the time left; otherwise (a pipe, a log file, CI) a plain line every
few seconds, and nothing at all for a phase that ends within the first interval."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (BarColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.text import Text

from tiercli.commands._edge import stderr

PLAIN_INTERVAL_S = 5.0


class ProgressBars:
    """progress(description, total) -> update(completed), as tiercli.pipeline expects; also
    note(message), a line on stderr that does not disturb the bars."""

    def __init__(self, console: Console, clock: Callable[[], float], interval_s: float,
                 bars: Progress | None):
        self.console, self.clock, self.interval_s, self.bars = console, clock, interval_s, bars

    def __call__(self, description: str, total: int | None) -> Callable[[int], None]:
        if self.bars is not None:
            task = self.bars.add_task(description, total=total, done=0)
            return lambda completed: self.bars.update(task, completed=completed, done=completed)
        return _PlainLines(self.console, self.clock, self.interval_s, description, total)

    def weighted(self, description: str, total: int) -> Callable[[int, float], None]:
        """As calling it, for items that cost unlike amounts of time: update(completed, share),
        where share is the part of the work done (0 to 1). The count stays in items; the bar
        and the time left follow the share (embedding: texts go longest first)."""
        if self.bars is not None:
            task = self.bars.add_task(description, total=total, done=0)

            def update(completed: int, share: float) -> None:
                self.bars.update(task, completed=total if completed >= total else share * total, done=completed)

            return update
        return _PlainLines(self.console, self.clock, self.interval_s, description, total)

    def note(self, message: str) -> None:
        self.console.print(message, markup=False, highlight=False, soft_wrap=True)


class _PlainLines:
    """`embedding texts: 800/2,533, 1m12s left`, at most once per interval; a last line when a
    phase that printed anything completes."""

    def __init__(self, console: Console, clock: Callable[[], float], interval_s: float,
                 description: str, total: int | None):
        self.console, self.clock, self.interval_s = console, clock, interval_s
        self.description, self.total = description, total
        self.started = self.last_line = clock()
        self.printed = self.finished = False

    def __call__(self, completed: int, share: float | None = None) -> None:
        """`share`: the part of the work done, when items cost unlike amounts (ProgressBars.weighted)."""
        now = self.clock()
        elapsed = now - self.started
        done = self.total is not None and completed >= self.total
        if done and self.printed and not self.finished:
            self.finished = True
            self._print(f"{completed:,}/{self.total:,}, done in {duration(elapsed)}")
        elif not done and now - self.last_line >= self.interval_s:
            if self.total is None:
                self._print(f"{completed:,} so far, {duration(elapsed)} elapsed")
            elif share:
                self._print(f"{completed:,}/{self.total:,}, {duration(elapsed / share * (1 - share))} left")
            elif completed and share is None:
                left = elapsed / completed * (self.total - completed)
                self._print(f"{completed:,}/{self.total:,}, {duration(left)} left")
            else:
                self._print(f"0/{self.total:,}, {duration(elapsed)} elapsed")
            self.last_line = now

    def _print(self, what: str) -> None:
        self.printed = True
        self.console.print(f"{self.description}: {what}", markup=False, highlight=False, soft_wrap=True)


class _DoneColumn(ProgressColumn):
    """`256/2533`: items done, as rich's MofNCompleteColumn, but from the task's `done` field: a
    weighted task's `completed` is its share of the work (ProgressBars.weighted)."""

    def render(self, task) -> Text:
        total = str(int(task.total)) if task.total is not None else "?"
        done = int(task.fields.get("done", task.completed))
        return Text(f"{done:{len(total)}d}/{total}", style="progress.download")


def duration(seconds: float) -> str:
    """12s, 1m12s, 2h05m."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m"


@contextmanager
def progress_bars(enabled: bool = True, *, console: Console = stderr, clock: Callable[[], float] = time.monotonic,
                  interval_s: float = PLAIN_INTERVAL_S) -> Iterator[ProgressBars]:
    if not enabled:
        yield ProgressBars(console, clock, float("inf"), None)  # notes only
        return
    if not console.is_terminal:
        yield ProgressBars(console, clock, interval_s, None)
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), _DoneColumn(), TimeElapsedColumn(),
                  TextColumn("elapsed,"), TimeRemainingColumn(), TextColumn("left"), console=console, transient=True,
                  get_time=clock) as bars:
        yield ProgressBars(console, clock, interval_s, bars)
