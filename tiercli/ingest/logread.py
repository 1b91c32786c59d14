"""Reading a JSONL log file into events in processing order.

Every problem is a LogError naming file, line and field (see docs/logs/native.md "Log format"). Records
are parsed in tiercli/ingest/records.py; this module reads the file in blocks of whole lines and, for
a large file on a machine with two cores, has a forked helper process parse the second half
while this one parses the first (bench/run.py measures what that saves)."""

from __future__ import annotations

import hashlib
import multiprocessing
import signal
from array import array
import os
import pickle
from collections.abc import Iterator
from itertools import repeat
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from tiercli.errors import LogError
from tiercli.words import count
from tiercli.core.events import Call, Event, TagChange
from tiercli.ingest.records import Reader
from tiercli.ingest.sources import cannot_read, expand, line_blocks, lines_of, refuse_non_log
from tiercli.core.shape import shape_of
from tiercli.ingest import formats
from tiercli.ingest.foreign import FormatRead, ReadOptions, drop_repeats, repeats_note
from tiercli.procs import die_with_parent

BLOCK_BYTES = 1 << 20  # msgspec decodes ~1 MiB blocks of lines fastest here
PARALLEL_MIN_BYTES = 64 << 20  # below this a helper process costs more than it saves
UTF8_BOM = b"\xef\xbb\xbf"

_EVENTS_OUT = msgspec.msgpack.Encoder()
_EVENTS_IN = msgspec.msgpack.Decoder(list[Call | TagChange])


@dataclass
class LogFile:
    """One of the logs read: its name, format, bytes, digest and what its format counted."""

    name: str
    format: str
    size: int = 0
    sha256: str = ""
    counts: dict = field(default_factory=dict)
    detected: bool = False  # the format was detected (--format auto), not given


@dataclass
class ReadResult:
    events: list[Event]  # in processing order: ts, then argument order, then file order
    skipped: list[LogError] = field(default_factory=list)  # with skip_invalid
    path: str = ""  # the log's name; with several, theirs joined
    size: int = 0  # bytes read
    sha256: str = ""  # of the whole file, or of the files' digests (when asked for): a saved run names exactly its logs
    files: list[LogFile] = field(default_factory=list)
    # digest -> answer text, for tasks whose answer rule is embedding:T (embedded before the replay)
    answer_texts: dict[bytes, str] = field(default_factory=dict)
    regex_unmatched: dict[str, int] = field(default_factory=dict)  # task -> calls its regex l3_text missed
    # task -> scope value -> {"missing": calls without it, "calls": calls scoped} (docs/keys-and-scope.md "Keys and scope")
    scope_missing: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    # task -> its strip-template Template (core/l3text.py), learned once the log is read
    l3_templates: dict = field(default_factory=dict)
    # the notes of models priced by another name (Pricer.name_notes), set by who read with a pricer
    price_notes: list[str] = field(default_factory=list)

    @property
    def calls(self) -> list[Call]:
        return [e for e in self.events if isinstance(e, Call)]


def read_log(path: str | Path, *, skip_invalid: bool = False, known_model=None, keep_text=True,
             digest: bool = True, parallel_min_bytes: int = PARALLEL_MIN_BYTES) -> ReadResult:
    """Read and check one native log (see read_logs)."""
    return read_logs([str(path)], "tiercli", skip_invalid=skip_invalid, known_model=known_model,
                     keep_text=keep_text, digest=digest, parallel_min_bytes=parallel_min_bytes)


