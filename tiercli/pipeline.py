"""One replay from a log file to its summary: read, embed (if L3 is on), replay, tabulate."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tiercli.store.embeddings import (Embedder, EmbeddingStore, embed_texts,
                                      embedding_notes, texts_over_window)
from tiercli.store.home import tiercli_home
from tiercli.store.onnx_embed import local_embedder
from tiercli.ingest.logread import ReadResult, read_logs
from tiercli.economics.noise import find_repeats, with_repeats
from tiercli.economics.outcomes import outcome_table
from tiercli.economics.pricing import Pricer
from tiercli.errors import TiercliError, of_log
from tiercli.redis.l2 import redis_l2
from tiercli.redis.conn import redis_error
from tiercli.store.runs import new_run_id, save_run
from tiercli.engine.replay import ReplayAborted, ReplayOutcome, TierContext, build_tiers, replay
from tiercli.settings import Settings
from tiercli.economics.summary import summarize
from tiercli.core.answers import AnswerJudge
from tiercli.core.fieldmap import parse_map
from tiercli.core.l3text import apply_templates
from tiercli.core.shape import CallShape
from tiercli.executor.partition import not_partitionable
from tiercli.executor.ray_backend import ray_map_sources, ray_replay
from tiercli.executor.ray_embed import RayEmbedder

# progress(description, total) -> update(completed); the commands draw it on stderr.
ProgressFactory = Callable[[str, int | None], Callable[[int], None]]


def _no_progress(description: str, total: int | None) -> Callable[[int], None]:
    return lambda completed: None


@dataclass
class ReplayRun:
    id: str
    log: ReadResult
    settings: Settings
    outcome: ReplayOutcome
    table: pd.DataFrame
    summary: dict


def default_embedder(settings: Settings) -> Embedder:
    """The L3 model here, or (--executor ray) on the Ray cluster's actors: the same model and
    encoding, so both fill the same on-disk store (docs/ray.md "Running on Ray"); embedder onnx:
    the same model through ONNX Runtime, under its own model id in the store."""
    if settings.executor == "ray":
        return RayEmbedder(settings.l3_model)
    return local_embedder(settings.embedder, settings.l3_model)


def embedder_used(embedder: Embedder, settings: Settings) -> dict:
    """Which backend computed the run's vectors: the embedder setting asked for one, and ONNX
    falls back to torch when its graph fails the check (the reason is kept); --executor ray
    encodes with torch on its actors."""
    model_id = embedder.model_id
    backend = "onnx" if model_id.startswith("onnx:") else "torch" if model_id.startswith("st:") else model_id
    return {"backend": backend, "asked": settings.embedder, "model_id": model_id,
            "fallback": getattr(embedder, "fallback_reason", None)}


def load_events(logs: list[str] | str | Path, settings: Settings, *, log_format: str = "auto",
                field_map: list[str] | None = None, skip_invalid: bool = False, digest: bool = True,
                prompt_parts: bool = False) -> ReadResult:
    """The logs' events (docs/logs/index.md "Bring your logs"); `field_map`: --map flags, over the
    config's [map]; `digest`: also the SHA-256, which a saved run records; `prompt_parts`:
    keep each call's prompt parts (Call.parts) for the provider prompt-cache engine."""
    pricer = Pricer(settings.prices)
    logs = [str(logs)] if isinstance(logs, (str, Path)) else [str(log) for log in logs]
    read = read_logs(logs, log_format, field_map={**settings.field_map, **parse_map(field_map)},
                     skip_invalid=skip_invalid, known_model=pricer.knows,
                     keep_text=CallShape(settings, keep_text="l3" in settings.tiers, prompt_parts=prompt_parts),
                     digest=digest, map_sources=ray_map_sources if settings.executor == "ray" else None)
    read.price_notes = pricer.name_notes(call.model for call in read.calls)
    prepare_l3_texts(read, settings)
    return read


def prepare_l3_texts(read: ReadResult, settings: Settings) -> None:
    """The calls' L3 texts as the tasks' l3_text says, where that needs the whole log: each
    strip-template task's template is learned and cut from its texts (core/l3text.py). Every
    command that reads a log for L3 (replay, tune-ttl, inspect) calls this once after reading."""
    read.l3_templates = apply_templates(read.calls, settings)


