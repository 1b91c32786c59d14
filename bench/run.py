"""Benchmarks: figures and ratios measured in one run on this machine, printed as a table.

    ./dev bench           # default sizes: a few minutes on 2 cores
    ./dev bench --full    # the sizes of the performance issue (1M calls, 100k L3 entries): longer

Inputs come from the seeded sample-log generator, in a temporary folder with a private
TIERCLI_HOME. Whole commands are timed as a user runs them (start-up included). Not part of
the test suite; README "Benchmarks" holds the latest results."""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TIERCLI = [sys.executable, "-m", "tiercli"]
ROUNDS_COLD = 2  # figure 3's alternated rounds of the raw encode and the two cold replays
# runs a command and prints its peak RSS (KiB), so each measurement has a process of its own
PEAK_RSS = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, "
            "stderr=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)")
# Parsing only, two ways: the baseline of figure 1 is the faster of them in each run.
PARSE_ORJSON = "import orjson, sys\nwith open(sys.argv[1], 'rb') as f:\n    n = sum(1 for line in f if orjson.loads(line))\n"
PARSE_MSGSPEC = """
import msgspec, sys
decode_lines, rest = msgspec.json.Decoder().decode_lines, b""
with open(sys.argv[1], "rb") as f:
    while chunk := f.read(1 << 20):
        chunk = rest + chunk
        cut = chunk.rfind(b"\\n") + 1
        decode_lines(chunk[:cut])
        rest = chunk[cut:]
    decode_lines(rest)
"""
ONNX_EXPORT = """
import os
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from tiercli.store.onnx_embed import OnnxEmbedder
assert OnnxEmbedder().model_id.startswith("onnx:"), "the ONNX graph failed its check"
"""
ENCODE_ONLY = """
import os, sys, orjson
os.environ.setdefault("HF_HUB_OFFLINE", "1")
from tiercli.ingest.logread import read_log
from tiercli.store.embeddings import BATCH_SIZE, default_model_path
from sentence_transformers import SentenceTransformer
texts = list(dict.fromkeys(c.text for c in read_log(sys.argv[1]).calls if not c.bypass))
SentenceTransformer(default_model_path(), device="cpu").encode(texts, batch_size=BATCH_SIZE, normalize_embeddings=True)
"""

# Where an L1+L2 replay's time goes, in one process: reading the log as the command does
# (no text kept for L3) without the SHA-256, and the replay loop alone; prints both in
# seconds and the peak RSS (KiB).
REPLAY_PHASES = """
import resource, sys, time
from tiercli.core.shape import CallShape
from tiercli.engine.replay import replay
from tiercli.ingest.logread import read_log
from tiercli.settings import Settings
settings = Settings(tiers=("l1", "l2"))
started = time.perf_counter()
read = read_log(sys.argv[1], digest=False, keep_text=CallShape(settings, keep_text=False))
read_at = time.perf_counter()
replay(read.events, settings)
print(read_at - started, time.perf_counter() - read_at, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def timed(args: list[str], env: dict) -> tuple[float, int, str]:
    """Wall seconds, peak RSS in bytes, and stdout of one run."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PEAK_RSS, *args], env=env, check=True, capture_output=True, text=True)
    return time.perf_counter() - started, int(done.stdout.strip().splitlines()[-1]) * 1024, done.stdout


def best_of(args: list[str], env: dict, repeat: int) -> float:
    return statistics.median(timed(args, env)[0] for _ in range(repeat))


def sample(path: Path, env: dict, days: float, leads: int) -> int:
    subprocess.run([*TIERCLI, "sample", str(path), "--days", str(days), "--leads", str(leads)], env=env, check=True,
                   stderr=subprocess.DEVNULL)
    with open(path, "rb") as handle:
        return sum(1 for _ in handle)