def read_logs(arguments: list[str], log_format: str = "auto", *, field_map: dict[str, str] | None = None,
              skip_invalid: bool = False, known_model=None, keep_text=True, digest: bool = True,
              parallel_min_bytes: int = PARALLEL_MIN_BYTES, on_format=None, sources=None,
              map_sources=None, priced=None) -> ReadResult:
    """Read and check logs: files, folders, globs or - (docs/logs/index.md "Bring your logs"), each in its
    format (`auto`: detected per file; `on_format(name, format)` hears which). `known_model(name)
    -> bool` rejects calls whose model has no price; `priced(name) -> bool` (default: known_model)
    tells a reader which of a record's model names has a price. Without `keep_text` (L3 off) the calls'
    texts are not kept, to save memory; without `digest` the SHA-256 (needed only to save a
    run) is not computed. `map_sources(read_one, jobs)`: runs read_source over the files
    elsewhere (Ray tasks, one a file) and returns their results in order; None: here, in turn."""
    sources = expand(arguments) if sources is None else sources  # given: a caller reads them again (inspect)
    keep_text = shape_of(keep_text)  # a CallShape: what each call keeps of its request and answer
    options = ReadOptions(skip_invalid, known_model, keep_text, dict(field_map or {}), priced or known_model)
    names: dict[str, str] = {}  # one string object per lead, task, model and worker, across files
    events: list[Event] = []
    skipped: list[LogError] = []
    files: list[LogFile] = []
    jobs = [(index, source, log_format, options, digest, parallel_min_bytes, len(sources))
            for index, source in enumerate(sources)]
    elsewhere = map_sources is not None and len(sources) > 1 and all(source.path is not None for source in sources)
    if elsewhere:
        results = map_sources(read_source, jobs)
    else:
        results = (read_source(*job, names=names, on_format=on_format) for job in jobs)
    for file, file_events, file_skipped, answer_texts, regex_unmatched, scope_missing in results:
        events += file_events
        skipped += file_skipped
        files.append(file)
        if elsewhere:  # gathered by the task's copy of keep_text: added to ours
            keep_text.answer_texts.update(answer_texts)
            for task, misses in regex_unmatched.items():
                keep_text.regex_unmatched[task] = keep_text.regex_unmatched.get(task, 0) + misses
            _add_scope_counts(keep_text.scope_missing, scope_missing)
    if len(files) > 1:
        events = drop_repeats(events, files)  # the same record in two files: one call
    path = files[0].name if len(files) == 1 else ", ".join(f.name for f in files)
    if not any(type(event) is Call for event in events):
        raise _no_calls(path, sum(type(e) is TagChange for e in events), skipped, files)
    if len(files) > 1 or any(a.ts > b.ts for a, b in zip(events, events[1:])):
        events.sort(key=_by_ts)  # stable: equal ts keep argument order, then file order
    for seq, event in enumerate(events):
        event.seq = seq
    if len(files) == 1:
        sha256 = files[0].sha256
    else:
        sha256 = hashlib.sha256("".join(f.sha256 for f in files).encode()).hexdigest() if digest else ""
    return ReadResult(events, skipped, path, sum(f.size for f in files), sha256, files,
                      keep_text.answer_texts, regex_unmatched=dict(keep_text.regex_unmatched),
                      scope_missing=_scope_report(keep_text))


def _add_scope_counts(into: dict, counts: dict) -> None:
    """CallShape.scope_missing counts of another file (or the counts since a file began) added."""
    for task, values in counts.items():
        for name, (missing, scoped) in values.items():
            count = into.setdefault(task, {}).setdefault(name, [0, 0])
            count[0] += missing
            count[1] += scoped


def _scope_report(keep_text) -> dict[str, dict[str, dict[str, int]]]:
    """Per task with a scope, per value the calls without it (scoped under "missing") of those
    looked up: ReadResult.scope_missing."""
    return {task: {name: {"missing": missing, "calls": scoped} for name, (missing, scoped) in sorted(values.items())}
            for task, values in sorted(keep_text.scope_missing.items()) if values}