def l3_texts_by_task(read: ReadResult, settings: Settings, *, every_task: bool = False) -> dict[str, list[str]]:
    """The distinct texts L3 embeds, per task: those of cacheable calls (not bypassed, not
    keyless) of the tasks L3 is on for (every task with `every_task`)."""
    by_task: dict[str, dict[str, None]] = {}
    off: dict[str, bool] = {}
    for call in read.calls:
        if call.bypass or call.keyless:
            continue
        task = call.task
        if task not in off:
            off[task] = not every_task and settings.off_for_task("l3", task)
        if not off[task]:
            by_task.setdefault(task, {})[call.text] = None
    return {task: list(texts) for task, texts in by_task.items()}


def l3_text_report(read: ReadResult, settings: Settings, embedder: Embedder) -> dict:
    """What replay --json and inspect --json say of L3's texts: the model's window in word
    pieces (None when the embedder has none), per task the distinct texts longer than it
    (the model reads only their start), the strip-template tasks' templates, and per task the
    calls its regex l3_text matched nothing in (their whole last user message is embedded)."""
    window, over = texts_over_window(l3_texts_by_task(read, settings), embedder)
    return {"window": window, "over_window": over,
            "templates": {task: t.as_dict() for task, t in sorted(read.l3_templates.items())},
            "regex_unmatched": dict(sorted(read.regex_unmatched.items()))}


def embeddings_for(read: ReadResult, embedder: Embedder | None, settings: Settings,
                   progress: ProgressFactory = _no_progress, *, every_task: bool = False):
    """Vectors of the distinct texts of cacheable calls, reusing the on-disk store; their row
    of each text; and the summary's `embeddings` counts: texts, computed, cut, replaced.
    An off tier embeds nothing: only the texts of tasks L3 is on for, unless `every_task`
    (tune-ttl, whose candidates may turn L3 on where the base settings have it off)."""
    l3_off = set() if every_task else {task for task in {c.task for c in read.calls}
                                       if settings.off_for_task("l3", task)}
    texts = list(dict.fromkeys(c.text for c in read.calls if not (c.bypass or c.keyless or c.task in l3_off)))
    vectors, counts = _embed_through_store(texts, embedder or default_embedder(settings), progress, "texts")
    return vectors, {text: row for row, text in enumerate(texts)}, {"texts": len(texts), **counts}


def _embed_through_store(texts: list[str], embedder: Embedder, progress: ProgressFactory, what: str):
    """embed_texts with the on-disk store, a progress bar "embedding WHAT" (made at the first
    report, which brings the number of texts to compute) and the store's notes on stderr."""
    store = EmbeddingStore(tiercli_home() / "embeddings.sqlite")
    update = None
    # progress_bars() estimates the time left from the share of the work done (texts go longest
    # first); any other progress counts texts
    weighted = getattr(progress, "weighted", None)

    def report(done: int, total: int, share: float) -> None:
        nonlocal update
        if update is None:
            update = weighted(f"embedding {what}", total) if weighted else progress(f"embedding {what}", total)
        if weighted:
            update(done, share)
        else:
            update(done)

    try:
        vectors, counts = embed_texts(texts, embedder, store, weighted_progress=report)
    finally:
        store.close()
    note = getattr(progress, "note", None)  # progress_bars() prints notes on stderr
    if note:
        for line in embedding_notes(counts, embedder, store.path):
            note(line if what == "texts" else f"{what}: {line}")
    return vectors, counts


def answer_judge(read: ReadResult, embedder: Embedder | None, settings: Settings,
                 progress: ProgressFactory = _no_progress):
    """The judge of answers under the tasks' rules (docs/answers.md "Answer rules"), and the counts of
    the answers it embedded (None when no task's rule is embedding:T). Such a task's answer
    texts, kept at ingest, are embedded with the L3 model through the same on-disk store."""
    texts = read.answer_texts
    if not texts:
        return AnswerJudge(settings), None
    vectors, counts = _embed_through_store(list(texts.values()), embedder or default_embedder(settings), progress,
                                           "answers")
    return AnswerJudge(settings, dict(zip(texts, vectors))), {"texts": len(texts), **counts}


def executor_used(settings: Settings, progress: ProgressFactory = _no_progress) -> dict:
    """Where the replay runs: {"used", "asked", "reason"}. On Ray only when it splits exactly
    into (task, model) partitions (tiercli/executor/partition.py); otherwise here, and why."""
    if settings.executor != "ray":
        return {"used": "local", "asked": settings.executor, "reason": None}
    reason = not_partitionable(settings)
    if reason is not None:
        note = getattr(progress, "note", None)
        if note:
            note(f"ray: the replay runs here, not on Ray: {reason}")
        return {"used": "local", "asked": "ray", "reason": reason}
    return {"used": "ray", "asked": "ray", "reason": None}


