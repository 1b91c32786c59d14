"""`tiercli inspect`: what tiercli makes of a log before anything is replayed: its format,
what it holds, which of the fields replay uses it records, and what each missing one does to
the results."""

from __future__ import annotations

import json
import sys
from collections import Counter
from datetime import datetime, timezone

import msgspec

from tiercli import options as opt
from tiercli.commands._edge import command_edge, stderr
from tiercli.core.events import Call
from tiercli.core.events import NO_LEAD
from tiercli.errors import NAME_SHOWN_MAX, shown
from tiercli.ingest.foreign import COVERAGE, NO_TASK, coverage
from tiercli.ingest.logread import LogFile, ReadResult, read_logs, read_notes
from tiercli.present.render import NBSP, Column, l3_text_lines, print_table, printable, report_console, write
from tiercli.words import count
from tiercli.settings import Settings, key_params_text, settings_from_flags
from tiercli.core.fieldmap import parse_map
from tiercli.core.keys import PARAMS
from tiercli.core.shape import CallShape
from tiercli.economics.pricing import Pricer, unpriced_hint
from tiercli.ingest.items import UTF8_BOM
from tiercli.ingest.records import USAGE_FIELDS, usage_fields
from tiercli.ingest.sources import expand, lines_of
from tiercli.pipeline import l3_text_report, prepare_l3_texts
from tiercli.store.embeddings import SentenceTransformerEmbedder

FILES_LISTED = 10  # files shown one row each; beyond that, one row per format
TEXT_SHOWN = 56  # characters of the first call's text in the table (--json has it whole)
KEY_SHOWN = 16  # hex digits of the first call's key in the table (--json has all 64)

# The counts of ReadResult.files[i].counts that inspect reports, in this order, with their
# labels. Formats are free to count more: those are shown under their own names.
COUNT_LABELS = {
    "records": "Records",
    "calls": "Calls",
    "tag_changes": "Tag changes",
    "keyless": "Keyless calls (no content: counted as misses)",
    "source_cache_hits": "Calls the source's own cache served",
    "spans_skipped": "Spans skipped (not LLM calls)",
    "failed_calls": "Failed calls (no answer: not replayed, not billed)",
    "duplicates_merged": "Duplicates merged (one call, several records)",
    "duplicates_dropped": "Duplicates dropped (a record's id read already)",
    "rows_skipped": "Rows skipped (not calls)",
    "skipped": "Bad records skipped (--skip-invalid)",
}
# The top-level counts of --json: always there, 0 when no file counted them.
JSON_COUNTS = ("records", "calls", "tag_changes", "keyless", "spans_skipped", "failed_calls", "duplicates_merged",
               "duplicates_dropped", "source_cache_hits", "skipped")

COVERAGE_LABELS = {
    "content": "content (prompt or messages)",
    "response": "response",
    "tokens": "tokens (input tokens)",
    "cache_tokens": "cache tokens (read or write)",
    "latency": "latency",
    "lead": "lead",
    "task": "task",
    "stream_flag": "stream flag",
    "tools": "tools flag",
}


def _gap_effects(settings: Settings) -> dict[str, tuple[str, str]]:
    """Coverage name -> (what is missing, what that does to the results)."""
    return {
        "content": ("no content", "they cannot be keyed, so they are counted as misses and never cached "
                                  "(a streamed one is a bypass)"),
        "response": ("no response", "a hit on them cannot be compared with what was recorded, so mismatched "
                                    "(wrong) answers are not measured for them"),
        "tokens": ("no token counts", "their tokens are estimated at 4 characters a token, so their costs are "
                                      "estimates"),
        "cache_tokens": ("no cache tokens", "their cache reads and writes count as 0, so prompt caching the "
                                            "provider already did is not priced"),
        "latency": ("no latency", f"each counts as default_latency_ms ({settings.default_latency_ms:,g} ms), "
                                  "so latency figures are partly assumed"),
        "lead": ("no lead", f'per-lead figures count them as one lead "{NO_LEAD}": add --map lead_id=PATH'),
        "task": ("no task", f'by-task figures count them as one task "{NO_TASK}": add --map task_type=PATH'),
        "stream_flag": ("no stream flag", "they count as not streamed, so any streamed one among them is "
                                          "cached where replay would bypass it"),
        "tools": ("no tools flag", "they count as using no tools, so any tool-use call among them is cached "
                                   "where replay would bypass it"),
    }


