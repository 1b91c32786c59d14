"""`tiercli compare`'s output from a result dict written by hand: the text at 80 and 120 columns
(nothing wider, every option, the marks, the number formats), the CSV frame's rows, columns and
values, and the plot. No log is replayed."""

import io
import math
import re

import pandas as pd
import pytest
from rich.cells import cell_len
from rich.console import Console

from tiercli.present.compare_view import options_frame, print_compare_options
from tiercli.present.plots import plot_compare

TASKS = {"intent": 1_052, "memory": 1_052, "market_context": 313}
LEADS = 354
TASK_LEADS = {"intent": 300, "memory": 354, "market_context": 120}  # a task's own leads: its $/lead's divisor
SPAN_S = 86_400.0
OPTIONS = ("baseline", "cache", "prompt-cache", "cache+prompt-cache", "route", "batch")

# Per task and option: cost in the log, mismatched hits (None: not measured), stale hits,
# latency p95, response-cache hit rate, prompt-cache read share (None: no prompt caching).
FIGURES = {
    "intent": {
        "baseline": (4.0, 0, 0, 1_500.0, 0.0, None),
        "cache": (2.5, 300, 0, 1_400.0, 0.40, None),  # over the mismatch budget
        "prompt-cache": (3.0, 0, 0, 1_450.0, 0.0, 0.5),
        "cache+prompt-cache": (2.0, 300, 0, 1_380.0, 0.40, 0.5),
        "route": (0.8, None, 0, 900.0, 0.0, None),
        "batch": (2.0, 0, 0, 3_600_000.0, 0.0, None),
    },
    "memory": {
        "baseline": (6.0, 0, 0, 1_800.0, 0.0, None),
        "cache": (1.5, 2, 10, 1_200.0, 0.66, None),
        "prompt-cache": (4.5, 0, 0, 1_700.0, 0.0, 0.4),
        "cache+prompt-cache": (1.2, 2, 10, 1_150.0, 0.66, 0.4),
        "route": (6.0, None, 0, 1_800.0, 0.0, None),
        "batch": (3.0, 0, 0, 3_600_000.0, 0.0, None),
    },
    "market_context": {
        "baseline": (2.0, 0, 0, 2_500.0, 0.0, None),
        "cache": (1.0, 0, 0, 2_000.0, 0.5, None),
        "prompt-cache": (0.5, 0, 0, 2_400.0, 0.0, 0.8),
        "cache+prompt-cache": (0.4, 0, 0, 1_900.0, 0.5, 0.8),
        "route": (2.0, None, 0, 2_500.0, 0.0, None),
        "batch": (1.0, 0, 0, 3_600_000.0, 0.0, None),
    },
}
BUDGETS = {"max_stale": 0.01, "max_mismatch": 0.02, "max_p95_ms": 3_000.0}
RISK = {"baseline": "none: calls as recorded.",
        "cache": "stale or mismatched answers from the response cache; answers within the budgets only.",
        "prompt-cache": "none to answers: the provider caches the prompt prefix only; cost estimated from "
                        "token shares.",
        "cache+prompt-cache": "as cache; the prompt cache sees only the response cache's misses and bypasses.",
        "route": "answer quality of the smaller model is not measured; priced at its rates with the same token counts.",
        "batch": "answers arrive after the batch window (1 h); a 30-second delay already costs conversions."}


