"""The readers' fuzz run in the suite (issue 27): 1,000 fixed-seed cases of mutated logs of every
format through the real CLI on 2 worker processes, about a quarter of them without --json; every
one ends in a result or a one-line `error:`, never an internal error, a traceback, bad --json, a
hang or a planted secret echoed (tests/fuzz.py). 10,000 cases: `./dev bench fuzz`."""

from __future__ import annotations

from fuzz import FAILURE_CLASSES, make_case, run_cases, seeds, summary

SEED, CASES = 2027, 1_000


def test_every_format_is_seeded_plain_and_compressed():
    formats = {seed.log_format for seed in seeds()}
    containers = {seed.container for seed in seeds()}
    assert formats == {"tiercli", "otel", "langfuse", "litellm", "helicone", "map"}
    assert containers == {"jsonl", "json", "csv", "parquet"}
    cases = [make_case(SEED, n) for n in range(300)]
    assert {case.compression for case in cases} == {None, "gzip", "zstd"}
    assert sum(bool(case.secrets) for case in cases) > 30


def test_cases_are_the_same_on_every_run():
    assert [(make_case(SEED, n).data, make_case(SEED, n).args) for n in (0, 7, 999)] == \
        [(make_case(SEED, n).data, make_case(SEED, n).args) for n in (0, 7, 999)]


def test_a_thousand_mutated_logs(tmp_path):
    report = run_cases(SEED, CASES, jobs=2, folder=tmp_path / "cases")
    print(summary(report))
    assert report.cases == CASES
    assert {name: report.per_class[name] for name in FAILURE_CLASSES} == dict.fromkeys(FAILURE_CLASSES, 0), \
        summary(report)
    assert report.exits[0] > 100 and report.exits[1] > 100  # both ends are reached: results and errors


def test_the_checks_catch_each_failure_class():
    from fuzz import Outcome, failures_of

    case = make_case(SEED, 0)
    case.secrets = ["fzTAILtail123"]
    ok = '{"requests": 1}'
    error = '{"error": {"type": "bad_log", "message": "x"}}'
    outcomes = {
        "internal error": Outcome(1, '{"error": {"message": "internal error: KeyError: 1"}}',
                                  "error: internal error: KeyError: 1\nhint: run again\n", None, "", 0.1),
        "traceback": Outcome(1, "", "", "KeyError: 1", "", 0.1),
        "bad json": Outcome(0, ok + "\nmore", "", None, "", 0.1),
        "not one line": Outcome(1, error, "error: x\nsecond line\n", None, "", 0.1),
        "echoed secret": Outcome(1, error, "error: got 'sk-ant-api03-fzTAILtail123'\n", None, "", 0.1),
    }
    for failure_class, outcome in outcomes.items():
        assert failure_class in {name for name, _ in failures_of(case, outcome)}, failure_class
    written = Outcome(0, ok, "", None, "saved: fzTAILtail123", 0.1)
    assert [name for name, _ in failures_of(case, written)] == ["echoed secret"]
    assert failures_of(case, Outcome(0, ok, "format: x: otel (detected)\n", None, "", 0.1)) == []
    assert failures_of(case, Outcome(1, error, "error: x\nhint: y\n", None, "", 0.1)) == []


def test_some_cases_are_read_as_people_read_them_and_checked_alike():
    """About one case in four runs without --json, at 200, 80 or 40 columns: the same checks
    but the JSON's, and its table may show the log's own values (asked for) but not an error."""
    from fuzz import Outcome, failures_of

    cases = [make_case(SEED, n) for n in range(400)]
    human = [case for case in cases if case.human]
    assert 60 < len(human) < 140 and {case.columns for case in human} == {200, 80, 40}
    assert all(case.columns == 200 for case in cases if not case.human)
    case = human[0]
    case.secrets = ["fzTAILtail123"]
    table = "Task  Requests\nfzTAILtail123  3\n"
    assert failures_of(case, Outcome(0, table, "", None, "", 0.1)) == []
    assert failures_of(case, Outcome(1, "", "error: x\nhint: y\n", None, "", 0.1)) == []
    failed = {
        "echoed secret": Outcome(1, "", "error: got 'sk-ant-api03-fzTAILtail123'\n", None, "", 0.1),
        "not one line": Outcome(1, "", "error: x\nsecond line\n", None, "", 0.1),
        "internal error": Outcome(1, "", "error: internal error: KeyError: 1\n", None, "", 0.1),
        "traceback": Outcome(0, table + "Traceback (most recent call last):\n", "", None, "", 0.1),
    }
    for failure_class, outcome in failed.items():
        assert failure_class in {name for name, _ in failures_of(case, outcome)}, failure_class
    assert [name for name, _ in failures_of(case, Outcome(0, table, "", None, "saved: fzTAILtail123", 0.1))] == \
        ["echoed secret"]