def inspect(
    log: opt.LogArgument,
    config: opt.ConfigOption = None,
    log_format: opt.FormatOption = "auto",
    field_map: opt.MapOption = None,
    skip_invalid: opt.SkipInvalidOption = False,
    json_output: opt.JsonOption = False,
) -> None:
    """Describe logs as tiercli reads them, without replaying: the format of each file, how each
    was read (what it could not read and why, what it read in a way that is not obvious), counts,
    the time span, the models (priced or not, under which name: an unpriced model is listed, not
    an error), the share of calls that record each field replay uses, what each missing field does to the
    results, and the first call as tiercli reads it.

    With --json, stdout holds one object: {"files": [{"name", "format", "detected", "counts", "reading"}],
    "records", "calls", "tag_changes", "keyless", "spans_skipped", "failed_calls", "duplicates_merged",
    "duplicates_dropped", "source_cache_hits", "skipped", "span": {"first", "last", "seconds"},
    "models": [{"model", "calls", "priced", "priced_as"}], "coverage": {NAME: share}, "gaps": [TEXT],
    "first_call": {...} (its key: the request's without parameters), "request_params": {"by_format": {FORMAT:
    {"calls", "carry": {PARAMETER: calls}}}, "exact_repeats", "differ_only_by_params"},
    "scope_missing": {TASK: {SCOPE: {"missing", "calls"}}} (docs/keys-and-scope.md "Keys and scope"),
    "l3_text": {"window", "over_window": {TASK: texts}, "templates": {TASK: {...}}} or null
    when L3 is off} (docs/logs/index.md "Bring your logs", "What L3 embeds").

    \b
    Examples:
      tiercli inspect sample_logs/realestate_day.jsonl
      tiercli inspect spans.jsonl.gz --json
      tiercli inspect exports/ crm_tags.jsonl
      tiercli inspect observations.csv --format langfuse --map lead_id=metadata.contact_id
    """
    with command_edge(json_output):
        settings = settings_from_flags(config, {})
        read, described = inspect_logs(log, settings, log_format, parse_map(field_map), skip_invalid)
        for note in read_notes(read):
            stderr.print(note, markup=False, highlight=False)
        if json_output:
            sys.stdout.write(json.dumps(described) + "\n")
        else:
            print_inspection(described, settings)


def inspect_logs(logs: list[str], settings: Settings, log_format: str = "auto", field_map: dict | None = None,
                 skip_invalid: bool = False) -> tuple[ReadResult, dict]:
    """The logs as read (models without a price accepted), and what `inspect --json` prints of
    them. `field_map` ({our field: path}) goes over the config's [map]."""
    sources = expand(logs)  # kept: native files are read a second time for their coverage
    # the texts L3 would embed under the tasks' l3_text (kept even when L3 is off: the first
    # call shows its text); keys without the request parameters, each call's parameters apart
    # (request_params() counts the repeats they split)
    pricer = Pricer(settings.prices)
    # models without a price accepted, but a record's name chosen as replay chooses it
    read = read_logs(logs, log_format, field_map={**settings.field_map, **(field_map or {})},
                     skip_invalid=skip_invalid, known_model=None, keep_text=CallShape(settings, params_apart=True), digest=False,
                     sources=sources, priced=pricer.knows)
    read.price_notes = pricer.name_notes(call.model for call in read.calls)
    prepare_l3_texts(read, settings)
    for source, log_file in zip(sources, read.files):
        if log_file.format == "tiercli":
            log_file.counts.update(native_coverage(source, read))
    described = describe(read, settings)
    described["scope_missing"] = read.scope_missing  # docs/keys-and-scope.md "Keys and scope"
    described["l3_text"] = None
    if "l3" in settings.tiers:
        # only the model's tokenizer is loaded, to count the texts longer than its window
        described["l3_text"] = l3_text_report(read, settings, SentenceTransformerEmbedder(settings.l3_model))
    return read, described


def native_coverage(source, read: ReadResult) -> Counter:
    """The `with_NAME` coverage counts of a native file's calls. Its fast reader does not count
    them, so the file is read again here, a block of lines at a time; the lines the reader
    skipped as bad (--skip-invalid) are left out, so every other call line became a call."""
    skipped = {error.line for error in read.skipped if error.path == source.name}
    counts: Counter = Counter()
    for first_line, lines, block in lines_of(source):
        if first_line == 1 and block.startswith(UTF8_BOM):
            block = block[len(UTF8_BOM):]
        for i, raw in enumerate(block.split(b"\n", lines - 1)):  # the last piece is the rest of the block
            if raw.strip() and first_line + i not in skipped:
                record = msgspec.json.decode(raw)  # as the reader decoded it: orjson rejects integers past 64 bits
                if record.get("type", "call") == "call":
                    counts.update(coverage(carried(record)))
    return counts


