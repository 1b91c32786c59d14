"""Every malformed input: a one-line error naming file, line and field; exit 1; no traceback."""

import json

import pytest
from typer.testing import CliRunner

from logs import call, tag, write
from tiercli.cli import app

runner = CliRunner()

GOOD = json.dumps(call(0))


def run(*args, env=None):
    return runner.invoke(app, [str(a) for a in args], env=env)


@pytest.mark.parametrize("line, field, problem", [
    ("{not json", None, "not valid JSON"),
    ("[1, 2]", None, "not a JSON object"),
    (json.dumps({k: v for k, v in call(0).items() if k != "ts"}), "ts", "missing"),
    (json.dumps(call("yesterday")), "ts", "not an RFC 3339 timestamp"),
    (json.dumps(call("2026-11-02T08:00:00")), "ts", "no UTC offset"),
    (json.dumps(call(True)), "ts", "must be"),
    (json.dumps({k: v for k, v in call(0).items() if k != "lead_id"}), "lead_id", "missing"),
    (json.dumps(call(0, lead=["x"])), "lead_id", "must be"),
    (json.dumps({k: v for k, v in call(0).items() if k != "task_type"}), "task_type", "missing"),
    (json.dumps({k: v for k, v in call(0).items() if k != "model"}), "model", "missing"),
    (json.dumps(call(0, model="gpt-nonexistent-9")), "model", "no price known"),
    (json.dumps(call(0) | {"messages": [{"role": "user", "content": "x"}]}), "prompt", "both given"),
    (json.dumps({k: v for k, v in call(0).items() if k != "prompt"}), "prompt", "exactly one"),
    (json.dumps(call(0, prompt=5)), "prompt", "must be a string"),
    (json.dumps(call(0, messages=[{"role": "system", "content": "x"}])), "messages[0].role", "must be"),
    (json.dumps(call(0, messages=[{"role": "user", "content": [{"text": "x"}]}])), "messages[0].content[0]", "type"),
    (json.dumps(call(0, messages=[{"role": "user"}])), "messages[0].content", "missing"),
    (json.dumps(call(0, input_tokens="many")), "input_tokens", "non-negative integer"),
    (json.dumps(call(0, output_tokens=-1)), "output_tokens", "non-negative integer"),
    (json.dumps(call(0, latency_ms="fast")), "latency_ms", "non-negative number"),
    (json.dumps(call(0, streaming="yes")), "streaming", "true or false"),
    (json.dumps(call(0, response=42)), "response", "must be a string"),
    (json.dumps(call(0, attrs=[1])), "attrs", "must be an object"),
    (json.dumps(call(0, system=7)), "system", "must be a string or a list"),
    (json.dumps({"type": "retry", "ts": 0, "lead_id": "A"}), "type", "unknown type 'retry'"),
    (json.dumps({k: v for k, v in tag(0).items() if k != "tag"}), "tag", "missing"),
])
def test_bad_line_names_file_line_and_field(tmp_path, line, field, problem):
    log = write(tmp_path / "log.jsonl", [GOOD, line])
    result = run("replay", log, "--tiers", "l1,l2")
    assert result.exit_code == 1
    message = result.stderr.strip()
    expected_prefix = f"error: {log}:2: " + (f"{field}: " if field else "")
    assert message.startswith(expected_prefix), message
    assert problem in message
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_bad_line_as_json_error_on_stdout(tmp_path):
    log = write(tmp_path / "log.jsonl", [GOOD, json.dumps(call(1, streaming=1))])
    result = run("replay", log, "--json")
    assert result.exit_code == 1
    error = json.loads(result.stdout)["error"]
    assert error == {"type": "bad_log", "message": f"{log}:2: streaming: must be true or false, got 1",
                     "file": str(log), "line": 2, "field": "streaming"}


def test_empty_and_blank_files(tmp_path):
    for content in ("", "\n  \n"):
        log = tmp_path / "empty.jsonl"
        log.write_text(content)
        result = run("replay", log)
        assert result.exit_code == 1
        assert result.stderr.startswith(f"error: {log}: the log is empty")


def test_unreadable_file(tmp_path):
    missing = tmp_path / "nope.jsonl"
    result = run("replay", missing)
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: {missing}: cannot read: No such file or directory"
    folder = run("replay", tmp_path)
    assert folder.exit_code == 1 and f"error: {tmp_path}: the folder holds no log files" in folder.stderr


