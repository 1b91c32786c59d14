"""One replay from a log file to its summary: read, embed (if L3 is on), replay, tabulate."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tiercli.embed import Embedder, EmbeddingStore, SentenceTransformerEmbedder, embed_texts
from tiercli.home import tiercli_home
from tiercli.logread import ReadResult, read_log
from tiercli.outcomes import outcome_table
from tiercli.pricing import Pricer
from tiercli.replay import ReplayOutcome, replay
from tiercli.settings import Settings
from tiercli.summary import summarize

# progress(description, total) -> update(completed); the commands draw it on stderr.
ProgressFactory = Callable[[str, int | None], Callable[[int], None]]


def _no_progress(description: str, total: int | None) -> Callable[[int], None]:
    return lambda completed: None


@dataclass
class ReplayRun:
    log: ReadResult
    settings: Settings
    outcome: ReplayOutcome
    table: pd.DataFrame
    summary: dict


def load_events(log_path: str | Path, settings: Settings, *, skip_invalid: bool = False) -> ReadResult:
    pricer = Pricer(settings.prices)
    return read_log(log_path, skip_invalid=skip_invalid, known_model=pricer.knows)


def embeddings_for(read: ReadResult, embedder: Embedder | None, settings: Settings,
                   progress: ProgressFactory = _no_progress):
    """Vectors of the distinct texts of cacheable calls, reusing the on-disk store."""
    texts = list(dict.fromkeys(c.text for c in read.calls if not c.bypass))
    embedder = embedder or SentenceTransformerEmbedder(settings.l3_model)
    store = EmbeddingStore(tiercli_home() / "embeddings.sqlite")
    try:
        update = progress(f"embedding ({embedder.model_id})", None)
        vectors, computed = embed_texts(texts, embedder, store, progress=lambda done, total: update(done))
    finally:
        store.close()
    return vectors, {text: row for row, text in enumerate(texts)}, computed


def run_replay(read: ReadResult, settings: Settings, *, embedder: Embedder | None = None,
               progress: ProgressFactory = _no_progress) -> ReplayRun:
    vectors = row_of_text = None
    computed = 0
    if "l3" in settings.tiers:
        vectors, row_of_text, computed = embeddings_for(read, embedder, settings, progress)
    calls = read.calls
    outcome = replay(read.events, settings, vectors, row_of_text, progress=progress("replaying", len(calls)))
    table = outcome_table(outcome, settings, Pricer(settings.prices))
    span_s = read.events[-1].ts - read.events[0].ts
    summary = summarize(table, settings, span_s)
    summary["tag_changes"] = outcome.tag_changes
    summary["invalidated"] = outcome.invalidated
    summary["evictions"] = outcome.evictions
    summary["skipped_lines"] = len(read.skipped)
    if vectors is not None:
        summary["embeddings"] = {"texts": len(row_of_text), "computed": computed}
    summary["settings"] = settings.resolved()
    return ReplayRun(read, settings, outcome, table, summary)