def _row(name: str, requests: int, leads: int, cost: float, base: float, wrong, stale: int, p95: float,
         hit_rate: float, read_share, budgets: dict) -> dict:
    over = []
    if wrong is not None and budgets["max_mismatch"] is not None and wrong / requests > budgets["max_mismatch"]:
        over.append(f"mismatched {wrong / requests * 100:.1f}% > {budgets['max_mismatch'] * 100:g}%")
    if budgets["max_stale"] is not None and stale / requests > budgets["max_stale"]:
        over.append(f"stale {stale / requests * 100:.1f}% > {budgets['max_stale'] * 100:g}%")
    if budgets["max_p95_ms"] is not None and p95 > budgets["max_p95_ms"]:
        over.append(f"p95 {'1 h' if p95 == 3_600_000 else f'{p95:,.0f} ms'} > {budgets['max_p95_ms']:,.0f} ms")
    prompt = None
    if read_share is not None:
        total = requests * 1_000
        prompt = {"read_tokens": round(total * read_share), "write_tokens": 7_000,
                  "uncached_tokens": total - round(total * read_share) - 7_000, "read_share": read_share}
    return {"name": name, "requests": requests, "leads": leads, "cost_usd": cost, "monthly_usd": cost * 30,
            "savings_pct": (base - cost) / base * 100, "cost_per_lead_usd": cost / leads,
            "latency_ms": {"mean": p95 / 2, "p50": p95 / 3, "p95": p95}, "hit_rate": hit_rate,
            "tiers": {"l1": hit_rate * 0.75, "l2": hit_rate * 0.25, "l3": 0.0}, "prompt_cache": prompt,
            "stale_hits": stale, "mismatched_hits": wrong,
            "delayed_calls": requests if name == "batch" else 0, "routed_calls": requests if name == "route" else 0,
            "risk": RISK[name], "within_budget": not over, "over_budget": over}


def compare_data(run_id: str | None = "20261102-0815-compare", budgets: dict = BUDGETS) -> dict:
    by_task = {}
    for task, requests in TASKS.items():
        base = FIGURES[task]["baseline"][0]
        by_task[task] = [_row(name, requests, TASK_LEADS[task], *FIGURES[task][name][:1], base, *FIGURES[task][name][1:],
                              budgets=budgets) for name in OPTIONS]
    requests = sum(TASKS.values())
    options = []
    for i, name in enumerate(OPTIONS):
        parts = [by_task[task][i] for task in TASKS]
        cost = sum(p["cost_usd"] for p in parts)
        wrong = None if name == "route" else sum(p["mismatched_hits"] for p in parts)
        stale = sum(p["stale_hits"] for p in parts)
        p95 = max(p["latency_ms"]["p95"] for p in parts)
        hits = sum(p["hit_rate"] * p["requests"] for p in parts) / requests
        reads = [p["prompt_cache"] for p in parts]
        share = None if reads[0] is None else sum(r["read_tokens"] for r in reads) / (requests * 1_000)
        options.append(_row(name, requests, LEADS, cost, 12.0, wrong, stale, p95, hits, share, budgets))
    return {
        "options": options, "by_task": by_task,
        "recommendation": {
            "name": "prompt-cache", "reason": "The cheapest option within the budgets; cache and "
                                              "cache+prompt-cache cost less but answer wrongly too often.",
            "by_task": {"intent": {"name": "route", "reason": "80.0% saved; answer quality not measured."},
                        "memory": {"name": "cache+prompt-cache", "reason": "80.0% saved."},
                        "market_context": {"name": "cache+prompt-cache", "reason": "80.0% saved."}}},
        "budgets": budgets, "requests": requests, "leads": LEADS, "span_s": SPAN_S,
        "notes": ["Routed calls are priced at the target model's rates with the same token counts.",
                  "Prompt-cache tokens are split over a call's parts in proportion to their UTF-8 lengths: "
                  "an estimate."],
        "run_id": run_id}


def shown(data: dict, width: int) -> str:
    console = Console(width=width, file=io.StringIO(), highlight=False)
    print_compare_options(console, data)
    return console.file.getvalue()


@pytest.fixture(scope="module")
def data():
    return compare_data()


def test_the_hand_built_result_adds_up(data):
    """The fixture is consistent: task rows add up to the whole log's."""
    for i, row in enumerate(data["options"]):
        assert math.isclose(row["cost_usd"], sum(rows[i]["cost_usd"] for rows in data["by_task"].values()))
    assert [r["within_budget"] for r in data["options"]] == [True, False, True, False, True, False]


def tables(text: str) -> dict[str, dict[str, dict[str, str]]]:
    """The tables in the text, read back by their rules (the runs of ─ give each column's span):
    title -> option -> header -> cell, a table printed in parts put together again. The mark
    column, when there is one, has the header "mark"."""
    lines = text.splitlines()
    found: dict[str, dict[str, dict[str, str]]] = {}
    for at, line in enumerate(lines):
        if not line.startswith("─"):
            continue
        spans = [m.span() for m in re.finditer(r"─+", line)]
        top = at
        while not lines[top - 1].startswith(("Options", "Task ")):
            top -= 1
        title = re.sub(r" \(part \d+ of \d+\)$", "", lines[top - 1])
        headers = [" ".join(h[a:b].strip() for h in lines[top:at] if h[a:b].strip()) or "mark" for a, b in spans]
        key = headers.index("Option")
        table = found.setdefault(title, {})
        for row in lines[at + 1:]:
            cells = [row[a:b].strip() for a, b in spans]
            if cells[key] not in OPTIONS:  # the lines below the table
                break
            table.setdefault(cells[key], {}).update(zip(headers, cells))
    return found


