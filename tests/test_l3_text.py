"""What L3 embeds, per task (`l3_text`, docs/answers.md "What L3 embeds"): each choice on hand-written
messages and records (native, through the reference reader, and foreign); strip-template's
template on texts with a known one, against a brute-force reading of its rule; the L1/L2 key
never changes; an off tier embeds and tokenizes nothing; texts over the model's window are
counted per task (a small test window, and the real tokenizer on two texts)."""

import json
import random
import uuid

import pytest
from typer.testing import CliRunner

from logs import call, write
from tiercli.cli import app
from tiercli.commands.inspect import inspect_logs
from tiercli.core.l3text import (Template, all_user_text, apply_templates, l3_text, learn_template,
                                   parse_l3_text, regex_text, shared_start, strip_template, template_size)
from tiercli.errors import LogError
from tiercli.ingest.logread import read_logs
from tiercli.ingest.records import RecordProblem
from tiercli.pipeline import load_events, run_replay
from tiercli.present.render import l3_text_lines, notes
from tiercli.settings import Settings, settings_from_flags
from tiercli.store.embeddings import HashingEmbedder, SentenceTransformerEmbedder, texts_over_window

from conftest import ROOT

MAP = ROOT / "tests" / "fixtures" / "map"
OTEL = ROOT / "tests" / "fixtures" / "otel" / "current.jsonl"


def text_block(text):
    return {"type": "text", "text": text}


# A conversation: two user turns (the second of two text blocks and an image), an answer between.
MESSAGES = [
    {"role": "user", "content": [text_block("Hi, is 18 Birch Ct still for sale?")]},
    {"role": "assistant", "content": [text_block("Yes, at $489k.")]},
    {"role": "user", "content": [{"type": "image", "source": {}}]},
    {"role": "user", "content": [text_block("SMS: can I see it Saturday?"), text_block("thanks")]},
]


def settings_of(*tasks: str, **flags) -> Settings:
    """Settings as --task NAME.SETTING=VALUE flags give them."""
    return settings_from_flags(None, {"tasks": list(tasks), **flags})


# --- each choice, call by call -----------------------------------------------------------------

def test_last_user_and_all_user():
    assert l3_text(parse_l3_text("last-user"), MESSAGES, None) == "SMS: can I see it Saturday?\nthanks"
    # every user message's text, joined with a newline; the image-only message adds nothing
    assert l3_text(parse_l3_text("all-user"), MESSAGES, None) == \
        "Hi, is 18 Birch Ct still for sale?\nSMS: can I see it Saturday?\nthanks"
    assert all_user_text([{"role": "assistant", "content": [text_block("x")]}]) == ""
    # strip-template keeps the last user message's text at ingest: the template is cut later
    assert l3_text(parse_l3_text("strip-template"), MESSAGES, None) == "SMS: can I see it Saturday?\nthanks"


def test_regex_first_group_else_the_whole_last_user_text():
    choice = parse_l3_text("regex:SMS: (.*)")
    assert l3_text(choice, MESSAGES, None) == "can I see it Saturday?"  # `.` stops at the newline
    last = "SMS: can I see it Saturday?\nthanks"
    assert regex_text("ZIP (\\d{5})", last) == last  # no match: the whole text
    assert regex_text("x(y)?|thanks", last) == last  # group 1 took no part in the match
    assert regex_text("(?s)SMS: (.*)", last) == "can I see it Saturday?\nthanks"
    assert regex_text("(\\w+) it", last) == "see"  # the first match (re.search)


def test_field_of_the_record():
    record = {"attrs": {"sms": "can I see it?", "zip": 92501, "meta": '{"bot": "buyer"}', "big": {"a": 1},
                        "none": None, "dotted.key": "dot"}}
    text = lambda path, needed=True: l3_text(parse_l3_text(f"field:{path}"), MESSAGES, record, needed)
    assert text("attrs.sms") == "can I see it?"
    assert text("attrs.zip") == "92501"  # a number as JSON writes it
    assert text("attrs.meta.bot") == "buyer"  # JSON text on the way is parsed, as --map does
    assert text("attrs.dotted\\.key") == "dot"
    for path in ("attrs.missing", "attrs.none"):
        with pytest.raises(RecordProblem) as bad:
            text(path)
        assert bad.value.field == path and bad.value.problem == f"missing (l3_text field:{path} embeds it)"
        assert text(path, needed=False) == ""  # a bypassed or keyless call: never looked up
    with pytest.raises(RecordProblem) as bad:
        text("attrs.big")
    assert (bad.value.field, bad.value.problem) == (
        "attrs.big", "must be a string or a number for l3_text field:attrs.big, got an object")


