"""`--html FILE` (issue 25 item 1): the page's figures are the run's own, read back from the
page with html.parser; compare and tune-ttl runs have their sections; the page loads nothing
from the network; text from the log is escaped; a page that cannot be written is one error line."""

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import SAMPLE_LOG
from logs import call, tag, two_day_records, write
from test_report import ok_json, run  # the CLI through typer's runner, as test_report runs it


class Page(HTMLParser):
    """What a test reads of a page: each data-figure element's attributes, every tag's
    attributes, the text, and the open tags at each point (to check nesting)."""

    def __init__(self, text: str):
        super().__init__()
        self.figures: list[dict] = []
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, name, attrs):
        attrs = dict(attrs)
        self.tags.append((name, attrs))
        if "data-figure" in attrs:
            self.figures.append(attrs)

    def handle_data(self, data):
        self.text.append(data)

    def values(self, name: str, **keys) -> list:
        """The figure's values on elements with these data- attributes (a key given None: without it)."""
        return [json.loads(f["data-value"]) for f in self.figures
                if f["data-figure"] == name and all(f.get(f"data-{k}") == (None if v is None else str(v))
                                                    for k, v in keys.items())]

    def value(self, name: str, **keys):
        found = self.values(name, **keys)
        assert len(found) == 1, (name, keys, found)
        return found[0]


def page_of(path: Path) -> tuple[str, Page]:
    text = path.read_text(encoding="utf-8")
    return text, Page(text)


def assert_headline_is_the_summary(page: Page, s: dict) -> None:
    if s["monthly_cost"]:
        assert page.value("cost_month_before") == s["monthly_cost"]["baseline_usd"]
        assert page.value("cost_month_after") == s["monthly_cost"]["cached_usd"]
    assert page.value("cost_log_before") == s["cost"]["baseline_usd"]
    assert page.value("cost_log_after") == s["cost"]["cached_usd"]
    assert page.value("savings_pct") == s["cost"]["savings_pct"]
    assert page.value("cost_lead_before") == s["cost_per_lead"]["baseline_usd"]
    assert page.value("cost_lead_after") == s["cost_per_lead"]["cached_usd"]
    assert page.value("hit_rate") == s["hit_rate"] and page.value("hits") == s["hits"]
    for tier in ("l1", "l2", "l3"):
        assert page.value(f"{tier}_hit_rate") == s["tiers"][tier]["hit_rate"]
        assert page.value(f"{tier}_hits") == s["tiers"][tier]["hits"]
    for name in ("mismatched_hits", "stale_hits", "cross_lead_hits", "cross_lead_mismatched", "requests",
                 "tag_changes", "skipped_lines", "estimated_token_calls"):
        assert page.value(name) == s[name], name
    for stat in ("mean", "p50", "p95", "p99"):
        assert page.value(f"latency_before_{stat}") == s["latency_ms"]["baseline"][stat]
        assert page.value(f"latency_after_{stat}") == s["latency_ms"]["cached"][stat]
    for task, row in s["by_task"].items():
        for name in ("requests", "l1", "l2", "l3", "misses", "bypassed", "mismatched_hits", "stale_hits",
                     "cross_lead_hits"):
            assert page.value(f"task_{name}", task=task) == row[name], (task, name)
        assert page.value("task_cost_before", task=task) == row["baseline_usd"]
        assert page.value("task_cost_after", task=task) == row["cached_usd"]
        floor = row["noise_floor"]
        assert page.value("task_noise_floor", task=task) == (floor["share"] if floor["repeats"] else None)
    assert page.value("leads") == s["leads"]
    # the histogram counts every call once before caching and once after
    assert sum(page.values("latency_hist_before")) == s["requests"]
    assert sum(page.values("latency_hist_after")) == s["requests"]


