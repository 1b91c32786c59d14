"""`tiercli verify`: the runtime cache's own log (tiercli.cache) replayed by the simulator, and
the cache's outcome of each call compared with the replay's (issue 24 "It records itself")."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import numpy as np
import orjson
import typer

from tiercli import options as opt
from tiercli.commands._edge import command_edge, print_json
from tiercli.commands.progress import progress_bars
from tiercli.core.events import Call, Event, TagChange
from tiercli.core.shape import CallShape
from tiercli.engine.replay import OUTCOMES, ReplayOutcome, replay
from tiercli.errors import LogError, TiercliError, UsageError, shown
from tiercli.ingest.items import UTF8_BOM
from tiercli.ingest.logread import ReadResult, read_logs
from tiercli.ingest.sources import Source, expand, lines_of
from tiercli.pipeline import ProgressFactory, _no_progress, answer_judge, embeddings_for, prepare_l3_texts
from tiercli.settings import Settings, settings_from_flags
from tiercli.words import count

SHOWN = 10  # differing calls listed
NOT_A_CACHE_LOG_HINT = ("verify reads the log a TieredCache writes (TieredCache(..., log=PATH)); "
                        "replay any other log with tiercli replay")
EXIT_DIFFERS = 1
EXIT_CANNOT_VERIFY = 2  # as diff: 0 the same, 1 a difference, 2 trouble (so 1 always means a difference)


@dataclass
class Recorded:
    """What the cache wrote of one event (its cache_* fields), and where."""

    file: str
    line: int
    seq: int  # cache_seq: the cache's processing order
    outcome: str | None = None  # None for a tag change
    source: int | None = None  # cache_seq of the call that filled the entry served
    stale: bool = False
    similarity: float | None = None
    mode: str = "live"
    mismatched: int | None = None  # shadow mode only
    why: str | None = None  # what the cache said of the call itself (a Redis failure, single-flight)
    broadcast: bool = False  # a tag change the cache broadcast to every process's L1
    # the cache that wrote it (cache_run): in-process caches' runs are replayed one by one, from
    # empty tiers; runs that shared a Redis (cache_redis) together, in their one cache_seq order
    run: str | None = None


@dataclass
class Difference:
    """One call whose recorded outcome is not the replay's: (field, recorded, simulated) each."""

    call: Recorded
    lead: str
    task: str
    worker: str
    fields: list[tuple[str, object, object]]
    why: str | None = None

    def as_dict(self) -> dict:
        return {"file": self.call.file, "line": self.call.line, "cache_seq": self.call.seq, "lead": self.lead,
                "task": self.task, "worker": self.worker,
                "fields": [{"field": name, "recorded": recorded, "simulated": simulated}
                           for name, recorded, simulated in self.fields],
                "why": self.why}


@dataclass
class Parity:
    calls: int
    differing: int
    differences: list[Difference]  # the first SHOWN, in processing order
    modes: dict[str, int] = field(default_factory=dict)  # calls per cache_mode
    tag_changes: int = 0
    logs: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the replay could not follow

    def add(self, other: Parity) -> None:
        """Another run's comparison (verify_logs replays each in-process cache run apart)."""
        self.calls += other.calls
        self.differing += other.differing
        self.differences += other.differences[:SHOWN - len(self.differences)]
        self.tag_changes += other.tag_changes
        for mode, calls in other.modes.items():
            self.modes[mode] = self.modes.get(mode, 0) + calls

    @property
    def percent(self) -> float:
        """The share of calls at parity, rounded down: 100.0 only when every call is."""
        return 100.0 if not self.calls else math.floor(1000 * (self.calls - self.differing) / self.calls) / 10

    def as_dict(self) -> dict:
        return {"parity": self.percent, "calls": self.calls, "differing": self.differing,
                "modes": self.modes, "tag_changes": self.tag_changes, "logs": self.logs, "notes": self.notes,
                "differences": [d.as_dict() for d in self.differences]}


def verify_settings(settings: Settings) -> Settings:
    """The settings the cache ran with, as the replay must take them: each call's recorded worker
    (the cache's own), here (no Ray), L2 in memory (its semantics are Redis's, tests/test_redis)."""
    return dataclasses.replace(settings, workers=None, executor="local", l2_redis_url=None)