# --- through the readers -------------------------------------------------------------------------

SMS = ["can I see it Saturday?", "what are the HOA fees", "is it still for sale!"]  # no shared last letter


def intent_call(ts, sms, **fields):
    return call(ts, prompt=f"Classify the intent of this SMS.\nSMS: \"{sms}\"\nAnswer with one line.",
                attrs={"sms": sms}, **fields)


def native_log(tmp_path):
    return write(tmp_path / "log.jsonl", [
        intent_call(1000 + i, sms, lead=f"L{i}", response="intent: x") for i, sms in enumerate(SMS)] + [
        call(2000, lead="L9", task="memory", prompt="Summarise lead L9.", attrs={"sms": "unused"})])


def test_every_choice_on_a_native_log_and_the_key_is_unchanged(tmp_path):
    log = native_log(tmp_path)
    default = load_events(log, Settings())
    keys = [c.key for c in default.calls]
    expected = {
        "last-user": [c.text for c in default.calls[:3]],
        "all-user": [c.text for c in default.calls[:3]],  # one user message
        'regex:SMS: "(.*)"': SMS,
        "field:attrs.sms": SMS,  # the fast reader leaves these lines to the reference reader
        "strip-template": SMS,  # the template is learned from the three intent texts
    }
    for choice, texts in expected.items():
        read = load_events(log, settings_of(f"intent.l3_text={choice}"))
        assert [c.text for c in read.calls[:3]] == texts, choice
        assert read.calls[3].text == "Summarise lead L9."  # memory keeps the default
        assert [c.key for c in read.calls] == keys, choice  # L1/L2 key: the whole request, always


def test_a_missing_field_names_the_line_and_the_field(tmp_path):
    log = write(tmp_path / "log.jsonl", [intent_call(1000, SMS[0]), call(1001, prompt="no sms"),
                                         call(1002, prompt="streamed", streaming=True)])
    settings = settings_of("intent.l3_text=field:attrs.sms")
    with pytest.raises(LogError) as error:
        load_events(log, settings)
    assert error.value.message == (f"{log}:2: attrs.sms: missing (l3_text field:attrs.sms embeds it)")
    assert "another l3_text" in error.value.hint
    read = load_events(log, settings, skip_invalid=True)
    # the bad line is skipped; the streamed one is never looked up, so it needs no text
    assert [(c.line, c.text) for c in read.calls] == [(1, SMS[0]), (3, "")]
    assert [e.line for e in read.skipped] == [2]


def test_field_of_a_foreign_record_map_format():
    field_map = {"ts": "logged_at", "lead_id": "metadata.contact_id", "system": "system_prompt",
                 "response": "completion", "latency_ms": "duration_ms", "type": "event", "tag": "new_tag"}
    settings = settings_of("intent.l3_text=field:metadata.zip")  # a field the map does not name
    read = read_logs([str(MAP / "orchestrator.jsonl")], "map", field_map=field_map,
                     keep_text=_shape(settings))
    assert [(c.task, c.text) for c in read.calls if c.task == "intent"] == [
        ("intent", "92501"), ("intent", "92501"), ("intent", "92503"), ("intent", "92503")]
    # a CSV column whose name holds a dot is a field by its whole name
    csv_map = {"ts": "started_at_ms", "end_ts": "finished_at", "lead_id": "contact_id",
               "task_type": "metadata.task", "response": "answer"}
    read = read_logs([str(MAP / "warehouse.csv")], "map", field_map=csv_map,
                     keep_text=_shape(settings_of("lead_scoring.l3_text=field:metadata.task")))
    assert [c.text for c in read.calls if c.task == "lead_scoring"] == ["lead_scoring"]
    with pytest.raises(LogError) as error:
        read_logs([str(MAP / "orchestrator.jsonl")], "map", field_map=field_map,
                  keep_text=_shape(settings_of("intent.l3_text=field:metadata.sms")))
    assert error.value.message.startswith(f"{MAP / 'orchestrator.jsonl'}:1: metadata.sms: missing")


