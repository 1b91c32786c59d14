"""Every example in every command's --help, and every tiercli command line in the code blocks of
README.md and of the manual in docs/, run on small logs: none may end in an internal error or a
traceback (issue 21: the help's own `--prompt-cache-ttl 1h` example failed that way, and no test
ran it). An example is run as written, in a folder that holds small files under the names it
uses (logs.jsonl and sample_logs/realestate_day.jsonl are a few dozen hand-written calls); only
what cannot be made there is substituted: placeholders of a synopsis (LOG, RUN, N...), saved run
ids, the Redis server. A new example is run by default; one that cannot be is skipped below, with
why."""

from __future__ import annotations

import itertools
import json
import re
import shlex
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import ROOT
from logs import call, tag, write
from messages_server import MessagesServer
from tiercli.cli import app
from tiercli.docgen import helps

FIXTURES = ROOT / "tests" / "fixtures"
runner = CliRunner()

# Examples this test cannot run, each with why.
SKIPPED = {
    "./dev test": "runs the whole test suite",
}
# Examples that end in a refusal by design, with what they say (exit 1, not an internal error).
REFUSED = {
    "tiercli runs rm 20261102-081500-a1b2c3": "without confirmation, and there is no terminal to ask on",
    "tiercli runs rm RUN...": "without confirmation, and there is no terminal to ask on",
}
# A synopsis's placeholders, by the flag they follow (None: anywhere).
PLACEHOLDERS = {
    (None, "LOG"): "logs.jsonl", ("--route", "TASK=MODEL"): "intent=claude-haiku-4-5", ("--batch", "TASK"): "memory",
    ("--options", "LIST"): "baseline,cache,cache+route+batch+prompt-cache", ("--top", "N"): "3",
    ("--sort", "COLUMN"): "stale_hits", ("--max-stale", "P"): "1%", ("--max-mismatch", "P"): "2%",
    ("--max-p95-ms", "MS"): "3000", ("--csv", "FILE"): "rows.csv", ("--plot", "FILE"): "plot.png",
    ("--write-config", "FILE"): "tuned.toml",
}
RUN_ID = re.compile(r"^(RUN|RUN_A|RUN_B|\d{8}-\d{4}(\d\d-[0-9a-f]{6})?)$")


def help_examples() -> list[str]:
    return [line.strip() for _, command, _ in helps() for line in (command.help or "").splitlines()
            if line.strip().startswith("tiercli ")]


# The pages whose code blocks are read: docs/cli.md is the help itself, read by help_examples
DOC_PAGES = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").rglob("*.md") if p.name != "cli.md")]


def doc_examples(pages=DOC_PAGES) -> list[str]:
    """The command lines of the pages' code blocks: a line that runs tiercli (or ./dev), with
    the lines that continue it (a trailing backslash, or a synopsis's next line of [options])."""
    found = []
    for page in pages:
        for block in re.findall(r"^```[^\n]*\n(.*?)^```", page.read_text(), re.S | re.M):
            lines = block.splitlines()
            for i, line in enumerate(lines):
                text = line.strip()
                if not re.match(r"(tiercli|\./dev) ", text) and "| tiercli " not in text:
                    continue
                for more in lines[i + 1:]:
                    if text.endswith("\\"):
                        text = text[:-1].rstrip() + " " + more.strip()
                    elif more.strip().startswith("["):
                        text += " " + more.strip()
                    else:
                        break
                found.append(re.sub(r"\s+# .*$", "", text))  # its comment left out
    return found


EXAMPLES = list(dict.fromkeys(help_examples() + doc_examples()))


def test_examples_are_found():
    assert len(help_examples()) >= 20 and len(doc_examples()) >= 20
    assert doc_examples([ROOT / "README.md"]) == ["./dev replay sample_logs/realestate_day.jsonl", "./dev test"]
    assert len(doc_examples(DOC_PAGES[1:])) >= 20, "the manual's examples are read from docs/"
    assert "tiercli compare logs.jsonl --prompt-cache-ttl 1h --max-mismatch 1% --max-p95-ms 3000 --json" in EXAMPLES
    assert any(e.startswith("tiercli tune-ttl LOG [--l1-grid") and "--json" in e for e in EXAMPLES)


def variants(example: str) -> list[list[str]]:
    """The example's arguments after `tiercli`: a synopsis's [optional] parts all given, each
    choice of an a|b value tried, comments and `...` left out."""
    words = shlex.split(example.replace("[", " ").replace("]", " "), comments=True)
    stdin = None
    if "|" in words and words[0] == "cat":  # cat FILE | tiercli ...: FILE on stdin
        stdin, words = words[1], words[words.index("|") + 1:]
    words = [w.removesuffix("...") for w in words[1:] if w != "..."]
    choices = [w.split("|") if "|" in w and "://" not in w else [w] for w in words]
    return [[stdin, *combination] for combination in itertools.product(*choices)]


