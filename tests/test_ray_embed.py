"""Embedding on Ray Data (tiercli/executor/ray_embed.py) against the local model, on one local
Ray instance (the session's, from conftest). One Ray job embeds for the first three tests: starting Ray and loading the model
in its actors (several seconds each on 2 cores) is most of the module's time. A second, short
job fails on purpose before any model is loaded."""

import json
import os

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'tiercli[ray]')")

from conftest import SAMPLE_LOG  # noqa: E402
from tiercli.errors import TiercliError  # noqa: E402
from tiercli.executor import ray_embed  # noqa: E402
from tiercli.executor.ray_embed import RayEmbedder  # noqa: E402
from tiercli.store import embeddings  # noqa: E402
from tiercli.store.embeddings import EmbeddingStore, SentenceTransformerEmbedder, embed_texts  # noqa: E402

# Ray Data's own DataContext copies set its deprecated fields
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")

SMALL_BATCH = 4  # the 9 texts Ray computes make 3 batches, handed back as they finish


def sample_texts(n: int) -> list[str]:
    prompts = []
    with open(SAMPLE_LOG) as log:
        for line in log:
            prompt = json.loads(line).get("prompt")
            if prompt and prompt not in prompts:
                prompts.append(prompt)
            if len(prompts) == n:
                break
    return prompts


@pytest.fixture(scope="module")
def local():
    return SentenceTransformerEmbedder()


@pytest.fixture(scope="module")
def ray_run(ray_instance, local, tmp_path_factory):
    """One embed_texts pass on Ray over 12 sample texts and one longer than the model's cut,
    into a store that already holds the first 4 (embedded here): Ray computes the other 9. One
    actor: each loads the model, which is most of the time on 2 cores."""
    texts = sample_texts(12)
    texts.append(" ".join(texts) * 12)  # over 16,384 characters: embedded by its start
    assert len(texts[-1]) > local.max_chars
    store = EmbeddingStore(tmp_path_factory.mktemp("ray-embed") / "embeddings.sqlite")
    before, counts = embed_texts(texts[:4], local, store)
    assert counts["computed"] == 4
    reports = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(embeddings, "BATCH_SIZE", SMALL_BATCH)
        patch.setattr(ray_embed, "BATCH_SIZE", SMALL_BATCH)
        vectors, counts = embed_texts(texts, RayEmbedder(actors=1), store,
                                      progress=lambda done, total: reports.append(done))
    yield texts, store, before, vectors, counts, reports
    store.close()


def test_it_needs_a_ray_connection(monkeypatch):
    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # the session's instance stays up
    with pytest.raises(RuntimeError, match="ray.init"):
        RayEmbedder()


def test_ray_computes_only_the_missing_texts(ray_run):
    texts, _, before, vectors, counts, reports = ray_run
    assert counts == {"computed": 9, "cut": 1, "replaced": 0}
    assert reports[0] == 0 and reports[-1] == 9 and reports == sorted(reports)
    assert len(reports) == 1 + 3  # a report per batch of 4: 4 + 4 + 1
    assert np.array_equal(vectors[:4], before)  # read from the store, not recomputed


def test_ray_vectors_agree_with_local_ones(ray_run, local):
    texts, _, _, vectors, _, _ = ray_run
    expected = local.encode([embeddings.cut_text(t, local) for t in texts])
    assert vectors.dtype == np.float32 and vectors.shape == (13, 384)
    cosines = np.sum(vectors * expected, axis=1)
    assert cosines.min() >= 0.9999
    # each row is its own text's vector, not a neighbour's
    assert np.array_equal(np.argmax(vectors @ expected.T, axis=1), np.arange(13))


def test_a_ray_run_fills_the_store_the_local_embedder_reads(ray_run, local):
    texts, store, _, vectors, _, _ = ray_run
    again, counts = embed_texts(texts, local, store)
    assert counts["computed"] == 0
    assert np.array_equal(again, vectors)


def test_an_actor_that_cannot_load_the_model_is_one_line(ray_instance, tmp_path):
    embedder = RayEmbedder(actors=1)
    embedder.model_path = str(tmp_path / "absent")  # as on a node without the model folder
    with pytest.raises(TiercliError) as error:
        embedder.encode(["one text"])
    assert error.value.message == (f"embedding on Ray: on {os.uname().nodename}: "
                                   f"l3_model: no model folder at {tmp_path / 'absent'}")
    assert "installed" in error.value.hint
