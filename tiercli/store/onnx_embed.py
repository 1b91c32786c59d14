"""all-MiniLM-L6-v2 through ONNX Runtime (--embedder onnx): the graph exported once from the
packaged torch weights into TIERCLI_HOME, then run with the same tokenizer, mean pooling and
normalisation as sentence-transformers. Before an exported graph is first used, its vectors
are checked against torch's on a fixed probe set; a graph that fails is exported again, and if
that fails too the torch path is used, with one warning saying why. Its vectors are stored under
their own model id ("onnx:..."), so they never mix with torch's ("st:...") in the store."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import sys
import queue
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from pathlib import Path

import numpy as np

from tiercli.store.embeddings import (SentenceTransformerEmbedder, _json_or_none, _load_model,
                                      _load_tokenizer, _valid_utf8)
from tiercli.store.home import tiercli_home

OPSET = 17
# Texts per ONNX Runtime call, longest first so that each batch pads little. Small batches keep a
# layer's activations and attention scores (batch x 12 heads x length^2) in the core's caches:
# on 633 of the sample's texts, one single-threaded session per core, batches of 1, 2, 4, 8, 16
# and 32 took 8.4, 7.9, 8.1, 8.6, 9.1 and 9.8 s (torch 10.4 s); on all 2,533, in chunks of 256
# as embed_texts hands them, 2 took 0.95x the time of 4. ORT's transformer fusions (Attention,
# SkipLayerNormalization, BiasGelu) were slower: 9.0 s at 4.
ONNX_BATCH = 2
# Each probe vector's cosine with torch's must reach this. fp32 ONNX Runtime measured 0.9999998
# at worst (issue 26); int8 moved vectors by 0.12, which would change which L3 entries hit.
MIN_COSINE = 0.9999
_PROBE_WORDS = ("the cache serves a stored answer when a new prompt means the same as an old one; "
                "Quels sont les horaires d'ouverture du magasin à Zürich ? 東京の天気はどうですか "
                "refund order #48213 shipped 2024-05-01 to 221B Baker Street, London NW1 6XE").split()


def probe_texts() -> list[str]:
    """A fixed set of 32 texts from one word to past the model's 256-word-piece window: short
    and long, several scripts, digits and punctuation."""
    texts = ["", "a", "?", "Hello!", "What is the refund policy for damaged items?"]
    for n in (2, 3, 5, 8, 12, 17, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240):
        texts.append(" ".join(_PROBE_WORDS[(n + i) % len(_PROBE_WORDS)] for i in range(n)))
    texts += [" ".join(_PROBE_WORDS) * 4, "x" * 300, "日本語のテキスト" * 40, "lorem ipsum " * 200]
    return texts


def local_embedder(backend: str, model_path: str | None = None):
    """The L3 model in this process through `backend` (the embedder setting: "onnx" or
    "torch"), as replay and the runtime cache (tiercli.cache) both use it."""
    if backend == "onnx":
        return OnnxEmbedder(model_path)
    return SentenceTransformerEmbedder(model_path)


def available_cores() -> int:
    """The cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _worst_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.min(np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))))