def carried(record: dict) -> dict:
    """A native call record's fields as it carries them, for coverage: an absent `streaming` or
    `use_tools` stays absent (the reader's false is a default, which is the gap), and the token
    fields are the ones the reader takes, a usage object's included."""
    fields = {name: value for name, value in record.items() if name not in USAGE_FIELDS}
    for name, value in usage_fields(record).items():
        if fields.get(name) is None:
            fields[name] = value
    return fields


def describe(read: ReadResult, settings: Settings) -> dict:
    """What `inspect --json` prints (see the command's help)."""
    calls = read.calls
    totals: Counter = Counter()
    for log_file in read.files:
        totals.update(log_file.counts)
    pricer = Pricer(settings.prices)
    out: dict = {"files": [{"name": f.name, "format": f.format, "detected": f.detected, "counts": dict(f.counts),
                            "reading": reading(read, index, pricer)}
                           for index, f in enumerate(read.files)]}
    for name in JSON_COUNTS:
        out[name] = totals.get(name, 0)
    out["calls"] = len(calls)
    out["keyless"] = sum(call.keyless for call in calls)
    out["source_cache_hits"] = sum(call.source_cache_hit for call in calls)
    out["skipped"] = len(read.skipped)
    first, last = read.events[0].ts, read.events[-1].ts
    out["span"] = {"first": rfc3339(first), "last": rfc3339(last), "seconds": round(last - first, 6)}
    by_model = Counter(call.model for call in calls)
    out["models"] = [{"model": model, "calls": n, "priced": pricer.knows(model),
                      "priced_as": pricer.by_another_name(model)}
                     for model, n in sorted(by_model.items(), key=lambda item: (-item[1], item[0]))]
    out["coverage"] = {name: totals.get(f"with_{name}", 0) / len(calls) for name in COVERAGE}
    effects = _gap_effects(settings)
    out["gaps"] = []
    for name in COVERAGE:
        missing = len(calls) - totals.get(f"with_{name}", 0)
        if missing > 0:
            what, effect = effects[name]
            out["gaps"].append(f"{what} in {_how_many(missing, len(calls))}: {effect}")
    out["first_call"] = first_call(calls[0], read.files)
    out["request_params"] = request_params(read)
    return out


def request_params(read: ReadResult) -> dict:
    """Which request parameters (records.PARAMS) each format's calls carry, and how many exact
    repeats (a cacheable call whose request, parameters aside, came before) differ only by their
    parameters: replay keys those apart unless key_params leaves the parameters out. The calls
    are read with CallShape(params_apart=True): keys without parameters, Call.params all of them."""
    by_format: dict[str, Counter] = {}
    requests: set[bytes] = set()
    with_params: set[tuple] = set()
    repeats = differ = 0
    for call in read.calls:
        carried = by_format.setdefault(read.files[call.file].format, Counter())
        carried["calls"] += 1
        carried.update(name for i, name in enumerate(PARAMS) if call.param_names >> i & 1)
        if call.keyless or call.bypass:
            continue
        if call.key in requests:
            repeats += 1
            differ += (call.key, call.params) not in with_params
        requests.add(call.key)
        with_params.add((call.key, call.params))
    return {"by_format": {name: {"calls": carried.pop("calls"),
                                 "carry": {p: carried[p] for p in PARAMS if carried[p]}}
                          for name, carried in sorted(by_format.items())},
            "exact_repeats": repeats, "differ_only_by_params": differ}


def _how_many(part: int, whole: int) -> str:
    if part == whole:
        return "the call" if whole == 1 else f"any of the {whole:,} calls"
    return f"{part:,} of {count(whole, 'call')}"


