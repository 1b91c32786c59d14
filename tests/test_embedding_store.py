"""Embedding: long texts are cut before tokenizing, the progress of the embedding (and of every
phase) is shown with a total and a time left, and the on-disk store survives damaged vectors,
locks, garbage and concurrent replays."""

import hashlib
import io
import json
import sqlite3
import subprocess
import sys

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from conftest import SAMPLE_LOG
from logs import call, write
from tiercli.cli import app
from tiercli.commands.progress import progress_bars
from tiercli.errors import TiercliError
from tiercli.ingest.logread import read_log
from tiercli.pipeline import embeddings_for
from tiercli.settings import Settings
from tiercli.store.onnx_embed import OnnxEmbedder
from tiercli.store.embeddings import (EmbeddingStore, HashingEmbedder, SentenceTransformerEmbedder, _load_model,
                                      embed_texts)

runner = CliRunner()


@pytest.fixture(scope="module")
def model():
    return SentenceTransformerEmbedder()


@pytest.fixture
def own_store(tiercli_home):
    """This test's own store in place of the session's shared one (which it may damage)."""
    path = tiercli_home / "embeddings.sqlite"
    path.unlink()
    return path


def sample_prose(chars: int) -> str:
    """Real prompts from the sample log, joined until `chars` characters."""
    prompts, size = [], 0
    for line in SAMPLE_LOG.read_text().splitlines():
        record = json.loads(line)
        text = record.get("prompt") or next((m["content"] for m in reversed(record.get("messages", []))
                                             if m["role"] == "user" and isinstance(m["content"], str)), "")
        prompts.append(text)
        size += len(text) + 1
        if size > chars:
            break
    return "\n".join(prompts)[:chars]


# 15: cut before tokenizing

def test_the_cut_is_16384_characters_for_the_default_model(model):
    assert (model.window, model.max_chars, model.dim) == (256, 16_384, 384)


def test_a_cut_text_embeds_exactly_as_the_whole_text(tmp_path, model):
    whole = sample_prose(100_000)
    raw = _load_model(model.model_path)  # the model itself, given the whole text
    expected = raw.encode([whole], normalize_embeddings=True, convert_to_numpy=True)[0]
    # the bound is well above the window: these 16,384 characters hold far more than 256 word pieces
    assert len(raw.tokenizer(whole[:model.max_chars])["input_ids"]) > 3 * 256
    store = EmbeddingStore(tmp_path / "store.sqlite")
    vectors, counts = embed_texts([whole], model, store)
    assert counts == {"computed": 1, "cut": 1, "replaced": 0}
    assert np.array_equal(vectors[0], expected)
    # ... also when the cut falls inside a word
    mid_word = next(i for i in range(model.max_chars, len(whole)) if whole[i - 1].isalpha() and whole[i].isalpha())
    text = whole[mid_word - model.max_chars:]
    vectors, counts = embed_texts([text], model, store)
    assert counts["cut"] == 1
    assert np.array_equal(vectors[0], raw.encode([text], normalize_embeddings=True, convert_to_numpy=True)[0])
    store.close()


def test_vectors_are_keyed_by_the_cut_text(tmp_path, model):
    head = sample_prose(model.max_chars)
    short = "What is the asking price?"
    store = EmbeddingStore(tmp_path / "store.sqlite")
    # a vector stored before the cut existed, under the hash of its (short) text, is still used
    stored = model.encode([short])[0]
    store.put_many(model.model_id, [(hashlib.sha256(short.encode()).digest(), stored)])
    vectors, counts = embed_texts([head + " tail one", head + " tail two", short], model, store)
    # the two long texts share what the model reads: one vector, computed once, stored under the cut text
    assert counts == {"computed": 1, "cut": 2, "replaced": 0}
    assert np.array_equal(vectors[0], vectors[1]) and np.array_equal(vectors[2], stored)
    found, damaged = store.get_many(model.model_id, [hashlib.sha256(head.encode()).digest()], model.dim)
    assert len(found) == 1 and not damaged
    store.close()


class RecordingEmbedder(OnnxEmbedder):
    """The real model through the default backend (so a replay finds its vectors), noting the
    longest text it is handed."""

    longest = 0

    def encode(self, texts):
        self.longest = max([self.longest, *map(len, texts)])
        return super().encode(texts)

    def encode_batches(self, batches):  # what embed_texts calls
        batches = list(batches)
        self.longest = max([self.longest, *(len(text) for batch in batches for text in batch)])
        return super().encode_batches(batches)


