"""Answer rules (docs/answers.md "Answer rules"): each rule's digest on hand-derived answers, the judge,
and replays whose mismatch counts follow each task's rule, unparsable answers counted apart."""

import json
import time

import numpy as np
import pytest
from typer.testing import CliRunner

from logs import call, write
from tiercli.cli import app
from tiercli.core.answers import UNPARSABLE, AnswerJudge, answer_digest, normalize, parse_rule
from tiercli.ingest.logread import read_log
from tiercli.core.keys import response_digest
from tiercli.core.shape import CallShape
from tiercli.pipeline import load_events, run_replay
from tiercli.settings import Settings
from tiercli.store.embeddings import HashingEmbedder


def same(rule_text: str, a: str, b: str) -> bool | None:
    """Whether two answers are the same under a rule (None: one cannot be read by it)."""
    rule = parse_rule(rule_text)
    da, db = answer_digest(rule, a), answer_digest(rule, b)
    if UNPARSABLE in (da, db):
        return None
    return da == db


# --- each rule ----------------------------------------------------------------------------------

def test_exact_compares_the_text_without_surrounding_whitespace():
    assert same("exact", " intent: buy\n", "intent: buy")
    assert not same("exact", "intent: buy", "Intent: buy")
    assert answer_digest(parse_rule("exact"), " x ") == response_digest("x")  # ingest's digest, as before


@pytest.mark.parametrize("a, b, expected", [
    ("Intent: BUY!", "intent buy", True),  # case folded, punctuation dropped
    ("hello,\n\t  world", "Hello World", True),  # whitespace runs are one space
    ("  ¿Qué tal?  ", "qué tal", True),  # ¿ (Po) and ? (Po) are punctuation; é is kept
    ("well-known «fact»", "wellknown fact", True),  # - (Pd), « (Pi), » (Pf) removed, not spaced
    ("STRASSE", "straße", True),  # casefold, not lower: ß folds to ss
    ("$500", "500", False),  # $ is a symbol (Sc), not punctuation
    ("a b", "ab", False),  # whitespace is kept as one space
])
def test_normalized_folds_case_whitespace_and_punctuation(a, b, expected):
    assert same("normalized", a, b) is expected


def test_normalized_text_is_as_documented():
    assert normalize("  Score:\t40 -- (warm)!  ") == "score 40 warm"


@pytest.mark.parametrize("a, b, expected", [
    ('{"score": 40, "reason": "cash buyer"}', '{"reason": "timeline 0-3 months", "score": 40}', True),
    ('{"score": 40}', '{"score": 55}', False),
    ('{"score": 40}', '{"score": 40.0}', True),  # numbers by value
    ('{"score": 1}', '{"score": true}', False),  # true is not a number
    ('{"score": null}', '{"score": 0}', False),
    ('{"score": "40"}', '{"score": 40}', False),  # a string is not a number
    ('{"score": {"a": 1, "b": [1, 2]}}', '{"score": {"b": [1, 2.0], "a": 1}}', True),  # objects: keys in any order
    # JSON in a code fence, with or without an info string
    ('{"score": 40}', 'Here you go:\n```json\n{"score": 40, "reason": "x"}\n```\nAnything else?', True),
    ('{"score": 40}', '```\n{"score": 40}\n```', True),
    ('{"score": 40}', '```{"score": 40}```', True),
    # after leading text, text after it ignored
    ('{"score": 40}', 'Sure! The result is {"score": 40, "reason": "x"} as asked.', True),
    ('{"score": 40}', 'Scores are 0-100 [see rubric]: {"score": 40}', True),  # [see rubric] is not JSON
])
def test_json_compares_the_named_fields(a, b, expected):
    assert same("json:score", a, b) is expected


@pytest.mark.parametrize("answer", [
    '{"score": 40',  # cut short
    "Sorry, I cannot score this lead.",  # no JSON at all
    '{"reason": "no score given"}',  # the field is missing
    '{"score": NaN}',  # not JSON
    "[1, 2]",  # JSON, but no field
    '```json\n{"score": \n```',  # a fence with broken JSON, and no other
])
def test_json_unparsable(answer):
    assert answer_digest(parse_rule("json:score"), answer) == UNPARSABLE


def test_json_paths_and_several_fields():
    rule = "json:lead.score,tags.0"
    assert same(rule, '{"lead": {"score": 7, "why": "a"}, "tags": ["hot", "x"]}',
                '{"tags": ["hot"], "lead": {"score": 7.0}}')
    assert not same(rule, '{"lead": {"score": 7}, "tags": ["hot"]}', '{"lead": {"score": 7}, "tags": ["warm"]}')
    assert same(rule, '{"lead": {"score": 7}, "tags": []}', '{"lead": {"score": 7}, "tags": ["hot"]}') is None
    # the whole answer is JSON first: the fence inside a string is not looked at
    assert same("json:a", '{"a": "```{\\"a\\": 2}```"}', '{"a": "```{\\"a\\": 2}```", "b": 1}')