def assert_self_contained(text: str, page: Page) -> None:
    """Nothing to fetch: no script, no external stylesheet, image, font or frame; links only
    within the page; not even a URL in the text."""
    names = [name for name, _ in page.tags]
    assert "script" not in names and "link" not in names and "img" not in names and "iframe" not in names
    for name, attrs in page.tags:
        for attr in ("src", "href", "srcset", "action", "data"):
            value = attrs.get(attr)
            assert value is None or value.startswith("#"), (name, attr, value)
    assert not re.search(r"url\(|@import", text)
    assert re.findall(r"https?://", text) == []


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory, shared_embeddings):
    """The sample replayed with its default settings (the real model) and a compare run, in a
    home of their own, each with its page."""
    home = tmp_path_factory.mktemp("html-home")
    (home / "embeddings.sqlite").symlink_to(shared_embeddings)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TIERCLI_HOME", str(home))
        replay_page, compare_page = home / "replay.html", home / "compare.html"
        summary = ok_json("replay", SAMPLE_LOG, "--html", replay_page)
        per_lead = ok_json("report", "--per-lead")
        comparison = ok_json("compare", SAMPLE_LOG, "--html", compare_page)
    return home, summary, per_lead, replay_page, comparison, compare_page


def test_the_sample_replay_page_holds_the_runs_own_figures(sample_run):
    _, summary, per_lead, path, _, _ = sample_run
    text, page = page_of(path)
    assert_headline_is_the_summary(page, summary)
    assert_self_contained(text, page)
    names = [name for name, _ in page.tags]
    assert names.count("table") == names.count("caption") > 0
    assert all(attrs.get("scope") in ("col", "row") for name, attrs in page.tags if name == "th")
    svgs = [attrs for name, attrs in page.tags if name == "svg"]
    assert len(svgs) == 1 and svgs[0]["role"] == "img" and svgs[0]["aria-labelledby"]
    # the 20 dearest leads, as report --per-lead sorts them, and a note of how many there are
    top = per_lead["rows"][:20]
    assert [f["data-lead"] for f in page.figures if f["data-figure"] == "lead_cost_after"] == [r["lead"] for r in top]
    for row in top:
        assert page.value("lead_cost_after", lead=row["lead"]) == row["cached_usd"]
        assert page.value("lead_requests", lead=row["lead"]) == row["requests"]
    assert "The 20 dearest of 354 leads" in "".join(page.text)
    # the command that made the run, and the one that makes this page again
    body = "".join(page.text)
    assert f"tiercli replay {SAMPLE_LOG}" in body
    assert f"tiercli report {summary['run_id']} --html replay.html" in body
    assert 'id="compare"' not in text and 'id="tune"' not in text
    assert "prefers-color-scheme:dark" in text and "@page{size:A4" in text and "overflow-x:auto" in text


def test_a_compare_run_has_its_options_and_recommendation(sample_run):
    home, _, _, _, comparison, path = sample_run
    text, page = page_of(path)
    assert 'id="compare"' in text
    rec = comparison["recommendation"]
    assert page.value("recommended") == rec["name"]
    assert rec["reason"] and rec["reason"].split(".")[0] in "".join(page.text)
    for option in comparison["options"]:
        whole_log = {"option": option["name"], "task": None}  # the per-task tables' rows carry data-task
        assert page.value("option_cost_usd", **whole_log) == option["cost_usd"]
        assert page.value("option_savings_pct", **whole_log) == option["savings_pct"]
        assert page.value("option_mismatched_hits", **whole_log) == option["mismatched_hits"]
    for task, rows in comparison["by_task"].items():
        for option in rows:
            assert page.value("option_cost_usd", option=option["name"], task=task) == option["cost_usd"]
    assert_self_contained(text, page)
    # report RUN --html of the saved compare run is the same page
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TIERCLI_HOME", str(home))
        again = home / "again.html"
        result = run("report", comparison["run_id"], "--html", again)
    assert result.exit_code == 0, result.output
    assert Page(again.read_text()).figures == page.figures