class OnnxEmbedder(SentenceTransformerEmbedder):
    """The same model as SentenceTransformerEmbedder (window, dimension, token counts from its
    folder), encoded by ONNX Runtime. `model_id` is "onnx:<name>" once the graph passed its check,
    and the torch embedder's id if it fell back to torch."""

    def __init__(self, model_path: str | None = None, home: Path | None = None, warn=None,
                 threads: int | None = None):
        super().__init__(model_path)  # sets torch_model_id through the model_id setter
        self.threads = threads or available_cores()  # sessions, one per core this process may use
        self.home = home
        self.warn = warn or (lambda line: print(f"warning: {line}", file=sys.stderr))
        self.fallback_reason: str | None = None
        self.worst_cosine: float | None = None  # measured at the last probe check in this process

    @property
    def graph_path(self) -> Path:
        """One graph per model folder and torch version, in TIERCLI_HOME/onnx/ (the version read
        from the package's metadata: importing torch takes seconds a warm store does not need)."""
        weights = sorted(p.stat().st_size for p in Path(self.model_path).rglob("*.safetensors"))
        key = hashlib.sha256(json.dumps([Path(self.model_path).resolve().as_posix(), weights,
                                         importlib.metadata.version("torch"), OPSET, "eager"]).encode()).hexdigest()[:16]
        return (self.home or tiercli_home()) / "onnx" / f"{Path(self.model_path).name}-{key}.onnx"

    @cached_property
    def ready_graph(self) -> Path | None:
        """The checked graph, exported (and checked) now if there is none or it changed since its
        check; None when even a fresh export fails the check (then torch encodes, said once)."""
        path = self.graph_path
        checked = path.with_suffix(".checked.json")
        record = _json_or_none(checked) or {}
        if path.is_file() and record.get("sha256") == _sha256(path):
            self.worst_cosine = record.get("worst_cosine")
            return path
        reason = None
        for _attempt in range(2):  # an existing graph that fails, then a fresh export
            try:
                if not path.is_file() or _attempt:
                    # stderr, as progress is: once per TIERCLI_HOME, seconds with nothing else said
                    print(f"embedder onnx: exporting the model once to {path} and checking it against torch "
                          f"(about 10 s)", file=sys.stderr, flush=True)
                    self._export(path)
                self.worst_cosine = self._check(path)
            except Exception as exc:  # a damaged graph: onnx and onnxruntime raise many kinds
                reason = f"the ONNX graph {path} could not be used ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})"
                continue
            if self.worst_cosine >= MIN_COSINE:
                _write_atomic(checked, json.dumps({"sha256": _sha256(path), "worst_cosine": self.worst_cosine,
                                                   "probe_texts": len(probe_texts())}).encode())
                return path
            reason = (f"the ONNX graph's vectors differ from torch's (worst cosine {self.worst_cosine:.7f} on the "
                      f"probe texts, below {MIN_COSINE})")
        self.fallback_reason = reason
        self.warn(f"embedder onnx: {reason}; using torch instead")
        return None

    @property
    def model_id(self) -> str:
        """The store's key names the backend that computed the vectors: read first by
        embed_texts, so it decides (exporting and checking the graph if need be) which one."""
        return "onnx:" + self.torch_model_id.split(":", 1)[1] if self.ready_graph else self.torch_model_id

    @model_id.setter
    def model_id(self, value: str) -> None:  # SentenceTransformerEmbedder.__init__ sets torch's
        self.torch_model_id = value

    def _export(self, path: Path) -> None:
        """torch.onnx.export's legacy (TorchScript) exporter, batch and sequence axes dynamic,
        into a temporary file renamed into place: a concurrent replay sees the old file or the
        whole new one, never a part (it may export its own, which is as good)."""
        import torch

        from transformers import AutoModel

        # Attention written out as matrix products and a softmax ("eager"), not torch's fused
        # scaled_dot_product_attention, which the exporter traces into a slower graph (1.2x).
        folder = _load_model(self.model_path)[0].auto_model.name_or_path
        transformer = AutoModel.from_pretrained(folder, attn_implementation="eager").eval()

        class Graph(torch.nn.Module):  # positional inputs and one output: what the legacy exporter traces
            def __init__(self):
                super().__init__()
                self.transformer = transformer  # a submodule: its weights become the graph's initializers

            def forward(self, input_ids, attention_mask, token_type_ids):
                return self.transformer(input_ids=input_ids, attention_mask=attention_mask,
                                   token_type_ids=token_type_ids, return_dict=True).last_hidden_state

        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_parts(path.parent)
        sample = {name: torch.ones((2, 8), dtype=torch.long) for name in ("input_ids", "attention_mask", "token_type_ids")}
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".part")
        os.close(fd)
        try:
            axes = {name: {0: "batch", 1: "sequence"} for name in (*sample, "last_hidden_state")}
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the tracer's notes on Python control flow: fixed shapes it handles
                torch.onnx.export(Graph(), tuple(sample.values()), temp, input_names=list(sample),
                                  output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=OPSET,
                                  dynamo=False, external_data=False)
            os.replace(temp, path)
        finally:
            if os.path.exists(temp):
                os.unlink(temp)
        self.__dict__.pop("_sessions", None)

    def _check(self, path: Path) -> float:
        """The worst cosine between this graph's and torch's vectors of the probe texts."""
        self.__dict__.pop("_sessions", None)
        texts = probe_texts()
        return _worst_cosine(self._encode_onnx(texts, self._new_sessions(path)), super().encode(texts))

    def _new_sessions(self, path: Path, count: int = 1) -> list:
        """`count` sessions of one thread each. One session per core, each given whole batches,
        beat one session of two threads: 1.2x on an idle machine and 1.7x beside one other busy
        process (the two threads of one matrix product wait for each other at every step, and
        one of them is often descheduled)."""
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        return [ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
                for _ in range(count)]

    @cached_property
    def _sessions(self) -> list:
        return self._new_sessions(self.ready_graph, self.threads)

    @cached_property
    def _tokenizer(self):
        """A private copy of the model's tokenizer, truncating to the window and padding each batch
        to its longest text, as sentence-transformers does (the shared one must not pad)."""
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_str(_load_tokenizer(self.model_path).to_str())
        tokenizer.enable_truncation(max_length=self.window)
        pad_id = tokenizer.token_to_id("[PAD]") or 0
        tokenizer.enable_padding(pad_id=pad_id, pad_token="[PAD]")
        return tokenizer

    def _encode_onnx(self, texts: list[str], sessions) -> np.ndarray:
        """Texts' vectors in their order (one chunk of _encode_chunks)."""
        return [vectors for _, vectors in self._encode_chunks([texts], sessions)][0]

    def _encode_chunks(self, chunks: Sequence[list[str]], sessions) -> Iterator[tuple[int, np.ndarray]]:
        """(index, vectors) of each chunk, in the chunks' order. Each chunk's texts go longest
        first in batches of ONNX_BATCH (each padded only to its own longest); the batches of all
        chunks are queued at once and shared out among `sessions` (one single-threaded session per
        core), so that no core waits at a chunk's end or while the caller stores a chunk."""
        chunks = list(chunks)
        lower = self.lower_case
        vectors = [np.empty((len(chunk), self.dim), dtype=np.float32) for chunk in chunks]
        batches = []  # per chunk, the rows of each of its batches, in the order they are run
        for chunk in chunks:
            order = sorted(range(len(chunk)), key=lambda i: -len(chunk[i]))
            batches.append([order[start:start + ONNX_BATCH] for start in range(0, len(order), ONNX_BATCH)])
        idle = queue.SimpleQueue()
        for session in sessions:
            idle.put(session)

        def encode_batch(index: int, rows: list[int]) -> None:
            session = idle.get()  # whichever is free: the batches' sizes differ
            try:
                encodings = self._tokenizer.encode_batch([_valid_utf8(chunks[index][i].lower() if lower
                                                                      else chunks[index][i]) for i in rows])
                ids = np.array([e.ids for e in encodings], dtype=np.int64)
                mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
                feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
                hidden = session.run(None, feeds)[0]
            finally:
                idle.put(session)
            # mean pooling over the real word pieces, then unit length (the model's Pooling and Normalize)
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
            vectors[index][rows] = pooled

        if len(sessions) == 1 or sum(map(len, batches)) <= 1:  # one text (the runtime cache's L3): no thread hand-off
            for index, chunk_batches in enumerate(batches):
                for rows in chunk_batches:
                    encode_batch(index, rows)
                yield index, vectors[index]
            return
        pool = ThreadPoolExecutor(len(sessions), thread_name_prefix="tiercli-onnx")
        try:
            futures = [[pool.submit(encode_batch, index, rows) for rows in chunk_batches]
                       for index, chunk_batches in enumerate(batches)]
            for index, chunk_futures in enumerate(futures):
                for future in chunk_futures:
                    future.result()  # the first exception raises here
                yield index, vectors[index]
        finally:  # on Ctrl-C or close(), only the batches already running are waited for
            pool.shutdown(wait=True, cancel_futures=True)

    def load(self) -> None:
        if self.ready_graph:
            self._sessions  # noqa: B018 -- created now, before the progress clock starts
        else:
            super().load()

    def encode(self, texts: list[str]) -> np.ndarray:
        if not self.ready_graph:
            return super().encode(texts)
        return self._encode_onnx(texts, self._sessions)

    def encode_batches(self, batches: Sequence[list[str]]) -> Iterator[tuple[int, np.ndarray]]:
        """(index, vectors) of each of embed_texts' batches, in order, all computed in one go:
        the cores go on with the next batches while embed_texts stores one (0.4 s of SQLite
        commits on the sample's 40 batches) instead of waiting at each batch's end."""
        if not self.ready_graph:
            return ((index, super(OnnxEmbedder, self).encode(batch)) for index, batch in enumerate(batches))
        return self._encode_chunks(batches, self._sessions)


STALE_PART_S = 600.0  # an export takes seconds: a part file older than this lost its process


def _remove_stale_parts(folder: Path) -> None:
    """Part files of exports killed before their rename (SIGKILL: no finally runs), 90 MB each;
    a concurrent export's own part is younger and stays."""
    now = time.time()
    for part in folder.glob("*.part"):
        try:
            if now - part.stat().st_mtime > STALE_PART_S:
                part.unlink()
        except OSError:  # another process removed or renamed it first
            pass


def _write_atomic(path: Path, data: bytes) -> None:
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
