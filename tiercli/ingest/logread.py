"""Reading a JSONL log file into events in processing order.

Every problem is a LogError naming file, line and field (see README "Log format"). Records
are parsed in tiercli/ingest/records.py; this module reads the file in blocks of whole lines and, for
a large file on a machine with two cores, has a forked helper process parse the second half
while this one parses the first (bench/run.py measures what that saves)."""

from __future__ import annotations

import hashlib
import multiprocessing
from array import array
import os
import pickle
from collections.abc import Iterator
from itertools import repeat
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from tiercli.errors import LogError
from tiercli.present.words import count
from tiercli.ingest.events import Call, Event, TagChange
from tiercli.ingest.records import Reader

BLOCK_BYTES = 1 << 20  # msgspec decodes ~1 MiB blocks of lines fastest here
PARALLEL_MIN_BYTES = 64 << 20  # below this a helper process costs more than it saves
UTF8_BOM = b"\xef\xbb\xbf"

_EVENTS_OUT = msgspec.msgpack.Encoder()
_EVENTS_IN = msgspec.msgpack.Decoder(list[Call | TagChange])


@dataclass
class ReadResult:
    events: list[Event]  # in processing order: ts, then file order
    skipped: list[LogError] = field(default_factory=list)  # with skip_invalid
    path: str = ""
    size: int = 0  # bytes read
    sha256: str = ""  # of the whole file (when asked for): a saved run names exactly its log

    @property
    def calls(self) -> list[Call]:
        return [e for e in self.events if isinstance(e, Call)]


def read_log(path: str | Path, *, skip_invalid: bool = False, known_model=None, keep_text: bool = True,
             digest: bool = True, parallel_min_bytes: int = PARALLEL_MIN_BYTES) -> ReadResult:
    """Read and check a whole log. `known_model(name) -> bool` rejects calls whose model has no
    price. Without `keep_text` (L3 off) the calls' texts are not kept, to save memory; without
    `digest` the file's SHA-256 (needed only to save a run) is not computed."""
    path_str = str(path)
    size = _size(path_str)
    two_processes = (size >= parallel_min_bytes and (os.cpu_count() or 1) > 1
                     and "fork" in multiprocessing.get_all_start_methods())
    split = _split_point(path_str, size) if two_processes else size
    helper = _Helper(path_str, split, size, skip_invalid, known_model, keep_text) if split < size else None
    try:
        reader = Reader(path_str, skip_invalid, known_model, keep_text)
        hasher = hashlib.sha256() if digest else None
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
    events, skipped = reader.events, reader.skipped
    if not reader.saw_line:
        raise LogError(path_str, None, None, "the log is empty", hint="a log holds one JSON object per line")
    if not any(type(event) is Call for event in events):
        raise _no_calls(path_str, len(events), skipped)
    if any(a.ts > b.ts for a, b in zip(events, events[1:])):
        events.sort(key=_by_ts)  # stable: equal ts keep file order
    for seq, event in enumerate(events):
        event.seq = seq
    return ReadResult(events, skipped, path_str, size, hasher.hexdigest() if hasher is not None else "")


def _no_calls(path: str, tag_changes: int, skipped: list[LogError]) -> LogError:
    """A log with nothing to replay: only tag changes, or only bad lines skipped."""
    found = [count(tag_changes, "tag change")] if tag_changes else []
    if skipped:
        found.append(count(len(skipped), "bad line") + " skipped")
    return LogError(path, None, None, f"no calls in the log ({', '.join(found)})",
                    hint=skipped[0].message if skipped else
                    'a call has "ts", "lead_id", "task_type", "model" and "prompt" or "messages" (README "Log format")')


def _share(part: int, whole: int) -> str:
    share = 100 * part / whole
    return f"{share:.1f}%" if share >= 0.1 or share == 0 else "<0.1%"


SKIPPED_SHOWN = 5  # bad lines named one by one; the rest are counted