def test_a_small_log_with_exact_figures(tmp_path):
    log = write(tmp_path / "log.jsonl", two_day_records())
    path = tmp_path / "page.html"
    summary = ok_json("replay", log, "--tiers", "l1,l2", "--html", path)
    _, page = page_of(path)
    assert_headline_is_the_summary(page, summary)
    # by hand: 3 calls of A (1 L1 stale and mismatched, 1 L2), 2 of B (1 L1), C's stream bypassed;
    # $3/$15 per Mtok (sonnet), $1/$5 (haiku): 1,000 in + 100 out = $0.0045; B's 3,000 in $0.0105
    assert page.value("requests") == 6 and page.value("hits") == 3
    assert (page.value("l1_hits"), page.value("l2_hits"), page.value("l3_hits")) == (2, 1, 0)
    assert page.value("stale_hits") == 1 and page.value("mismatched_hits") == 1
    assert page.value("cost_log_before") == pytest.approx(3 * 0.0045 + 2 * 0.0105 + 0.0015, abs=1e-12)
    assert page.value("cost_log_after") == pytest.approx(0.0045 + 0.0105 + 0.0015, abs=1e-12)
    assert page.value("cost_lead_after") == pytest.approx(0.0165 / 3, abs=1e-12)
    assert page.value("cost_month_after") == pytest.approx(0.0165 * 30 * 24 / 26, abs=1e-12)
    assert (page.value("lead_requests", lead="A"), page.value("lead_stale_hits", lead="A"),
            page.value("lead_mismatched_hits", lead="A")) == (3, 1, 1)
    assert [f["data-lead"] for f in page.figures if f["data-figure"] == "lead_cost_after"] == ["B", "A", "C"]
    assert page.value("task_requests", task="scoring") == 2 and page.value("task_l1", task="scoring") == 1
    assert page.value("leads") == 3
    assert "All 3 leads, dearest first." in "".join(page.text)


def test_text_from_the_log_is_escaped(tmp_path):
    evil = "<script>alert(1)</script>"
    log = write(tmp_path / "log<i>.jsonl", [
        call("2026-11-02T08:00:00Z", lead=evil, task='<b onclick="x">t</b>', response="a"),
        call("2026-11-02T08:01:00Z", lead=evil, task='<b onclick="x">t</b>', response="a"),
        call("2026-11-02T08:02:00Z", lead="plain", response="b"),
    ])
    path = tmp_path / "page.html"
    assert run("replay", log, "--tiers", "l1,l2", "--html", path).exit_code == 0
    text, page = page_of(path)
    assert "<script" not in text and "<b onclick" not in text and "<i>" not in text
    assert "log&lt;i&gt;.jsonl" in text  # the file's name in the provenance and the command
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert page.value("lead_requests", lead=evil) == 2  # the attribute holds it, escaped, read back whole
    assert page.value("task_requests", task='<b onclick="x">t</b>') == 2
    assert_self_contained(text, page)


def test_a_tune_ttl_run_has_its_frontier_and_threshold_curves(tmp_path):
    # two tasks whose paraphrases L3 may join: real model, a few texts
    records = []
    for i, (lead, prompt) in enumerate([("A", "what is the price of the house on elm street"),
                                        ("A", "how much does the house on elm street cost"),
                                        ("B", "what is the price of the house on elm street"),
                                        ("B", "tell me the price of the elm street house")]):
        records.append(call(f"2026-11-02T08:{i:02d}:00Z", lead=lead, prompt=prompt, task="price", response="$500k"))
        records.append(call(f"2026-11-02T09:{i:02d}:00Z", lead=lead, prompt=f"summary {i}", task="memory",
                            response=f"m{i}"))
    records.append(tag("2026-11-02T10:00:00Z", lead="A"))
    records.append(call("2026-11-02T10:01:00Z", lead="A", prompt="summary 0", task="memory", response="m9"))
    log = write(tmp_path / "log.jsonl", records)
    path = tmp_path / "tune.html"
    data = ok_json("tune-ttl", log, "--per-task", "--threshold-grid", "0.7,0.9,0.99", "--l1-grid", "5m",
                   "--l2-grid", "15m", "--l3-grid", "0,1h", "--html", path)
    text, page = page_of(path)
    assert 'id="tune"' in text
    assert page.value("tune_recommended") == (data["recommended"]["label"] if data["recommended"] else None)
    assert len(page.values("frontier_cached_usd")) == len(data["frontier"])
    for row in data["frontier"]:
        assert page.value("frontier_cached_usd", candidate=row["label"]) == row["cached_usd"]
    curves = {task: entry["threshold_curve"] for task, entry in data["per_task"]["tasks"].items()
              if entry.get("threshold_curve")}
    assert curves
    for task, curve in curves.items():
        assert [p["threshold"] for p in curve] == [0.7, 0.9, 0.99]
        for point in curve:
            assert page.value("curve_hit_rate", task=task, threshold=point["threshold"]) == point["hit_rate"]
            assert page.value("curve_mismatch_rate", task=task, threshold=point["threshold"]) == point["mismatch_rate"]
        assert f"Threshold curve of task {task}" in text
    # the saved run is a replay of the chosen settings: its headline is that replay's
    saved = ok_json("report", data["run_id"])
    assert saved["run_id"] == data["run_id"] and saved["recommended"] == data["recommended"]
    _, again = page_of(path)
    assert_self_contained(text, page)
    svgs = [a for n, a in page.tags if n == "svg"]
    assert len(svgs) == 2 + len(curves)  # the histogram, the frontier, a curve per task