def test_regex_compares_the_first_group_of_the_first_match():
    rule = r"regex:intent: (\w+)"
    assert same(rule, "intent: buy", "Sure! intent: buy (confident)")
    assert not same(rule, "intent: buy", "intent: sell")
    assert same(rule, "intent: buy\nintent: sell", "intent: buy")  # the first match
    assert same(rule, "intent: buy", "Intent: buy") is None  # no match: unparsable
    assert answer_digest(parse_rule(rule), "no intent here") == UNPARSABLE
    # a first group that took no part in the match cannot be read either
    assert answer_digest(parse_rule(r"regex:label=(\w+)|none"), "none") == UNPARSABLE
    assert same(r"regex:(?i)intent: (\w+)", "INTENT: buy", "intent: buy")


def test_any_makes_every_answer_the_same():
    assert same("any", "intent: buy", "") and same("any", "x", "not json at all")
    assert answer_digest(parse_rule("any"), None) is None  # nothing recorded: nothing to compare


def test_the_judge():
    judge = AnswerJudge(Settings(task_options={"scoring": {"same_answer": "json:score"}}))
    digest = answer_digest(parse_rule("json:score"), '{"score": 1}')
    assert judge.differ("scoring", None, digest) is None
    assert judge.differ("scoring", digest, digest) is False
    assert judge.differ("scoring", UNPARSABLE, UNPARSABLE) is True  # two unreadable answers are not "the same"
    assert judge.differ("scoring", UNPARSABLE, digest) is True


def hashing_cosine(a: str, b: str) -> float:
    va, vb = HashingEmbedder().encode([a, b])
    return float(np.dot(va, vb))


@pytest.mark.parametrize("threshold, differs", [(0.5, False), (0.51, True), (0.0, False)])
def test_embedding_compares_the_answers_cosine(threshold, differs):
    # HashingEmbedder: 4 distinct words each, 2 shared, so the cosine is 2 x (1/2 x 1/2) = 0.5
    # exactly (in float32 too); and 0 with an answer that shares no word.
    a, b, c = "buy home now please", "buy home later maybe", "sell condo today thanks"
    assert hashing_cosine(a, b) == 0.5 and hashing_cosine(a, c) == 0.0
    settings = Settings(same_answer=f"embedding:{threshold}")
    rule = settings.answer_rule("response")
    digests = [answer_digest(rule, text) for text in (a, b, c)]
    assert digests[0] == response_digest(a)  # the digest names the answer text
    vectors = dict(zip(digests, HashingEmbedder().encode([a, b, c])))
    judge = AnswerJudge(settings, vectors)
    assert judge.differ("response", digests[0], digests[1]) is differs
    assert judge.differ("response", digests[0], digests[2]) is (threshold > 0)
    with pytest.raises(ValueError, match="not embedded"):
        AnswerJudge(settings).differ("response", digests[0], digests[1])


# --- replays ------------------------------------------------------------------------------------

SCORING = "lead_scoring"


def rules_log(tmp_path):
    """lead_scoring under json:score, intent under exact; the comment says what each call is."""
    P, R, Q = "Score lead 17", "Score lead 18", "Classify: can I see it Sunday?"
    return write(tmp_path / "rules.jsonl", [
        call(0, lead="A", task=SCORING, prompt=P, response='{"score": 40, "reason": "timeline 0-3 months"}'),  # miss
        call(10, lead="A", task=SCORING, prompt=P, response='{"score": 40, "reason": "cash buyer"}'),  # l1, same score
        call(20, lead="B", task=SCORING, prompt=P, response='```json\n{"score": 40.0}\n```'),  # l1, same score
        call(30, lead="B", task=SCORING, prompt=P, response='Score: {"score": 55, "reason": "x"}'),  # l1, mismatched
        call(40, lead="C", task=SCORING, prompt=P, response="Sorry, I cannot score this lead."),  # l1, unparsable
        call(50, lead="C", task=SCORING, prompt=P),  # l1, no answer recorded: nothing to compare
        call(60, lead="A", task=SCORING, prompt=R, response="no score"),  # miss, its answer unparsable
        call(70, lead="A", task=SCORING, prompt=R, response='{"score": 10}'),  # l1, the entry's answer unparsable
        call(80, lead="A", task="intent", prompt=Q, response="intent: schedule_viewing"),  # miss
        call(90, lead="A", task="intent", prompt=Q, response=" intent: schedule_viewing\n"),  # l1, same
        call(100, lead="A", task="intent", prompt=Q, response="Intent: schedule_viewing"),  # l1, mismatched
    ])