def exact_replay(workdir: Path, env: dict, full: bool) -> list[tuple]:
    days, leads = (102, 1000) if full else (21, 1000)  # ~1M or ~200k records
    log = workdir / "exact.jsonl"
    records = sample(log, env, days, leads)
    parsers = {name: best_of([sys.executable, "-c", code, str(log)], env, 3)
               for name, code in (("orjson", PARSE_ORJSON), ("msgspec", PARSE_MSGSPEC))}
    parser, parse = min(parsers.items(), key=lambda item: item[1])
    replay = [*TIERCLI, "replay", str(log), "--tiers", "l1,l2", "--json"]
    seconds, rss, _ = timed([*replay, "--no-save"], env)
    saved, saved_rss, _ = timed(replay, env)
    phases = subprocess.run([sys.executable, "-c", REPLAY_PHASES, str(log)], env=env, check=True,
                            capture_output=True, text=True).stdout.split()
    read, loop, phases_rss = float(phases[0]), float(phases[1]), int(phases[2]) * 1024
    msgspec = parsers["msgspec"]
    return [(f"1. L1+L2 replay of {records:,} records ({log.stat().st_size / 2**20:,.0f} MiB), end to end",
             f"{records / seconds:,.0f} records/s",
             f"{seconds:.1f} s / parse-only ({parser}) {parse:.1f} s = {seconds / parse:.1f}x", "<= 2x"),
            ("2. peak RSS of that replay", f"{rss / 2**20:,.0f} MiB", "", "<= 1,024 MiB"),
            ("1b. the same, saving the run (SHA-256 of the log, Parquet)", f"{saved:.1f} s, {saved_rss / 2**20:,.0f} MiB",
             f"/ parse-only = {saved / parse:.1f}x", ""),
            ("1c. of it, the replay loop alone (L1+L2, in process, the log already read)",
             f"{loop:.1f} s, {records / loop:,.0f} records/s", f"/ msgspec parse {msgspec:.1f} s = {loop / msgspec:.2f}x",
             "<= 2x"),
            ("1d. and reading the log into calls (keys, digests; no SHA-256)", f"{read:.1f} s",
             f"/ msgspec parse = {read / msgspec:.1f}x; peak RSS of both {phases_rss / 2**20:,.0f} MiB", "")]


def semantic_replay(workdir: Path, env: dict, full: bool) -> list[tuple]:
    days, leads = (5, 1000) if full else (1, 500)  # ~50k calls and ~20k texts, or the sample day
    log = workdir / "semantic.jsonl"
    records = sample(log, env, days, leads)
    from tiercli.ingest.logread import read_log

    texts = len({c.text for c in read_log(log).calls if not c.bypass})
    # the ONNX graph is exported and checked once per TIERCLI_HOME (its own row), before any
    # replay here: a cold replay is a new log's, on a machine that has run tiercli before
    export, _, _ = timed([sys.executable, "-c", ONNX_EXPORT], env)
    # alternated, each cold replay with an empty store of its own (the graph linked in), so
    # that a neighbour's load falls on the encode and the replays alike
    encode = cold = cold_torch = 0.0
    for round_ in range(ROUNDS_COLD):
        encode += timed([sys.executable, "-c", ENCODE_ONLY, str(log)], env)[0]
        for embedder in ("onnx", "torch"):
            home = workdir / f"cold-{embedder}-{round_}"
            home.mkdir()
            (home / "onnx").symlink_to(Path(env["TIERCLI_HOME"]) / "onnx", target_is_directory=True)
            seconds = timed([*TIERCLI, "replay", str(log), "--embedder", embedder, "--no-save", "--json"],
                            {**env, "TIERCLI_HOME": str(home)})[0]
            if embedder == "onnx":
                cold += seconds
            else:
                cold_torch += seconds
    # the warm figure's store: one cold replay's
    shutil.copy(workdir / "cold-onnx-0" / "embeddings.sqlite", Path(env["TIERCLI_HOME"]) / "embeddings.sqlite")
    warm = best_of([*TIERCLI, "replay", str(log), "--no-save", "--json"], env, 3)
    exact = best_of([*TIERCLI, "replay", str(log), "--tiers", "l1,l2", "--no-save", "--json"], env, 3)
    return [(f"3. L3 replay, cold store, {records:,} records, {texts:,} distinct texts (ONNX, the default; "
             f"sums of {ROUNDS_COLD} alternated rounds)",
             f"{cold:.1f} s", f"/ raw torch encode {encode:.1f} s = {cold / encode:.2f}x", "<= 0.7x"),
            ("3b. the same with --embedder torch", f"{cold_torch:.1f} s",
             f"/ raw torch encode = {cold_torch / encode:.2f}x", "<= 1.15x"),
            ("3c. the ONNX graph's one-time export and check (first use per TIERCLI_HOME)", f"{export:.1f} s", "", ""),
            ("4. the same, warm store", f"{warm:.2f} s", f"/ L1+L2 replay {exact:.2f} s = {warm / exact:.2f}x", "<= 2x")]