def test_html_errors_are_one_line(tmp_path):
    log = write(tmp_path / "log.jsonl", two_day_records())
    assert run("replay", log, "--tiers", "l1,l2").exit_code == 0
    result = run("report", "--html", tmp_path / "no-such-folder" / "page.html")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0] == f"error: {tmp_path / 'no-such-folder' / 'page.html'}: cannot write the HTML report: " \
                       f"No such file or directory" and "Traceback" not in result.stderr
    assert not (tmp_path / "no-such-folder").exists()
    no_save = run("replay", log, "--no-save", "--html", tmp_path / "x.html")
    assert no_save.exit_code == 2 and "--html" in no_save.stderr and not (tmp_path / "x.html").exists()
    both = run("report", "--compare", "a", "b", "--html", tmp_path / "x.html")
    assert both.exit_code == 2


def test_a_run_saved_before_html_still_pages(tmp_path, tiercli_home):
    """A run without the summary's command (saved before it was recorded) still renders: the
    page then gives only the command that makes it again."""
    log = write(tmp_path / "log.jsonl", two_day_records())
    run_id = ok_json("replay", log, "--tiers", "l1,l2")["run_id"]
    summary_file = tiercli_home / "runs" / run_id / "summary.json"
    summary = json.loads(summary_file.read_text())
    del summary["command"]
    summary_file.write_text(json.dumps(summary))
    path = tmp_path / "old.html"
    assert run("report", run_id, "--html", path).exit_code == 0
    text, page = page_of(path)
    assert page.value("requests") == 6 and "The command that made the run" not in text
    assert f"tiercli report {run_id} --html old.html" in "".join(page.text)


def test_the_recorded_command_masks_a_redis_password():
    """The command a page prints is rebuilt from the options typer parsed: a URL's password
    never reaches it, and output-only options (--html, --json) are left out."""
    import typer

    from tiercli import options as opt
    from tiercli.present.html import invocation

    seen = {}
    app_ = typer.Typer()

    @app_.command()
    def replay(log: opt.LogArgument, redis_url: opt.RedisUrlOption = None, tiers: opt.TiersOption = None,
               html: opt.HtmlOption = None, json_output: opt.JsonOption = False):
        seen["command"] = invocation()

    @app_.command()
    def other():  # two commands: the name is a subcommand's, as tiercli's are
        pass

    result = CliRunner().invoke(app_, ["replay", "my logs.jsonl", "--redis-url", "redis://:hunter2@cache:6379/0",
                                       "--tiers", "l1,l2", "--html", "x.html", "--json"])
    assert result.exit_code == 0, result.output
    assert seen["command"] == "tiercli replay 'my logs.jsonl' --redis-url 'redis://:***@cache:6379/0' --tiers l1,l2"