@pytest.mark.parametrize("width", [80, 120])
def test_text_fits_and_shows_every_option_and_mark(data, width):
    text = shown(data, width)
    for line in text.splitlines():
        assert cell_len(line) <= width, f"{cell_len(line)} cells at width {width}: {line!r}"
    assert "…" not in text
    found = tables(text)
    assert list(found) == ["Options", *(f"Task {task} ({requests:,} requests, {TASK_LEADS[task]} leads)"
                                        for task, requests in TASKS.items())]
    for table in found.values():
        assert list(table) == list(OPTIONS)
    # marks: the recommended row, the rows over budget, and what the marks mean
    assert {name: row["mark"] for name, row in found["Options"].items()} == {
        "baseline": "", "cache": "x", "prompt-cache": "*", "cache+prompt-cache": "x", "route": "", "batch": "x"}
    assert {name: row["mark"] for name, row in found["Task intent (1,052 requests, 300 leads)"].items()} == {
        "baseline": "", "cache": "x", "prompt-cache": "", "cache+prompt-cache": "x", "route": "*", "batch": "x"}
    assert [row["mark"] for row in found["Task memory (1,052 requests, 354 leads)"].values()] == ["", "", "", "*", "", "x"]
    flat = " ".join(text.split())
    assert ("* recommended; x over budget; Wrong n/a: not measured; Wrong (mismatched) and Stale: hits, with their "
            "share of requests.") in flat
    assert ("Recommended: prompt-cache ($8.00 in the log, $240.00/month, 33.3% saved). The cheapest option within "
            "the budgets; cache and cache+prompt-cache cost less but answer wrongly too often.") in flat
    assert ("Over budget: cache: mismatched 12.5% > 2% cache+prompt-cache: mismatched 12.5% > 2% "
            "batch: p95 1 h > 3,000 ms Risk of each option:") in flat
    assert "Budgets: stale <= 1%, mismatched <= 2%, p95 <= 3,000 ms" in flat
    assert "Options compared over 2,417 requests, 354 leads, 24 h; run 20261102-0815-compare" in flat
    # the risk of every option below the table, before the tables per task; the notes last
    risks = flat[flat.index("Risk of each option:"):flat.index("Task intent")]
    for row in data["options"]:
        assert f"{row['name']}: {row['risk']}" in risks
    assert flat.index("Notes: - Routed calls are priced") > flat.rindex("Task market_context")
    # each task's cheapest option within the budgets, under its table; under the first, what its $/lead divides by
    assert ("$/lead in the tables per task: the task's cost over its own leads (those with a call of the task). "
            "Cheapest within the budgets: route. 80.0% saved; answer quality not measured.") in flat
    assert flat.count("$/lead in the tables per task") == 1
    assert flat.count("Cheapest within the budgets: cache+prompt-cache. 80.0% saved.") == 2