def run_replay(read: ReadResult, settings: Settings, *, embedder: Embedder | None = None,
               progress: ProgressFactory = _no_progress, run_id: str | None = None) -> ReplayRun:
    run_id = run_id or new_run_id()
    vectors = row_of_text = None
    embedding_counts = None
    l3_report = None
    if "l3" in settings.tiers:
        embedder = embedder or default_embedder(settings)
        vectors, row_of_text, embedding_counts = embeddings_for(read, embedder, settings, progress)
        l3_report = l3_text_report(read, settings, embedder)
    judge, answer_counts = answer_judge(read, embedder, settings, progress)
    calls = read.calls
    redis_report = None
    with redis_l2(settings, run_id) as session:
        ctx = TierContext(settings, vectors, row_of_text, session.client if session else None,
                          session.prefix if session else "")
        tiers = build_tiers(ctx)
        executor = executor_used(settings, progress)
        try:
            if executor["used"] == "ray":
                update = progress("replaying on Ray", len(calls))
                outcome = ray_replay(read.events, settings, vectors, row_of_text, judge)
                update(len(calls))
            else:
                outcome = replay(read.events, settings, ctx=ctx, tiers=tiers,
                                 progress=progress("replaying", len(calls)), judge=judge)
        except ReplayAborted as aborted:
            raise _aborted_error(aborted, read, session) from aborted.cause
        finally:
            for tier in tiers:
                getattr(tier, "close", lambda: None)()
        if session is not None:
            redis_report = session.report(tiers[settings.tiers.index("l2")])
        del tiers  # their entries are not needed for the table: free them first
    with of_log(read.path, [f.name for f in read.files]):  # a cost beyond what sums exactly names the log and the line
        table = outcome_table(outcome, settings, Pricer(settings.prices))
    with_repeats(table, find_repeats(calls, judge))  # the noise floor's columns (docs/answers.md "The noise floor")
    span_s = read.events[-1].ts - read.events[0].ts
    summary = summarize(table, settings, span_s)
    summary["tag_changes"] = outcome.tag_changes
    summary["invalidated"] = outcome.invalidated
    summary["evictions"] = outcome.evictions
    summary["skipped_lines"] = len(read.skipped)
    summary["keyless_calls"] = sum(call.keyless for call in calls)
    summary["source_cache_hits"] = sum(call.source_cache_hit for call in calls)
    summary["failed_calls"] = sum(f.counts.get("failed_calls", 0) for f in read.files)  # not replayed, not billed
    summary["logs"] = [{"name": f.name, "format": f.format} for f in read.files]
    summary["scope_missing"] = read.scope_missing  # docs/keys-and-scope.md "Keys and scope": calls scoped under "missing"
    if vectors is not None:
        summary["embeddings"] = embedding_counts
        summary["embedder"] = embedder_used(embedder, settings)
    if l3_report is not None:
        summary["l3_text"] = l3_report
    if answer_counts is not None:
        summary["answer_embeddings"] = answer_counts
    summary["l2_backend"] = "redis" if redis_report else "memory"
    summary["executor"] = executor
    if redis_report:
        summary["redis"] = redis_report
    summary["settings"] = settings.resolved()
    summary["run_id"] = run_id
    return ReplayRun(run_id, read, settings, outcome, table, summary)


def _resolved(name: str) -> str:
    return name if name == "<stdin>" else str(Path(name).resolve())


def save(run: ReplayRun) -> Path:
    files = run.log.files
    log = {"path": _resolved(files[0].name) + (f" (+{len(files) - 1} more)" if len(files) > 1 else ""),
           "size": run.log.size, "sha256": run.log.sha256,
           "files": [{"name": _resolved(f.name), "format": f.format, "size": f.size, "sha256": f.sha256}
                     for f in files]}
    return save_run(run.id, run.table, run.summary, log)


def _file_of(event, read: ReadResult) -> str:
    return read.files[event.file].name if event.file < len(read.files) else read.path


def _aborted_error(aborted: ReplayAborted, read: ReadResult, session) -> TiercliError:
    """Where the replay stopped and why; nothing of the run is reported or saved."""
    if session is None:
        raise aborted.cause
    from datetime import datetime, timezone

    when = datetime.fromtimestamp(aborted.event.ts, tz=timezone.utc).isoformat()
    error = redis_error(aborted.cause, session.url, "L2 Redis failed")
    error.message = (f"{error.message}; the replay stopped after {aborted.done:,} of {aborted.total:,} events "
                     f"(at line {aborted.event.line} of {_file_of(aborted.event, read)}, ts {when}); "
                     f"nothing was reported")
    return error
