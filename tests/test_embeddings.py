"""L3 with the real model (all-MiniLM-L6-v2 from its PyPI package) and the on-disk store."""

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
