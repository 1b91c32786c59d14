"""Small hand-written logs for golden tests."""

from __future__ import annotations

import json
from pathlib import Path

from tiercli.store.embeddings import HashingEmbedder
from tiercli.ingest.logread import read_log
from tiercli.pipeline import run_replay
from tiercli.settings import Settings

MODEL = "claude-sonnet-4-5"


def call(ts, lead="A", prompt="hello there", task="intent", **fields) -> dict:
    record = {"ts": ts, "lead_id": lead, "task_type": task, "model": MODEL, "prompt": prompt,
              "input_tokens": 1000, "output_tokens": 100, "latency_ms": 1000}
    record.update(fields)
    if "messages" in fields:
        del record["prompt"]
    return {k: v for k, v in record.items() if v is not None}


def tag(ts, lead="A", tag="Warm", **fields) -> dict:
    return {"type": "tag_change", "ts": ts, "lead_id": lead, "tag": tag, **fields}


def two_day_records() -> list[dict]:
    """Three leads over two days: an L2 hit, a stale and mismatched L1 hit, a plain L1 hit and
    a bypassed stream (the report and table tests' log)."""
    return [
        call("2026-11-02T08:00:00Z", lead="A", worker="w1", response="Cold"),
        call("2026-11-02T08:01:00Z", lead="A", worker="w2", response="Cold"),     # L2
        tag("2026-11-02T08:02:00Z", lead="A", worker="w1"),
        call("2026-11-02T08:03:00Z", lead="A", worker="w2", response="Warm"),     # L1, stale, mismatched
        call("2026-11-02T09:00:00Z", lead="B", prompt="b", task="scoring", worker="w1", input_tokens=3000),
        call("2026-11-02T09:00:30Z", lead="B", prompt="b", task="scoring", worker="w1", input_tokens=3000),  # L1
        call("2026-11-03T10:00:00Z", lead="C", prompt="c", model="claude-haiku-4-5", streaming=True),
    ]


def write(path: Path, records: list[dict | str]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def replay_records(tmp_path: Path, records: list[dict], embedder=None, **settings):
    """Replay hand-written records; returns (summary, per-call outcome names)."""
    log = write(tmp_path / "log.jsonl", records)
    run = run_replay(read_log(log), Settings(**settings), embedder=embedder or HashingEmbedder())
    return run.summary, list(run.table["outcome"].astype(str))