def verify_logs(logs: Sequence[str], settings: Settings, *, embedder=None,
                progress: ProgressFactory = _no_progress) -> Parity:
    """Read a tiercli.cache log (one or several processes' logs), replay its events in the
    cache's processing order (cache_seq) with `settings`, and compare call for call."""
    settings = verify_settings(settings)
    sources = expand(list(logs))
    read = read_logs([s.name for s in sources], "tiercli", keep_text=CallShape(settings, keep_text="l3" in settings.tiers),
                     digest=False, sources=sources)
    prepare_l3_texts(read, settings)
    recorded = _recorded(read, sources)
    vectors = row_of_text = None
    if "l3" in settings.tiers:
        vectors, row_of_text, _ = embeddings_for(read, embedder, settings, progress)
    judge, _ = answer_judge(read, embedder, settings, progress)
    runs: dict[str, list[Event]] = {}  # in the order the runs first appear in the logs
    for event in read.events:
        runs.setdefault(recorded[id(event)].run, []).append(event)
    parity = Parity(0, 0, [], logs=[f.name for f in read.files])
    events: list[Event] = []
    for run_events in runs.values():
        run_events.sort(key=lambda e: recorded[id(e)].seq)
        _check_unique(run_events, recorded)
        for event in run_events:
            event.seq = recorded[id(event)].seq  # so the replay's source_seq is the cache's cache_source
        result = replay(run_events, settings, vectors, row_of_text, judge=judge,
                        progress=progress("replaying", None))
        parity.add(compare(run_events, recorded, result, read))
        events += run_events
    parity.notes = _invalidation_notes(events, recorded, settings)
    return parity


def _invalidation_notes(events: list[Event], recorded: dict[int, Recorded], settings: Settings) -> list[str]:
    """Tag changes invalidated otherwise than the config says (TieredCache.tag_change(...,
    broadcast=...)): the replay follows the config."""
    broadcast = settings.invalidation == "broadcast"
    other = [recorded[id(e)] for e in events if isinstance(e, TagChange) and recorded[id(e)].broadcast != broadcast]
    if not other:
        return []
    how = "local" if broadcast else "broadcast"
    return [f"{count(len(other), 'tag change')} {'was' if len(other) == 1 else 'were'} {how} (the first at "
            f"{other[0].file}:{other[0].line}) where the config's invalidation is {settings.invalidation}: the "
            f"replay invalidates as the config says"]


def _recorded(read: ReadResult, sources: list[Source]) -> dict[int, Recorded]:
    """Each event's cache fields (by id of the event), from its raw line."""
    wanted: dict[int, dict[int, Event]] = {}
    for event in read.events:
        wanted.setdefault(event.file, {})[event.line] = event
    out: dict[int, Recorded] = {}
    for index, source in enumerate(sources):
        lines = wanted.get(index)
        if not lines:
            continue
        for first_line, count_of_lines, block in lines_of(source):
            if first_line == 1 and block.startswith(UTF8_BOM):
                block = block[len(UTF8_BOM):]
            # a block of whole lines ends with a newline: its split's last piece is no line
            for offset, text in enumerate(block.split(b"\n")[:count_of_lines]):
                event = lines.get(first_line + offset)
                if event is not None:
                    out[id(event)] = _fields_of(orjson.loads(text), event, source.name, first_line + offset)
    return out