# What each count of a file's read says, as a sentence (n: the count). A format's count missing
# here is still said, under its own name (reading()); "records", "calls", "tag_changes" and the
# with_* coverage counts are the Logs and Coverage tables'.
READING_SENTENCES = {
    "skipped": lambda n: f"{count(n, 'bad record')} skipped (--skip-invalid)",
    "spans_skipped": lambda n: f"{count(n, 'span')} passed over: {_not_calls(n)} (agent, tool and chain spans)",
    "rows_skipped": lambda n: f"{count(n, 'record')} passed over: {_not_calls(n)} (embeddings, spans, events)",
    "failed_calls": lambda n: f"{count(n, 'failed call')} (an error, no answer): not replayed, not billed",
    "duplicates_merged": lambda n: f"{count(n, 'record')} merged into the calls "
                                   f"{'it records' if n == 1 else 'they record'} (one API call recorded by several "
                                   f"spans, or by nested generations)",
    "duplicates_dropped": lambda n: f"{count(n, 'duplicate record')} dropped (an id read already)",
    "string_messages": lambda n: f"{count(n, 'message')} recorded as plain text, read as text (a role prefix such "
                                 f"as 'user:' read as the role)",
    "keyless": lambda n: f"{count(n, 'call')} without {'its' if n == 1 else 'their'} request (no content): counted "
                         f"as misses, never cached",
    "source_cache_hits": lambda n: f"{count(n, 'call')} the source's own cache served: replayed as calls to the API",
}
NOT_READING = ("records", "calls", "tag_changes")  # counts the Logs and Counts tables give


def _not_calls(n: int) -> str:
    return "not an LLM call" if n == 1 else "not LLM calls"


def reading(read: ReadResult, index: int, pricer) -> list[str]:
    """What tiercli could not read in file `index`, or read in a way that is not obvious, one
    sentence each: records passed over or skipped (with the first reason), failed calls, merged
    and dropped records, string messages, keyless calls, models priced by another name or not at
    all. Empty: every record read as recorded."""
    log_file = read.files[index]
    counts = dict(log_file.counts)
    skipped = [error for error in read.skipped if error.path == log_file.name]
    if skipped:
        counts["skipped"] = len(skipped)
    sentences = []
    for key in [*READING_SENTENCES, *sorted(set(counts) - set(READING_SENTENCES))]:
        n = counts.get(key, 0)
        if not n or key in NOT_READING or key.startswith("with_"):
            continue
        say = READING_SENTENCES.get(key)
        sentence = say(n) if say else f"{key.replace('_', ' ')}: {n:,}"
        if key == "skipped":
            sentence += f"; the first: {skipped[0].message}"
        sentences.append(sentence)
    models = dict.fromkeys(call.model for call in read.calls if call.file == index)
    # a record's model named in a sentence, as an error quotes a value: secrets masked (errors.shown)
    renamed = [f"{name_shown(model)} as {pricer.by_another_name(model)}" for model in models
               if pricer.by_another_name(model)]
    if renamed:
        sentences.append(f"{count(len(renamed), 'model')} priced by another name: " + "; ".join(renamed))
    unpriced = [model for model in models if not pricer.knows(model)]
    if unpriced:
        sentences.append(f"{count(len(unpriced), 'model')} without a price (replay stops at "
                         f"{'its' if len(unpriced) == 1 else 'their'} calls): " + ", ".join(map(name_shown, unpriced)))
    return sentences


def name_shown(name: str) -> str:
    return shown(name, quote=False, limit=NAME_SHOWN_MAX)


def rfc3339(ts: float) -> str:
    """'2026-11-02T08:15:03Z', with milli- or microseconds only when the time has them."""
    when = datetime.fromtimestamp(ts, tz=timezone.utc)
    precision = ("seconds" if not when.microsecond else "milliseconds" if not when.microsecond % 1000
                 else "microseconds")
    return when.isoformat(timespec=precision).replace("+00:00", "Z")


def _totals(files: list[dict]) -> Counter:
    totals: Counter = Counter()
    for f in files:
        totals.update(f["counts"])
    return totals


def first_call(call: Call, files: list[LogFile]) -> dict:
    """The first call in processing order, field by field as tiercli reads it."""
    return {
        "file": files[call.file].name if call.file < len(files) else None,
        "line": call.line,
        "ts": rfc3339(call.ts),
        "lead": call.lead,
        "task": call.task,
        "model": call.model,
        "worker": call.worker,
        "key": call.key.hex() if call.key else None,
        "text": call.text,
        "bypass": call.bypass,
        "streaming": call.streaming,
        "keyless": call.keyless,
        "source_cache_hit": call.source_cache_hit,
        "input_tokens": call.input_tokens,
        "output_tokens": call.output_tokens,
        "cache_read_tokens": call.cache_read_tokens,
        "cache_write_tokens": call.cache_write_tokens,
        "tokens_estimated": call.tokens_estimated,
        "latency_ms": call.latency_ms,
        "response_recorded": call.response_digest is not None,
    }