def read_source(index: int, source, log_format: str, options, digest: bool, parallel_min_bytes: int, sources: int,
                *, names: dict[str, str] | None = None, on_format=None) -> tuple:
    """One file of read_logs: (LogFile, its events, skipped lines, answer texts, regex misses,
    scope counts).
    Run here, or in a Ray task of its own (then `options.keep_text` is the task's copy: what it
    gathers comes back in the result)."""
    names = {} if names is None else names
    keep_text = options.keep_text
    texts_before, unmatched_before = dict(keep_text.answer_texts), dict(keep_text.regex_unmatched)
    scopes_before = {task: {name: list(count) for name, count in values.items()}
                     for task, values in keep_text.scope_missing.items()}
    if sources > 1 and not source.head().strip():  # an hour with no traffic, say
        return LogFile(source.name, "empty", source.size()), [], [], {}, {}, {}
    refuse_non_log(source)
    chosen = (formats.get(log_format) if log_format != "auto"
              else formats.detect(source, fallback="map" if options.field_map else None))
    if on_format is not None:
        on_format(source.name, chosen.name)
    read = None
    try:
        with formats.forced(source, log_format, options.field_map):  # a wrong --format: the hint says which
            if chosen.name == "tiercli":
                read, sha256 = read_native(source, options, index, names, digest, parallel_min_bytes)
            else:
                read, sha256 = chosen.read(source, options, index, names), ""
                if digest:
                    sha256 = _digest(source)
    except MemoryError:
        pass  # said below, once the exception has let go of what was read so far
    if read is None:
        raise LogError(source.name, None, None, "not enough memory to hold the calls of the log",
                       hint="tiercli keeps every call of its logs in memory: replay "
                            "the log a part at a time (a day, say), or where there is more memory")
    if not read.counts.get("records") and not read.skipped and sources == 1:
        raise LogError(source.name, None, None, "the log is empty", hint="a log holds one JSON object per line")
    file = LogFile(source.name, chosen.name, source.size(), sha256, dict(read.counts), log_format == "auto")
    answer_texts = {k: v for k, v in keep_text.answer_texts.items() if k not in texts_before}
    unmatched = {task: n - unmatched_before.get(task, 0) for task, n in keep_text.regex_unmatched.items()
                 if n != unmatched_before.get(task, 0)}
    scoped: dict = {}
    _add_scope_counts(scoped, keep_text.scope_missing)
    _add_scope_counts(scoped, {task: {name: [-count[0], -count[1]] for name, count in values.items()}
                               for task, values in scopes_before.items()})
    return file, read.events, read.skipped, answer_texts, unmatched, scoped


def _digest(source) -> str:
    """The SHA-256 of the bytes as given (compressed ones as they are: quick, even for a bomb)."""
    hasher = hashlib.sha256()
    with source.open_raw() as handle:
        while chunk := handle.read(BLOCK_BYTES):
            hasher.update(chunk)
    return hasher.hexdigest()


def read_native(source, options, file_index: int, names: dict[str, str], digest: bool = True,
                parallel_min_bytes: int = PARALLEL_MIN_BYTES):
    """(FormatRead, sha256) of a log in tiercli's own format. A large plain file is read in two
    processes; a compressed one or standard input as a stream."""
    reader = Reader(source.name, options.skip_invalid, options.known_model, options.keep_text)
    reader.names = names
    hasher = hashlib.sha256() if digest else None
    if not source.plain_file:
        sha256 = _digest(source) if digest else ""
        for first_line, lines, block in lines_of(source):
            if first_line == 1 and block.startswith(UTF8_BOM):
                block = block[len(UTF8_BOM):]
            reader.block(first_line, lines, block)
    else:
        _read_plain(str(source.path), source.name, reader, hasher, parallel_min_bytes)
        sha256 = hasher.hexdigest() if hasher is not None else ""
    read = FormatRead(reader.events, reader.skipped)
    if file_index:
        for event in read.events:
            event.file = file_index
    read.counts["records"] = len(reader.events) + len(reader.skipped) if reader.saw_line else 0
    read.counts["calls"] = sum(type(event) is Call for event in reader.events)
    read.counts["tag_changes"] = len(reader.events) - read.counts["calls"]
    return read, sha256


