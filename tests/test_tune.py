"""tune-ttl: the recommendation on a hand-written log, and every figure equal to `replay`."""

import json

import pytest
from typer.testing import CliRunner

from conftest import SAMPLE_LOG
from logs import call, write
from tiercli.cli import app

runner = CliRunner()


def ok_json(*args):
    result = runner.invoke(app, [str(a) for a in args] + ["--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def drifting(tmp_path):
    # the same request; its answer changes at 600 s
    return write(tmp_path / "log.jsonl", [call(0, response="v1"), call(200, response="v1"),
                                          call(600, response="v2"), call(700, response="v2")])


def test_recommends_the_cheapest_settings_within_budget(drifting):
    data = ok_json("tune-ttl", drifting, "--tiers", "l2", "--l2-grid", "1m,5m,15m", "--max-mismatch", "10%")
    by_ttl = {r["settings"]["l2_ttl"]: r for r in data["results"]}
    assert {k: (r["tiers"]["l2"]["hits"], r["mismatched_hits"]) for k, r in by_ttl.items()} == {
        "1m": (0, 0), "5m": (2, 0), "15m": (3, 2)}
    assert data["recommended"]["settings"]["l2_ttl"] == "5m"
    assert data["runner_up"]["settings"]["l2_ttl"] == "1m"
    assert [r["settings"]["l2_ttl"] for r in data["frontier"]] == ["15m", "5m"]
    assert data["why"][0].startswith("the cheapest candidate overall costs $") and "mismatch rate 50.00% > 10%" in data["why"][0]
    assert data["why"][1].startswith("the runner-up costs $")
    loose = ok_json("tune-ttl", drifting, "--tiers", "l2", "--l2-grid", "1m,5m,15m", "--max-mismatch", "50%")
    assert loose["recommended"]["settings"]["l2_ttl"] == "15m"


def test_the_sweep_says_which_candidates_shared_its_work(drifting, tmp_path):
    data = ok_json("tune-ttl", drifting, "--tiers", "l2", "--l2-grid", "1m,5m,15m")
    assert data["replays"] == {"shared": 3, "engine": {}}
    config = write(tmp_path / "c.toml", ["l2_max_entries = 1"])
    result = runner.invoke(app, ["tune-ttl", str(drifting), "--tiers", "l2", "--l2-grid", "1m,5m,15m", "--adaptive",
                                 "--config", str(config), "--json"])
    assert json.loads(result.stdout)["replays"] == {"shared": 0, "engine": {"l2 has a capacity limit": 21}}
    assert "note: 21 candidates replayed in full, without the sweep's shared work: l2 has a capacity limit" \
        in result.stderr


def test_nothing_in_budget(drifting, tmp_path):
    data = ok_json("tune-ttl", drifting, "--tiers", "l2", "--l2-grid", "15m", "--max-mismatch", "0")
    assert data["recommended"] is None
    result = runner.invoke(app, ["tune-ttl", str(drifting), "--tiers", "l2", "--l2-grid", "15m",
                                 "--max-mismatch", "0", "--write-config", str(tmp_path / "c.toml")])
    assert result.exit_code == 1 and "no settings are within the budgets" in result.stderr
    assert not (tmp_path / "c.toml").exists()


def test_bad_grid_and_budget_values(drifting):
    for args, words in ((["--l2-grid", "5m,soon"], "not a duration"), (["--max-stale", "120%"], "between 0% and 100%"),
                        (["--threshold-grid", "0.9,2"], "between -1 and 1"), (["--max-mismatch", "lots"], "not a share")):
        result = runner.invoke(app, ["tune-ttl", str(drifting), *args])
        assert result.exit_code == 2 and words in result.stderr, result.stderr


REPLAY_FIGURES = ("hit_rate", "cached_usd", "savings_pct", "cost_per_lead_usd", "stale_hits", "mismatched_hits",
                  "latency_mean_ms", "latency_p95_ms")


def replay_figures(*args):
    s = ok_json("replay", SAMPLE_LOG, "--no-save", *args)
    return {"hit_rate": s["hit_rate"], "cached_usd": s["cost"]["cached_usd"], "savings_pct": s["cost"]["savings_pct"],
            "cost_per_lead_usd": s["cost_per_lead"]["cached_usd"], "stale_hits": s["stale_hits"],
            "mismatched_hits": s["mismatched_hits"], "latency_mean_ms": s["latency_ms"]["cached"]["mean"],
            "latency_p95_ms": s["latency_ms"]["cached"]["p95"],
            "tiers": {t: s["tiers"][t]["hits"] for t in ("l1", "l2", "l3")}}


def tuned_figures(row):
    return {**{k: row[k] for k in REPLAY_FIGURES}, "tiers": {t: row["tiers"][t]["hits"] for t in ("l1", "l2", "l3")}}


def test_every_figure_equals_replay_on_the_sample(tmp_path):
    config = tmp_path / "tuned.toml"
    plot = tmp_path / "tune.png"
    data = ok_json("tune-ttl", SAMPLE_LOG, "--l1-grid", "5m", "--l2-grid", "15m,4h", "--l3-grid", "0,1h",
                   "--threshold-grid", "0.92,0.98", "--per-task", "--adaptive", "--max-mismatch", "5%",
                   "--max-cross-lead", "100%",  # one scope: the figures against replay are the point
                   "--write-config", config, "--plot", plot)
    assert data["candidates"] == 8 + 18
    fixed = [r for r in data["results"] if r["settings"]["adaptive_window"] is None]
    assert len(fixed) == 8
    for row in fixed[:: 3]:  # several candidates, replayed with flags
        s = row["settings"]
        assert replay_figures("--l1-ttl", s["l1_ttl"], "--l2-ttl", s["l2_ttl"], "--l3-ttl", s["l3_ttl"],
                              "--l3-threshold", str(s["l3_threshold"])) == tuned_figures(row)
    # an adaptive candidate, replayed from a config file
    adaptive = data["adaptive"]["best_adaptive"] or [r for r in data["results"] if r["settings"]["adaptive_window"]][0]
    s = adaptive["settings"]
    adaptive_config = tmp_path / "adaptive.toml"
    adaptive_config.write_text(f'l1_ttl = "{s["l1_ttl"]}"\nl2_ttl = "{s["l2_ttl"]}"\nl3_ttl = "{s["l3_ttl"]}"\n'
                               f'l3_threshold = {s["l3_threshold"]}\nadaptive_window = "{s["adaptive_window"]}"\n'
                               f'adaptive_scale = {s["adaptive_scale"]}\n')
    assert replay_figures("--config", adaptive_config) == tuned_figures(adaptive)
    # the written config (per-task TTLs) replays to the per-task total
    per_task = data["per_task"]
    assert per_task["within_budgets"] and per_task["task_ttls"]
    assert replay_figures("--config", config) == tuned_figures(per_task["total"])
    assert "[tasks." in config.read_text()
    # the threshold sweep reports L3 hits and their mismatched share per threshold
    assert [t["l3_threshold"] for t in data["thresholds"]] == [0.92, 0.98]
    assert data["thresholds"][0]["l3_hits"] > data["thresholds"][1]["l3_hits"] > 0
    assert plot.read_bytes()[:4] == b"\x89PNG"
    human = runner.invoke(app, ["tune-ttl", str(SAMPLE_LOG), "--l1-grid", "5m", "--l2-grid", "15m",
                                "--l3-grid", "0,1h", "--threshold-grid", "0.92", "--max-cross-lead", "100%"])
    assert human.exit_code == 0 and "Cheapest candidates" in human.stdout and "Frontier" in human.stdout
