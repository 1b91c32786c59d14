"""Per-task scope and key parts (issue 23 items 1 and 2, docs/keys-and-scope.md "Keys and scope"): a hit at any
tier needs equal scope values (lead, day, hour, worker, attrs.PATH); the key holds the task's key
parts. Golden tests of the reference design's three schemes on small hand-written logs, and the
engine, the shared sweep, the partitioned replay and Redis L2 against the oracle on random logs
with scopes."""

from __future__ import annotations

import json
import random

import pytest

from formats_common import run
from logs import call, write
from oracle import keyed_by_params, keyed_by_scope
from test_key_params import assert_as_the_oracle, assert_redis_as_the_oracle, otel_span, with_params
from test_oracle import VARIANTS
from test_partition import random_log as partition_log
from tiercli.engine.replay import OUTCOMES, replay
from tiercli.ingest.logread import read_logs
from tiercli.core.shape import CallShape
from tiercli.settings import Settings
from tiercli.store.embeddings import HashingEmbedder

FOREVER = {"l1_ttl": None, "l2_ttl": None, "l3_ttl": None}
# the reference design's score:{contact_id}:{message_hash}, intent:{contact_id}:{conversation_hash}
# and market:{zip_code}:{date}
SCORING = {"scope": ("lead",), "key": ("last-user",), "key_params": ()}
INTENT = {"scope": ("lead",), "key": ("conversation",), "key_params": ()}
MARKET = {"scope": ("attrs.zip_code", "day"), "key": (), "key_params": ()}
REFERENCE = Settings(tiers=("l1", "l2"), **FOREVER,
                     task_options={"scoring": SCORING, "intent": INTENT, "market": MARKET})


def read(path, settings, log_format="tiercli"):
    return read_logs([str(path)], log_format, keep_text=CallShape(settings))


def outcomes(path, settings, log_format="tiercli"):
    events = read(path, settings, log_format).events
    texts = list(dict.fromkeys(c.text for c in events if hasattr(c, "text")))
    vectors = HashingEmbedder().encode(texts)
    return [OUTCOMES[o] for o in replay(events, settings, vectors, {t: i for i, t in enumerate(texts)}).outcome]