# --- the human report ---------------------------------------------------------------------------

def print_inspection(described: dict, settings: Settings) -> None:
    console = report_console()
    _print_files(console, described["files"])
    write(console, [""])
    _print_reading(console, described["files"])
    write(console, [""])
    _print_counts(console, described)
    write(console, [""])
    _print_models(console, described["models"])
    write(console, [""])
    _print_coverage(console, described)
    write(console, [""])
    _print_params(console, described["request_params"], settings)
    write(console, [""])
    _print_first_call(console, described["first_call"], settings)
    l3_lines = l3_text_lines(described.get("l3_text"))
    if l3_lines:
        write(console, [""])
        for line in l3_lines:
            console.print(line, markup=False, highlight=False)


def _print_params(console, params: dict, settings: Settings) -> None:
    lines = ["Request parameters (part of the key: key_params)"]
    for name, carried in params["by_format"].items():
        said = ", ".join(f"{p} {_how_many(n, carried['calls'])}" for p, n in carried["carry"].items())
        lines.append(f"  {name}: " + (said or "none recorded"))
    repeats, differ = params["exact_repeats"], params["differ_only_by_params"]
    per_task = any("key_params" in options for options in settings.task_options.values())
    if repeats:
        keyed = key_params_text(settings.key_params)
        lines.append(f"  {differ:,} of {count(repeats, 'exact repeat')} (the same request, parameters aside) "
                     f"differ only by their parameters: replay keys them apart (key_params = "
                     f"{keyed if isinstance(keyed, str) else ', '.join(keyed)}"
                     f"{', per task as [tasks.NAME] says' if per_task else ''})")
    import textwrap

    write(console, [wrapped for line in lines
                    for wrapped in textwrap.wrap(line, console.width, subsequent_indent="    ") or [""]])


def _print_files(console, files: list[dict]) -> None:
    rows = []  # (file, format, records, calls)
    if len(files) <= FILES_LISTED:
        for f in files:
            rows.append((f["name"], f["format"], f["counts"].get("records", 0), f["counts"].get("calls", 0)))
    else:
        by_format: dict[str, list[dict]] = {}
        for f in files:
            by_format.setdefault(f["format"], []).append(f)
        for name, group in sorted(by_format.items()):
            rows.append((count(len(group), "file"), name, sum(f["counts"].get("records", 0) for f in group),
                         sum(f["counts"].get("calls", 0) for f in group)))
    detected = all(f["detected"] for f in files)
    title = "Logs (format detected per file)" if detected else f"Logs (--format {files[0]['format']})"
    names, formats, records, calls = zip(*rows)
    print_table(console, title, [
        Column("Log", printable(list(names)), left=True, key=True), Column("Format", formats, left=True),
        Column("Records", [f"{n:,}" for n in records]), Column("Calls", [f"{n:,}" for n in calls])])


def _print_reading(console, files: list[dict]) -> None:
    """Per file, what it could not read and what it read in a way that is not obvious (reading())."""
    import textwrap

    def wrapped(text: str, first: str = "", rest: str = "") -> list[str]:
        # a name longer than the line (a Vertex AI resource name) stays whole, as in the tables
        return textwrap.wrap(text, console.width, initial_indent=first, subsequent_indent=rest,
                             break_long_words=False, break_on_hyphens=False)

    lines = ["How each log was read"]
    said = [f for f in files if f["reading"]]
    for f in said[:FILES_LISTED]:
        lines += wrapped(f"{printable([f['name']])[0]} ({f['format']}):")
        for sentence in printable(f["reading"]):
            lines += wrapped(sentence, "  - ", "    ")
    if len(said) > FILES_LISTED:
        lines += wrapped(f"... and {count(len(said) - FILES_LISTED, 'more log')} with something to say "
                         f"(--json has all)")
    quiet = len(files) - len(said)
    if quiet:
        lines += wrapped(("Every record" if not said else f"{count(quiet, 'other log')}: every record") +
                         " read as recorded: nothing skipped, merged, priced by another name or read in another way.")
    write(console, lines)