def _read_plain(path_str: str, name: str, reader: Reader, hasher, parallel_min_bytes: int) -> None:
    size = _size(path_str)
    # A forked helper keeps the answer texts an embedding answer rule needs in its own memory
    # and does not send them back: such logs are read in this process alone.
    two_processes = (size >= parallel_min_bytes and (os.cpu_count() or 1) > 1
                     and not reader.keep_text.keeps_answer_texts
                     and "fork" in multiprocessing.get_all_start_methods())
    split = _split_point(path_str, size) if two_processes else size
    helper = (_Helper(path_str, name, split, size, reader.skip_invalid, reader.known_model, reader.keep_text)
              if split < size else None)
    try:
        lines_before = 0
        for first_line, lines, block in _blocks(path_str, 0, split):
            if hasher is not None:
                hasher.update(block)
            if first_line == 1 and block.startswith(UTF8_BOM):  # some editors write one: it is not JSON
                block = block[len(UTF8_BOM):]
            reader.block(first_line, lines, block)
            lines_before = first_line - 1 + lines
        if helper is not None:
            if hasher is not None:
                for _, _, block in _blocks(path_str, split, size):
                    hasher.update(block)
            helper.merge_into(reader, lines_before)
    finally:
        if helper is not None:
            helper.stop()


# What formats pass over, as they count it (FormatRead.counts), for "no calls in the log (...)".
PASSED_OVER = (("spans_skipped", "span that is not an LLM call"), ("rows_skipped", "row that is not an LLM call"),
               ("failed_calls", "failed call"))


def _no_calls(path: str, tag_changes: int, skipped: list[LogError], files: list[LogFile] = ()) -> LogError:
    """A log with nothing to replay: only tag changes, bad lines skipped, or records that are
    not calls."""
    found = [count(tag_changes, "tag change")] if tag_changes else []
    if skipped:
        found.append(count(len(skipped), "bad line") + " skipped")
    for key, noun in PASSED_OVER:
        passed = sum(f.counts.get(key, 0) for f in files)
        if passed:
            found.append(count(passed, noun))
    if not found:
        found.append("no records")
    native = all(f.format in ("tiercli", "empty") for f in files)
    failed = sum(f.counts.get("failed_calls", 0) for f in files)
    return LogError(path, None, None, f"no calls in the log ({', '.join(found)})",
                    hint=skipped[0].message if skipped else
                    'a call has "ts", "lead_id", "task_type", "model" and "prompt" or "messages" (docs/logs/native.md "Log format")'
                    if native else FAILED_ONLY if failed and len(found) == 1 else
                    "is the export filtered to LLM calls? tiercli inspect shows what it read")


FAILED_ONLY = ("every call in the log failed (an error, no answer): failed calls are counted, not replayed, as "
               "nothing was answered or billed; export a period with answered calls")


def _share(part: int, whole: int) -> str:
    share = 100 * part / whole
    return f"{share:.1f}%" if share >= 0.1 or share == 0 else "<0.1%"


SKIPPED_SHOWN = 5  # bad lines named one by one; the rest are counted


def scope_notes(scope_missing: dict) -> list[str]:
    """A warning per scope value some calls lack: they are scoped together under "missing", so
    they hit each other. None of a task's calls has it: the path is likely wrong."""
    notes = []
    for task, values in sorted(scope_missing.items()):
        for name, counted in values.items():
            missing, calls = counted["missing"], counted["calls"]
            if not missing:
                continue
            if missing == calls:
                notes.append(f"warning: scope {name}: none of {count(calls, 'call')} of task {task} has it: they "
                             f"are all scoped under \"missing\" (check the path: inspect shows the records' fields)")
            else:
                notes.append(f"warning: scope {name}: {missing:,} of {count(calls, 'call')} of task {task} have none: "
                             f"they are scoped together under \"missing\"")
    return notes


def read_notes(read: ReadResult) -> list[str]:
    """What a command says on stderr about what it read: the lines skipped, and warnings about
    figures that rest on estimates. Every command that reads a log prints these, the same way."""
    notes = format_notes(read.files) + read.price_notes
    if read.regex_unmatched:
        missed = sum(read.regex_unmatched.values())
        notes.append(f"warning: the l3_text regex matched nothing in {count(missed, 'call')} ("
                     + ", ".join(f"{task} {n:,}" for task, n in sorted(read.regex_unmatched.items()))
                     + "): L3 embeds their whole last user message instead")
    notes += scope_notes(read.scope_missing)
    notes += [f"skipped: {error.message}" for error in read.skipped[:SKIPPED_SHOWN]]
    if len(read.skipped) > SKIPPED_SHOWN:
        notes.append(f"skipped: ... {count(len(read.skipped) - SKIPPED_SHOWN, 'more bad line')}")
    calls = read.calls
    estimated = sum(call.tokens_estimated for call in calls)
    if estimated:
        notes.append(f"warning: {estimated:,} of {count(len(calls), 'call')} ({_share(estimated, len(calls))}) "
                     f"have no input_tokens or output_tokens: their tokens were estimated at 4 characters a "
                     f"token, so their costs are estimates")
    return notes


