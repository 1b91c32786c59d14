"""L3 with the real model (all-MiniLM-L6-v2 from its PyPI package) and the on-disk store."""

import io

import numpy as np
import pytest

from logs import call, replay_records
from tiercli.store.embeddings import EmbeddingStore, SentenceTransformerEmbedder, embed_texts


@pytest.fixture(scope="module")
def model():
    return SentenceTransformerEmbedder()


NEAR = ("What is the asking price?", "what is the asking price")
FAR = ("What is the asking price?", "Can I schedule a viewing on Saturday?")
PARAPHRASE = ("What is the asking price?", "How much does the house cost?")


def test_real_model_similarities(model):
    vectors = model.encode([*NEAR, FAR[1], PARAPHRASE[1]])
    assert vectors.dtype == np.float32 and vectors.shape == (4, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > 0.95   # same words, other case and punctuation
    assert vectors[0] @ vectors[2] < 0.2    # another question
    assert 0.3 < vectors[0] @ vectors[3] < 0.8  # a real paraphrase sits well below 0.92


def test_l3_threshold_with_the_real_model(tmp_path, model):
    records = [call(0, prompt=NEAR[0], worker="w1"), call(1, prompt=NEAR[1], worker="w2"),
               call(2, prompt=FAR[1], worker="w3"), call(3, prompt=PARAPHRASE[1], worker="w3")]
    summary, got = replay_records(tmp_path, records, embedder=model)
    assert got == ["miss", "l3", "miss", "miss"]
    # at a loose threshold the paraphrase is caught too, the other question still not
    summary, got = replay_records(tmp_path, records, embedder=model, l3_threshold=0.5)
    assert got == ["miss", "l3", "miss", "l3"]


def test_store_means_a_second_replay_embeds_nothing(tmp_path, model):
    store = EmbeddingStore(tmp_path / "fresh.sqlite")
    texts = ["one text", "another text", "one text again"]
    first, counts = embed_texts(texts, model, store)
    assert counts["computed"] == 3
    second, counts = embed_texts(texts + ["a new one"], model, store)
    assert counts["computed"] == 1
    assert np.array_equal(first, second[:3])
    store.close()


def test_store_keeps_models_apart(tmp_path, model):
    from tiercli.store.embeddings import HashingEmbedder

    store = EmbeddingStore(tmp_path / "fresh.sqlite")
    embed_texts(["x y"], model, store)
    vectors, counts = embed_texts(["x y"], HashingEmbedder(), store)
    assert counts["computed"] == 1 and vectors.shape == (1, HashingEmbedder.dim)
    store.close()


def test_missing_local_model_folder_is_a_clear_error(tmp_path):
    from tiercli.errors import TiercliError

    with pytest.raises(TiercliError, match="no model folder at"):
        SentenceTransformerEmbedder(str(tmp_path / "no-model"))


# The time left while embedding (issue 21 item 6): texts go longest first, so it is estimated
# from the share of the work done, each text costing its word pieces (up to the window) plus
# PIECES_PER_TEXT, not from the share of texts.

class PiecesEmbedder:
    """HashingEmbedder's vectors, with a tokenizer that counts a word as a piece, [CLS] and
    [SEP] included, and a window of 100 pieces."""

    window = 100

    def __init__(self):
        from tiercli.store.embeddings import HashingEmbedder

        self.hashing = HashingEmbedder()
        self.model_id, self.dim, self.max_chars = "pieces", self.hashing.dim, None

    def token_counts(self, texts):
        return [len(text.split()) + 2 for text in texts]

    def encode(self, texts):
        return self.hashing.encode(texts)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_embedding_reports_the_share_of_the_work_by_word_pieces(monkeypatch):
    from tiercli.store import embeddings

    monkeypatch.setattr(embeddings, "BATCH_SIZE", 2)
    # 148 words: 150 pieces, cut to the window of 100; then 48 + 2, 8 + 2, 0 + 2 (an empty text)
    texts = [" ".join(["w"] * n) + f" t{n}" for n in (147, 47, 7)] + [""]
    reports = []
    embed_texts(texts, PiecesEmbedder(), None, weighted_progress=lambda *report: reports.append(report))
    costs = [100 + 35, 50 + 35, 10 + 35, 2 + 35]
    assert reports == [(0, 4, 0.0), (2, 4, sum(costs[:2]) / sum(costs)), (4, 4, 1.0)]
    assert reports[1][2] == pytest.approx(220 / 302)  # half the texts, 73% of the work


def synthetic_pass(pieces: list[int], per_piece_s: float, per_text_s: float, batch: int = 64):
    """(texts done, seconds elapsed) after each batch of texts taking per_piece_s a word piece
    and per_text_s a text: the timing the cost model assumes, made up, so exact."""
    done, elapsed, out = 0, 0.0, []
    for start in range(0, len(pieces), batch):
        part = pieces[start:start + batch]
        done += len(part)
        elapsed += per_piece_s * sum(part) + per_text_s * len(part)
        out.append((done, elapsed))
    return out


def test_the_time_left_follows_the_work_not_the_count_of_texts():
    from rich.console import Console

    from tiercli.commands.progress import progress_bars
    from tiercli.store.embeddings import PIECES_PER_TEXT

    # 2,533 texts longest first, as the sample day's: a tenth of them at the window's 256
    # pieces, then shorter ones down to 20; 0.25 ms a piece and 35 pieces' worth a text
    pieces = sorted([256] * 253 + [20 + (i * 7) % 200 for i in range(2280)], reverse=True)
    per_piece = 0.25e-3
    costs = [p + PIECES_PER_TEXT for p in pieces]
    timings = synthetic_pass(pieces, per_piece, per_piece * PIECES_PER_TEXT)
    total_s = timings[-1][1]
    out, clock = io.StringIO(), Clock()
    with progress_bars(console=Console(file=out, force_terminal=False), clock=clock, interval_s=0.0) as progress:
        update = progress.weighted("embedding texts", len(pieces))
        counted = progress("counted texts", len(pieces))  # the old estimate, by texts, beside it
        update(0, 0.0), counted(0)
        for done, elapsed in timings[:-1]:
            clock.now = 1000.0 + elapsed
            update(done, sum(costs[:done]) / sum(costs))
            counted(done)
    lines = out.getvalue().splitlines()
    by_work = {int(line.split(": ")[1].split("/")[0].replace(",", "")): line for line in lines
               if line.startswith("embedding texts")}
    by_count = {int(line.split(": ")[1].split("/")[0].replace(",", "")): line for line in lines
                if line.startswith("counted texts")}
    # at about 10% of the texts (256 done, 18.6 s in, 1m28s to go): the work's estimate is the
    # true time left; the count's is nearly twice too long (the issue's: 5m25s left, 2m45s true)
    assert total_s == pytest.approx(106.36075) and dict(timings)[256] == pytest.approx(18.59625)
    assert by_work[256] == "embedding texts: 256/2,533, 1m28s left"
    assert by_count[256] == "counted texts: 256/2,533, 2m45s left"
    # at half the texts (72.1 s in, 34 s to go), the same
    assert by_work[1280] == "embedding texts: 1,280/2,533, 34s left"
    assert by_count[1280] == "counted texts: 1,280/2,533, 1m11s left"


def test_on_a_terminal_the_bar_and_the_time_left_follow_the_work():
    from rich.console import Console

    from tiercli.commands.progress import progress_bars

    out, clock = io.StringIO(), Clock()
    console = Console(file=out, force_terminal=True, width=120, color_system=None)
    with progress_bars(console=console, clock=clock) as progress:
        update = progress.weighted("embedding texts", 1000)
        for at, done, share in ((10, 100, 0.2), (20, 200, 0.4)):  # 20% of the work every 10 s
            clock.now = 1000.0 + at
            update(done, share)
        progress.bars.refresh()
    assert "200/1000" in out.getvalue()  # the count stays in texts
    assert "0:00:30 left" in out.getvalue()  # 60% of the work at 2% a second; by texts: 0:01:20


def test_the_model_is_loaded_before_the_progress_clock_starts():
    # the model's load (seconds) is not encoding: counted in, it made the first estimates long
    events = []

    class Loading(PiecesEmbedder):
        def load(self):
            events.append("load")

    embed_texts(["a b", "c"], Loading(), None, weighted_progress=lambda done, total, share: events.append(done))
    assert events == ["load", 0, 2]