def test_field_of_a_span_reads_its_attributes():
    # attributes by whole name; inside a JSON attribute with its name's dots escaped
    texts = lambda choice: [c.text for c in read_logs([str(OTEL)], "otel",
                                                      keep_text=_shape(Settings(l3_text=choice))).calls]
    assert texts("field:gen_ai.conversation.id") == ["lead-A", "lead-A", "lead-B", "lead-B"]
    assert texts("field:service.instance.id") == ["worker-1"] * 4  # a resource attribute
    assert texts("field:gen_ai\\.input\\.messages.0.parts.0.content")[0] == \
        "Score this lead: Ana, pre-approved, 3 viewings."


def _shape(settings):
    from tiercli.core.shape import CallShape

    return CallShape(settings)


# --- strip-template --------------------------------------------------------------------------------

TEAM = ["Score lead 1 of team red", "Score lead 2 of team red", "Score lead 3 of team red",
        "Score lead 4 of team blue", "Score lead 5 of team blue", "Rank lead 6 of team blue"]


def test_template_of_a_known_log_and_the_share_decides():
    # half (3 of 6): the longest start 3 texts share, and the longest end 3 share
    half = learn_template(TEAM, 0.5)
    assert half == Template("Score lead ", " of team blue", texts=6, stripped=6)
    assert [strip_template(t, half) for t in TEAM] == [
        "1 of team red", "2 of team red", "3 of team red", "4", "5", "Rank lead 6"]  # the last shares one end
    # 5 of 6: no end is shared by five texts ("red" and "blue" differ at the last letter)
    assert learn_template(TEAM, 0.8) == Template("Score lead ", "", texts=6, stripped=5)
    assert learn_template(TEAM, 1.0) == Template("", "", texts=6, stripped=0)
    assert template_size(0.5, 6) == 3 and template_size(0.3, 10) == 3 and template_size(0.1, 3) == 2
    assert learn_template(["only one text"], 0.5) == Template("", "", texts=1, stripped=0)


def test_template_whole_words_empty_rest_and_no_overlap():
    # "L0042" and "L0107" share "L0": the template stops before the word
    ids = ["Summarise lead L0042's profile.", "Summarise lead L0107's profile.", "Summarise lead L0133's profile."]
    template = learn_template(ids, 0.5)
    assert template == Template("Summarise lead ", "'s profile.", texts=3, stripped=3)
    assert [strip_template(t, template) for t in ids] == ["L0042", "L0107", "L0133"]
    # a text that is all template is kept whole, so that it is compared whole
    notes_ = ["Note: x", "Note: y", "Note: "]
    template = learn_template(notes_, 0.5)
    assert template.prefix == "Note: " and strip_template("Note: ", template) == "Note:"
    # the suffix is cut from what the prefix left: the two never overlap
    assert strip_template("Hi, bye", Template("Hi, ", ", bye", 2, 2)) == "bye"
    assert strip_template("  other text  ", Template("Hi, ", ", bye", 2, 2)) == "other text"


def test_shared_start_equals_its_rule_by_brute_force():
    rng = random.Random(13)
    for _ in range(300):
        texts = sorted({"".join(rng.choice("ab ") for _ in range(rng.randint(0, 6))) for _ in range(rng.randint(1, 9))})
        for k in range(1, len(texts) + 1):
            starts = {t[:i] for t in texts for i in range(len(t) + 1)}
            longest = max(len(s) for s in starts if sum(t.startswith(s) for t in texts) >= k)
            found = shared_start(texts, k)
            assert len(found) == longest and sum(t.startswith(found) for t in texts) >= k, (texts, k)