def replay_log(log, settings):
    return run_replay(load_events(log, settings), settings, embedder=HashingEmbedder()).summary


def test_mismatches_follow_each_tasks_rule(tmp_path):
    log = rules_log(tmp_path)
    summary = replay_log(log, Settings(tiers=("l1", "l2"), task_options={SCORING: {"same_answer": "json:score"}}))
    scoring, intent = summary["by_task"][SCORING], summary["by_task"]["intent"]
    assert (scoring["requests"], scoring["l1"], scoring["misses"]) == (8, 6, 2)
    assert scoring["mismatched_hits"] == 3  # t=30 (55 against 40), t=40 and t=70 (unparsable)
    assert scoring["mismatched_unparsable"] == 2  # t=40 (the call's answer), t=70 (the entry's)
    assert scoring["unparsable_answers"] == 2  # t=40, t=60
    assert (intent["mismatched_hits"], intent["mismatched_unparsable"], intent["unparsable_answers"]) == (1, 0, 0)
    assert summary["tiers"]["l1"]["mismatched_hits"] == 4 and summary["tiers"]["l1"]["mismatched_unparsable"] == 2
    assert summary["tiers"]["l2"]["mismatched_unparsable"] == 0
    assert (summary["mismatched_hits"], summary["mismatched_unparsable"], summary["unparsable_answers"]) == (4, 2, 2)
    assert "answer_embeddings" not in summary

    exact = replay_log(log, Settings(tiers=("l1", "l2")))  # today's rule: every differing text
    assert exact["by_task"][SCORING]["mismatched_hits"] == 5  # t=20, 30, 40, 70 and t=10 (reason differs)
    assert (exact["mismatched_unparsable"], exact["unparsable_answers"]) == (0, 0)


def test_embedding_rule_end_to_end(tmp_path):
    """The answers of a task under embedding:T are embedded (with L3 off, too) and a hit
    mismatches when its answer's cosine with the call's is below T."""
    log = write(tmp_path / "log.jsonl", [
        call(0, task="response", response="buy home now please"),  # miss
        call(10, task="response", response="buy home later maybe"),  # l1: cosine 0.5
        call(20, task="response", response="sell condo today thanks"),  # l1: cosine 0
        call(30, task="response", response=" buy home now please "),  # l1: the same text
        call(40, task="intent", prompt="other", response="x"),  # exact rule: no text kept
        call(50, task="intent", prompt="other", response="y"),  # l1, mismatched
    ])
    settings = Settings(tiers=("l1", "l2"), task_options={"response": {"same_answer": "embedding:0.5"}})
    summary = replay_log(log, settings)
    assert summary["by_task"]["response"]["mismatched_hits"] == 1  # only the answer sharing no word
    assert summary["by_task"]["intent"]["mismatched_hits"] == 1
    assert summary["answer_embeddings"]["texts"] == 3  # three distinct answers of `response`
    stricter = replay_log(log, Settings(tiers=("l1", "l2"), task_options={"response": {"same_answer": "embedding:0.6"}}))
    assert stricter["by_task"]["response"]["mismatched_hits"] == 2


def test_answers_for_embedding_are_read_in_one_process(tmp_path):
    """A forked helper would keep the answers' texts to itself: with an embedding rule, a log
    large enough for two processes is read in one, and every answer's text is kept."""
    log = write(tmp_path / "log.jsonl", [call(i, prompt=f"p{i}", response=f"answer {i}") for i in range(40)])
    shape = CallShape(Settings(same_answer="embedding:0.9"))
    read = read_log(log, keep_text=shape, parallel_min_bytes=1)
    assert sorted(read.answer_texts.values()) == sorted(f"answer {i}" for i in range(40))
    assert read_log(log, keep_text=CallShape(Settings()), parallel_min_bytes=1).answer_texts == {}


def test_same_answer_from_the_command_line(tmp_path):
    log = rules_log(tmp_path)
    result = CliRunner().invoke(app, ["replay", str(log), "--json", "--no-save", "--tiers", "l1,l2",
                                      "--task", f"{SCORING}.same_answer=json:score"])
    assert result.exit_code == 0, result.output
    scoring = json.loads(result.stdout)["by_task"][SCORING]
    assert (scoring["mismatched_hits"], scoring["mismatched_unparsable"], scoring["unparsable_answers"]) == (3, 2, 2)


# --- bounds on a rule's work (issue 21 item 15) ----------------------------------------------------

