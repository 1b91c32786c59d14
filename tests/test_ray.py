"""--executor ray on a local Ray instance gives exactly the local results: the replay (its
partitions as Ray tasks) and tune-ttl's sweep (its candidates as Ray tasks). One instance for
the module; the commands find it connected and use it."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import SAMPLE_LOG
from test_partition import random_log
from logs import write
from tiercli.cli import app
from tiercli.engine import tune
from tiercli.ingest.logread import read_log
from tiercli.pipeline import run_replay
from tiercli.settings import Settings
from tiercli.store.embeddings import HashingEmbedder

pytest.importorskip("ray", reason="Ray is not installed (pip install 'tiercli[ray]')")
pytestmark = pytest.mark.usefixtures("ray_instance")  # one local instance, shared with test_ray_embed.py
runner = CliRunner()


def _same_tables(a, b):
    columns = ["outcome", "stale", "mismatched", "source_seq", "worker", "cached_pusd", "cached_ms", "lookup_ms"]
    for name in columns:
        assert list(a[name]) == list(b[name]), name
    assert np.array_equal(a["similarity"].to_numpy(), b["similarity"].to_numpy(), equal_nan=True)


@pytest.mark.parametrize("settings", [Settings(), Settings(workers=3, invalidation="broadcast")],
                         ids=["recorded-workers", "round-robin-broadcast"])
def test_replay_on_ray_equals_local_on_the_sample(settings):
    read = read_log(SAMPLE_LOG)
    local = run_replay(read, settings, embedder=HashingEmbedder())
    on_ray = run_replay(read, dataclasses.replace(settings, executor="ray"), embedder=HashingEmbedder())
    assert on_ray.summary["executor"] == {"used": "ray", "asked": "ray", "reason": None}
    _same_tables(local.table, on_ray.table)
    for name in ("hits", "stale_hits", "mismatched_hits", "tag_changes", "invalidated", "cost", "latency_ms"):
        assert on_ray.summary[name] == local.summary[name], name


def test_what_cannot_be_split_runs_here_and_says_why(tmp_path):
    log = write(tmp_path / "log.jsonl", random_log(1))
    out = runner.invoke(app, ["replay", str(log), "--tiers", "l1,l2", "--l2-max-entries", "5", "--executor", "ray",
                              "--no-save", "--json"])
    assert out.exit_code == 0, out.output
    executor = json.loads(out.stdout)["executor"]
    assert executor["used"] == "local" and "capacity limit" in executor["reason"]
    assert "ray: the replay runs here, not on Ray" in out.stderr


def test_cli_replay_on_ray_equals_local(tmp_path):
    log = write(tmp_path / "log.jsonl", random_log(2))
    results = []
    for extra in ([], ["--executor", "ray"]):
        out = runner.invoke(app, ["replay", str(log), "--tiers", "l1,l2", "--workers", "2", "--no-save", "--json",
                                  *extra])
        assert out.exit_code == 0, out.output
        data = json.loads(out.stdout)
        for key in ("executor", "run_id", "settings"):
            data.pop(key)
        results.append(data)
    assert results[0] == results[1]


def test_tune_sweep_on_ray_equals_local(tmp_path):
    read = read_log(write(tmp_path / "log.jsonl", random_log(3)))
    texts = list(dict.fromkeys(c.text for c in read.calls))
    vectors, row_of_text = HashingEmbedder().encode(texts), {t: i for i, t in enumerate(texts)}
    base = Settings()
    candidates = tune.grid_candidates(base, {"l1": [60, 300], "l2": [300, 900], "l3": [0, 3600]}, [0.8, 0.92])
    local = tune.Sweep(read, base, vectors, row_of_text).run(candidates, processes=1)
    on_ray = tune.Sweep(read, dataclasses.replace(base, executor="ray"), vectors, row_of_text).run(candidates)
    assert len(local) == len(on_ray) == len(candidates)
    for a, b in zip(local, on_ray):
        assert a == b