def test_templates_learn_from_cacheable_calls_and_cut_every_call(tmp_path):
    records = [call(1000 + i, lead=f"L{i}", task="memory", prompt=f"Summarise lead L{i:04d}'s profile.")
               for i in range(3)]
    records += [call(1010, lead="L9", task="memory", prompt="Summarise lead L9999's profile.", streaming=True),
                call(1011, lead="L9", prompt="Summarise lead L0001's profile.")]  # another task: untouched
    read = load_events(write(tmp_path / "log.jsonl", records), settings_of("memory.l3_text=strip-template"))
    assert [c.text for c in read.calls] == ["L0000", "L0001", "L0002", "L9999", "Summarise lead L0001's profile."]
    assert read.l3_templates == {"memory": Template("Summarise lead ", "'s profile.", texts=3, stripped=3)}
    assert apply_templates([], Settings()) == {}


# --- embedding and the window --------------------------------------------------------------------

class CountingEmbedder(HashingEmbedder):
    """HashingEmbedder with a model id of its own (the shared store holds nothing of it), that
    records what it encodes and tokenizes; a word is a token, plus two special ones."""

    def __init__(self, window=None):
        self.model_id = f"counting-{uuid.uuid4().hex}"
        self.window = window
        self.encoded: list[str] = []
        self.tokenized: list[str] = []

    def encode(self, texts):
        self.encoded += texts
        return super().encode(texts)

    def token_counts(self, texts):
        self.tokenized += texts
        return [len(t.split()) + 2 for t in texts]


def window_log(tmp_path):
    return write(tmp_path / "log.jsonl", [
        call(1000, lead="A", task="intent", prompt="short one"),
        call(1001, lead="B", task="intent", prompt="one two three four five"),
        call(1002, lead="C", task="intent", prompt="one two three four five", worker="w2"),  # the same text
        call(1003, lead="D", task="memory", prompt="a b c d e f g"),
        call(1004, lead="E", task="memory", prompt="a b c d e f g h", streaming=True),  # never embedded
        call(1005, lead="F", task="market", prompt="m n o p q r s t"),
    ])


def test_replay_counts_texts_over_the_window_per_task(tmp_path):
    embedder = CountingEmbedder(window=6)  # 4 words fit
    settings = settings_of("market.tiers=l1,l2")
    run = run_replay(load_events(window_log(tmp_path), settings), settings, embedder=embedder)
    assert run.summary["l3_text"] == {"window": 6, "over_window": {"intent": 1, "memory": 1}, "templates": {},
                                      "regex_unmatched": {}}
    # L3 is off for market: its text is neither embedded nor tokenized
    assert sorted(embedder.encoded) == ["a b c d e f g", "one two three four five", "short one"]
    # (tokenized twice: for the window count, and for the time left while embedding)
    assert sorted(set(embedder.tokenized)) == ["a b c d e f g", "one two three four five", "short one"]
    assert ("L3 window: 2 texts longer than the model's 6 word pieces (intent 1, memory 1): L3 compares only "
            "their start; an l3_text for those tasks can embed what varies instead") in notes(run.summary)


def test_an_off_tier_embeds_nothing(tmp_path):
    embedder = CountingEmbedder(window=6)
    settings = settings_of(tiers=("l1", "l2"))
    run = run_replay(load_events(window_log(tmp_path), settings), settings, embedder=embedder)
    assert embedder.encoded == [] and embedder.tokenized == []
    assert "l3_text" not in run.summary and "embeddings" not in run.summary
    embedder = CountingEmbedder(window=6)
    settings = settings_of("intent.tiers=l1,l2", "memory.l3_ttl=0", "market.tiers=l1")
    run = run_replay(load_events(window_log(tmp_path), settings), settings, embedder=embedder)
    assert embedder.encoded == [] and embedder.tokenized == [] and run.summary["embeddings"]["texts"] == 0
    assert run.summary["l3_text"]["over_window"] == {}


def test_no_window_nothing_to_say():
    assert texts_over_window({"intent": ["a " * 10_000]}, HashingEmbedder()) == (None, {})
    assert l3_text_lines({"window": None, "over_window": {}, "templates": {}}) == []