def _fields_of(record: dict, event: Event, name: str, line: int) -> Recorded:
    """The cache fields of one line (the contract's: docs/in-your-app.md "Run it in your application")."""

    def bad(field_name: str, problem: str) -> LogError:
        return LogError(name, line, field_name, problem, hint=NOT_A_CACHE_LOG_HINT)

    seq = record.get("cache_seq")
    if seq is None:
        raise bad(None, "no cache_seq: not a line of a tiercli.cache log")
    if type(seq) is not int or seq < 0:
        raise bad("cache_seq", f"must be a whole number >= 0, got {shown(seq)}")
    run = record.get("cache_run")
    if run is not None and (not isinstance(run, str) or not run):
        raise bad("cache_run", f"must be a non-empty string, got {shown(run)}")
    group = "redis" if record.get("cache_redis") is True or run is None else f"run {run}"
    if isinstance(event, TagChange):
        return Recorded(name, line, seq, broadcast=record.get("cache_broadcast") is True, run=group)
    outcome = record.get("cache_outcome")
    if outcome not in OUTCOMES:
        raise bad("cache_outcome", f"must be one of {', '.join(OUTCOMES)}, got {shown(outcome)}")
    source = record.get("cache_source")
    if source is not None and type(source) is not int:
        raise bad("cache_source", f"must be a whole number or null, got {shown(source)}")
    similarity = record.get("cache_similarity")
    if similarity is not None and (isinstance(similarity, bool) or not isinstance(similarity, (int, float))):
        raise bad("cache_similarity", f"must be a number or null, got {shown(similarity)}")
    mode = record.get("cache_mode", "live")
    if mode not in ("live", "shadow"):
        raise bad("cache_mode", f"must be live or shadow, got {shown(mode)}")
    mismatched = record.get("cache_mismatched")
    if mode == "shadow" and mismatched not in (0, 1, 2):
        raise bad("cache_mismatched", f"a shadow-mode line needs 0, 1 or 2, got {shown(mismatched)}")
    return Recorded(name, line, seq, outcome, source, bool(record.get("cache_stale")),
                    None if similarity is None else float(similarity), mode, mismatched, _cache_says(record),
                    run=group)


def _cache_says(record: dict) -> str | None:
    """What the cache recorded of why a call went as it did, beyond the outcome."""
    if record.get("cache_coalesced"):
        return "coalesced by single-flight (an identical call was in flight in this process)"
    if record.get("cache_redis_failed"):
        return "Redis was down: the cache served from L1 and the API"
    if record.get("cache_l3_off"):
        return "L3 was off in the cache (its embedding model did not load)"
    return None


def _check_unique(events: list[Event], recorded: dict[int, Recorded]) -> None:
    for a, b in zip(events, events[1:]):
        first, second = recorded[id(a)], recorded[id(b)]
        if first.seq == second.seq:
            raise LogError(second.file, second.line, "cache_seq",
                           f"{first.seq} is also the cache_seq of {first.file}:{first.line}",
                           hint="give the logs of one cache (one Redis, or one process): each event has its own "
                                "cache_seq there")


def _same_similarity(recorded: float | None, simulated: float) -> bool:
    if recorded is None or math.isnan(simulated):
        return recorded is None and math.isnan(simulated)
    return np.float32(recorded) == np.float32(simulated)


def compare(events: list[Event], recorded: dict[int, Recorded], result: ReplayOutcome, read: ReadResult) -> Parity:
    calls = [e for e in events if isinstance(e, Call)]
    by_seq = {recorded[id(e)].seq: e for e in events}
    parity = Parity(len(calls), 0, [], tag_changes=len(events) - len(calls), logs=[f.name for f in read.files])
    for i, call in enumerate(calls):
        mine = recorded[id(call)]
        parity.modes[mine.mode] = parity.modes.get(mine.mode, 0) + 1
        outcome = OUTCOMES[result.outcome[i]]
        source = result.source_seq[i] if result.source_seq[i] >= 0 else None
        similarity = result.similarity[i]
        fields = []
        if mine.outcome != outcome:
            fields.append(("outcome", mine.outcome, outcome))
        if mine.source != source:
            fields.append(("source", mine.source, source))
        if mine.stale != bool(result.stale[i]):
            fields.append(("stale", mine.stale, bool(result.stale[i])))
        if not _same_similarity(mine.similarity, similarity):
            fields.append(("similarity", mine.similarity, None if math.isnan(similarity) else similarity))
        if mine.mode == "shadow" and mine.mismatched != result.mismatched[i]:
            fields.append(("mismatched", mine.mismatched, result.mismatched[i]))
        if not fields:
            continue
        parity.differing += 1
        if len(parity.differences) < SHOWN:
            worker = result.worker[i]
            parity.differences.append(Difference(mine, call.lead, call.task, worker, fields,
                                                 _why(mine, fields, worker, by_seq)))
    return parity


L3_VECTORS_DIFFER = ("the L3 similarities differ: the cache embedded with another model, or into another "
                     "embedding store (run verify with the TIERCLI_HOME the cache used)")