FILES_NAMED = 5  # detected formats named file by file; beyond that, counted


def format_notes(files: list[LogFile]) -> list[str]:
    """What --format auto chose, and what foreign formats could not read in full."""
    detected = [f for f in files if f.detected and f.format != "tiercli"]  # our own format goes unsaid, as ever
    if len(detected) <= FILES_NAMED:
        notes = [f"format: {f.name}: {f.format} (detected)" for f in detected]
    else:
        by_format: dict[str, int] = {}
        for f in detected:
            by_format[f.format] = by_format.get(f.format, 0) + 1
        notes = [f"format: {count(len(detected), 'log')} detected: "
                 + ", ".join(f"{n:,} {name}" for name, n in sorted(by_format.items()))]
    empty = [f.name for f in files if f.format == "empty"]
    if empty:
        notes.append(f"note: {count(len(empty), 'empty log')} skipped: {', '.join(empty[:FILES_NAMED])}"
                     + (", ..." if len(empty) > FILES_NAMED else ""))
    totals: dict[str, int] = {}
    for f in files:
        for key, value in f.counts.items():
            totals[key] = totals.get(key, 0) + value
    if totals.get("keyless"):
        keyless = totals["keyless"]
        notes.append(f"warning: {count(keyless, 'call')} recorded without {'its' if keyless == 1 else 'their'} "
                     f"request (no content) cannot be keyed: counted as misses, never cached")
    notes += repeats_note(totals)
    notes += _merged_notes(files)
    if totals.get("failed_calls"):
        failed = totals["failed_calls"]
        notes.append(f"note: {count(failed, 'failed call')} (an error, no answer) not replayed: "
                     f"{'it is' if failed == 1 else 'they are'} neither cached nor billed")
    if totals.get("source_cache_hits"):
        notes.append(f"note: {count(totals['source_cache_hits'], 'call')} the logging proxy's own cache already "
                     f"served (LiteLLM cache_hit, Helicone cache): replayed as calls to the API, priced at full cost")
    return notes


# The records of one API call that a format folds into one call (duplicates_merged), and why
# there were several: (what they are, how they came about)
MERGED_RECORDS = {"otel": ("span", "one API call recorded at several levels, or by two instrumentations"),
                  "langfuse": ("nested generation", "one API call recorded at several levels")}


def _merged_notes(files: list[LogFile]) -> list[str]:
    """A note per format of the records merged into the calls they record, which inspect alone
    counted: without it, a user who counts the records finds fewer calls than records."""
    merged: dict[str, int] = {}
    for f in files:
        if f.counts.get("duplicates_merged"):
            merged[f.format] = merged.get(f.format, 0) + f.counts["duplicates_merged"]
    notes = []
    for log_format, n in merged.items():
        noun, why = MERGED_RECORDS.get(log_format, ("record", "one API call recorded several times"))
        notes.append(f"note: {count(n, noun)} merged into the {'call it records' if n == 1 else 'calls they record'} "
                     f"({why}): each call is counted once")
    return notes


def _by_ts(event: Event) -> float:
    return event.ts


def _size(path: str) -> int:
    try:
        with open(path, "rb") as handle:  # open, not stat: a folder or an unreadable file fails here
            return os.fstat(handle.fileno()).st_size
    except OSError as exc:
        raise cannot_read(path, exc) from None


HELPER_SHARE = 0.48  # the helper also encodes its events for the pipe: a smaller share evens the halves


def _split_point(path: str, size: int) -> int:
    """The start of the first line at or after the helper's share (size: no such line)."""
    start = int(size * (1 - HELPER_SHARE))
    with open(path, "rb") as handle:
        handle.seek(start)
        while (piece := handle.readline(BLOCK_BYTES)) and not piece.endswith(b"\n"):
            pass  # a line longer than a block, read a block at a time (the reader bounds its length)
        return handle.tell() if start > 0 else size