def test_skip_invalid_skips_and_counts(tmp_path):
    log = write(tmp_path / "log.jsonl", [GOOD, "{oops", json.dumps(call(1, model="nope-1")), json.dumps(call(2))])
    result = run("replay", log, "--skip-invalid", "--json", "--tiers", "l1")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["skipped_lines"] == 2 and summary["requests"] == 2 and summary["tiers"]["l1"]["hits"] == 1
    assert f"skipped: {log}:2: not valid JSON" in result.stderr


def test_skip_invalid_with_nothing_valid_is_an_error(tmp_path):
    log = write(tmp_path / "log.jsonl", ["{oops"])
    result = run("replay", log, "--skip-invalid")
    assert result.exit_code == 1 and "no calls in the log (1 bad line skipped)" in result.stderr


def test_traceback_only_with_tiercli_debug(tmp_path):
    log = write(tmp_path / "log.jsonl", ["{oops"])
    quiet = run("replay", log)
    assert quiet.exit_code == 1 and quiet.exception is None or isinstance(quiet.exception, SystemExit)
    loud = run("replay", log, env={"TIERCLI_DEBUG": "1"})
    assert loud.exit_code != 0 and type(loud.exception).__name__ == "LogError"


@pytest.mark.parametrize("flag, value, words", [
    ("--l1-ttl", "5 fortnights", "not a duration"),
    ("--l2-ttl", "-3", "not a duration"),
    ("--tiers", "l1,l4", "unknown tier 'l4'"),
    ("--tiers", "l1,l1", "named twice"),
    ("--workers", "0", "whole number >= 1"),
    ("--l3-threshold", "1.5", "between -1 and 1"),
    ("--invalidation", "global", "must be one of local, broadcast"),
    ("--l2-max-entries", "-5", "whole number >= 1"),
])
def test_bad_flag_values_are_usage_errors(tmp_path, flag, value, words):
    log = write(tmp_path / "log.jsonl", [GOOD])
    result = run("replay", log, flag, value)
    assert result.exit_code == 2
    assert words in result.stderr and flag in result.stderr


def test_bad_config_files(tmp_path):
    log = write(tmp_path / "log.jsonl", [GOOD])
    cases = {
        "l2_ttl = \"soon\"\n": "l2_ttl: not a duration",
        "colour = \"blue\"\n": "colour: unknown setting",
        "[l2]\nttl = 5\nspeed = 1\n": "l2_speed: unknown setting",
        "l2_ttl = \n": "not valid TOML",
        "[prices.\"x\"]\ninput_per_mtok = 1\n": "prices.x: must have input_per_mtok and output_per_mtok",
    }
    for text, words in cases.items():
        config = tmp_path / "c.toml"
        config.write_text(text)
        result = run("replay", log, "--config", config)
        assert result.exit_code == 1, text
        assert result.stderr.startswith(f"error: {config}: ") and words in result.stderr, result.stderr
    missing = run("replay", log, "--config", tmp_path / "none.toml")
    assert missing.exit_code == 1 and "cannot read config file" in missing.stderr


@pytest.mark.parametrize("forced, fixture, detected", [
    ("otel", None, "tiercli"),  # the probe's case: a native log read as OTLP
    ("langfuse", None, "tiercli"),
    ("tiercli", "otel/current.jsonl", "otel"),
    ("otel", "langfuse/observations.csv", "langfuse"),
])
def test_a_wrong_format_flag_hints_the_format_detection_finds(tmp_path, forced, fixture, detected):
    from pathlib import Path

    log = Path(__file__).parent / "fixtures" / fixture if fixture else write(tmp_path / "log.jsonl", [call(0)])
    result = run("replay", log, "--format", forced, "--tiers", "l1,l2", "--no-save")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[1] == (
        f"hint: the file looks like {detected}, not {forced} (from its first records): give --format {detected}, "
        f"or --format auto (the default) to detect each file's format")


def test_a_bad_record_in_the_right_format_keeps_its_own_hint(tmp_path):
    bad = write(tmp_path / "log.jsonl", [call(0), call(0, model="gpt-nope-9")])
    result = run("replay", bad, "--format", "tiercli", "--tiers", "l1,l2", "--no-save")
    assert result.exit_code == 1
    assert "[prices." in result.stderr and "looks like" not in result.stderr
