"""The readers' fuzz harness (issue 27): valid seed logs of every format tiercli reads, each given
one to three seeded random mutations, run through the real CLI (`tiercli inspect` or `tiercli
replay --tiers l1,l2 --no-save`, with --json, or about one case in four as people read it, at
200, 80 or 40 columns) in a few long-lived worker processes.

Every run must end with exit 0 (and, with --json, one JSON object on stdout), or a non-zero
exit with one `error:` line (and `hint:` lines) on stderr (and, with --json, a JSON error
object on stdout): never an internal error, a traceback, a hang, or a planted secret's text
anywhere it wrote (a successful run's own output without --json excepted: what it shows of the
log is the log's, asked for).

Deterministic: case N of seed S is built from random.Random(f"{S}:{N}") alone, so a failure
reproduces on any machine from its seed and number (`make_case(S, N)`), and the mutated log is
kept in the run's folder under the name its report gives. tests/test_fuzz.py runs ~1,000
cases; bench/fuzz.py (`./dev bench fuzz`) 10,000."""

from __future__ import annotations

import copy
import csv
import gzip
import io
import json
import math
import multiprocessing
import multiprocessing.connection
import os
import random
import shutil
import signal
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from formats_common import ORCHESTRATOR_MAP, WAREHOUSE_MAP

TESTS = Path(__file__).parent
FIXTURES = TESTS / "fixtures"
SAMPLE = TESTS.parent / "sample_logs" / "realestate_day.jsonl"
TEMP_PREFIX = "tiercli-fuzz-"  # the run's own temporary folder
CASE_SECONDS = 20.0  # a case's time limit: cases take milliseconds; a worker's first also imports tiercli
MAX_LEVELS = 700  # the deepest a case's tree nests: json.dumps (the case's writer) fails near 1,000
RECORDS_PER_SEED = 4  # lines (or rows) of a longer fixture kept in its seed: a case runs in milliseconds
# what a case can fail by; "harness": the case could not be built (a bug of this file's)
FAILURE_CLASSES = ("internal error", "traceback", "hang", "echoed secret", "bad json", "not one line", "harness")

NATIVE = [
    {"ts": "2026-11-02T08:00:00Z", "lead_id": "A", "task_type": "intent", "model": "claude-sonnet-4-5",
     "worker": "w1", "prompt": "hello there", "input_tokens": 1000, "output_tokens": 100, "latency_ms": 1000,
     "response": "Cold"},
    {"ts": 1793606460, "lead_id": "A", "task_type": "chat", "model": "claude-haiku-4-5",
     "system": "Be brief.", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
     "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 0}, "streaming": False,
     "latency_ms": 900, "response": "ok"},
    {"type": "tag_change", "ts": "2026-11-02T08:02:00Z", "lead_id": "A", "tag": "Warm"},
    {"ts": "2026-11-02T08:03:00Z", "lead_id": "A", "task_type": "intent", "model": "claude-sonnet-4-5",
     "worker": "w2", "prompt": "hello there", "input_tokens": 1000, "output_tokens": 100, "latency_ms": 1000,
     "response": "Warm"},
]


# --- seeds -------------------------------------------------------------------------------------

@dataclass
class Seed:
    name: str  # where it came from: "otel/current.jsonl", "map/orchestrator.parquet"
    log_format: str  # the --format it is read as when the case names it (detection otherwise)
    container: str  # "jsonl", "json" (one document), "csv" or "parquet"
    data: Any  # jsonl/csv/parquet: a list of records; json: the document
    field_map: dict = field(default_factory=dict)  # map: its --map flags

    @property
    def flags(self) -> list[str]:
        return [part for target, path in self.field_map.items() for part in ("--map", f"{target}={path}")]


def _jsonl(path: Path) -> list:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()][:RECORDS_PER_SEED]


def _csv_rows(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))[:RECORDS_PER_SEED]