def _print_counts(console, described: dict) -> None:
    totals = _totals(described["files"])
    rows = []
    for key, label in COUNT_LABELS.items():
        value = described.get(key, totals.get(key, 0))
        if key in ("records", "calls") or key in totals or value:
            rows.append((label, f"{value:,}"))
    for key, value in sorted(totals.items()):  # what a format counts beyond these, under its own name
        if key not in COUNT_LABELS and not key.startswith("with_"):
            rows.append((key.replace("_", " ").capitalize(), f"{value:,}"))
    span = described["span"]
    below = [f"Time: {span['first']} to {span['last']} ({duration_text(span['seconds'])})"]
    labels, values = zip(*rows)
    print_table(console, "Counts", [Column("What", labels, left=True, key=True), Column("Count", values)], below)


def _print_models(console, models: list[dict]) -> None:
    unpriced = [m["model"] for m in models if not m["priced"]]
    below = []
    if unpriced:
        below.append(f"{count(len(unpriced), 'model')} without a price: replay and tune-ttl stop at "
                     f"{'its' if len(unpriced) == 1 else 'their'} calls until the config prices "
                     f"{'it' if len(unpriced) == 1 else 'them'}.")
        for model in unpriced:
            below.append(f"hint: {unpriced_hint(model)}")
    print_table(console, "Models", [
        Column("Model", printable([m["model"] for m in models]), left=True, key=True),
        Column("Calls", [f"{m['calls']:,}" for m in models]),
        Column("Priced", [("as " + m["priced_as"] if m["priced_as"] else "yes") if m["priced"] else "no"
                          for m in models], left=True)], below)


def _print_coverage(console, described: dict) -> None:
    calls, totals = described["calls"], _totals(described["files"])
    names = list(described["coverage"])
    shares = [described["coverage"][name] for name in names]
    below = [f"Gap: {_unbroken(gap)}" for gap in described["gaps"]] or ["No gaps: every call records every field."]
    print_table(console, f"Coverage: what the {count(calls, 'call')} record", [
        Column("Field", [COVERAGE_LABELS[name] for name in names], left=True, key=True),
        Column("Calls", [f"{totals.get(f'with_{name}', 0):,}" for name in names]),
        Column("Share", [_share(share) for share in shares])], below)


def _unbroken(text: str) -> str:
    """The names "(no lead)" and "(no task)" kept on one line when a note is wrapped."""
    for name in (NO_LEAD, NO_TASK):
        text = text.replace(name, name.replace(" ", NBSP))
    return text


def _share(share: float) -> str:
    if 0 < share < 0.001:
        return "<0.1%"
    if 0.999 < share < 1:
        return ">99.9%"
    return f"{share * 100:.1f}%"


def _print_first_call(console, call: dict, settings: Settings) -> None:
    if call["keyless"]:
        handling = "keyless: no content, counted as a miss"
    elif call["bypass"]:
        handling = "bypass (streaming)" if call["streaming"] else "bypass (tool use)"
    else:
        handling = "looked up and stored"
    if call["source_cache_hit"]:
        handling += "; the source's own cache served it"
    tokens = (f"{call['input_tokens']:,} in, {call['output_tokens']:,} out, {call['cache_read_tokens']:,} cache "
              f"read, {call['cache_write_tokens']:,} cache write")
    if call["tokens_estimated"]:
        tokens += " (estimated)"
    latency = (f"{call['latency_ms']:,g} ms" if call["latency_ms"] is not None
               else f"none recorded (counts as {settings.default_latency_ms:,g} ms)")
    key = call["key"][:KEY_SHOWN] + "..." if call["key"] else "none (keyless)"
    text = printable([call["text"]])[0]
    text = text if len(text) <= TEXT_SHOWN else text[:TEXT_SHOWN - 3] + "..."
    line = [("Line", f"{call['line']:,}")] if call["line"] else []
    rows = [("File", call["file"]), *line, ("Time", call["ts"]), ("Lead", call["lead"]), ("Task", call["task"]),
            ("Model", call["model"]), ("Worker", call["worker"] or "(none)"), ("Key", key),
            ("L3 text", text if text else "(none)"), ("Handling", handling), ("Tokens", tokens),
            ("Latency", latency), ("Response", "recorded" if call["response_recorded"] else "none recorded")]
    fields, values = zip(*rows)
    print_table(console, "The first call, as tiercli reads it", [
        Column("Field", fields, left=True, key=True), Column("Value", printable(list(values)), left=True)])


def duration_text(seconds: float) -> str:
    """'45 s', '12 min 5 s', '3 h 20 min', '2 d 4 h'."""
    whole = int(round(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days:,} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{seconds:g} s" if seconds < 1 else f"{secs} s"