def embedding_backends(workdir: Path, env: dict, full: bool) -> list[tuple]:
    """Figure 12, in one process: texts/s of torch and ONNX Runtime on the semantic log's
    distinct texts (alternating chunks, so a busy neighbour slows both alike), one text at a
    time as tiercli.cache's L3 embeds it, and the Quora check: a replay of Quora questions
    through each backend must give every call the same outcome and similarity."""
    from tiercli.ingest.logread import read_log
    from tiercli.store.embeddings import SentenceTransformerEmbedder
    from tiercli.store.onnx_embed import OnnxEmbedder

    log = workdir / "semantic.jsonl"
    if not log.exists():
        sample(log, env, *((5, 1000) if full else (1, 500)))
    texts = list(dict.fromkeys(c.text for c in read_log(log).calls if not c.bypass))[:None if full else 2_600]
    torch, onnx = SentenceTransformerEmbedder(), OnnxEmbedder()
    torch.load()
    onnx.load()
    for embedder in (torch, onnx):
        embedder.encode(texts[:64])
    seconds = {"torch": 0.0, "onnx": 0.0}
    for start in range(0, len(texts), 320):
        for name, embedder in (("torch", torch), ("onnx", onnx)):
            started = time.perf_counter()
            embedder.encode(texts[start:start + 320])
            seconds[name] += time.perf_counter() - started
    rate = {name: len(texts) / s for name, s in seconds.items()}
    single = {}
    for name, embedder in (("torch", torch), ("onnx", onnx)):
        times = []
        for text in texts[:200]:
            started = time.perf_counter()
            embedder.encode([text])
            times.append(time.perf_counter() - started)
        single[name] = statistics.median(times) * 1e3
    tokens = sum(min(n, torch.window) for n in torch.token_counts(texts))  # the model reads its window
    flops = tokens * model_flops_per_word_piece(tokens / len(texts))
    matmul = matmul_rate()
    bound = flops / matmul
    quora = quora_check(workdir, torch, onnx, 5_000 if full else 1_000)
    return [(f"12. embedding {len(texts):,} distinct sample texts ({tokens:,} word pieces), ONNX Runtime",
             f"{rate['onnx']:,.0f} texts/s", f"/ torch {rate['torch']:,.0f} texts/s = {rate['onnx'] / rate['torch']:.2f}x",
             ">= 1.6x"),
            ("12b. compute bound: model FLOPs / measured fp32 matmul rate",
             f"{flops / 1e12:.2f} TFLOP / {matmul / 1e9:,.0f} GFLOP/s = {bound:.1f} s",
             f"ONNX {seconds['onnx'] / bound:.2f}x, torch {seconds['torch'] / bound:.2f}x the bound", ""),
            ("12c. one text, as tiercli.cache's L3 embeds it (median of 200)", f"ONNX {single['onnx']:.1f} ms",
             f"/ torch {single['torch']:.1f} ms = {single['onnx'] / single['torch']:.2f}x", ""),
            (f"12d. Quora: {quora['calls']:,} questions replayed (L3 at 0.92) through each backend",
             f"{quora['differ']} calls differ", f"similarities within {quora['max_gap']:.1e}", "0 differ")]


def model_flops_per_word_piece(mean_length: float) -> float:
    """all-MiniLM-L6-v2 per word piece: the 6 layers' weight products (Q, K, V, output: 4 x 384^2;
    feed-forward: 2 x 384 x 1,536), 2 FLOPs per multiply-add, plus attention's two products
    against the text's other word pieces (2 x 2 x length x 384 per layer)."""
    hidden, inner, layers = 384, 1536, 6
    return layers * (2 * (4 * hidden * hidden + 2 * hidden * inner) + 4 * mean_length * hidden)


def matmul_rate() -> float:
    """fp32 FLOP/s of a large matrix product on every core (numpy's BLAS), best of 5."""
    a = np.random.default_rng(1).standard_normal((4096, 384), dtype=np.float32)
    b = np.random.default_rng(2).standard_normal((384, 1536), dtype=np.float32)
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(10):
            a @ b
        best = min(best, time.perf_counter() - started)
    return 10 * 2 * 4096 * 384 * 1536 / best


QQP = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "qqp_labelled_pairs.json.tar.gz"