def seeds() -> list[Seed]:
    """Valid logs of every format, a few records each."""
    out = [Seed("native/hand-written.jsonl", "tiercli", "jsonl", NATIVE),
           Seed("native/realestate_day.jsonl", "tiercli", "jsonl",
                [json.loads(line) for line in SAMPLE.read_text().splitlines()[:5]])]
    for folder in ("otel", "langfuse", "litellm", "helicone"):
        for path in sorted((FIXTURES / folder).iterdir()):
            name = f"{folder}/{path.name}"
            if path.suffix == ".jsonl":
                out.append(Seed(name, folder, "jsonl", _jsonl(path)))
            elif path.suffix == ".json":
                out.append(Seed(name, folder, "json", json.loads(path.read_text())))
            elif path.suffix == ".csv":
                out.append(Seed(name, folder, "csv", _csv_rows(path)))
    orchestrator = _jsonl(FIXTURES / "map" / "orchestrator.jsonl")
    out += [Seed("map/orchestrator.jsonl", "map", "jsonl", orchestrator, ORCHESTRATOR_MAP),
            Seed("map/warehouse.csv", "map", "csv", _csv_rows(FIXTURES / "map" / "warehouse.csv"), WAREHOUSE_MAP),
            Seed("map/orchestrator.parquet", "map", "parquet", orchestrator, ORCHESTRATOR_MAP),
            Seed("langfuse/observations.parquet", "langfuse", "parquet",
                 _csv_rows(FIXTURES / "langfuse" / "observations.csv")),
            Seed("litellm/spend_logs.parquet", "litellm", "parquet", _csv_rows(FIXTURES / "litellm" / "spend_logs.csv"))]
    return out


# --- mutations ---------------------------------------------------------------------------------

def _deep(levels: int) -> Any:
    value: Any = "bottom"
    for i in range(levels):
        value = [value] if i % 2 else {"n": value}
    return value


ODD_TEXTS = ["", " ", "\x00", "a\x00b", "\x01\x02\x1b[31mred\x1b[0m\x7f", "line\nbreak\r\n", "\t",
             "\ud800", "x\udfffy", "\ufeffbom", "\u202eRTL\u202c", "\u200f\u200e", "e\u0301\u0301\u0301",
             "\U0001F600\U0001F468\u200d\U0001F469\u200d\U0001F467", "NaN", "Infinity", "-0", "1e999",
             "2026-13-45T99:99:99Z", "0000-00-00", "99999999999999999999", "true", "null", "[]", "{}",
             "[1, 2", '{"a": ', "\\", "%s%n{0}", "claude-sonnet-4-5", "user", "assistant"]
BOUNDS = [0, -1, 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -2**63 - 1, 10**30, 1e308, -1e308, 5e-324,
          -0.0, 0.5, float("nan"), float("inf"), float("-inf")]


def _any_type(rng: random.Random) -> Any:
    """A value of each JSON type in turn, chosen at random."""
    return rng.choice([None, True, False, 7, -3, 2.5, "text", [], [1, "a"], {}, {"k": "v"}])


def _odd_value(rng: random.Random, room: int) -> Any:
    """An edge value; `room`: the levels it may nest (the tree stays writable by json.dumps)."""
    kind = rng.randrange(5)
    if kind == 0:
        return rng.choice(BOUNDS)
    if kind == 1:
        return rng.choice(ODD_TEXTS)
    if kind == 2:  # huge: a long string, a long list, a wide object
        return rng.choice(["x" * 200_000, list(range(20_000)), {f"k{i}": i for i in range(5_000)}])
    if kind == 3:
        return _deep(min(rng.choice([50, 300, 600]), room))
    return rng.choice(ODD_TEXTS) * rng.randrange(1, 50)


def secret_of(rng: random.Random) -> tuple[Any, str]:
    """A secret in one of its shapes, with a tail unique to the case: (value, the tail to look for)."""
    tail = "fz" + "".join(rng.choice("ABCDEFGHJKMNPQRSTUVWXYZabcdefghjkmnpqrstuvwxyz23456789") for _ in range(14))
    key = "sk-ant-api03-" + tail
    shapes = [key, f"{key} and some text", f"Bearer {tail}", f"bearer {tail}",
              {"authorization": f"Bearer {tail}"}, {"Authorization": tail}, {"x-api-key": key},
              {"api_key": tail}, {"password": tail}, {"headers": {"authorization": f"Basic {tail}"}},
              f"https://user:{tail}@proxy.internal:8080/v1", f"redis://:{tail}@cache.internal:6379/0",
              [key], {"note": {"deeper": key}},
              [{"key": "http.request.header.authorization", "value": {"stringValue": tail}}],
              {"key": "gen_ai.request.api_key", "value": {"stringValue": tail}},
              f"Authorization: Bearer {tail}", f"x-api-key={tail}"]
    return rng.choice(shapes), tail


