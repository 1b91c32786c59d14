"""The command line through typer's CliRunner: exit codes, stdout/stderr, flags and config."""

import hashlib
import json
import sqlite3

import pytest

from typer.testing import CliRunner

from conftest import SAMPLE_LOG
from logs import call, tag, write
from tiercli.cli import app
from tiercli.store.embeddings import EmbeddingStore

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def small_log(tmp_path):
    return write(tmp_path / "log.jsonl", [
        call(0, lead="A", worker="w1", response="Cold"), call(60, lead="A", worker="w2", response="Cold"),
        tag(120, lead="A", worker="w1"), call(180, lead="A", worker="w2", response="Warm"),
        call(240, lead="B", prompt="other", streaming=True), call(4000, lead="B", prompt="other")])


def test_json_output_is_one_object_with_the_documented_keys(tmp_path):
    result = run("replay", small_log(tmp_path), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert {"requests", "bypassed", "misses", "hit_rate", "tiers", "cost", "leads", "cost_per_lead",
            "latency_ms", "by_task"} <= set(summary)
    assert set(summary["tiers"]) == {"l1", "l2", "l3"}
    assert set(summary["tiers"]["l1"]) >= {"hits", "hit_rate", "stale_hits", "mismatched_hits"}
    assert set(summary["cost"]) == {"baseline_usd", "cached_usd", "savings_pct"}
    assert set(summary["latency_ms"]["cached"]) == {"mean", "p50", "p95", "p99"}
    assert set(summary["by_task"]["intent"]) >= {"requests", "l1", "l2", "l3", "misses", "bypassed",
                                                  "baseline_usd", "cached_usd"}
    assert (summary["requests"], summary["bypassed"], summary["misses"]) == (5, 1, 2)
    assert summary["tiers"]["l2"]["hits"] == 1 and summary["tiers"]["l1"]["hits"] == 1
    assert summary["tiers"]["l1"]["stale_hits"] == 1 and summary["tiers"]["l1"]["mismatched_hits"] == 1
    assert summary["leads"] == 2 and summary["tag_changes"] == 1


def test_human_output_has_results_and_task_tables(tmp_path):
    result = run("replay", small_log(tmp_path))
    assert result.exit_code == 0, result.output
    out = result.stdout
    for words in ("Results", "Cost per month (30 d, scaled)", "Cost per lead (2 leads)", "Latency p95",
                  "L1 hit rate", "Total hit rate", "By task type", "Stale hits: 1", "Mismatched hits: 1",
                  "Bypassed (streaming or tool use): 1; tag changes: 1"):
        assert words in out, words
    assert "40.0%" in out  # total hit rate: 2 of 5


def test_flags_override_the_config_file(tmp_path):
    log = small_log(tmp_path)
    config = tmp_path / "tiers.toml"
    config.write_text('tiers = ["l1"]\ninvalidation = "broadcast"\n[l1]\nttl = "30s"\n')
    from_config = json.loads(run("replay", log, "--config", config, "--json").stdout)
    assert from_config["settings"]["tiers"] == ["l1"] and from_config["settings"]["l1_ttl"] == "30s"
    assert from_config["hits"] == 0  # 60 s apart: the 30 s L1 has expired
    overridden = json.loads(run("replay", log, "--config", config, "--l1-ttl", "none", "--json").stdout)
    assert overridden["settings"]["l1_ttl"] == "none" and overridden["settings"]["invalidation"] == "broadcast"


def test_config_prices_for_an_unknown_model(tmp_path):
    log = write(tmp_path / "log.jsonl", [call(0, model="in-house-7b", input_tokens=1_000_000, output_tokens=0)])
    config = tmp_path / "c.toml"
    config.write_text('[prices."in-house-7b"]\ninput_per_mtok = 0.5\noutput_per_mtok = 1.5\n')
    result = run("replay", log, "--config", config, "--json", "--tiers", "l1")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["cost"]["baseline_usd"] == 0.5


def test_sample_command_is_deterministic(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert run("sample", a, "--leads", "40", "--days", "0.5", "--seed", "3").exit_code == 0
    assert run("sample", b, "--leads", "40", "--days", "0.5", "--seed", "3").exit_code == 0
    assert a.read_bytes() == b.read_bytes() and len(a.read_bytes()) > 0
    assert not list(tmp_path.glob("*.tmp"))


def test_committed_sample_is_what_the_generator_writes(tmp_path):
    out = tmp_path / "day.jsonl"
    assert run("sample", out).exit_code == 0
    assert hashlib.sha256(out.read_bytes()).hexdigest() == hashlib.sha256(SAMPLE_LOG.read_bytes()).hexdigest()


def add_to_store(source, target):
    """Copies the vectors of one embedding store into another (creating it if need be)."""
    EmbeddingStore(target).close()
    db = sqlite3.connect(target)
    db.execute("ATTACH DATABASE ? AS source", (str(source),))
    with db:
        db.execute("INSERT OR IGNORE INTO vectors SELECT * FROM source.vectors")
    db.close()


def test_replay_of_the_sample_log(tiercli_home, shared_embeddings):
    """A cold replay (an empty store of its own, whichever tests ran before: the real model
    embeds every text), then a warm one. Its vectors then go to the session's store, so that
    the other tests replaying the sample embed nothing."""
    store = tiercli_home / "embeddings.sqlite"
    store.unlink()  # the link to the session's store
    result = run("replay", SAMPLE_LOG, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["requests"] == 4695 and summary["tag_changes"] == 353 and summary["leads"] == 354
    assert summary["embeddings"] == {"texts": 2533, "computed": 2533, "cut": 0, "replaced": 0}
    hits = sum(summary["tiers"][t]["hits"] for t in ("l1", "l2", "l3"))
    assert hits + summary["misses"] + summary["bypassed"] == summary["requests"]
    assert summary["estimated_token_calls"] == 0 and summary["skipped_lines"] == 0
    # a second run finds every embedding in the store
    again = json.loads(run("replay", SAMPLE_LOG, "--json").stdout)
    assert again["embeddings"]["computed"] == 0
    assert {k: again[k] for k in ("tiers", "cost", "latency_ms")} == {k: summary[k] for k in ("tiers", "cost", "latency_ms")}
    add_to_store(store, shared_embeddings)


def test_compare_prompt_cache_ttl_flag_prices_as_the_config_does(tmp_path):
    """Four calls 10 minutes apart sharing a long system prompt: a 5-minute cache has expired at
    each call (every call writes), a 1-hour one is read by the last three. Sonnet 4.5: input
    $3/Mtok, 5-minute writes 1.25x, 1-hour writes 2x, reads 0.1x, output $15/Mtok."""
    system = "You are a helpful assistant. " * 200
    log = write(tmp_path / "log.jsonl", [
        call(600 * i, lead=f"L{i}", system=system, messages=[{"role": "user", "content": f"question {i}"}],
             input_tokens=5000) for i in range(4)])
    config = tmp_path / "c.toml"
    config.write_text('prompt_cache_ttl = "1h"\n')

    def prompt_cache_row(*args):
        result = run("compare", log, "--tiers", "l1", "--no-save", "--options", "baseline,prompt-cache", "--json",
                     *args)
        assert result.exit_code == 0, result.output
        return next(o for o in json.loads(result.stdout)["options"] if o["name"] == "prompt-cache")

    one_hour = prompt_cache_row("--prompt-cache-ttl", "1h")
    assert one_hour == prompt_cache_row("--config", config)
    assert one_hour["prompt_cache"]["write_tokens"] == 5027 and one_hour["prompt_cache"]["read_tokens"] == 14973
    assert one_hour["cost_usd"] == 0.0406539  # 5,027 x $6 + 14,973 x $0.3 per Mtok, + 400 output x $15
    five_minutes = prompt_cache_row("--prompt-cache-ttl", "5m")
    assert five_minutes == prompt_cache_row()
    assert five_minutes["cost_usd"] == 0.081  # 20,000 x $3.75 per Mtok, + 400 output x $15


@pytest.mark.parametrize("args, message, hint", [
    (["replay", "--bogus"], "no such option: --bogus", "see tiercli replay --help"),
    (["replay", "{log}", "--max-stal", "1%"], "no such option: --max-stal",
     "did you mean --max-retries or --max-spend? see tiercli replay --help"),
    (["replay"], "missing argument 'LOG'", "see tiercli replay --help"),
    (["replay", "{log}", "--workers"], "option '--workers' requires an argument", "see tiercli replay --help"),
    (["replay", "{log}", "--l1-ttl", "soon"], "--l1-ttl: not a duration: 'soon' (use seconds (300), 30s, 5m, 1h, "
                                               "2d (or 5 min, 2 hours...) or none)", "see tiercli replay --help"),
    (["replay", "{log}", "--l1-ttl", "5", "min"], "LOG: 'min' is not a log file: a duration with a space needs "
                                                   "quotes, e.g. --l1-ttl '5 min'", "see tiercli replay --help"),
    (["report", "a", "b"], "got unexpected extra argument(s) (b)", "see tiercli report --help"),
    (["nosuch"], "no such command 'nosuch'", "see tiercli --help"),
    (["runs", "rm"], "missing argument 'RUN'", "see tiercli runs rm --help"),
])
def test_click_errors_are_tiercli_errors(tmp_path, args, message, hint):
    """click's and typer's own usage errors print as tiercli's do: `error:` and `hint:`, no
    `Usage:` block, exit 2; with --json, the error object on stdout too."""
    log = small_log(tmp_path)
    args = [str(log) if a == "{log}" else a for a in args]
    result = run(*args)
    assert (result.exit_code, result.stderr, result.stdout) == (2, f"error: {message}\nhint: {hint}\n", "")
    if args[0] != "nosuch":
        as_json = run(args[0], "--json", *args[1:])  # runs --json rm: --json is the group's option there
        assert as_json.exit_code == 2
        assert json.loads(as_json.stdout) == {"error": {"type": "usage", "message": message, "hint": hint}}


def test_durations_in_words(tmp_path):
    from tiercli.durations import parse_duration

    assert [parse_duration(v) for v in ("5 min", "5 mins", "5 minutes", "90 s", "90 seconds", "1 hour", "2 hrs",
                                        "1.5h", "2 days", "300", "5M")] == \
        [300.0, 300.0, 300.0, 90.0, 90.0, 3600.0, 7200.0, 5400.0, 172800.0, 300.0, 300.0]
    result = run("replay", small_log(tmp_path), "--tiers", "l1,l2", "--l1-ttl", "5 min", "--l2-ttl", "1 hour",
                 "--json", "--no-save")
    assert result.exit_code == 0, result.output
    settings = json.loads(result.stdout)["settings"]
    assert (settings["l1_ttl"], settings["l2_ttl"]) == ("5m", "1h")


def test_every_help_names_its_values_not_their_python_types():
    from tiercli.docgen import helps

    for path, _, text in helps():
        for internal in ("<list", "<int", "range>", "<float", "<str", "<path", "<bool", "{LOG}", "{out}"):
            assert internal not in text, f"{path} --help shows {internal!r}:\n{text}"
    usage = {path: text.splitlines()[0] for path, _, text in helps()}
    assert usage["tiercli replay"] == "Usage: tiercli replay [OPTIONS] LOG..."
    assert usage["tiercli report"] == "Usage: tiercli report [OPTIONS] [RUN]"
    assert usage["tiercli sample"] == "Usage: tiercli sample [OPTIONS] FILE"


def test_bad_choices_and_flag_combinations_are_usage_errors(tmp_path):
    log = small_log(tmp_path)
    assert run("replay", log, "--tiers", "l1,l2").exit_code == 0
    for args, words in ((["report", "--by", "tasks"], "error: --by: unknown breakdown 'tasks'"),
                        (["report", "--per-lead", "--sort", "cost"], "error: --sort: unknown column 'cost'"),
                        (["report", "--per-lead", "--by", "task"], "error: --per-lead and --by are two different views"),
                        (["replay", log, "--max-spend", "1"], "error: --max-spend, --no-spend-cap and --limit apply")):
        result = run(*args)
        assert result.exit_code == 2 and result.stderr.startswith(words), result.output


@pytest.mark.parametrize("value, error", [
    ("1", "'1': a bare number is a fraction under 1 (0.01 is 1%); for 1 percent write 1%"),
    ("2", "'2': a bare number is a fraction under 1 (0.01 is 1%); for 2 percent write 2%"),
    ("1.0", "'1.0': a bare number is a fraction under 1 (0.01 is 1%); for 1.0 percent write 1.0%"),
    ("150%", "must be between 0% and 100%, got '150%'"),
    ("nan", "must be between 0% and 100%, got 'nan'"),
    ("1%", None), ("0.01", None), ("100%", None), ("0", None),
])
def test_a_bare_share_of_one_or_more_is_refused(tmp_path, value, error):
    """--max-stale 1 once meant 100% without a word; a bare number must be a fraction under 1."""
    log = small_log(tmp_path)
    for command in (["compare", log, "--tiers", "l1,l2", "--no-save"], ["tune-ttl", log, "--tiers", "l1,l2",
                                                                         "--l1-grid", "5m", "--l2-grid", "15m"]):
        result = run(*command, "--max-stale", value, "--max-mismatch", value, "--json")
        if error is None:
            assert result.exit_code == 0, result.output
            budgets = json.loads(result.stdout)["budgets"]
            expected = float(value[:-1]) / 100 if value.endswith("%") else float(value)
            assert (budgets["max_stale"], budgets["max_mismatch"]) == (expected, expected)
        else:
            assert result.exit_code == 2 and result.stderr.startswith(f"error: --max-stale: {error}\n"), \
                result.output


@pytest.mark.parametrize("args, error", [
    (["compare", "{log}", "--max-p95-ms", "inf"], "--max-p95-ms: must be a number of milliseconds >= 0, got inf"),
    (["compare", "{log}", "--max-p95-ms", "1e400"], "--max-p95-ms: must be a number of milliseconds >= 0, got inf"),
    (["compare", "{log}", "--max-p95-ms", "nan"], "--max-p95-ms: must be a number of milliseconds >= 0, got nan"),
    (["compare", "{log}", "--max-p95-ms", "-1"], "--max-p95-ms: must be a number of milliseconds >= 0, got -1.0"),
    (["compare", "{log}", "--batch-discount", "inf%"], "--batch-discount: must be a discount"),
    (["replay", "{log}", "--l3-threshold", "nan"], "--l3-threshold: must be a cosine similarity between -1 and 1"),
    (["replay", "{log}", "--live", "--max-spend", "1e400"], "--max-spend: must be a number of US dollars >= 0"),
    (["tune-ttl", "{log}", "--threshold-grid", "0.9,inf"], "--threshold-grid: must be a cosine similarity"),
    (["sample", "{out}", "--days", "inf"], "--days: must be a number of days from 0.01 to 3650, got inf"),
])
def test_numbers_that_are_not_finite_are_usage_errors(tmp_path, args, error):
    """inf, 1e400 and nan are floats to Python: each float flag refuses them, so that no budget
    or figure of Infinity reaches --json or a saved run."""
    args = [str(small_log(tmp_path)) if a == "{log}" else str(tmp_path / "out.jsonl") if a == "{out}" else a
            for a in args]
    result = run(*args, "--json") if args[0] != "sample" else run(*args)
    assert result.exit_code == 2 and result.stderr.startswith(f"error: {error}"), result.output
    assert "Infinity" not in result.stdout and "NaN" not in result.stdout
    if args[0] == "sample":
        assert not (tmp_path / "out.jsonl").exists()


def test_a_p95_budget_is_kept_as_given(tmp_path):
    result = run("compare", small_log(tmp_path), "--tiers", "l1,l2", "--no-save", "--max-p95-ms", "3000", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["budgets"] == {"max_stale": 0.01, "max_mismatch": 0.02, "max_p95_ms": 3000.0,
                                                        "max_cross_lead": 0.0}


def test_a_run_saved_with_an_infinite_budget_reports_strict_json(tmp_path, tiercli_home):
    """A compare run saved by an older tiercli, whose --max-p95-ms inf was kept as Infinity:
    report --json shows it as null, never as Infinity (which strict JSON readers refuse)."""
    saved = run("compare", small_log(tmp_path), "--tiers", "l1,l2", "--json")
    assert saved.exit_code == 0, saved.output
    run_id = json.loads(saved.stdout)["run_id"]
    summary_file = tiercli_home / "runs" / run_id / "summary.json"
    summary = json.loads(summary_file.read_text())
    summary["compare"]["budgets"]["max_p95_ms"] = float("inf")
    summary_file.write_text(json.dumps(summary))
    assert "Infinity" in summary_file.read_text()
    result = run("report", run_id, "--json")
    assert result.exit_code == 0, result.output
    assert "Infinity" not in result.stdout
    assert json.loads(result.stdout)["budgets"] == {"max_stale": 0.01, "max_mismatch": 0.02, "max_p95_ms": None,
                                                        "max_cross_lead": 0.0}