def quora_check(workdir: Path, torch, onnx, pairs: int) -> dict:
    """Both questions of `pairs` Quora pairs as calls of one task, a second apart, replayed on
    L3 alone at its default threshold through each backend (in process, a store of their own)."""
    import json
    import tarfile

    from tiercli.pipeline import load_events, run_replay
    from tiercli.settings import Settings

    with tarfile.open(QQP) as archive:
        member = next(m for m in archive.getmembers() if m.name.endswith(".json"))
        rows = json.load(archive.extractfile(member))[:pairs]
    log = workdir / "quora.jsonl"
    with log.open("w") as f:
        for i, row in enumerate(rows):
            for j, text in enumerate((row["text_a"], row["text_b"])):
                f.write(json.dumps({"ts": 1_700_000_000 + 2 * i + j, "lead_id": f"Q{i}", "task_type": "question",
                                    "model": "claude-haiku-4-5", "prompt": text, "response": f"answer {i}",
                                    "input_tokens": 20, "output_tokens": 20, "latency_ms": 500}) + "\n")
    settings = Settings(tiers=("l3",))
    read = load_events(log, settings)
    tables = [run_replay(read, settings, embedder=embedder).table for embedder in (torch, onnx)]
    columns = ["outcome", "source_seq", "stale", "mismatched", "cross_lead"]
    differ = int((tables[0][columns].astype(str) != tables[1][columns].astype(str)).any(axis=1).sum())
    gap = float(np.nanmax(np.abs(tables[0]["similarity"].to_numpy(float) - tables[1]["similarity"].to_numpy(float))))
    return {"calls": len(tables[0]), "differ": differ, "max_gap": gap}