def test_a_huge_record_is_cut_and_counted(tmp_path, own_store):
    huge = sample_prose(50_000) * 100  # 5 MB on one line
    log = write(tmp_path / "log.jsonl", [call(0, prompt=huge, worker="w1"), call(1, prompt=huge + " more", worker="w2"),
                                         call(2, prompt="a short one", worker="w3")])
    embedder = RecordingEmbedder()
    with progress_bars(console=Console(file=(notes := io.StringIO()))) as progress:
        _, _, counts = embeddings_for(read_log(log), embedder, Settings(), progress)
    assert counts == {"texts": 3, "computed": 2, "cut": 2, "replaced": 0}
    assert embedder.longest == 16_384
    assert notes.getvalue() == ("embedding: 2 texts longer than 16,384 characters were cut to their first 16,384 "
                                "before embedding (the model reads only its first 256 word pieces)\n")
    # in the replay, the two share their vector: an L3 hit at similarity 1
    result = runner.invoke(app, ["replay", str(log), "--json", "--no-save"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["embeddings"] == {"texts": 3, "computed": 0, "cut": 2, "replaced": 0}
    assert summary["tiers"]["l3"]["hits"] == 1
    assert "2 texts longer than 16,384 characters were cut" in result.stderr


# 16: progress with a total and a time left; plain lines without a terminal

class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_without_a_terminal_a_plain_line_every_5_s():
    out, clock = io.StringIO(), Clock()
    with progress_bars(console=Console(file=out, force_terminal=False), clock=clock) as progress:
        update = progress("embedding texts", 2533)
        for at, done in ((0, 0), (4, 256), (8, 512), (10, 768), (14, 1024), (19, 2304), (20, 2533)):
            clock.now = 1000.0 + at
            update(done)
    assert out.getvalue().splitlines() == [
        "embedding texts: 512/2,533, 32s left",     # 8 s for 512: 2,021 more take 32 s
        "embedding texts: 1,024/2,533, 21s left",
        "embedding texts: 2,304/2,533, 2s left",
        "embedding texts: 2,533/2,533, done in 20s",
    ]


def test_without_a_terminal_a_short_phase_prints_nothing():
    out, clock = io.StringIO(), Clock()
    with progress_bars(console=Console(file=out, force_terminal=False), clock=clock) as progress:
        update = progress("replaying", 5048)
        for at, done in ((0, 0), (2, 4096), (4.9, 5048)):
            clock.now = 1000.0 + at
            update(done)
        slow = progress("candidates", None)  # no total: a count and the time so far
        for at in (5, 12):
            clock.now = 1000.0 + at
            slow(3)
    assert out.getvalue().splitlines() == ["candidates: 3 so far, 7s elapsed"]


def test_on_a_terminal_the_bar_has_the_total_and_the_time_left():
    out, clock = io.StringIO(), Clock()
    console = Console(file=out, force_terminal=True, width=120, color_system=None)
    with progress_bars(console=console, clock=clock) as progress:
        update = progress("embedding texts", 1000)
        for at, done in ((10, 100), (20, 200)):
            clock.now = 1000.0 + at
            update(done)
        progress.bars.refresh()
    assert "200/1000" in out.getvalue()
    assert "0:01:20 left" in out.getvalue()  # 100 texts per 10 s, 800 to go


def test_embedding_progress_is_given_the_number_of_texts_to_compute(tmp_path):
    log = write(tmp_path / "log.jsonl", [call(0, prompt="one"), call(1, prompt="two"), call(2, prompt="one"),
                                         call(3, prompt="three")])
    bars = []

    def factory(description, total):
        bars.append((description, total, updates := []))
        return updates.append

    embeddings_for(read_log(log), HashingEmbedder(), Settings(), factory)
    assert bars == [("embedding texts", 3, [0, 3])]
    embeddings_for(read_log(log), HashingEmbedder(), Settings(), factory)
    assert len(bars) == 1  # all stored: nothing to compute, no bar


# 28: the store

def corrupt(path, blob, where="1=1"):
    db = sqlite3.connect(path)
    with db:
        changed = db.execute(f"UPDATE vectors SET vector = ? WHERE {where}", (blob,)).rowcount
    db.close()
    return changed


def test_damaged_vectors_are_recomputed_and_replaced(tmp_path):
    texts = ["one two", "three four", "five six", "seven"]
    embedder = HashingEmbedder()
    store = EmbeddingStore(tmp_path / "store.sqlite")
    good, _ = embed_texts(texts, embedder, store)
    four_bytes = np.float32(1).tobytes()  # a unit "vector" of the wrong length
    float64 = np.zeros(2048, dtype=np.float64)
    float64[0] = 1.0  # the right byte length, but float64: not a unit vector as float32
    nan_vector = np.full(4096, np.nan, dtype=np.float32).tobytes()
    db = sqlite3.connect(tmp_path / "store.sqlite")
    rows = [h for (h,) in db.execute("SELECT text_hash FROM vectors ORDER BY text_hash")]
    with db:
        for text_hash, blob in zip(rows, (four_bytes, float64.tobytes(), nan_vector)):
            db.execute("UPDATE vectors SET vector = ? WHERE text_hash = ?", (blob, text_hash))
        db.execute("UPDATE vectors SET vector = 'text, not a blob' WHERE text_hash = ?", (rows[3],))
    db.close()
    vectors, counts = embed_texts(texts, embedder, store)
    assert counts == {"computed": 4, "cut": 0, "replaced": 4}
    assert np.array_equal(vectors, good)
    vectors, counts = embed_texts(texts, embedder, store)  # replaced in the store
    assert counts == {"computed": 0, "cut": 0, "replaced": 0}
    store.close()


def test_a_replay_over_damaged_vectors_has_the_same_hits_and_says_so(tmp_path, own_store):
    log = write(tmp_path / "log.jsonl", [
        call(0, prompt="What is the asking price?", worker="w1"),
        call(1, prompt="what is the asking price", worker="w2"),
        call(2, prompt="Can I schedule a viewing on Saturday?", worker="w3")])
    first = runner.invoke(app, ["replay", str(log), "--json", "--no-save"])
    assert first.exit_code == 0, first.output
    assert corrupt(own_store, b"\x00\x00\x80\x3f") == 3
    again = runner.invoke(app, ["replay", str(log), "--json", "--no-save"])
    assert again.exit_code == 0, again.output
    before, after = json.loads(first.stdout), json.loads(again.stdout)
    assert after["tiers"] == before["tiers"] and after["tiers"]["l3"]["hits"] == 1
    assert after["embeddings"] == {"texts": 3, "computed": 3, "cut": 0, "replaced": 3}
    assert (f"embedding store {own_store}: 3 damaged vectors (wrong length, or not a unit vector) recomputed and "
            f"replaced") in again.stderr


def test_a_store_locked_too_long_is_a_clear_error(tmp_path):
    path = tmp_path / "store.sqlite"
    EmbeddingStore(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        store = None
        with pytest.raises(TiercliError) as caught:
            store = EmbeddingStore(path, busy_timeout_s=0.2)
            store.get_many("m", [b"x"], 4)
        assert caught.value.message == (f"embedding store {path} is locked: another process held it for more "
                                        f"than 0.2 s (database is locked)")
        assert "wait for the other" in caught.value.hint
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    store = EmbeddingStore(path)  # the default waits a minute, not SQLite's 5 s
    assert store.db.execute("PRAGMA busy_timeout").fetchone() == (60_000,)
    store.close()


@pytest.mark.parametrize("content", [b"garbage " * 1000, b"SQLite format 3\x00" + b"\xff" * 5000])
def test_a_garbage_store_says_what_is_wrong_and_how_to_reset_it(tmp_path, own_store, content):
    own_store.write_bytes(content)
    log = write(tmp_path / "log.jsonl", [call(0, prompt="one")])
    result = runner.invoke(app, ["replay", str(log), "--no-save"])
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert lines[0].startswith(f"error: embedding store {own_store} is damaged or not an embedding store: ")
    assert lines[1] == (f"hint: it is only a cache of vectors: delete it (rm '{own_store}') and the next replay "
                        f"with L3 recomputes them")
    assert "internal" not in result.stderr


def test_a_store_with_another_table_layout_is_damaged(tmp_path):
    path = tmp_path / "store.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE vectors (text_hash BLOB, vector BLOB)")
    db.close()
    with pytest.raises(TiercliError, match=r"is damaged or not an embedding store: its vectors table has the "
                                           r"columns \['text_hash', 'vector'\]"):
        EmbeddingStore(path)


# Vectors of the real model's size (384), not the hashing embedder's 4,096: the same batches and
# transactions race for the store, with a tenth of the bytes to write.
EMBED_IN_A_PROCESS = """
import sys
from pathlib import Path
from tiercli.store.embeddings import EmbeddingStore, HashingEmbedder, embed_texts

class ModelSizedEmbedder(HashingEmbedder):
    model_id, dim = "hashing-384", 384

texts = [f"text {i} of {sys.argv[2]}" if i % 2 else f"shared text {i}" for i in range(6000)]
store = EmbeddingStore(Path(sys.argv[1]))
vectors, counts = embed_texts(texts, ModelSizedEmbedder(), store)
store.close()
print(len(vectors))
"""


def test_two_processes_embed_into_one_store_at_once(tmp_path):
    path = tmp_path / "store.sqlite"
    children = [subprocess.Popen([sys.executable, "-c", EMBED_IN_A_PROCESS, str(path), name], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for name in ("a", "b")]
    results = [child.communicate() for child in children]
    assert [child.returncode for child in children] == [0, 0], results
    assert [out for out, _ in results] == ["6000\n", "6000\n"]
    db = sqlite3.connect(path)
    assert db.execute("SELECT count(*) FROM vectors").fetchone() == (9000,)
    db.close()
