"""The ONNX Runtime embedder (--embedder onnx): exported from the packaged all-MiniLM-L6-v2,
checked against the torch vectors, re-exported when its file is damaged, torch when it cannot
be used, and stored under its own model id."""

import shutil
import time

import numpy as np
import pytest
from conftest import SAMPLE_LOG

from tiercli.pipeline import default_embedder, load_events, run_replay
from tiercli.settings import Settings, check_embedder
from tiercli.store.embeddings import EmbeddingStore, SentenceTransformerEmbedder, embed_texts
from tiercli.store.onnx_embed import MIN_COSINE, OnnxEmbedder, probe_texts

TEXTS = ["What is the refund policy for damaged items?", "How do I reset my password?",
         "Quelle est la politique de remboursement ?", "ok", "tell me a story " * 100]


@pytest.fixture(scope="module", autouse=True)
def offline():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        yield


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One export for the module (about 20 s): its home, and the embedder that made it."""
    home = tmp_path_factory.mktemp("onnx-home")
    embedder = OnnxEmbedder(home=home)
    assert embedder.model_id == "onnx:all-MiniLM-L6-v2"
    return home, embedder


def test_the_probe_check_passes_and_is_recorded(exported):
    home, embedder = exported
    assert embedder.fallback_reason is None
    assert embedder.worst_cosine >= MIN_COSINE
    assert len(probe_texts()) == 32
    assert embedder.graph_path.is_file() and embedder.graph_path.with_suffix(".checked.json").is_file()
    # a second embedder (a later replay) finds the checked graph and neither exports nor checks
    again = OnnxEmbedder(home=home)
    mtime = embedder.graph_path.stat().st_mtime_ns
    assert again.model_id == "onnx:all-MiniLM-L6-v2" and again.worst_cosine == embedder.worst_cosine
    assert embedder.graph_path.stat().st_mtime_ns == mtime


def test_vectors_equal_torchs_within_the_bound(exported):
    _, embedder = exported
    onnx, torch = embedder.encode(TEXTS), SentenceTransformerEmbedder().encode(TEXTS)
    assert onnx.shape == torch.shape == (len(TEXTS), 384) and onnx.dtype == np.float32
    assert np.allclose(np.linalg.norm(onnx, axis=1), 1, atol=1e-5)
    assert (np.sum(onnx * torch, axis=1) >= MIN_COSINE).all()
    # the batch a text is in (its padding) does not change its vector
    assert np.sum(embedder.encode(TEXTS[:1])[0] * onnx[0]) >= MIN_COSINE


def test_all_batches_at_once_come_back_in_order_as_encode_gives_them(exported):
    """encode_batches (what embed_texts uses) queues every batch at once on both sessions:
    each batch comes back in order, with the vectors encode() gives its texts alone; closed
    early (Ctrl-C in the caller), the batches still queued are dropped, not run."""
    _, embedder = exported
    embedder.threads = 2
    embedder.__dict__.pop("_sessions", None)
    batches = [TEXTS, TEXTS[::-1][:3], [], TEXTS[2:3], [t + " again" for t in TEXTS]]
    got = list(embedder.encode_batches(batches))
    assert [index for index, _ in got] == [0, 1, 2, 3, 4]
    for (_, vectors), batch in zip(got, batches):
        assert vectors.shape == (len(batch), 384)
        if batch:
            assert (np.sum(vectors * embedder.encode(batch), axis=1) >= MIN_COSINE).all()

    class Counted:  # a session that counts its runs
        def __init__(self, session):
            self.session, self.runs = session, 0

        def run(self, *args):
            self.runs += 1
            return self.session.run(*args)

    embedder._sessions = [Counted(session) for session in embedder._sessions]
    many = [[f"{word} {n}" for word in TEXTS] for n in range(40)]  # 3 runs a batch: 120
    results = embedder.encode_batches(many)
    assert next(results)[0] == 0
    results.close()  # returns once the batches already running finish
    runs = sum(session.runs for session in embedder._sessions)
    assert 3 <= runs < 60 and list(results) == []
    time.sleep(0.5)
    assert sum(session.runs for session in embedder._sessions) == runs
    embedder.__dict__.pop("_sessions")


def test_a_damaged_graph_is_exported_again(exported, tmp_path):
    home, embedder = exported
    shutil.copytree(home / "onnx", tmp_path / "onnx")
    graph = tmp_path / "onnx" / embedder.graph_path.name
    data = bytearray(graph.read_bytes())
    middle = len(data) // 2  # inside the weights: the file still loads, its vectors are wrong
    data[middle:middle + 4_000_000] = bytes(4_000_000)
    graph.write_bytes(bytes(data))
    warnings = []
    again = OnnxEmbedder(home=tmp_path, warn=warnings.append)
    assert again.model_id == "onnx:all-MiniLM-L6-v2" and not warnings
    assert again.worst_cosine >= MIN_COSINE
    assert graph.read_bytes() != bytes(data)  # a fresh export replaced it
    assert np.sum(again.encode(TEXTS[:1])[0] * embedder.encode(TEXTS[:1])[0]) >= MIN_COSINE


def test_a_graph_that_cannot_be_made_falls_back_to_torch_with_one_warning(tmp_path):
    (tmp_path / "onnx").write_text("a file where the folder goes")
    warnings = []
    embedder = OnnxEmbedder(home=tmp_path, warn=warnings.append)
    assert embedder.model_id == "st:all-MiniLM-L6-v2"  # torch's vectors, under torch's id
    assert embedder.model_id == "st:all-MiniLM-L6-v2"
    assert len(warnings) == 1 and "using torch instead" in warnings[0] and "could not be used" in warnings[0]
    assert np.allclose(embedder.encode(TEXTS[:2]), SentenceTransformerEmbedder().encode(TEXTS[:2]))


def test_the_store_never_mixes_torch_and_onnx_vectors(exported, tmp_path):
    _, embedder = exported
    store = EmbeddingStore(tmp_path / "embeddings.sqlite")
    torch_vectors, torch_counts = embed_texts(TEXTS, SentenceTransformerEmbedder(), store)
    onnx_vectors, onnx_counts = embed_texts(TEXTS, embedder, store)
    assert torch_counts["computed"] == onnx_counts["computed"] == len(TEXTS)  # none served from the other
    models = dict(store.db.execute("SELECT model, count(*) FROM vectors GROUP BY model").fetchall())
    assert models == {"st:all-MiniLM-L6-v2": len(TEXTS), "onnx:all-MiniLM-L6-v2": len(TEXTS)}
    assert embed_texts(TEXTS, embedder, store)[1]["computed"] == 0
    assert (np.sum(torch_vectors * onnx_vectors, axis=1) >= MIN_COSINE).all()
    store.close()


def test_the_setting_chooses_the_backend():
    assert type(default_embedder(Settings())) is OnnxEmbedder
    assert type(default_embedder(Settings(embedder="torch"))) is SentenceTransformerEmbedder
    with pytest.raises(ValueError, match="torch, onnx"):
        check_embedder("tensorrt")


def test_a_replay_of_the_sample_has_the_same_outcomes_with_either_backend(exported):
    """Every tier on the sample day (2,533 distinct texts): the same outcome, source and
    mismatch for every call, similarities within a few float32 steps."""
    settings = Settings()
    read = load_events(SAMPLE_LOG, settings, digest=False)
    torch = run_replay(read, settings, embedder=SentenceTransformerEmbedder()).table
    onnx = run_replay(read, settings, embedder=exported[1]).table
    for column in ("outcome", "source_seq", "stale", "mismatched", "cross_lead"):
        assert torch[column].astype(str).tolist() == onnx[column].astype(str).tolist(), column
    assert (torch["outcome"].astype(str) == "l3").sum() > 1000
    assert np.allclose(torch["similarity"], onnx["similarity"], rtol=0, atol=1e-6, equal_nan=True)


def test_the_run_says_which_backend_computed_its_vectors(tmp_path, tiercli_home):
    """replay --json names the backend used: onnx by default; torch, with the reason, when the
    graph cannot be made (one warning on stderr), and torch when asked for."""
    import json

    from typer.testing import CliRunner

    from logs import call, write
    from tiercli.cli import app

    log = write(tmp_path / "log.jsonl", [call(0, prompt="Is the house on Elm Street still for sale?"),
                                         call(60, prompt="Is the house on Elm Street still available?")])
    runner = CliRunner()

    def replay(*options):
        result = runner.invoke(app, ["replay", str(log), "--json", "--no-save", *options])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)["embedder"], result.stderr

    used, _ = replay()
    assert used == {"backend": "onnx", "asked": "onnx", "model_id": "onnx:all-MiniLM-L6-v2", "fallback": None}
    assert replay("--embedder", "torch")[0] == {"backend": "torch", "asked": "torch",
                                                "model_id": "st:all-MiniLM-L6-v2", "fallback": None}
    (tiercli_home / "onnx").unlink()  # the session's shared graph folder, linked by conftest
    (tiercli_home / "onnx").write_text("a file where the folder goes")
    used, stderr = replay()
    assert used["backend"] == "torch" and used["asked"] == "onnx" and "could not be used" in used["fallback"]
    assert stderr.count("using torch instead") == 1


def test_an_export_removes_part_files_that_a_killed_export_left(tmp_path):
    """SIGKILL during an export leaves its 90 MB part file; the next export removes those older
    than STALE_PART_S, and keeps a young one (a concurrent export's)."""
    import os
    import time

    from tiercli.store.onnx_embed import STALE_PART_S, _remove_stale_parts

    old, young = tmp_path / "model-x.onnx1.part", tmp_path / "model-x.onnx2.part"
    for part in (old, young):
        part.write_bytes(b"half a graph")
    os.utime(old, (time.time() - STALE_PART_S - 5,) * 2)
    _remove_stale_parts(tmp_path)
    assert not old.exists() and young.exists()