def test_numbers_are_formatted_the_same_at_80_and_120_columns(data):
    narrow, wide = tables(shown(data, 80)), tables(shown(data, 120))
    assert narrow == wide
    options = wide["Options"]
    assert list(options["baseline"]) == [
        "mark", "Option", "$ in log", "$/month", "Saved", "$/lead", "p95 latency", "Wrong", "Stale", "Mean latency",
        "p50 latency",
        "Hit rate", "L1", "L2", "Prompt read", "Delayed", "Routed"]  # no L3: no option hit it
    assert list(options["baseline"].values())[1:] == [
        "baseline", "$12.00", "$360.00", "0.0%", "$0.0339", "2,500 ms", "0", "0", "1,250 ms", "833 ms", "0.0%", "0.0%",
        "0.0%",
        "-", "0", "0"]
    assert list(options["cache"].values())[1:] == [
        "cache", "$5.00", "$150.00", "58.3%", "$0.0141", "2,000 ms", "302 (12.5%)", "10 (0.4%)", "1,000 ms", "667 ms",
        "52.6%", "39.5%", "13.2%", "-", "0", "0"]
    assert options["cache+prompt-cache"]["$ in log"] == "$3.60"
    assert options["cache+prompt-cache"]["Prompt read"] == "49.5%"
    route = options["route"]
    assert (route["Wrong"], route["Routed"], route["Saved"]) == ("n/a", "2,417", "26.7%")
    # a batched call's hour reads as one: never "3,600,000" ms
    assert (options["batch"]["p95 latency"], options["batch"]["Mean latency"], options["batch"]["Delayed"]) == (
        "1 h", "30 min", "2,417")
    intent = wide["Task intent (1,052 requests, 300 leads)"]
    assert list(intent["cache"]) == [
        "mark", "Option", "$ in log", "$/month", "Saved", "$/lead", "p95 latency", "Wrong", "Stale", "Hit rate",
        "Prompt read", "Delayed", "Routed"]
    assert list(intent["cache"].values())[1:] == [
        "cache", "$2.50", "$75.00", "37.5%", "$0.0083", "1,400 ms", "300 (28.5%)", "0", "40.0%", "-", "0", "0"]
    # a task's $/lead is over its own 300 leads, and the text says so once, under the first task's table
    assert intent["route"]["$/lead"] == "$0.0027" and intent["route"]["Wrong"] == "n/a"


def test_at_80_columns_the_options_table_comes_in_parts_that_repeat_the_option(data):
    text = shown(data, 80)
    assert [line for line in text.splitlines() if line.startswith("Options (")] == [
        f"Options (part {n} of 3)" for n in (1, 2, 3)]
    assert "Options (part" not in shown(data, 120).replace("Options (part 1 of 2)", "").replace(
        "Options (part 2 of 2)", "")
    part1 = text.split("Options (part 1 of 3)")[1].split("\n\n")[0]
    for header in ("$/month", "Saved", "$/lead", "p95"):  # the decision's columns come first
        assert header in part1
    for name in OPTIONS:
        assert re.search(rf"^[*x ]  {re.escape(name)} ", part1, re.M)


def test_money_that_rounds_to_zero_and_a_log_under_an_hour(data):
    short = compare_data(run_id=None, budgets={"max_stale": None, "max_mismatch": None, "max_p95_ms": None})
    for row in short["options"] + [r for rows in short["by_task"].values() for r in rows]:
        row["monthly_usd"] = None
    short["options"][0]["cost_usd"] = 0.004
    short["options"][1]["cost_usd"] = 0.00004
    short["recommendation"] = {"name": None, "reason": "", "by_task": {}}
    text = shown(short, 120)
    flat = " ".join(text.split())
    options = tables(text)["Options"]
    # one precision for the column: 4 places, since one amount is under 10 cents; under that, "<"
    assert (options["baseline"]["$ in log"], options["baseline"]["$/month"]) == ("$0.0040", "n/a")
    assert [row["$ in log"] for row in options.values()] == [
        "$0.0040", "<$0.0001", "$8.0000", "$3.6000", "$8.8000", "$6.0000"]
    assert "$/month n/a: the log spans under an hour" in flat
    assert "Budgets: none (every option is within them)" in flat
    assert "Recommended: none." in flat
    assert "; run" not in flat and "* recommended" not in flat
    assert "mark" not in tables(text)["Options"]["cache"]  # no marks: no column of blanks


def test_a_task_name_with_control_characters_is_escaped():
    data = compare_data()
    data["by_task"] = {("mem\x1b[2Jory" if task == "memory" else task): rows for task, rows in data["by_task"].items()}
    data["notes"].append("Task mem\x1b[2Jory is routed.")
    text = shown(data, 80)
    assert "\x1b" not in text
    assert "Task mem\\x1b[2Jory (1,052 requests, 354 leads)" in text and "- Task mem\\x1b[2Jory is routed." in text