def small_log() -> list[dict]:
    """Three task types (intent, market_context, memory) over two days: repeats for L1 and L2
    hits, close texts for L3, a tag change and a stream."""
    records = []
    prompts = {"intent": "Is {lead} still interested in the house on Elm St?",
               "market_context": "Market snapshot for ZIP 9021{z}", "memory": "Summarise the conversation with {lead}"}
    for day in range(2):
        for i in range(15):
            lead, task = "ABCDE"[i % 5], list(prompts)[i % 3]
            ts = day * 86400 + 8 * 3600 + i * 240
            records.append(call(ts, lead=lead, task=task, prompt=prompts[task].format(lead=lead, z=i % 2),
                                worker=f"w{i % 2}", response=f"{task} answer for {lead}, {i % 4}",
                                latency_ms=800 + 50 * i))
        records += [tag(ts + 10, lead="A"), call(ts + 20, lead="A", prompt="stream this", streaming=True, response="s")]
    return records


def app_log() -> list[dict]:
    """An application's own log for --format map: fields where README's two map examples look."""
    return [{"ts": 1_794_000_000 + 60 * i, "logged_at": f"2026-11-02T08:{i:02d}:00Z", "task_type": "intent",
             "meta": {"task": "intent", "contact_id": f"c{i % 3}"}, "metadata": {"contact_id": f"c{i % 3}"},
             "model": "claude-haiku-4-5", "prompt": f"hello {i % 4}", "completion": f"hi {i % 4}",
             "duration_ms": 900, "input_tokens": 200, "output_tokens": 20} for i in range(12)]


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """A working folder holding small files under every name the examples use."""
    import gzip

    import zstandard

    for name in ("logs.jsonl", "sample_logs/realestate_day.jsonl"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        write(tmp_path / name, small_log())
    shutil.copy(FIXTURES / "otel" / "current.jsonl", tmp_path / "traces.jsonl")
    (tmp_path / "spans.jsonl.gz").write_bytes(gzip.compress((FIXTURES / "otel" / "current.jsonl").read_bytes()))
    for name in ("crm-tags.jsonl", "crm_tags.jsonl"):
        write(tmp_path / name, [tag("2026-11-02T08:00:30Z", lead="lead-17", tag="Hot")])
    (tmp_path / "exports").mkdir()
    (tmp_path / "exports" / "2026-11-01.jsonl.zst").write_bytes(
        zstandard.ZstdCompressor().compress((FIXTURES / "langfuse" / "observations.jsonl").read_bytes()))
    for path in ("exports/observations.csv", "observations.csv"):
        shutil.copy(FIXTURES / "langfuse" / "observations.csv", tmp_path / path)
    write(tmp_path / "app.jsonl", app_log())
    spend_logs = [json.loads(line) for line in (FIXTURES / "litellm" / "spend_logs.jsonl").read_text().splitlines()]
    (tmp_path / "spend_logs.json").write_text(json.dumps(spend_logs))  # as curl .../spend/logs writes it
    (tmp_path / "tiers.toml").write_text('tiers = ["l1", "l2", "l3"]\n[l2]\nttl = "1h"\n')
    for name in ("cache.jsonl", "cache-w1.jsonl", "cache-w2.jsonl", "cache.toml"):  # a tiercli.cache log (verify)
        shutil.copy(FIXTURES / "cache" / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def saved_runs(count: int) -> list[str]:
    ids = []
    for _ in range(count):
        result = runner.invoke(app, ["replay", "logs.jsonl", "--tiers", "l1,l2", "--json"])
        assert result.exit_code == 0, result.output
        ids.append(json.loads(result.stdout)["run_id"])
    return ids


def strict_json(text: str):
    """JSON as a strict reader takes it: Infinity or NaN is an error."""
    def refuse(constant):
        raise ValueError(f"{constant} in --json output")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("example", EXAMPLES)
def test_example(example, folder, request):
    if example in SKIPPED:
        pytest.skip(SKIPPED[example])
    for stdin, *args in variants(example):
        env = {}
        if "--executor" in args:
            request.getfixturevalue("ray_instance")  # a local Ray instance, connected: commands use it
        if any(a.startswith(("redis://", "rediss://")) for a in args):
            url = request.getfixturevalue("redis_server").url
            args = [url if a.startswith(("redis://", "rediss://")) else a for a in args]
        if "--live" in args:
            server = request.getfixturevalue("messages_server")
            env = {"ANTHROPIC_BASE_URL": server.url, "ANTHROPIC_API_KEY": "sk-ant-test-example-key"}
        args = [PLACEHOLDERS.get((before, a), PLACEHOLDERS.get((None, a), a)) for before, a in zip([None, *args], args)]
        run_ids = list(dict.fromkeys(a for a in args[1:] if RUN_ID.match(a)))
        if args[0] in ("report", "runs") or run_ids:
            ids = dict(zip(run_ids, saved_runs(max(len(run_ids), 1))))
            args = [ids.get(a, a) for a in args]
        result = runner.invoke(app, args, input=Path(stdin).read_bytes() if stdin else None, env=env)
        shown = f"tiercli {shlex.join(args)}\n{result.output}"
        assert "internal error" not in result.output and "Traceback" not in result.output, shown
        if example in REFUSED:
            assert result.exit_code == 1 and REFUSED[example] in result.stderr, shown
            continue
        assert result.exit_code == 0, shown
        if "--json" in args:
            strict_json(result.stdout)


@pytest.fixture
def messages_server():
    with MessagesServer() as server:
        yield server
