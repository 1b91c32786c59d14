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
    columns = ["outcome", "stale", "mismatched", "source_seq", "cross_lead", "cross_lead_unknown", "worker",
               "cached_pusd", "cached_ms", "lookup_ms"]
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
    for name in ("hits", "stale_hits", "mismatched_hits", "cross_lead_hits", "cross_lead_mismatched", "tag_changes",
                 "invalidated", "cost", "latency_ms"):
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


def test_files_read_in_ray_tasks_equal_a_local_read(tmp_path):
    """One Ray task per file (several formats), merged in processing order as read_logs does."""
    from tiercli.executor.ray_backend import ray_map_sources
    from tiercli.ingest.logread import read_logs
    from tiercli.core.shape import CallShape

    fixtures = SAMPLE_LOG.parent.parent / "tests" / "fixtures"
    halves = SAMPLE_LOG.read_text().splitlines(keepends=True)
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first.write_text("".join(halves[1::2]))  # interleaved in time: the merge must sort them
    second.write_text("".join(halves[::2]))
    logs = [str(first), str(second), str(fixtures / "otel" / "current.jsonl"),
            str(fixtures / "langfuse" / "observations.jsonl")]
    shape = lambda: CallShape(Settings(same_answer="embedding:0.9"), prompt_parts=True)  # noqa: E731
    local = read_logs(logs, keep_text=shape())
    on_ray = read_logs(logs, keep_text=shape(), map_sources=ray_map_sources)
    assert on_ray.events == local.events
    assert [f.name for f in on_ray.files] == [f.name for f in local.files]
    assert on_ray.answer_texts == local.answer_texts and on_ray.answer_texts
    assert on_ray.sha256 == local.sha256


def test_a_bad_line_read_in_a_ray_task_is_the_same_one_line_error(tmp_path):
    from tiercli.errors import LogError
    from tiercli.executor.ray_backend import ray_map_sources
    from tiercli.ingest.logread import read_logs

    good = write(tmp_path / "good.jsonl", random_log(4))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"ts": "2026-11-02T08:00:00Z", "lead_id": "A"}\n')
    with pytest.raises(LogError) as local:
        read_logs([str(good), str(bad)])
    with pytest.raises(LogError) as on_ray:
        read_logs([str(good), str(bad)], map_sources=ray_map_sources)
    assert str(on_ray.value) == str(local.value)


def test_a_sigterm_while_waiting_on_ray_is_reported_as_sigterm(capsys):
    """ray.get turns the Terminated our SIGTERM handler raises into a KeyboardInterrupt of its
    own; the command still exits 143 with "interrupted (SIGTERM)", not as a Ctrl-C (130). A
    real signal, sent to this process while it waits on a Ray task."""
    import os
    import signal
    import threading

    import ray
    import typer

    from tiercli import procs
    from tiercli.commands._edge import command_edge

    def nap(seconds: float) -> None:  # defined here: sent by value (workers cannot import this module)
        import time

        time.sleep(seconds)

    ref = ray.remote(nap).remote(60)
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM))
    try:
        procs.take_signals(program=True)  # as tiercli's main() does
        timer.start()
        with pytest.raises(typer.Exit) as exited, command_edge():
            ray.get(ref)
    finally:
        timer.cancel()
        procs._program = False
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
        ray.cancel(ref, force=True)
    assert exited.value.exit_code == 143  # before: 130, and "error: interrupted" as for Ctrl-C
    assert capsys.readouterr().err == "error: interrupted (SIGTERM)\n"


@pytest.mark.parametrize("index", [0, 1, 2])  # SCOPES[3] has a capacity limit, which runs locally
def test_replay_on_ray_equals_local_with_scopes_key_parts_and_parameters(tmp_path, index):
    """Issue 23: scope, key parts and request parameters are in the key made at reading, so the
    (task, model) partitions on Ray keep them; checked call for call against the local engine
    (which tests/test_scope.py checks against the oracle) on random logs with all three."""
    from test_key_params import with_params
    from test_scope import SCOPES, read as read_keyed, with_scopes

    settings = SCOPES[index]
    log = write(tmp_path / "log.jsonl", with_scopes(with_params(random_log(6), 6), 6))
    read = read_keyed(log, settings)
    local = run_replay(read, settings, embedder=HashingEmbedder())
    on_ray = run_replay(read, dataclasses.replace(settings, executor="ray"), embedder=HashingEmbedder())
    assert on_ray.summary["executor"]["used"] == "ray"
    _same_tables(local.table, on_ray.table)
    assert set(local.table["outcome"]) & {"l1", "l2", "l3"}  # hits to compare, not only misses
    for name in ("hits", "mismatched_hits", "cross_lead_hits", "cross_lead_mismatched", "cost"):
        assert on_ray.summary[name] == local.summary[name], name