def _blocks(path: str, start: int, end: int) -> Iterator[tuple[int, int, bytes]]:
    """Bytes start..end of the file in blocks of whole lines (the last may lack its newline):
    the number of each block's first line (counted from `start`), its line count, the block."""
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise cannot_read(path, exc) from None
    with handle:
        handle.seek(start)
        yield from line_blocks(handle, path, BLOCK_BYTES, end - start)


class _Helper:
    """A forked process that parses bytes start..end and sends back its events (msgpack) and
    its skipped lines or first error, with line numbers counted from `start`."""

    def __init__(self, path: str, name: str, start: int, end: int, skip_invalid: bool, known_model, keep_text):
        context = multiprocessing.get_context("fork")  # the parent's state (prices) comes along
        self.conn, child = context.Pipe(duplex=False)
        self.process = context.Process(target=_helper_main, daemon=True,
                                       args=(child, self.conn, os.getpid(), path, start, end, skip_invalid,
                                             known_model, keep_text))
        # Ctrl-C or SIGTERM held off while the fork is made: landing inside multiprocessing's
        # bookkeeping (a Finalize half built), it printed a traceback at exit. Delivered just after.
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        try:
            self.process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)
        child.close()
        self.path = name  # as messages call it

    def merge_into(self, reader: Reader, lines_before: int) -> None:
        try:
            events_bytes = self.conn.recv_bytes()
            saw_line, skipped, error, names, codes = pickle.loads(self.conn.recv_bytes())
        except EOFError:
            raise LogError(self.path, None, None, "the helper process reading the second half failed",
                           hint="run with TIERCLI_DEBUG=1 for details") from None
        if error is not None:
            line, field_name, problem, hint = error
            raise LogError(self.path, None if line is None else line + lines_before, field_name, problem, hint)
        reader.saw_line |= saw_line
        reader.skipped += [LogError(self.path, line + lines_before, f, p) for line, f, p in skipped]
        names = [reader.names.setdefault(name, name) for name in names]  # one string object per name
        names.append(None)  # code -1: no worker
        events = _EVENTS_IN.decode(events_bytes)
        del events_bytes
        for event, lead, worker, task, model in zip(events, *(array("l", column) for column in codes)):
            event.line += lines_before
            event.lead, event.worker = names[lead], names[worker]
            if task >= 0:
                event.task, event.model = names[task], names[model]
        reader.events += events

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.conn.close()


def _helper_main(conn, parent_end, parent_pid: int, path: str, start: int, end: int, skip_invalid: bool,
                 known_model, keep_text) -> None:
    # Die with the parent, even a killed one; and hold no read end of our own pipe, so that a
    # write to a parent that is gone fails (EPIPE) instead of blocking for ever.
    die_with_parent(signal.SIGKILL, parent_pid)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})  # held while forking
    parent_end.close()
    reader = Reader(path, skip_invalid, known_model, keep_text)
    error = None
    try:
        for first_line, lines, block in _blocks(path, start, end):
            reader.block(first_line, lines, block)
    except LogError as exc:
        error = (exc.line, exc.field, exc.problem, exc.hint)
        reader.events = []
    # Names go as codes, blanked in the events: strings decoded in the parent only to be
    # replaced by its own copies would leave its memory full of holes.
    code_of = {name: i for i, name in enumerate(reader.names)}
    code_of[None] = -1  # no worker; a tag change's task and model
    events, code = reader.events, code_of.__getitem__
    columns = [array("l", map(code, map(getattr, events, repeat(name), repeat(None))))
               for name in ("lead", "worker", "task", "model")]
    for event in events:
        event.lead, event.worker = "", None
        if type(event) is Call:
            event.task = event.model = ""
    codes = [column.tobytes() for column in columns]
    conn.send_bytes(_EVENTS_OUT.encode(reader.events))
    skipped = [(e.line, e.field, e.problem) for e in reader.skipped]
    conn.send_bytes(pickle.dumps((reader.saw_line, skipped, error, list(reader.names), codes)))
    conn.close()