def test_options_frame_rows_columns_and_values(data):
    frame = options_frame(data)
    assert frame.index.names == ["task", "option"]
    assert list(frame.index) == [(task, name) for task in ("all", *TASKS) for name in OPTIONS]
    assert list(frame.columns) == [
        "requests", "cost_usd", "monthly_usd", "savings_pct", "cost_per_lead_usd",
        "latency_mean_ms", "latency_p50_ms", "latency_p95_ms", "hit_rate", "l1_hit_rate", "l2_hit_rate", "l3_hit_rate",
        "prompt_read_tokens", "prompt_write_tokens", "prompt_uncached_tokens", "prompt_read_share",
        "stale_hits", "mismatched_hits", "cross_lead_hits", "cross_lead_mismatched", "delayed_calls", "routed_calls",
        "within_budget", "over_budget", "recommended", "risk"]
    row = frame.loc[("intent", "cache+prompt-cache")]
    assert row["requests"] == 1_052 and row["cost_usd"] == 2.0 and row["monthly_usd"] == 60.0
    assert row["savings_pct"] == 50.0 and row["cost_per_lead_usd"] == 2.0 / TASK_LEADS["intent"]
    assert (row["latency_mean_ms"], row["latency_p50_ms"], row["latency_p95_ms"]) == (690.0, 460.0, 1_380.0)
    tiers = data["by_task"]["intent"][3]["tiers"]
    assert (row["hit_rate"], row["l1_hit_rate"], row["l2_hit_rate"], row["l3_hit_rate"]) == (
        0.40, tiers["l1"], tiers["l2"], 0.0)
    assert (row["prompt_read_tokens"], row["prompt_write_tokens"], row["prompt_uncached_tokens"]) == (526_000, 7_000,
                                                                                                    519_000)
    assert row["prompt_read_share"] == 0.5
    assert (row["stale_hits"], row["mismatched_hits"], row["delayed_calls"], row["routed_calls"]) == (0, 300, 0, 0)
    assert not row["within_budget"] and row["over_budget"] == "mismatched 28.5% > 2%"
    assert not row["recommended"] and row["risk"] == RISK["cache+prompt-cache"]
    assert frame.loc[("intent", "route"), "recommended"]
    assert frame.loc[("all", "prompt-cache"), "recommended"]
    assert frame["recommended"].sum() == 4  # the whole log's and each task's
    # not measured, no prompt caching: empty cells, whole numbers elsewhere
    assert frame.loc[("all", "route"), "mismatched_hits"] is pd.NA
    assert frame["cross_lead_hits"].isna().all()  # these rows were written before cross-lead hits were counted
    assert frame.loc[("all", "baseline"), "prompt_read_tokens"] is pd.NA
    assert math.isnan(frame.loc[("all", "baseline"), "prompt_read_share"])
    assert frame.loc[("all", "batch"), "over_budget"] == "p95 1 h > 3,000 ms"
    assert frame.loc[("all", "batch"), "delayed_calls"] == 2_417
    csv = frame.to_csv().splitlines()
    assert csv[0].startswith("task,option,requests,cost_usd,monthly_usd,")
    assert csv[5].startswith("all,route,2417,8.8,264.0,")
    assert csv[5].endswith(",0.0,0.0,0.0,0.0,,,,,0,,,,0,2417,True,,False," + RISK["route"])


def test_plot_writes_a_png(data, tmp_path, monkeypatch):
    from tiercli.present import plots

    kept = {}
    save = plots._save

    def keep(fig, path):
        ax = fig.axes[0]
        kept["title"] = fig.texts[0].get_text() if fig.texts else ax.get_title()
        kept["labels"] = [t.get_text() for t in ax.get_xticklabels()]
        kept["legend"] = [t.get_text() for t in ax.get_legend().get_texts()]
        stacked = [p for p in ax.patches if p.get_fill()]  # not the hatching and the outline drawn over
        kept["heights"] = [round(sum(p.get_height() for p in stacked if round(p.get_x() + p.get_width() / 2) == i), 6)
                           for i in range(len(OPTIONS))]
        save(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    path = tmp_path / "compare.png"
    plot_compare(data, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "20261102-0815-compare" in kept["title"]
    assert kept["labels"] == ["baseline", "cache\n(over budget)", "prompt-cache\n(recommended)",
                              "cache+prompt-cache\n(over budget)", "route", "batch\n(over budget)"]
    assert kept["legend"][:3] == list(TASKS)
    assert kept["heights"] == [round(r["cost_usd"], 6) for r in data["options"]]