def nearest_neighbour(workdir: Path, env: dict, full: bool) -> list[tuple]:
    """Look-ups in one L3 group of 100k (20k) live entries. The vectors are real: the model's
    embeddings of the semantic log's distinct texts (from figure 3's store), one part filling
    the entries (each text many times, as distinct requests), the rest asked as queries.
    Scanned and blocked (README "How L3 searches") in the same run, alternated, each also with
    every miss stored as a replay stores it; both ways must find the same entries."""
    from tiercli.store.embeddings import EmbeddingStore, embed_texts
    from tiercli.store.onnx_embed import OnnxEmbedder
    from tiercli.core.events import Call
    from tiercli.ingest.logread import read_log
    from tiercli.core.tiers import Origin, SemanticTier

    log = workdir / "semantic.jsonl"
    if not log.exists():
        sample(log, env, *((5, 1000) if full else (1, 500)))
    texts = list(dict.fromkeys(c.text for c in read_log(log).calls if not c.bypass))
    store = EmbeddingStore(Path(env["TIERCLI_HOME"]) / "embeddings.sqlite")
    try:
        vectors, _ = embed_texts(texts, OnnxEmbedder(), store)  # the default backend, as figure 3 stored
    finally:
        store.close()
    entries = 100_000 if full else 20_000
    queries = min(2_000, len(texts) // 5)
    rng = np.random.default_rng(7)
    order = rng.permutation(len(texts))
    query_rows, entry_rows = order[:queries], order[queries:]
    row_of_text = {t: i for i, t in enumerate(texts)}

    def call(i: int, row: int) -> Call:
        return Call(i, i, 0.0, "L", "intent", "m", None, i.to_bytes(8, "little"), texts[row], False, False,
                    1, 1, 0, 0, False, None, None)

    probes = [call(entries + i, row) for i, row in enumerate(query_rows)]
    stored = [(call(i, int(row)), Origin(i, "L", 0.0, None)) for i, row in enumerate(rng.choice(entry_rows, entries))]

    def look_ups(blocked: bool, store_misses: bool) -> tuple[float, list]:
        """Queries/s over the probes, and what each found. Blocked: the tier is told the probes
        first, as the replay tells it the calls to come (SemanticTier.expect)."""
        tier = SemanticTier("l3", lambda call: None, None, 0.92, vectors, row_of_text)
        for entry, origin in stored:
            tier.insert(entry, "w", origin, 0.0)
        if blocked:
            tier.expect(probes)
        found = []
        started = time.perf_counter()
        for i, probe in enumerate(probes):
            entry, similarity = tier.find(probe, "w", 1.0)
            found.append((entry and entry.key, similarity))
            if store_misses and entry is None:  # as a replay stores a miss: a correction for the block
                tier.insert(probe, "w", Origin(entries + i, "L", 1.0, None), 1.0)
        return len(probes) / (time.perf_counter() - started), found

    # Pruned blocks (groups over 4,096 texts) rotate the vectors once per log: timed apart.
    from tiercli.core.tiers.semantic import _Space

    started = time.perf_counter()
    _Space(vectors).prefix()
    rotation = time.perf_counter() - started
    rows = []
    for store_misses in (False, True):
        # alternated, three of each: the machine may be shared
        runs = [look_ups(blocked, store_misses) for _ in range(3) for blocked in (False, True)]
        assert all(found == runs[0][1] for _, found in runs), "blocked scoring must find what the scan finds"
        scan, blocked = sorted(rate for rate, _ in runs[0::2]), sorted(rate for rate, _ in runs[1::2])
        what = "each miss then stored" if store_misses else "look-ups only"
        rows += [(f"5. L3 nearest-neighbour look-up, {entries:,} live entries ({len(entry_rows):,} distinct texts), "
                  f"{what}: scan", f"{scan[-1]:,.0f} queries/s", f"three runs {scan[0]:,.0f}-{scan[-1]:,.0f}",
                  ">= 5,000 queries/s"),
                 (f"5b. the same, blocked scoring ({what})", f"{blocked[-1]:,.0f} queries/s",
                  f"{blocked[-1] / scan[-1]:.1f}x the scan; three runs {blocked[0]:,.0f}-{blocked[-1]:,.0f}",
                  ">= 5,000 queries/s")]
    rows.append(("5c. the rotation of pruned blocks, once per log", f"{rotation:.2f} s", "", ""))
    return rows


def sweep_64(log: Path) -> list[str]:
    """The tune-ttl command of figures 6, 9 and 10: 4 x 4 x 4 TTLs, one threshold."""
    return [*TIERCLI, "tune-ttl", str(log), "--l1-grid", "1m,5m,15m,1h", "--l2-grid", "5m,15m,1h,4h",
            "--l3-grid", "15m,1h,6h,1d", "--json"]


def tune_ratio(workdir: Path, env: dict) -> list[tuple]:
    log = workdir / "day.jsonl"
    sample(log, env, 1, 500)
    replay = [*TIERCLI, "replay", str(log), "--no-save", "--json"]
    subprocess.run(replay, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # warm the store
    sweep = sweep_64(log)
    one, many = best_of(replay, env, 3), best_of(sweep, env, 2)
    return [("6. tune-ttl 64-candidate sweep of the sample day, warm store", f"{many:.2f} s",
             f"/ one replay {one:.2f} s = {many / one:.2f}x", "<= 5x")]


def sweep_scaling(workdir: Path, env: dict, full: bool) -> list[tuple]:
    """tune-ttl's 64-candidate sweep against one replay of the same log, warm store, at about
    20k calls (and 100k with --full): the first 21,000 records of one generated 11-day log, so
    that embedding the 100k log's texts also warms the 20k log."""
    log = workdir / "sweep-100k.jsonl"
    sample(log, env, 11, 1000)
    small = workdir / "sweep-20k.jsonl"
    with open(log, "rb") as whole, open(small, "wb") as prefix:
        for _, line in zip(range(21_000), whole):
            prefix.write(line)
    rows = []
    for path in (small, log) if full else (small,):
        with open(path, "rb") as handle:
            calls = sum(1 for line in handle if b'"tag_change"' not in line)
        replay = [*TIERCLI, "replay", str(path), "--no-save", "--json"]
        subprocess.run(replay, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # warm the store
        sweep = sweep_64(path)
        repeat = 3 if path == small else 1
        one, many = best_of(replay, env, repeat), best_of(sweep, env, repeat)
        rows.append((f"10. tune-ttl 64-candidate sweep / one replay, {calls:,} calls, warm store", f"{many:.1f} s",
                     f"/ one replay {one:.1f} s = {many / one:.2f}x", "<= 5x"))
    return rows


def per_lead_report(workdir: Path, env: dict, full: bool) -> list[tuple]:
    """`report --per-lead` of a run with 200k (50k) leads, against the replay that saved it. The
    log is written here: two calls per lead, every lead distinct, so the view has a row per lead."""
    import orjson

    leads = 200_000 if full else 50_000
    log = workdir / "leads.jsonl"
    with open(log, "wb") as out:
        for i in range(2 * leads):
            lead = i % leads
            out.write(orjson.dumps({"ts": 1_790_000_000 + i / 500, "lead_id": f"L{lead:06d}", "task_type": "intent",
                                    "model": "claude-sonnet-4-5", "prompt": f"question {lead % 97} about {lead}",
                                    "input_tokens": 900 + lead % 300, "output_tokens": 80 + lead % 40,
                                    "latency_ms": 900 + lead % 700}) + b"\n")
    replay_s, _, _ = timed([*TIERCLI, "replay", str(log), "--tiers", "l1,l2", "--json"], env)
    report_s, report_rss, _ = timed([*TIERCLI, "report", "--per-lead"], env)  # every row, to /dev/null
    return [(f"7. report --per-lead, {leads:,} leads ({2 * leads:,} calls), every row printed",
             f"{report_s:.1f} s, {report_rss / 2**20:,.0f} MiB", f"/ the replay {replay_s:.1f} s = {report_s / replay_s:.2f}x",
             "<= 2x")]


def warm_replays(workdir: Path, env: dict, full: bool, prefix: str):
    """(label, log, records, tier flags, replay command) for the sample day with every tier and
    a longer log with L1+L2, each replayed once first so the embedding store is warm."""
    for label, days, tiers in (("the sample day, all tiers, warm store", 1, None),
                               ("a longer log, L1+L2", 21 if full else 5, "l1,l2")):
        log = workdir / f"{prefix}-{days}.jsonl"
        records = sample(log, env, days, 500 if days == 1 else 1000)
        flags = ["--tiers", tiers] if tiers else []
        replay = [*TIERCLI, "replay", str(log), "--no-save", "--json", *flags]
        subprocess.run(replay, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        yield label, log, records, flags, replay


def compare_ratio(workdir: Path, env: dict, full: bool) -> list[tuple]:
    """`tiercli compare` (default rows, with a route and a batch row) against one replay of the
    same log: the sample day with every tier (warm store), and a longer log with L1+L2."""
    rows = []
    for label, log, records, flags, replay in warm_replays(workdir, env, full, "compare"):
        compare = [*TIERCLI, "compare", str(log), "--no-save", "--json", "--route", "lead_scoring=claude-haiku-4-5",
                   "--batch", "market_context", *flags]
        one, both = best_of(replay, env, 3), best_of(compare, env, 3)
        rows.append((f"8. compare (16 rows) / one replay: {label}, {records:,} records", f"{both:.2f} s",
                     f"/ replay {one:.2f} s = {both / one:.2f}x", "about one replay + a pass"))
    return rows


def ray_ratio(workdir: Path, env: dict, full: bool) -> list[tuple]:
    """--executor ray on a private local instance against the local run, whole commands (Ray's
    start-up included: on one machine the overhead is the honest figure)."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        return [("9. --executor ray", "skipped: Ray is not installed", "", "")]
    rows = []
    for label, _, records, _, replay in warm_replays(workdir, env, full, "ray"):
        local, on_ray = best_of(replay, env, 3), best_of([*replay, "--executor", "ray"], env, 3)
        rows.append((f"9. replay --executor ray / local: {label}, {records:,} records", f"{on_ray:.2f} s",
                     f"/ local {local:.2f} s = {on_ray / local:.2f}x", "(overhead on 2 cores)"))
    sweep = sweep_64(workdir / "ray-1.jsonl")
    local, on_ray = best_of(sweep, env, 2), best_of([*sweep, "--executor", "ray"], env, 2)
    rows.append(("9. tune-ttl 64-candidate sweep --executor ray / local: the sample day", f"{on_ray:.2f} s",
                 f"/ local {local:.2f} s = {on_ray / local:.2f}x", "(overhead on 2 cores)"))
    return rows


# figure 11: random distinct sentences for L3's live entries (far apart: no fill call hits L3)
WORDS = ("house condo price offer viewing tour mortgage loan rate school pool garage yard bedroom bathroom "
         "kitchen roof lender escrow appraisal inspection closing listing agent seller buyer budget zip "
         "downtown suburb commute park tax fee hoa deposit rent lease move week month weekend morning "
         "evening call text email cash credit approval preapproval garden view street corner lot acre").split()


def per_call_us(make_call, count: int, rounds: int = 5) -> tuple[float, float, float]:
    """Median, lowest and highest microseconds per call over `rounds` rounds of `count` calls;
    `make_call(i)` makes call i (a fresh index per call across rounds)."""
    times, i = [], 0
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(count):
            make_call(i)
            i += 1
        times.append((time.perf_counter() - started) / count * 1e6)
    return statistics.median(times), min(times), max(times)


def runtime_cache(workdir: Path, env: dict, full: bool) -> list[tuple]:
    """tiercli.cache.TieredCache against a direct client call, both through the official SDK to
    the local Messages test server (tests/messages_server.py, real HTTP on loopback): an L1 hit,
    an L2 hit on a local Redis (L1 off), an L3 hit over 10k live entries with the query's
    embedding (the real model), and the work a miss adds. Each ratio is to the direct call
    measured in the same run."""
    import anthropic

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from messages_server import MessagesServer
    from tiercli.cache import TieredCache, outcome_of
    from tiercli.redis.server import EmbeddedRedis
    from tiercli.settings import Settings
    from tiercli.store.embeddings import EmbeddingStore, embed_texts
    from tiercli.store.onnx_embed import local_embedder

    def ask(client, text: str, lead: str = "L1", task: str = "intent"):
        return client.messages.create(model="claude-haiku-4-5", max_tokens=16, messages=[{"role": "user", "content": text}],
                                      **({"tiercli": {"lead_id": lead, "task_type": task}} if lead else {}))

    def check(client, text: str, want: str) -> None:
        got = outcome_of(ask(client, text))["outcome"]
        assert got == want, f"expected {want}, got {got}: the figure would measure something else"

    rows = []
    with MessagesServer() as server, EmbeddedRedis() as redis_server:
        sdk = anthropic.Anthropic(base_url=server.url, api_key="sk-ant-bench", max_retries=0)
        ask(sdk, "warm up", lead=None)
        direct, low, high = per_call_us(lambda i: ask(sdk, f"direct {i}", lead=None), 200)
        rows.append(("11. a direct messages.create to the local Messages server (loopback HTTP)", f"{direct:,.0f} us",
                     f"five rounds {low:,.0f}-{high:,.0f} us", ""))

        def cache_of(settings: Settings, redis_url: str | None = None, **options) -> tuple[TieredCache, object]:
            cache = TieredCache(settings, redis_url=redis_url, namespace=f"bench{len(rows)}", **options)
            return cache, cache.wrap(anthropic.Anthropic(base_url=server.url, api_key="sk-ant-bench", max_retries=0))

        def timed_outcome(cache, client, outcome: str, texts, count: int) -> tuple[float, float, float]:
            """Microseconds per call over five rounds of `count` calls of texts[i], each of
            which must have had `outcome` (the cache's own counts say)."""
            before = cache.stats()[outcome]
            timing = per_call_us(lambda i: ask(client, texts[i]), count)
            assert cache.stats()[outcome] - before == 5 * count, f"not every timed call was {outcome}"
            return timing

        def hit_row(label: str, cache, client, texts, count: int, tier: str, target: str) -> None:
            check(client, texts[0], tier)
            hit, low, high = timed_outcome(cache, client, tier, texts[1:], count)
            rows.append((label, f"{hit:,.1f} us", f"/ direct call = {hit / direct:.3f}x; five rounds {low:,.1f}-{high:,.1f} us",
                         target))

        def miss_row(label: str, cache, client, texts, count: int) -> None:
            miss, _, _ = timed_outcome(cache, client, "miss", texts, count)
            rows.append((label, f"{miss - direct:,.0f} us", f"miss {miss:,.0f} us / direct {direct:,.0f} us = "
                         f"{miss / direct:.2f}x", ""))

        same = ["the same question"] * 10_001
        new = [f"new question {i}" for i in range(1000)]
        exact = Settings(tiers=("l1", "l2"), l1_ttl=3600.0, l2_ttl=3600.0)
        cache, client = cache_of(exact)
        with cache:
            check(client, same[0], "miss")
            hit_row("11a. L1 hit (in process)", cache, client, same, 2000, "l1", "< 50 us")
            miss_row("11d. the work a miss adds: L1+L2 in process", cache, client, new, 200)
        cache, client = cache_of(Settings(tiers=("l1", "l2"), l1_ttl=0.0, l2_ttl=3600.0), redis_server.url)
        with cache:
            check(client, same[0], "miss")
            hit_row("11b. L2 hit on a local Redis (L1 off)", cache, client, same, 500, "l2", "< 1 ms")
        cache, client = cache_of(exact, redis_server.url)
        with cache:
            miss_row("11d. the same, L1+L2 on a local Redis", cache, client, new, 200)

        # L3: 10k (50k with --full) live entries of distinct sentences, their vectors put in the
        # embedding store first in one batch (as a replay would have), then stored by misses
        entries = 50_000 if full else 10_000
        rng = np.random.default_rng(11)
        sentences = list(dict.fromkeys(" ".join(rng.choice(WORDS, 12)) for _ in range(entries * 2 + 100)))
        texts, fresh = sentences[:entries], sentences[entries:entries + 100]  # fresh: the misses' texts
        embedder = local_embedder(Settings().embedder)  # what the cache embeds with by default
        store = EmbeddingStore(Path(env["TIERCLI_HOME"]) / "embeddings.sqlite")
        try:
            embed_texts(texts, embedder, store)
        finally:
            store.close()
        cache, client = cache_of(Settings(tiers=("l3",), l3_ttl=86400.0, l3_threshold=0.92), embedder=embedder)
        with cache:
            for text in texts:
                ask(client, text)
            assert cache.stats()["miss"] == entries, "two of the entries' sentences were close enough to hit"
            # a query is an entry's text with a question mark: another key, a vector not in the
            # store (embedded on the call), and close enough to hit (0.94 or more on these
            # sentences with the real model, while two entries stay under 0.86)
            queries = [f"{text}?" for text in rng.choice(texts, 500, replace=False)]
            # the hits and the model's own encoding of such a query alternate, round by round:
            # torch's two threads slow down by several times whenever another job takes a core
            check(client, queries[0], "l3")
            hits, encodes = [], []
            for part in range(5):
                batch = queries[1 + 90 * part:1 + 90 * (part + 1)]
                hits.append(timed_outcome(cache, client, "l3", batch, 18)[0])
                encodes.append(per_call_us(lambda i: embedder.encode([f"{batch[i]}!"]), 18, rounds=1)[0])
            hit, encode = statistics.median(hits), statistics.median(encodes)
            rows.append((f"11c. L3 hit over {entries:,} live entries, the query embedded on the call (real model)",
                         f"{hit / 1000:,.1f} ms", f"/ direct call = {hit / direct:.1f}x; of it the model's encoding "
                         f"{encode / 1000:,.1f} ms; five rounds {min(hits) / 1000:,.1f}-{max(hits) / 1000:,.1f} ms", ""))
            miss_row(f"11d. the same, L3 on ({entries:,} entries; the new text embedded)", cache, client, fresh, 20)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the issue's sizes (1M calls, 100k L3 entries)")
    parser.add_argument("--only", type=int, nargs="*", help="figure numbers to run (1-12)")
    parser.add_argument("--home", type=Path, help="a TIERCLI_HOME to keep between runs (its embedding store "
                                                  "spares a re-run the cold embedding: 45k texts with --full)")
    args = parser.parse_args()
    wanted = set(args.only or range(1, 13))
    rows = []
    with tempfile.TemporaryDirectory(prefix="tiercli-bench-") as tmp:
        workdir = Path(tmp)
        home = args.home.resolve() if args.home else workdir / "home"
        env = {**os.environ, "TIERCLI_HOME": str(home), "HF_HUB_OFFLINE": "1"}
        os.environ.update(TIERCLI_HOME=env["TIERCLI_HOME"], HF_HUB_OFFLINE="1")  # for the in-process figure 5
        if wanted & {1, 2}:
            rows += exact_replay(workdir, env, args.full)
        if wanted & {3, 4}:
            rows += semantic_replay(workdir, env, args.full)
        if 5 in wanted:
            rows += nearest_neighbour(workdir, env, args.full)
        if 6 in wanted:
            rows += tune_ratio(workdir, env)
        if 7 in wanted:
            rows += per_lead_report(workdir, env, args.full)
        if 8 in wanted:
            rows += compare_ratio(workdir, env, args.full)
        if 9 in wanted:
            rows += ray_ratio(workdir, env, args.full)
        if 10 in wanted:
            rows += sweep_scaling(workdir, env, args.full)
        if 11 in wanted:
            rows += runtime_cache(workdir, env, args.full)
        if 12 in wanted:
            rows += embedding_backends(workdir, env, args.full)
    print(f"tiercli benchmarks ({os.cpu_count()} CPU cores, Python {sys.version.split()[0]}"
          f"{', full sizes' if args.full else ', default sizes'})")
    widths = [max(len(str(r[i])) for r in rows) for i in range(4)]
    for row in [("figure", "measured", "ratio", "target"), *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)))


if __name__ == "__main__":
    main()