def thread_seconds(work):
    """The result of work() and the CPU time this thread spent on it."""
    start = time.thread_time()
    result = work()
    return result, time.thread_time() - start


def test_a_pattern_that_backtracks_is_abandoned_per_answer_and_the_answer_is_unparsable():
    """(a|a)+$ over "a"*32 + "!" takes 2^32 steps to fail: each search stops after
    MATCH_SECONDS (0.1 s), and the answer counts as unparsable; answers it matches are read."""
    rule = parse_rule("regex:(a|a)+$")
    digests, seconds = thread_seconds(lambda: [answer_digest(rule, "a" * 32 + "!") for _ in range(4)])
    assert digests == [UNPARSABLE] * 4 and seconds < 2
    assert same("regex:(a|a)+$", "xa", "ya")  # a match is quick: its group "a" is compared
    # the issue's own pattern: fails at once here, unparsable as an answer it does not match
    digests, seconds = thread_seconds(lambda: [answer_digest(parse_rule("regex:(a+)+$"), "a" * 32 + "b")] * 4)
    assert digests == [UNPARSABLE] * 4 and seconds < 2


def test_a_backtracking_pattern_in_a_replay_counts_unparsable_answers(tmp_path):
    log = write(tmp_path / "log.jsonl", [call(i, prompt="same", response="a" * 32 + "!") for i in range(4)])
    started = time.monotonic()
    result = CliRunner().invoke(app, ["replay", str(log), "--json", "--no-save", "--tiers", "l1,l2",
                                      "--same-answer", "regex:(a|a)+$"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["unparsable_answers"], summary["mismatched_hits"], summary["mismatched_unparsable"]) == (4, 3, 3)
    assert time.monotonic() - started < 30


BAD_PATTERNS = [
    ("(a){4294967296}", "not a valid regular expression (the repetition number is too large"),
    ("(" * 3000 + "a" + ")" * 3000, "not a valid regular expression (nested too deeply)"),
    ("(a{65535}){65535}", "too large: its repeats write out to over 100,000 items"),
    ("(a", "not a valid regular expression (missing ), unterminated subpattern at position 0)"),
]


@pytest.mark.parametrize("pattern, problem", BAD_PATTERNS)
def test_a_pattern_that_cannot_be_used_is_a_value_error(pattern, problem):
    with pytest.raises(ValueError) as caught:
        parse_rule(f"regex:{pattern}")
    message = str(caught.value)
    assert problem in message and len(message) < 200  # the pattern is quoted cut, not whole


@pytest.mark.parametrize("pattern, problem", BAD_PATTERNS)
def test_a_bad_pattern_is_a_usage_error_as_a_flag_and_a_config_error_in_a_file(tmp_path, pattern, problem):
    log = write(tmp_path / "log.jsonl", [call(0)])
    result = CliRunner().invoke(app, ["replay", str(log), "--no-save", "--tiers", "l1", "--same-answer",
                                      f"regex:{pattern}"])
    assert result.exit_code == 2 and "--same-answer" in result.stderr and problem in result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    config = tmp_path / "c.toml"
    for text in (f"same_answer = {json.dumps('regex:' + pattern)}\n",
                 f"[tasks.t]\nl3_text = {json.dumps('regex:' + pattern)}\n"):
        config.write_text(text)
        result = CliRunner().invoke(app, ["replay", str(log), "--no-save", "--tiers", "l1", "--config", str(config)])
        assert result.exit_code == 1 and result.stderr.startswith(f"error: {config}: ") and problem in result.stderr
        assert len(result.stderr.strip().splitlines()) <= 2 and "internal error" not in result.stderr


@pytest.mark.parametrize("answer", [
    "[" * 2_000_000,  # a million starts, each nested past the recursion limit
    "[" * 900 + "1," * 1_000_000,  # 2 MB nested 900 deep, never closed: each start reads to the end
    '{"a":' * 400_000,
    '"' + "[" * 2_000_000,
])
def test_the_search_for_json_is_bounded(answer):
    """Each was quadratic (55 s to over 130 s); the search stops after JSON_SECONDS of CPU."""
    digest, seconds = thread_seconds(lambda: answer_digest(parse_rule("json:a"), answer))
    assert digest == UNPARSABLE and seconds < 1.5


def test_a_large_answer_of_json_is_still_read():
    answer = "Here: " + json.dumps({"a": 7, "pad": ["x" * 100] * 20_000}) + " done"  # 2 MB
    digest, seconds = thread_seconds(lambda: answer_digest(parse_rule("json:a"), answer))
    assert digest == answer_digest(parse_rule("json:a"), '{"a": 7}') and seconds < 1