def read_notes(read: ReadResult) -> list[str]:
    """What a command says on stderr about what it read: the lines skipped, and warnings about
    figures that rest on estimates. Every command that reads a log prints these, the same way."""
    notes = [f"skipped: {error.message}" for error in read.skipped[:SKIPPED_SHOWN]]
    if len(read.skipped) > SKIPPED_SHOWN:
        notes.append(f"skipped: ... {count(len(read.skipped) - SKIPPED_SHOWN, 'more bad line')}")
    calls = read.calls
    estimated = sum(call.tokens_estimated for call in calls)
    if estimated:
        notes.append(f"warning: {estimated:,} of {count(len(calls), 'call')} ({_share(estimated, len(calls))}) "
                     f"have no input_tokens or output_tokens: their tokens were estimated at 4 characters a "
                     f"token, so their costs are estimates")
    unread = sum(call.openai_usage_unread for call in calls)
    if unread:
        notes.append(f"warning: {count(unread, 'call')} {'carries' if unread == 1 else 'carry'} OpenAI-style usage/prompt_tokens/completion_tokens "
                     f"fields, which tiercli does not read yet: their tokens were estimated")
    return notes


def _by_ts(event: Event) -> float:
    return event.ts


def _cannot_read(path: str, exc: OSError) -> LogError:
    return LogError(path, None, None, f"cannot read: {exc.strerror or exc}")


def _size(path: str) -> int:
    try:
        with open(path, "rb") as handle:  # open, not stat: a folder or an unreadable file fails here
            return os.fstat(handle.fileno()).st_size
    except OSError as exc:
        raise _cannot_read(path, exc) from None


HELPER_SHARE = 0.48  # the helper also encodes its events for the pipe: a smaller share evens the halves


def _split_point(path: str, size: int) -> int:
    """The start of the first line at or after the helper's share (size: no such line)."""
    start = int(size * (1 - HELPER_SHARE))
    with open(path, "rb") as handle:
        handle.seek(start)
        handle.readline()
        return handle.tell() if start > 0 else size


def _blocks(path: str, start: int, end: int) -> Iterator[tuple[int, int, bytes]]:
    """Bytes start..end of the file in blocks of whole lines (the last may lack its newline):
    the number of each block's first line (counted from `start`), its line count, the block."""
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise _cannot_read(path, exc) from None
    with handle:
        handle.seek(start)
        line_no, rest, left = 1, b"", end - start
        try:
            while left > 0 and (chunk := handle.read(min(BLOCK_BYTES, left))):
                left -= len(chunk)
                chunk = rest + chunk if rest else chunk
                cut = chunk.rfind(b"\n") + 1
                if cut == 0:
                    rest = chunk
                    continue
                block, rest = chunk[:cut], chunk[cut:]
                lines = block.count(b"\n")
                yield line_no, lines, block
                line_no += lines
        except OSError as exc:
            raise _cannot_read(path, exc) from None
        if rest:
            yield line_no, rest.count(b"\n") + 1, rest


class _Helper:
    """A forked process that parses bytes start..end and sends back its events (msgpack) and
    its skipped lines or first error, with line numbers counted from `start`."""

    def __init__(self, path: str, start: int, end: int, skip_invalid: bool, known_model, keep_text: bool):
        context = multiprocessing.get_context("fork")  # the parent's state (prices) comes along
        self.conn, child = context.Pipe(duplex=False)
        self.process = context.Process(target=_helper_main, daemon=True,
                                       args=(child, self.conn, os.getpid(), path, start, end, skip_invalid,
                                             known_model, keep_text))
        self.process.start()
        child.close()
        self.path = path

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
                 known_model, keep_text: bool) -> None:
    import signal

    from tiercli.procs import die_with_parent

    # Die with the parent, even a killed one; and hold no read end of our own pipe, so that a
    # write to a parent that is gone fails (EPIPE) instead of blocking for ever.
    die_with_parent(signal.SIGKILL, parent_pid)
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