def _why(mine: Recorded, fields: list[tuple[str, object, object]], worker: str, by_seq: dict[int, Event]) -> str | None:
    """Why a call differs, where the log tells."""
    if mine.why:
        return mine.why
    names = {name: (recorded, simulated) for name, recorded, simulated in fields}
    if "outcome" in names:
        recorded, simulated = names["outcome"]
        if "l1" in (recorded, simulated):
            held = ("the cache's L1 held the entry, the replay's L1 of worker {w} did not" if recorded == "l1" else
                    "the replay's L1 of worker {w} held the entry, the cache's did not").format(w=repr(worker))
            return f"L1 is per worker: {held}: the worker field differs from the process that served the call"
        if "l3" in (recorded, simulated) and "similarity" in names:
            return L3_VECTORS_DIFFER
    if "similarity" in names and None not in names["similarity"]:
        return L3_VECTORS_DIFFER
    if set(names) == {"stale"}:
        return "a tag change of the lead was applied in another order than its cache_seq says"
    if "source" in names:
        recorded, simulated = names["source"]
        if recorded is not None and recorded not in by_seq:
            return f"the entry served was filled by cache_seq {recorded}, which is not in the logs given (all of them?)"
    return None


CacheLogArgument = Annotated[list[str], typer.Argument(
    metavar="LOG", help="The cache's logs, every process's: files (.gz and .zst too), folders, globs, or - for "
    "stdin, in tiercli's JSON Lines with the cache's fields.", show_default=False)]
CacheConfigOption = Annotated[Path | None, typer.Option(
    "--config", metavar="FILE", help="The TOML config the cache ran with (required).", show_default=False)]


def verify(
    log: CacheLogArgument,
    config: CacheConfigOption = None,
    json_output: opt.JsonOption = False,
) -> None:
    """Replay a tiercli.cache log and compare the cache's outcome of each call with the simulator's.

    The log is what TieredCache(..., log=PATH) writes: tiercli's log format with the cache's
    fields (cache_seq, cache_outcome, cache_source, cache_similarity, cache_stale, ...). Give
    every process's log of one cache; the events are replayed in the cache's order (cache_seq)
    with the config the cache ran with, and per call the tier, the call whose answer it served,
    the stale flag, the L3 similarity and, in shadow mode, the mismatched flag must be the
    replay's. Prints "parity: 100.0% of N calls", or the first differing calls with why when the
    log tells. Exit 0 at parity, 1 on a difference, 2 when the logs cannot be verified.

    \b
    Examples:
      tiercli verify cache.jsonl --config cache.toml
      tiercli verify cache-w1.jsonl cache-w2.jsonl --config cache.toml --json
    """
    with command_edge(json_output):
        try:
            if config is None:
                raise UsageError("verify needs the config the cache ran with", hint="add --config FILE")
            settings = settings_from_flags(config, {})
            with progress_bars() as progress:
                parity = verify_logs(log, settings, progress=progress)
        except TiercliError as exc:
            exc.exit_code = EXIT_CANNOT_VERIFY
            raise
        if json_output:
            print_json(parity.as_dict())
        else:
            print_parity(parity)
        if parity.differing:
            raise typer.Exit(EXIT_DIFFERS)


def print_parity(parity: Parity) -> None:
    out = typer.echo
    for note in parity.notes:
        out(f"note: {note}", err=True)
    if not parity.differing:
        out(f"parity: {parity.percent:.1f}% of {parity.calls:,} calls")
        return
    shown_part = f", the first {len(parity.differences)}" if parity.differing > len(parity.differences) else ""
    out(f"parity: {parity.percent:.1f}% of {parity.calls:,} calls; {count(parity.differing, 'call')} "
        f"{'differs' if parity.differing == 1 else 'differ'}{shown_part}:")
    for difference in parity.differences:
        where = f"{difference.call.file}:{difference.call.line}"
        for name, recorded, simulated in difference.fields:
            out(f"{where}: {name}: recorded {_value(recorded)}, simulated {_value(simulated)}")
        if difference.why:
            out(f"{where}: why: {difference.why}")


def _value(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:.6f}"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)