def turns(*texts, system=None):
    """Messages alternating user and assistant, starting with the user."""
    return {"messages": [{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(texts)],
            **({"system": system} if system else {})}


def reference_log(tmp_path):
    day1, day2 = "2026-11-02T0{}:00:00Z", "2026-11-03T08:00:00Z"
    return write(tmp_path / "log.jsonl", [
        # scoring: scope lead, key the last user message
        call(day1.format(1), lead="A", task="scoring", worker="w1", **turns("tour saturday?", system="Score.")),
        call(day1.format(1), lead="B", task="scoring", worker="w1", **turns("tour saturday?", system="Score.")),
        call(day1.format(2), lead="A", task="scoring", worker="w1",
             **turns("hi", "hello", "tour saturday?", system="Score.")),
        call(day1.format(2), lead="A", task="scoring", worker="w1", **turns("tour sunday?", system="Score.")),
        # intent: scope lead, key every message's text (no system)
        call(day1.format(3), lead="A", task="intent", worker="w1", **turns("buy", "ok", "when?", system="v1")),
        call(day1.format(3), lead="A", task="intent", worker="w1", **turns("buy", "ok", "when?", system="v2")),
        call(day1.format(3), lead="A", task="intent", worker="w1", **turns("sell", "ok", "when?", system="v1")),
        call(day1.format(3), lead="B", task="intent", worker="w1", **turns("buy", "ok", "when?", system="v1")),
        # market: scope ZIP and day, the key the scope alone
        call(day1.format(4), lead="A", task="market", worker="w1", prompt="x", attrs={"zip_code": "94110"}),
        call(day1.format(5), lead="B", task="market", worker="w1", prompt="y", attrs={"zip_code": "94110"}),
        call(day1.format(5), lead="C", task="market", worker="w1", prompt="x", attrs={"zip_code": "10001"}),
        call(day2, lead="A", task="market", worker="w1", prompt="x", attrs={"zip_code": "94110"}),
        call(day2, lead="D", task="market", worker="w1", prompt="x"),
        call(day2, lead="E", task="market", worker="w1", prompt="z", attrs={"bot": "sms"}),
    ])


def test_the_reference_designs_three_key_schemes(tmp_path):
    """By hand, with one worker and nothing expiring (so every hit is L1's):
    scoring score:{lead}:{last user message}: 1 miss; 2 miss (lead B); 3 L1 (lead A, the same
    last user message after more turns); 4 miss (another message).
    intent intent:{lead}:{conversation}: 5 miss; 6 L1 (only the system differs); 7 miss (another
    first turn, the same last one); 8 miss (lead B).
    market market:{zip}:{day}: 9 miss; 10 L1 (94110, the same day, another lead and prompt); 11
    miss (10001); 12 miss (the next day); 13 miss and 14 L1: neither has a ZIP, both are scoped
    under "missing" on that day (and said: a warning counts them).
    Today's key (the whole request, no scope): 2 hits 1 (another lead's score), 3 misses (more
    turns), 6 misses (another system), 8 hits 5 (another lead's intent); market's 11, 12 and 13
    repeat 9's prompt "x" whatever their ZIP and day: 3 hits. The three schemes: 4 hits, none of
    another lead but the market's (by design: one answer per ZIP and day)."""
    log = reference_log(tmp_path)
    assert outcomes(log, REFERENCE) == ["miss", "miss", "l1", "miss",
                                        "miss", "l1", "miss", "miss",
                                        "miss", "l1", "miss", "miss", "miss", "l1"]
    today = Settings(tiers=("l1", "l2"), **FOREVER)
    assert outcomes(log, today) == ["miss", "l1", "miss", "miss",
                                    "miss", "miss", "miss", "l1",
                                    "miss", "miss", "l1", "l1", "l1", "miss"]


def test_the_schemes_as_config_with_the_missing_count_in_json_text_and_inspect(tmp_path):
    log = reference_log(tmp_path)
    config = tmp_path / "reference.toml"
    config.write_text('l1_ttl = "none"\nl2_ttl = "none"\n\n'
                      '[tasks.scoring]\nscope = ["lead"]\nkey = "last-user"\nkey_params = "none"\n\n'
                      '[tasks.intent]\nscope = ["lead"]\nkey = "conversation"\nkey_params = "none"\n\n'
                      '[tasks.market]\nscope = ["attrs.zip_code", "day"]\nkey = "scope-only"\nkey_params = "none"\n')
    result = run("replay", log, "--tiers", "l1,l2", "--config", config, "--no-save", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["hits"], summary["by_task"]["scoring"]["l1"], summary["by_task"]["intent"]["l1"],
            summary["by_task"]["market"]["l1"]) == (4, 1, 1, 2)
    assert summary["scope_missing"] == {"intent": {"lead": {"missing": 0, "calls": 4}},
                                        "market": {"attrs.zip_code": {"missing": 2, "calls": 6},
                                                   "day": {"missing": 0, "calls": 6}},
                                        "scoring": {"lead": {"missing": 0, "calls": 4}}}
    assert summary["settings"]["task_options"]["market"] == {"scope": ["attrs.zip_code", "day"],
                                                             "key": "scope-only", "key_params": "none"}
    warning = 'warning: scope attrs.zip_code: 2 of 6 calls of task market have none: they are scoped together ' \
              'under "missing"'
    assert warning in result.stderr.splitlines()
    inspected = run("inspect", log, "--config", config, "--json")
    assert json.loads(inspected.stdout)["scope_missing"] == summary["scope_missing"]
    assert warning in inspected.stderr.splitlines()


def test_with_lead_in_the_scope_no_hit_serves_another_leads_answer(tmp_path):
    """cross_lead_hits (issue 23 item 4) is 0 by construction when every task's scope holds lead,
    at every tier (L3's scoping: test_l3_searches_only_entries_of_the_same_scope); without a
    scope the same log serves other leads' answers."""
    rng = random.Random(7)
    records = [call(i * 10, lead=rng.choice("ABC"), prompt=rng.choice(["tour", "price", "school"]),
                    worker=rng.choice(["w1", "w2"]), task=rng.choice(["intent", "scoring"])) for i in range(60)]
    log = write(tmp_path / "log.jsonl", records)
    config = tmp_path / "c.toml"
    config.write_text("")
    unscoped = json.loads(run("replay", log, "--tiers", "l1,l2", "--no-save", "--json").stdout)
    config.write_text('scope = ["lead"]\n')
    scoped = json.loads(run("replay", log, "--tiers", "l1,l2", "--config", config, "--no-save", "--json").stdout)
    assert unscoped["cross_lead_hits"] > 0
    assert scoped["hits"] > 0 and scoped["cross_lead_hits"] == 0
    assert all(tier["cross_lead_hits"] == 0 for tier in scoped["tiers"].values())


def test_day_and_hour_in_utc_or_the_timezone_and_worker_as_recorded(tmp_path):
    log = write(tmp_path / "log.jsonl", [
        call("2026-11-03T05:00:00Z", worker="w1"),  # Chicago (UTC-6): 23:00 on the 2nd
        call("2026-11-03T07:00:00Z", worker="w2"),  # 01:00 on the 3rd
        call("2026-11-03T07:30:00Z", worker="w2"),
        call("2026-11-03T07:40:00Z"),               # no worker: the replay's "default"
    ])
    base = {"tiers": ("l2",), **FOREVER}
    assert outcomes(log, Settings(**base, scope=("day",))) == ["miss", "l2", "l2", "l2"]
    assert outcomes(log, Settings(**base, scope=("day",), timezone="America/Chicago")) == ["miss", "miss", "l2", "l2"]
    assert outcomes(log, Settings(**base, scope=("hour",))) == ["miss", "miss", "l2", "l2"]
    assert outcomes(log, Settings(**base, scope=("worker",))) == ["miss", "miss", "l2", "miss"]


def test_l3_searches_only_entries_of_the_same_scope(tmp_path):
    log = write(tmp_path / "log.jsonl", [
        call(1, lead="A", worker="w1", prompt="tour on saturday"),
        call(2, lead="B", worker="w2", prompt="Tour on Saturday?"),
        call(3, lead="A", worker="w3", prompt="Tour on Saturday?"),
    ])
    l3 = {"tiers": ("l3",), "l3_threshold": 0.5}
    assert outcomes(log, Settings(**l3)) == ["miss", "l3", "l3"]
    assert outcomes(log, Settings(**l3, scope=("lead",))) == ["miss", "miss", "l3"]


def test_attrs_of_other_formats_are_what_an_l3_text_field_reads(tmp_path):
    """An OpenTelemetry call's attrs.PATH is a span attribute, named whole."""
    spans = []
    for i, (zip_code, text) in enumerate((("94110", "hi"), ("94110", "hello"), ("10001", "hi"))):
        messages = json.dumps([{"role": "user", "parts": [{"type": "text", "content": text}]}])
        span = otel_span({"gen_ai.operation.name": "chat", "gen_ai.request.model": "claude-haiku-4-5",
                          "gen_ai.input.messages": messages, "app.zip_code": zip_code})
        inner = span["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
        inner["spanId"], inner["startTimeUnixNano"] = f"{i + 1:016x}", str(1793606400000000000 + i * 10**9)
        inner["endTimeUnixNano"] = str(1793606400500000000 + i * 10**9)
        spans.append(json.dumps(span))
    path = tmp_path / "otel.jsonl"
    path.write_text("\n".join(spans) + "\n")
    settings = Settings(tiers=("l2",), scope=("attrs.app.zip_code",), key=())
    assert outcomes(path, settings, "otel") == ["miss", "l2", "miss"]


def with_scopes(records: list[dict], seed: int) -> list[dict]:
    """The records spread over two days' edge (ts every 10 s from 4,000 s before midnight), most
    calls with a ZIP from few values (some without one), and some with more turns before the
    same last message."""
    rng = random.Random(seed)
    out = []
    for record in records:
        record = {**record, "ts": 1793577600 - 4000 + record["ts"] * 10}
        if record.get("type") != "tag_change":
            if rng.random() < 0.8:
                record["attrs"] = {"zip_code": rng.choice(["94110", "10001", 60614])}
            if rng.random() < 0.3:
                prompt = record.pop("prompt")
                record["messages"] = [{"role": "user", "content": rng.choice(["hi", "yo"])},
                                      {"role": "assistant", "content": "hello"}, {"role": "user", "content": prompt}]
        out.append(record)
    return out


SCOPES = [Settings(scope=("lead",)), Settings(scope=("attrs.zip_code", "day"), key=()),
          Settings(key=("last-user",), scope=("hour",), timezone="Asia/Kolkata", l3_threshold=0.6),
          Settings(task_options={"scoring": SCORING, "intent": INTENT, "memory": MARKET}, l2_max_entries=5),
          Settings(scope=("worker", "lead"), key=("conversation",), key_params=("max_tokens",))]


def inputs(tmp_path, records, settings):
    """(events keyed under the settings, events keyed by the oracle, vectors, row of text)."""
    log = write(tmp_path / "log.jsonl", records)
    events = read(log, settings).events
    by_line = {line: record for line, record in enumerate(records, start=1)}
    naive = keyed_by_scope(keyed_by_params(read(log, Settings(key_params=())).events, settings, by_line),
                           settings, by_line)
    texts = list(dict.fromkeys(e.text for e in events if hasattr(e, "text")))
    return events, naive, HashingEmbedder().encode(texts), {t: i for i, t in enumerate(texts)}


@pytest.mark.parametrize("seed", range(2))
def test_the_engine_the_shared_sweep_and_the_partitions_scope_as_the_oracle(tmp_path, seed):
    records = with_scopes(with_params(partition_log(seed), seed), seed)
    variant = Settings(**{**VARIANTS[3].__dict__, "scope": ("lead", "day")})
    seen = assert_as_the_oracle(tmp_path, records, SCOPES + [variant], inputs)
    assert {"l1", "l2", "l3", "miss", "bypass"} <= seen


def test_redis_l2_scopes_as_the_oracle(tmp_path, redis_server):
    assert_redis_as_the_oracle(tmp_path, redis_server.url, with_scopes(with_params(partition_log(5), 5), 5),
                               (SCOPES[1], SCOPES[3]), inputs)


def test_unknown_scope_values_and_key_parts_are_errors_with_a_did_you_mean(tmp_path):
    log = write(tmp_path / "log.jsonl", [call(1), call(2)])
    config = tmp_path / "c.toml"
    for text, problem in (('scope = ["leed"]', "scope: unknown scope value 'leed' (did you mean lead?)"),
                          ('[tasks.market]\nscope = ["attr.zip_code"]',
                           "tasks.market.scope: unknown scope value 'attr.zip_code' (did you mean attrs.zip_code? "
                           "a path of the record is attrs.PATH)"),
                          ('key = "last_user"', "key: unknown key part 'last_user' (did you mean last-user?)"),
                          ('timezone = "America/Chicgo"',
                           "timezone: unknown time zone 'America/Chicgo' (did you mean America/Chicago?)")):
        config.write_text(text + "\n")
        result = run("replay", log, "--config", config, "--no-save")
        assert result.exit_code == 1, result.output
        assert result.stderr.splitlines()[0] == f"error: {config}: {problem}"
    flagged = run("replay", log, "--task", "intent.key=messages,lastuser", "--no-save")
    assert flagged.exit_code == 2
    assert "unknown key part 'lastuser' (did you mean last-user?)" in flagged.stderr
    config.write_text('scope = ["worker"]\n')
    round_robin = run("replay", log, "--config", config, "--workers", "2", "--no-save")
    assert round_robin.exit_code == 2
    assert round_robin.stderr.splitlines()[0] == ("error: scope: the worker scope needs each call's recorded worker, "
                                                  "and --workers 2 assigns workers round-robin at replay")


def test_a_path_no_record_has_is_a_counted_warning_and_an_object_a_line_error(tmp_path):
    log = write(tmp_path / "log.jsonl", [call(1, attrs={"zip_code": "94110"}), call(2, attrs={"zip_code": "94110"})])
    result = run("replay", log, "--tiers", "l1,l2", "--task", "intent.scope=attrs.zip", "--no-save")
    assert result.exit_code == 0, result.output
    assert ('warning: scope attrs.zip: none of 2 calls of task intent has it: they are all scoped under "missing" '
            '(check the path: inspect shows the records\' fields)') in result.stderr.splitlines()
    bad = write(tmp_path / "bad.jsonl", [call(1, attrs={"zip_code": "94110"}), call(2, attrs={"zip_code": {"a": 1}})])
    result = run("replay", bad, "--tiers", "l1,l2", "--task", "intent.scope=attrs.zip_code", "--no-save")
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines()[0] == (f"error: {bad}:2: attrs.zip_code: must be a string, a number or "
                                             f"true/false to scope by it, got an object")


def test_a_written_config_reads_back_to_the_same_scope_key_and_timezone(tmp_path):
    """tune-ttl and compare write configs with config_write: scope, key and timezone survive."""
    from tiercli.config_write import config_text
    from tiercli.settings import settings_from_flags

    settings = Settings(scope=("lead",), key=(), timezone="America/Chicago",
                        task_options={"market": {"scope": ("attrs.zip_code", "day"), "key": ("system", "last-user")},
                                      "intent": {"scope": ()}})
    config = tmp_path / "written.toml"
    config.write_text(config_text(settings, []))
    back = settings_from_flags(config, {})
    assert (back.scope, back.key, back.timezone, back.task_options) == \
        (("lead",), (), "America/Chicago", settings.task_options)


def test_the_timezone_flag(tmp_path):
    log = write(tmp_path / "log.jsonl", [call("2026-11-03T05:00:00Z", worker="w1"),
                                         call("2026-11-03T07:00:00Z", worker="w1")])
    scoped = ["--tiers", "l1,l2", "--l1-ttl", "none", "--task", "intent.scope=day", "--no-save", "--json"]
    assert json.loads(run("replay", log, *scoped).stdout)["hits"] == 1
    assert json.loads(run("replay", log, *scoped, "--timezone", "America/Chicago").stdout)["hits"] == 0
    bad = run("replay", log, *scoped, "--timezone", "Mars/Olympus")
    assert bad.exit_code == 2
    assert "unknown time zone 'Mars/Olympus'" in bad.stderr
