"""Settings a user gives: a TTL of 0 turns a tier off (issue 11 item 7); numbers in flags and
config files are bounded, so nothing downstream sees inf, nan or a size that exhausts memory
(items 26 and 29); --no-save reports no run id (item 8)."""

import json
import tomllib

import pytest
from typer.testing import CliRunner

from logs import call, write
from tiercli.cli import app
from tiercli.settings import Settings

runner = CliRunner()


def run(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def test_a_tier_with_ttl_0_is_off(tmp_path):
    """Not looked up (no look-up latency on misses), not embedded for, reported as off."""
    log = write(tmp_path / "log.jsonl", [call(0, prompt="a"), call(10, prompt="b"), call(20, prompt="a")])
    code, out, _ = run("replay", log, "--l3-ttl", "0", "--json", "--no-save")
    assert code == 0
    summary = json.loads(out)
    assert summary["tiers"]["l3"]["enabled"] is False
    assert "embeddings" not in summary  # nothing was embedded
    assert summary["settings"]["tiers"] == ["l1", "l2"]
    # misses pay L1 (0.01 ms) and L2 (1 ms) look-ups only, not L3's 13 ms; the L1 hit 0.01 ms
    assert summary["latency_ms"]["cached"]["mean"] == pytest.approx((1001.01 * 2 + 0.01) / 3)


def test_settings_drop_a_tier_off_for_every_task():
    assert Settings(l3_ttl=0).tiers == ("l1", "l2")
    assert Settings(l1_ttl=0, l2_ttl=0, l3_ttl=0).tiers == ()
    # on for one task: the tier stays, and is off for the others
    on_for_intent = Settings(l3_ttl=0, task_ttls={"intent": {"l3": 600.0}})
    assert on_for_intent.tiers == ("l1", "l2", "l3")
    assert on_for_intent.off_for_task("l3", "scoring") and not on_for_intent.off_for_task("l3", "intent")


def test_a_task_ttl_of_0_turns_the_tier_off_for_that_task(tmp_path):
    """Task a's calls neither look up nor store in L1/L2: they pay no look-up latency, and with
    an L2 of one entry they do not evict task b's entry, which b's second call then hits."""
    log = write(tmp_path / "log.jsonl", [call(0, prompt="p", task="b"), call(5, prompt="p", task="a"),
                                         call(6, prompt="p", task="a"), call(10, prompt="p", task="b")])
    config = tmp_path / "c.toml"
    config.write_text('tiers = ["l1", "l2"]\nworkers = 2\n[l2]\nmax_entries = 1\n[tasks.a]\nl1_ttl = 0\nl2_ttl = 0\n')
    code, out, _ = run("replay", log, "--config", config, "--json", "--no-save")
    assert code == 0
    summary = json.loads(out)
    assert (summary["misses"], summary["tiers"]["l2"]["hits"], summary["evictions"]["l2"]) == (3, 1, 0)
    assert summary["latency_ms"]["cached"]["mean"] == pytest.approx((1001.01 + 1000 + 1000 + 1.01) / 4)


def test_tune_ttl_writes_an_off_tier_out_of_the_config(tmp_path):
    log = write(tmp_path / "log.jsonl", [call(i * 30, prompt=f"q{i % 3}") for i in range(12)])
    config = tmp_path / "tuned.toml"
    code, _, err = run("tune-ttl", log, "--l1-grid", "5m", "--l2-grid", "15m", "--l3-grid", "0",
                       "--write-config", config, "--json")
    assert code == 0, err
    written = tomllib.loads(config.read_text())
    assert written["tiers"] == ["l1", "l2"] and "l3" not in written
    code, out, _ = run("replay", log, "--config", config, "--json", "--no-save")
    summary = json.loads(out)
    assert summary["tiers"]["l3"]["enabled"] is False and "embeddings" not in summary


@pytest.mark.parametrize("setting, value", [
    ("l1_latency_ms", "1e308"), ("default_latency_ms", "inf"), ("l3_latency_ms", "nan"), ("l2_latency_ms", "-1"),
    ("workers", "100000000"), ("adaptive_scale", "inf"), ("adaptive_scale", "nan"),
    ("l2_ttl", '"99999d"'),
])
def test_config_numbers_are_bounded(tmp_path, setting, value):
    log = write(tmp_path / "log.jsonl", [call(0)])
    config = tmp_path / "c.toml"
    config.write_text(f"{setting} = {value}\n")
    code, out, err = run("replay", log, "--config", config, "--no-save")
    assert code == 1 and out == ""
    assert err.startswith(f"error: {config}: {setting}: ") and len(err.strip().splitlines()) <= 2
    assert "internal" not in err


@pytest.mark.parametrize("value", ["nan", "inf", "1e30", "-0.5", "true"])
def test_config_prices_are_bounded(tmp_path, value):
    log = write(tmp_path / "log.jsonl", [call(0, model="my-model")])
    config = tmp_path / "c.toml"
    config.write_text(f'[prices."my-model"]\ninput_per_mtok = {value}\noutput_per_mtok = 15\n')
    code, _, err = run("replay", log, "--config", config, "--no-save")
    assert code == 1
    assert err.startswith(f"error: {config}: prices.my-model.input_per_mtok: must be") and "internal" not in err


@pytest.mark.parametrize("flag, value", [("--workers", "65537"), ("--workers", "0"), ("--l1-ttl", "99999999999"),
                                         ("--l2-ttl", "nan"), ("--l3-threshold", "nan")])
def test_bad_flag_values_are_usage_errors(tmp_path, flag, value):
    log = write(tmp_path / "log.jsonl", [call(0)])
    code, _, err = run("replay", log, flag, value, "--no-save")
    assert code == 2 and flag in err


def test_many_workers_within_the_bound_cost_no_memory_up_front(tmp_path):
    log = write(tmp_path / "log.jsonl", [call(i, prompt="same") for i in range(5)])
    code, out, _ = run("replay", log, "--workers", "65536", "--tiers", "l1", "--json", "--no-save")
    assert code == 0 and json.loads(out)["misses"] == 5  # every call on a new worker's empty L1


def test_json_without_saving_has_no_run_id(tmp_path, tiercli_home):
    log = write(tmp_path / "log.jsonl", [call(0)])
    code, out, _ = run("replay", log, "--tiers", "l1", "--json", "--no-save")
    assert code == 0 and json.loads(out)["run_id"] is None
    assert not (tiercli_home / "runs").exists()
    code, out, _ = run("replay", log, "--tiers", "l1", "--json")
    run_id = json.loads(out)["run_id"]
    assert (tiercli_home / "runs" / run_id / "run.json").is_file()


def test_tune_ttl_pool_workers_end_quietly(tmp_path):
    """Pool.terminate() sends SIGTERM to the sweep's forked workers: they must end as plain
    processes, not run the command's SIGTERM path (which printed a traceback per worker)."""
    import os
    import subprocess
    import sys

    log = write(tmp_path / "log.jsonl", [call(i * 30, prompt=f"q{i % 3}") for i in range(40)])
    done = subprocess.run([sys.executable, "-m", "tiercli", "tune-ttl", str(log), "--tiers", "l1,l2", "--json"],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TIERCLI_HOME": str(tmp_path / "home")})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["candidates"] == 12  # enough for the sweep to use a pool of workers
    assert "Traceback" not in done.stderr and "Terminated" not in done.stderr