def _paths(tree: Any) -> list[tuple]:
    """Every path in a tree of dicts and lists (the root is ()), in document order; without
    recursion, as a tree may nest hundreds of levels."""
    out, todo = [], [((), tree)]
    while todo:
        path, node = todo.pop()
        out.append(path)
        children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        todo.extend(reversed([(path + (key,), value) for key, value in children]))
    return out


def _at(tree: Any, path: tuple) -> Any:
    for part in path:
        tree = tree[part]
    return tree


def _set(tree: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    _at(tree, path[:-1])[path[-1]] = value
    return tree


def _spelled(path: tuple) -> str:
    return "/".join(str(part) for part in path) or "(root)"


def _decoded_json_texts(tree: Any, rng: random.Random) -> tuple[Any, tuple | None]:
    """Some fields hold JSON as text (an OTel attribute's messages, a CSV cell): one of them,
    decoded, so mutations reach inside it; (tree, its path) or (tree, None)."""
    candidates = [p for p in _paths(tree) if isinstance(_at(tree, p), str) and _at(tree, p)[:1] in ("{", "[")]
    rng.shuffle(candidates)
    for path in candidates[:3]:
        try:
            inner = json.loads(_at(tree, path))
        except ValueError:
            continue
        if isinstance(inner, (dict, list)) and inner:
            return _set(tree, path, inner), path
    return tree, None


def mutate(tree: Any, rng: random.Random, secrets: list[str]) -> tuple[Any, str]:
    """One mutation of the tree (the log's records or document), or of JSON held as text in
    one of its fields: (the tree, what was done)."""
    tree, inner_path = _decoded_json_texts(tree, rng) if rng.random() < 0.25 else (tree, None)
    if inner_path is None:
        return _mutated(tree, rng, secrets)
    inside, done = _mutated(_at(tree, inner_path), rng, secrets)
    return _set(tree, inner_path, _dumps(inside)), f"{done} (inside the JSON text at {_spelled(inner_path)})"


def _mutated(inside: Any, rng: random.Random, secrets: list[str]) -> tuple[Any, str]:
    paths = _paths(inside)
    kind = rng.choices(["delete", "duplicate", "reorder", "type", "value", "secret", "add"],
                       weights=[3, 1, 1, 4, 4, 3, 1])[0]
    containers = [p for p in paths if isinstance(_at(inside, p), (dict, list)) and _at(inside, p)]
    done = kind
    if kind in ("delete", "duplicate", "reorder") and containers:
        path = rng.choice(containers)
        node = _at(inside, path)
        if kind == "delete":
            key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
            del node[key]
            done = f"delete {_spelled(path + (key,))}"
        elif kind == "duplicate" and isinstance(node, list):
            index = rng.randrange(len(node))
            node.insert(index, copy.deepcopy(node[index]))
            done = f"duplicate {_spelled(path + (index,))}"
        else:
            items = list(node.items()) if isinstance(node, dict) else list(node)
            rng.shuffle(items)
            inside = _set(inside, path, dict(items) if isinstance(node, dict) else items)
            done = f"reorder {_spelled(path)}"
    elif kind == "add" and containers:
        path = rng.choice(containers)
        node = _at(inside, path)
        value = _any_type(rng) if rng.random() < 0.5 else _odd_value(rng, MAX_LEVELS - len(path))
        if isinstance(node, dict):
            node[rng.choice(["extra", "", "\x00", "key", "value", "type", "id"])] = value
        else:
            node.append(value)
        done = f"add to {_spelled(path)}"
    else:
        path = rng.choice(paths[1:] or paths)
        if kind == "secret":
            value, tail = secret_of(rng)
            secrets.append(tail)
        elif kind == "type":
            value = _any_type(rng)
        else:
            value = _odd_value(rng, MAX_LEVELS - len(path))
        inside = _set(inside, path, value)
        done = f"{kind} {_spelled(path)} = {_short(value)}"
    return inside, done


def _short(value: Any) -> str:
    try:
        text = json.dumps(value, default=str)
    except (ValueError, RecursionError):
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 50 else text[:47] + "..."


# --- the case's file ---------------------------------------------------------------------------

def _dumps(value: Any, ensure_ascii: bool = False) -> str:
    return json.dumps(value, allow_nan=True, ensure_ascii=ensure_ascii)  # NaN/Infinity as JSON5 writes them


def _cell(value: Any) -> Any:
    return value if isinstance(value, str) or value is None else _dumps(value)


def _csv_bytes(rows: list) -> bytes:
    out = io.StringIO()
    rows = [row if isinstance(row, dict) else {"value": row} for row in rows]
    columns = list(dict.fromkeys(str(key) for row in rows for key in row)) or ["value"]
    writer = csv.DictWriter(out, columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({str(k): _cell(v) for k, v in row.items()})
    return out.getvalue().encode("utf-8", "surrogatepass")


def _parquet_bytes(rows: list) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [row if isinstance(row, dict) else {"value": row} for row in rows]
    columns = list(dict.fromkeys(str(key) for row in rows for key in row))
    full = [{c: row.get(c) for c in columns} for row in rows]
    tables = (  # the values' own types where pyarrow can write them (a struct, a list); else JSON text
        lambda: full,
        lambda: [{c: _cell(v) for c, v in row.items()} for row in full],
        lambda: [{c: None if v is None else _dumps(v, True) for c, v in row.items()} for row in full])
    for table in tables:
        out = io.BytesIO()
        try:
            pq.write_table(pa.Table.from_pylist(table()), out)
            return out.getvalue()
        except (pa.ArrowException, OverflowError, TypeError, ValueError, UnicodeError):
            continue
    raise AssertionError("no way to write the rows as Parquet")


def serialized(container: str, tree: Any, ensure_ascii: bool) -> bytes:
    if container == "parquet":
        return _parquet_bytes(tree if isinstance(tree, list) else [tree])
    if container == "csv":
        return _csv_bytes(tree if isinstance(tree, list) else [tree])
    if container == "json":
        text = _dumps(tree, ensure_ascii)
    else:
        text = "".join(_dumps(record, ensure_ascii) + "\n" for record in (tree if isinstance(tree, list) else [tree]))
    return text.encode("utf-8", "surrogatepass")


def mutate_bytes(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    kind = rng.choice(["truncate", "invalid utf-8", "split a line", "bom", "crlf", "empty", "nul bytes"])
    at = rng.randrange(len(data) + 1) if data else 0
    if kind == "truncate":
        return data[:at], f"truncate at byte {at}"
    if kind == "invalid utf-8":
        bad = rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80\x80"])
        return data[:at] + bad + data[at:], f"insert {bad!r} at byte {at}"
    if kind == "split a line":
        return data[:at] + b"\n" + data[at:], f"newline at byte {at}"
    if kind == "bom":
        return b"\xef\xbb\xbf" + data, "UTF-8 BOM"
    if kind == "crlf":
        return data.replace(b"\n", b"\r\n"), "CRLF line ends"
    if kind == "nul bytes":
        return data[:at] + b"\x00" * 3 + data[at:], f"NUL bytes at byte {at}"
    return b"", "empty file"


def compressed(data: bytes, how: str) -> bytes:
    if how == "gzip":
        return gzip.compress(data, mtime=0)
    if how == "zstd":
        import zstandard

        return zstandard.ZstdCompressor().compress(data)
    return data


SUFFIX = {"jsonl": ".jsonl", "json": ".json", "csv": ".csv", "parquet": ".parquet"}


@dataclass
class Case:
    seed: int
    number: int
    source: str  # the seed log's name
    log_format: str
    mutations: list[str]
    compression: str | None
    args: list[str]  # the CLI's, the log's path as LOG
    secrets: list[str]  # tails of the planted secrets
    data: bytes  # the log's bytes as written
    container: str  # the seed's: "jsonl", "json", "csv" or "parquet"
    columns: int = 200  # the terminal's width (COLUMNS) the run has

    @property
    def human(self) -> bool:
        """Run as people read it: without --json."""
        return "--json" not in self.args

    @property
    def file_name(self) -> str:
        suffix = SUFFIX[self.container] + {"gzip": ".gz", "zstd": ".zst", None: ""}[self.compression]
        return f"case-{self.seed}-{self.number}{suffix}"

    def argv(self, path: Path) -> list[str]:
        return [str(path) if arg == "LOG" else arg for arg in self.args]

    def describe(self) -> str:
        return (f"seed {self.seed} case {self.number}: {self.source} ({self.log_format}"
                f"{', ' + self.compression if self.compression else ''}): {'; '.join(self.mutations)}")


_SEEDS: list[Seed] | None = None


def make_case(seed: int, number: int) -> Case:
    """Case `number` of `seed`: the same on any machine."""
    global _SEEDS
    if _SEEDS is None:
        _SEEDS = seeds()
    rng = random.Random(f"{seed}:{number}")
    # a format first, then one of its seeds: each format gets its share, however many seeds it has
    log_format = rng.choice(sorted({s.log_format for s in _SEEDS}))
    base = rng.choice([s for s in _SEEDS if s.log_format == log_format])
    tree = copy.deepcopy(base.data)
    secrets: list[str] = []
    mutations = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        tree, done = mutate(tree, rng, secrets)
        mutations.append(done)
    data = serialized(base.container, tree, ensure_ascii=rng.random() < 0.3)
    if rng.random() < 0.15:
        data, done = mutate_bytes(data, rng)
        mutations.append(done)
    compression = rng.choice([None, None, "gzip", "zstd"])
    data = compressed(data, compression)
    if compression and rng.random() < 0.05:
        cut = rng.randrange(len(data))
        data = data[:cut]
        mutations.append(f"compressed file cut at byte {cut}")
    command = rng.choice([["inspect"], ["replay", "--tiers", "l1,l2", "--no-save"]])
    args = command + ["LOG", "--json"]
    if base.field_map:
        args += ["--format", "map"] + base.flags
    elif rng.random() < 0.5:
        args += ["--format", base.log_format]
    if rng.random() < 0.3:
        args.append("--skip-invalid")
    # Drawn apart, so that adding this left every earlier case's log and flags as they were.
    view = random.Random(f"{seed}:{number}:view")
    columns = 200
    if view.random() < 0.25:
        args.remove("--json")
        columns = view.choice([200, 80, 40])
    return Case(seed, number, base.name, base.log_format, mutations, compression, args, secrets, data, base.container,
                columns)


# --- running a case and checking what it did -----------------------------------------------------

@dataclass
class Outcome:
    exit_code: int | None
    stdout: str
    stderr: str
    escaped: str | None  # an exception that left the CLI: its type and text
    written: str  # text of the files the run left under TIERCLI_HOME
    seconds: float


def run_in_process(argv: list[str], home: str, columns: int = 200) -> Outcome:
    from typer.testing import CliRunner

    from tiercli.cli import app

    for entry in Path(home).iterdir():  # each case starts from an empty home
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    start = time.perf_counter()
    result = CliRunner().invoke(app, argv, env={"TIERCLI_HOME": home, "TIERCLI_DEBUG": None, "COLUMNS": str(columns)})
    seconds = time.perf_counter() - start
    escaped = None
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        escaped = f"{type(result.exception).__name__}: {str(result.exception)[:300]}"
    written = []
    for path in Path(home).rglob("*"):
        if path.is_file():
            written.append(path.read_bytes()[:2_000_000].decode("utf-8", "replace"))
    return Outcome(result.exit_code, result.stdout, result.stderr, escaped, "\n".join(written), seconds)


# What a successful run shows of the records by design (inspect's first call, the models it
# found): a planted secret there is the log's own data, asked for, not an echo by an error path.
_DATA_FIELDS = {"first_call", "models", "l3_text", "scope_missing"}


def _values_text(value: Any, top: bool = True) -> str:
    """The JSON's values (not its keys: task and model names are keys) but the data fields."""
    if isinstance(value, dict):
        return "\n".join(_values_text(v, False) for k, v in value.items() if not (top and k in _DATA_FIELDS))
    if isinstance(value, list):
        return "\n".join(_values_text(v, False) for v in value)
    return str(value)


def failures_of(case: Case, outcome: Outcome) -> list[tuple[str, str]]:
    """(class, what) for each check the run failed; [] when it passed."""
    found = []
    everything = f"{outcome.stdout}\n{outcome.stderr}\n{outcome.escaped or ''}"
    if outcome.escaped:
        found.append(("traceback", f"an exception left the CLI: {outcome.escaped}"))
    if "Traceback" in everything:
        found.append(("traceback", "a traceback in the output"))
    if "internal error" in everything:
        line = next((l for l in everything.splitlines() if "internal error" in l), "")
        found.append(("internal error", line[:300]))
    if case.human:  # as people read it: stdout is a table, and on success it shows the log's own values
        if outcome.exit_code != 0:
            found += _error_lines(outcome)
        shown_text = outcome.stderr
        for tail in case.secrets:
            if tail in shown_text or tail in outcome.written:
                found.append(("echoed secret", _where(tail, shown_text, outcome.written)))
        return found
    try:
        printed = json.loads(outcome.stdout) if outcome.stdout.strip() else None
    except ValueError as exc:
        printed = None
        found.append(("bad json", f"stdout is not one JSON object ({exc}): {outcome.stdout[:200]!r}"))
    if outcome.exit_code == 0:
        if not isinstance(printed, dict) or "error" in printed:
            found.append(("bad json", f"exit 0 without a JSON result: {outcome.stdout[:200]!r}"))
        shown_text = _values_text(printed) + "\n" + outcome.stderr if isinstance(printed, dict) else everything
    else:
        found += _error_lines(outcome)
        if not (isinstance(printed, dict) and set(printed) == {"error"}):
            found.append(("bad json", f"exit {outcome.exit_code} without a JSON error: {outcome.stdout[:200]!r}"))
        shown_text = everything
    for tail in case.secrets:
        if tail in shown_text or tail in outcome.written:
            found.append(("echoed secret", _where(tail, shown_text, outcome.written)))
    return found


def _error_lines(outcome: Outcome) -> list[tuple[str, str]]:
    """A failed run's stderr must hold one `error:` line, followed only by `hint:` lines."""
    lines = [line for line in outcome.stderr.splitlines() if line.strip()]
    errors = [i for i, line in enumerate(lines) if line.startswith("error: ")]
    if len(errors) != 1 or any(not line.startswith("hint: ") for line in lines[errors[0] + 1:]):
        return [("not one line", f"exit {outcome.exit_code}, stderr: {outcome.stderr[-400:]!r}")]
    return []


def _where(tail: str, shown_text: str, written: str) -> str:
    where = "in files under TIERCLI_HOME" if tail not in shown_text else "in the output"
    context = next((line for line in (shown_text + "\n" + written).splitlines() if tail in line), "")
    return f"{where}: {context[:300]}"


# --- workers: long-lived processes that build and run cases --------------------------------------

def _worker(connection, folder: str) -> None:
    # Ctrl-C reaches the whole process group: the parent alone decides, and stops the workers
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    home = tempfile.mkdtemp(prefix="home-", dir=folder)
    path = None
    try:
        while True:
            job = connection.recv()  # EOFError: the parent is gone (killed)
            if job is None:
                break
            seed, number = job
            try:
                case = make_case(seed, number)
            except Exception as exc:  # a bug of the harness's own: said, never a silent pass or a stop
                connection.send(("?", "?", [("harness", f"building the case: {type(exc).__name__}: {exc}")], 0.0, None))
                continue
            path = Path(folder) / case.file_name
            path.write_bytes(case.data)
            outcome = run_in_process(case.argv(path), home, case.columns)
            failures = failures_of(case, outcome)
            connection.send((case.source, case.log_format, failures, outcome.seconds, outcome.exit_code))
            if not failures:
                path.unlink()
            path = None
    except (EOFError, OSError):  # the parent was killed: clean up behind it, quietly
        if path is not None:
            path.unlink(missing_ok=True)
        shutil.rmtree(home, ignore_errors=True)
        if Path(folder).name.startswith(TEMP_PREFIX):  # a folder the harness made, not --keep's
            try:
                os.rmdir(folder)  # only when empty: a failing case's kept log stays
            except OSError:
                pass
        return
    shutil.rmtree(home, ignore_errors=True)


@dataclass
class Failure:
    seed: int
    number: int
    source: str
    failure_class: str
    what: str
    reproduction: str  # the mutated log and the command

    def __str__(self) -> str:
        return f"[{self.failure_class}] seed {self.seed} case {self.number} ({self.source}): {self.what}\n    {self.reproduction}"


@dataclass
class Report:
    cases: int = 0
    seconds: float = 0.0
    per_format: Counter = field(default_factory=Counter)
    per_class: Counter = field(default_factory=Counter)
    exits: Counter = field(default_factory=Counter)
    failures: list[Failure] = field(default_factory=list)
    folder: str = ""
    slowest: tuple[float, int] = (0.0, -1)  # (seconds, case number): what nears the time limit without a hang
    interrupted: bool = False  # Ctrl-C or SIGTERM: the counts are of the cases run until then


class _Slot:
    """One worker process and its pipe."""

    def __init__(self, context, folder: str):
        self.connection, theirs = context.Pipe()
        self.process = context.Process(target=_worker, args=(theirs, folder), daemon=True)
        self.process.start()
        theirs.close()
        self.job: tuple[int, int] | None = None
        self.started = 0.0

    def give(self, job: tuple[int, int]) -> None:
        self.job, self.started = job, time.monotonic()
        self.connection.send(job)

    def stop(self, kill: bool = False) -> None:
        if kill:
            self.process.kill()
        else:
            try:
                self.connection.send(None)
            except OSError:
                pass
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.connection.close()


def _reproduction(case_folder: Path, seed: int, number: int) -> str:
    try:
        case = make_case(seed, number)
    except Exception:
        return f"(the harness cannot build case {number} of seed {seed}: python -c 'import fuzz; fuzz.make_case({seed}, {number})')"
    path = case_folder / case.file_name
    columns = f"COLUMNS={case.columns} " if case.human else ""
    return f"{columns}tiercli {' '.join(case.argv(path))}   ({case.describe()})"


def _source_of(seed: int, number: int) -> tuple[str, str]:
    try:
        case = make_case(seed, number)
    except Exception:
        return "?", "?"
    return case.source, case.log_format


def run_cases(seed: int, cases: int, jobs: int = 2, folder: str | Path | None = None,
              case_seconds: float = CASE_SECONDS, first: int = 0) -> Report:
    """Cases first..first+cases-1 of `seed` on `jobs` workers. The mutated log of each failing
    case is kept in `folder` (a new temporary one when None), named in its report."""
    folder = Path(folder or tempfile.mkdtemp(prefix=TEMP_PREFIX))
    folder.mkdir(parents=True, exist_ok=True)
    context = multiprocessing.get_context("spawn")
    report = Report(folder=str(folder))
    todo = [(seed, number) for number in range(first, first + cases)]
    todo.reverse()
    start = time.monotonic()
    slots = [_Slot(context, str(folder)) for _ in range(max(1, min(jobs, cases)))]
    try:
        for slot in slots:
            if todo:
                slot.give(todo.pop())
        while any(slot.job for slot in slots):
            ready = multiprocessing.connection.wait([s.connection for s in slots if s.job], timeout=0.5)
            for index, slot in enumerate(slots):
                if slot.job is None:
                    continue
                job = slot.job
                if slot.connection in ready:
                    try:
                        source, log_format, failures, seconds, exit_code = slot.connection.recv()
                        report.slowest = max(report.slowest, (seconds, job[1]))
                    except (EOFError, OSError):  # the worker died (a crash in C, the memory killer)
                        failures, exit_code = [("traceback", "the worker process died")], None
                        source, log_format = _source_of(*job)
                        slot.stop(kill=True)
                        slots[index] = slot = _Slot(context, str(folder))
                elif time.monotonic() - slot.started > case_seconds:
                    (source, log_format), exit_code = _source_of(*job), None
                    failures = [("hang", f"no result in {case_seconds:.0f} s")]
                    slot.stop(kill=True)
                    slots[index] = slot = _Slot(context, str(folder))
                else:
                    continue
                report.cases += 1
                report.per_format[log_format] += 1
                report.exits[exit_code] += 1
                for failure_class, what in failures:
                    report.per_class[failure_class] += 1
                    report.failures.append(Failure(job[0], job[1], source, failure_class, what,
                                                   _reproduction(folder, *job)))
                slot.job = None
                if todo:
                    slot.give(todo.pop())
    except KeyboardInterrupt:
        report.interrupted = True
    finally:
        for slot in slots:
            slot.stop(kill=slot.job is not None)
        for home in folder.glob("home-*"):
            shutil.rmtree(home, ignore_errors=True)
    report.seconds = time.monotonic() - start
    return report


def summary(report: Report) -> str:
    lines = [f"{report.cases:,} cases in {report.seconds:.1f} s, {len(report.failures)} failures"
             + (" (interrupted: the counts are of the cases run until then)" if report.interrupted else "")]
    lines.append("per format: " + ", ".join(f"{name} {count}" for name, count in sorted(report.per_format.items())))
    lines.append("exit codes: " + ", ".join(f"{code} {count}" for code, count in
                                            sorted(report.exits.items(), key=lambda kv: str(kv[0]))))
    lines.append(f"slowest case: {report.slowest[1]} ({report.slowest[0]:.2f} s)")
    lines.append("failures by class: " + ", ".join(f"{name} {report.per_class[name]}" for name in FAILURE_CLASSES))
    for failure in report.failures[:50]:
        lines.append(str(failure))
    if report.failures:
        lines.append(f"the failing cases' logs: {report.folder}")
    return "\n".join(lines)