def test_the_real_tokenizer_counts_word_pieces():
    embedder = SentenceTransformerEmbedder()
    assert embedder.window == 256
    # [CLS] + 254 word pieces + [SEP] fill the window; one more piece is over it
    assert embedder.token_counts(["hello world", "word " * 254, "word " * 255]) == [4, 256, 257]
    window, over = texts_over_window({"memory": ["word " * 254, "word " * 255], "intent": ["word " * 300]},
                                     embedder)
    assert (window, over) == (256, {"intent": 1, "memory": 1})


def test_inspect_says_what_l3_embeds(tmp_path):
    records = [call(1000 + i, lead=f"L{i}", task="memory", prompt=f"Summarise lead L{i:04d}'s profile.")
               for i in range(3)]
    records.append(call(1010, lead="L9", task="notes", prompt="word " * 300))
    log = write(tmp_path / "log.jsonl", records)
    config = tmp_path / "tiers.toml"
    config.write_text('[tasks.memory]\nl3_text = "strip-template"\n')
    result = CliRunner().invoke(app, ["inspect", str(log), "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["first_call"]["text"] == "L0000"
    assert out["l3_text"] == {"window": 256, "over_window": {"notes": 1}, "templates": {
        "memory": {"prefix": "Summarise lead ", "suffix": "'s profile.", "texts": 3, "stripped": 3}},
        "regex_unmatched": {}}
    result = CliRunner().invoke(app, ["inspect", str(log), "--config", str(config)], env={"COLUMNS": "200"})
    assert ("L3 window: 1 text longer than the model's 256 word pieces (notes 1): L3 compares only its start; "
            "an l3_text for that task can embed what varies instead") in result.stdout
    assert ("L3 template of memory: a prefix of 15 characters and a suffix of 11 characters, cut from 3 of "
            "3 distinct texts") in result.stdout
    # L3 off: nothing tokenized, nothing said
    _, described = inspect_logs([str(log)], settings_of(tiers=("l1", "l2")))
    assert described["l3_text"] is None


def test_calls_a_regex_l3_text_matches_nothing_in_are_counted_and_said(tmp_path):
    from formats_common import run

    records = [call(0, prompt='SMS: "hi there"'), call(1, prompt="no sms here", lead="B"),
               call(2, prompt="nor here", lead="C", streaming=True)]  # a bypass is never embedded: not counted
    log = write(tmp_path / "log.jsonl", records)
    result = run("replay", log, "--l3-text", "regex:SMS: \"(.*)\"", "--json", "--no-save")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["l3_text"]["regex_unmatched"] == {"intent": 1}
    assert ("warning: the l3_text regex matched nothing in 1 call (intent 1): L3 embeds their whole last user "
            "message instead") in result.stderr


def test_a_regex_that_backtracks_embeds_the_whole_text_and_is_counted(tmp_path):
    """(a|a)+$ over "a"*32 + "!" would take 2^32 steps: the search stops after 0.1 s and the call
    is one the pattern matched nothing in (issue 21 item 15)."""
    import time

    from tiercli.ingest.logread import read_log
    from tiercli.core.shape import CallShape

    hostile = "a" * 32 + "!"
    started = time.thread_time()
    assert regex_text("(a|a)+$", hostile) == hostile
    assert time.thread_time() - started < 1
    log = write(tmp_path / "log.jsonl", [call(i, prompt=hostile, lead=f"L{i}") for i in range(3)])
    read = read_log(log, keep_text=CallShape(Settings(l3_text="regex:(a|a)+$")))
    assert read.regex_unmatched == {"intent": 3} and {event.text for event in read.events} == {hostile}


@pytest.mark.parametrize("pattern", ["(a){4294967296}", "(" * 3000 + "a" + ")" * 3000, "(a{65535}){65535}"])
def test_an_l3_text_pattern_that_cannot_be_used_is_a_usage_error(tmp_path, pattern):
    from formats_common import run

    log = write(tmp_path / "log.jsonl", [call(0)])
    result = run("replay", log, "--l3-text", f"regex:{pattern}", "--tiers", "l1", "--no-save")
    assert result.exit_code == 2 and "--l3-text" in result.stderr and "Traceback" not in result.stderr
