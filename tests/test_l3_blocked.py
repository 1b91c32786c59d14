"""Blocked scoring of L3 look-ups (tiercli/core/tiers/semantic.py: a group's upcoming look-ups
scored together, then corrected for what changed inside the block; pruned by rotated-prefix
bounds in large groups) gives exactly the scan's answers, call for call: outcome, reported
similarity, source entry, stale flag, evictions and removals. On random logs with many
entries, capacity limits, expiries and tag changes inside blocks, per-task thresholds and
exact ties; and, with blocks forced on small logs, the naive oracle's answers too."""

import hashlib

import numpy as np
import pytest

from logs import write
from test_oracle import VARIANTS, assert_engine_matches_oracle, random_log
from tiercli.engine.replay import replay
from tiercli.core.tiers import Origin, SemanticTier
from tiercli.core.tiers import semantic
from tiercli.core.events import Call, TagChange
from tiercli.ingest.logread import read_log
from tiercli.store.embeddings import HashingEmbedder
from tiercli.settings import Settings

TASKS, MODELS = ("intent", "scoring"), ("m1", "m2")


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks on every group however small, short blocks (many of them, so stores, expiries and
    removals fall inside blocks), and pruning from a few dozen units. Records what was built."""
    monkeypatch.setattr(semantic, "SCAN_BELOW", 0)
    monkeypatch.setattr(semantic, "BLOCK_MIN", 4)
    monkeypatch.setattr(semantic, "BLOCK_MAX", 24)
    monkeypatch.setattr(semantic, "PRUNE_FROM", 24)
    monkeypatch.setattr(semantic, "PRUNE_USEFUL", 1.0)  # never paused: prune whenever a block is large enough
    built = {"pruned": 0, "full": 0, "scans": 0}
    new_block, scan = semantic._Group._new_block, semantic._Group.scan

    def counted_block(group, *args):
        block = new_block(group, *args)
        built["pruned" if block.heads is not None else "full"] += 1
        return block

    def counted_scan(group, *args):
        built["scans"] += 1
        return scan(group, *args)

    counted_scan.__wrapped__ = scan

    monkeypatch.setattr(semantic._Group, "_new_block", counted_block)
    monkeypatch.setattr(semantic._Group, "scan", counted_scan)
    return built


def answers(events, settings, vectors, row_of_text):
    result = replay(events, settings, vectors, row_of_text)
    return (list(result.outcome), np.nan_to_num(np.asarray(result.similarity), nan=-9).tolist(),
            list(result.source_seq), list(result.stale), result.evictions, result.invalidated)


def scanned_answers(monkeypatch, events, settings, vectors, row_of_text):
    """The same replay with the tier never told the calls to come: every look-up is a scan."""
    with monkeypatch.context() as patch:
        patch.setattr(SemanticTier, "expect", lambda tier, calls: None)
        uncounted = getattr(semantic._Group.scan, "__wrapped__", semantic._Group.scan)
        patch.setattr(semantic._Group, "scan", uncounted)
        return answers(events, settings, vectors, row_of_text)


def tie_vectors(dim: int, count: int) -> np.ndarray:
    """Unit vectors (e0 + ej) / sqrt(2): each one's product with e0, and with any other of them,
    is the same float32 number for every pair (one or two equal terms): exact ties."""
    out = np.zeros((count, dim), dtype=np.float32)
    out[:, 0] = out[np.arange(count), 1 + np.arange(count) % (dim - 1)] = np.float32(np.sqrt(0.5))
    return out


def random_events(seed: int, calls: int = 1500, texts: int = 300, dim: int = 48, tasks=TASKS, models=MODELS):
    """Calls of 2 tasks x 2 models (four L3 groups) from a few dozen leads over an hour, integer
    seconds (many equal times), texts clustered around a dozen centres so that many
    similarities sit near each other and near the thresholds; some texts share a vector, some
    tie exactly (tie_vectors), and the first text is e0, which ties with all of those.
    Requests repeat a text under up to eight keys (as system prompts would), so that entries
    share texts, and 3% of the events are tag changes."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((12, dim))
    vectors = centres[rng.integers(0, 12, texts)] * 2.5 + rng.standard_normal((texts, dim))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    vectors[1:40] = tie_vectors(dim, 39)
    vectors[0] = 0
    vectors[0, 0] = 1
    vectors[40:60] = vectors[60:80]  # distinct texts, equal vectors
    names = [f"text {i}" for i in range(texts)]
    events = []
    times = np.sort(rng.integers(0, 3600, calls))
    for seq, ts in enumerate(times.tolist()):
        lead = f"L{rng.integers(0, 40)}"
        if rng.random() < 0.03:
            events.append(TagChange(seq, seq, float(ts), lead, "Warm", None))
            continue
        task, model = tasks[rng.integers(0, len(tasks))], models[rng.integers(0, len(models))]
        if task == "scoring" and rng.random() < 0.9:  # scoring asks the same few texts
            text = names[int(rng.integers(0, 20))]
        else:
            text = names[int(rng.integers(0, 60)) if rng.random() < 0.3 else int(rng.integers(0, texts))]
        key = hashlib.sha256(f"{task} {model} {text} {rng.integers(0, 8)}".encode()).digest()
        events.append(Call(seq, seq, float(ts), lead, task, model, None, key, text, False, False,
                           10, 10, 0, 0, False, None, bytes([int(rng.integers(0, 3))])))
    return events, vectors, {name: i for i, name in enumerate(names)}


TIE = float(np.dot(tie_vectors(48, 2)[0], tie_vectors(48, 2)[1]))  # about 0.5: as the pair product has it
SETTINGS = [
    # Entries pile up; scoring's never hit, so its texts gather rows (as the bench's entries do)
    Settings(tiers=("l3",), l3_ttl=None, l3_threshold=0.9, task_options={"scoring": {"l3_threshold": 1.5}}),
    Settings(tiers=("l3",), l3_ttl=300, l3_threshold=0.85,  # expiries inside blocks; per-task thresholds
             task_options={"scoring": {"l3_threshold": TIE}}),
    Settings(tiers=("l3",), l3_ttl=900, l3_max_entries=150, l3_threshold=0.8,  # capacity (LRU)
             task_ttls={"scoring": {"l3": 120}}),
    Settings(l1_ttl=60, l2_ttl=200, l3_ttl=1200, l3_max_entries=400, workers=3, invalidation="broadcast",
             task_options={"intent": {"l3_threshold": 0.95},
                           "scoring": {"l3_threshold": float(np.sqrt(np.float32(0.5)))}}),  # e0's product with a tie
]


@pytest.mark.parametrize("seed", range(2))
def test_blocked_scoring_equals_the_scan_on_random_logs(monkeypatch, small_blocks, seed):
    events, vectors, row_of_text = random_events(seed)
    for settings in SETTINGS:
        blocked = answers(events, settings, vectors, row_of_text)
        assert blocked == scanned_answers(monkeypatch, events, settings, vectors, row_of_text)
        outcomes = blocked[0]
        assert outcomes.count(2) > 100 and outcomes.count(3) > 100  # l3 hits and misses both
    assert small_blocks["pruned"] > 50 and small_blocks["full"] > 50 and small_blocks["scans"] > 0


def test_blocked_scoring_equals_the_scan_with_the_default_block_sizes(monkeypatch):
    """The block sizes as they are (a quarter of the units: 130 to 220 look-ups here), in one
    group of up to 900 live entries, pruned from 700; each miss stored inside its block."""
    monkeypatch.setattr(semantic, "PRUNE_FROM", 700)
    events, vectors, row_of_text = random_events(7, calls=4000, texts=4000, dim=64, tasks=TASKS[:1], models=MODELS[:1])
    settings = Settings(tiers=("l3",), l3_ttl=None, l3_threshold=0.97)
    built = []  # (look-ups, pruned) per block
    new_block = semantic._Group._new_block
    monkeypatch.setattr(semantic._Group, "_new_block", lambda group, *args: built.append(
        ((block := new_block(group, *args)).end - block.first, block.heads is not None)) or block)
    blocked = answers(events, settings, vectors, row_of_text)
    assert blocked == scanned_answers(monkeypatch, events, settings, vectors, row_of_text)
    assert max(built) > (170, True) and max(size for size, pruned in built if not pruned) > 130


class ShortHashing(HashingEmbedder):
    dim = 256  # pruned blocks are for vectors of up to PRUNE_MAX_DIM coordinates


@pytest.mark.parametrize("seed", range(2))
def test_blocked_scoring_matches_the_oracle_on_small_logs(tmp_path, monkeypatch, small_blocks, seed):
    """The oracle's random logs and settings (tests/test_oracle.py), every look-up blocked."""
    monkeypatch.setattr(semantic, "PRUNE_FROM", 8)
    read = read_log(write(tmp_path / "log.jsonl", random_log(seed)))
    texts = list(dict.fromkeys(c.text for c in read.calls))
    vectors, row_of_text = ShortHashing().encode(texts), {t: i for i, t in enumerate(texts)}
    for settings in VARIANTS:
        assert_engine_matches_oracle(read.events, settings, vectors, row_of_text)
    assert small_blocks["full"] > 0 and small_blocks["pruned"] > 0


def group_of(vectors: np.ndarray, stored: list[int], **settings) -> SemanticTier:
    """A tier holding one entry per row of `stored` (in that order, lead L<i> for the i-th)."""
    row_of_text = {f"t{i}": i for i in range(len(vectors))}
    tier = SemanticTier("l3", lambda call: settings.get("ttl"), None, settings.get("threshold", 0.9), vectors,
                        row_of_text)
    for i, row in enumerate(stored):
        tier.insert(probe(i, row), "w", Origin(i, f"L{i}", 0.0, None), 0.0)
    return tier


def probe(seq: int, row: int) -> Call:
    return Call(seq, seq, 0.0, f"L{seq}", "intent", "m", None, seq.to_bytes(8, "little"), f"t{row}", False, False,
                1, 1, 0, 0, False, None, None)


def test_exact_ties_go_to_the_most_recently_stored(small_blocks):
    vectors = np.vstack([np.eye(1, 16, dtype=np.float32), tie_vectors(16, 15)])
    tier = group_of(vectors, [3, 1, 5, 2, 1, 4], threshold=float(np.dot(vectors[0], vectors[1])))
    queries = [probe(100 + i, 0) for i in range(3)]
    tier.expect(queries)
    found = [tier.find(query, "w", 1.0) for query in queries]
    assert [entry.origin.seq for entry, _ in found] == [5, 5, 5]  # the latest of six equal products
    assert {similarity for _, similarity in found} == {float(np.dot(vectors[0], vectors[4]))}
    assert small_blocks["full"] == 1 and small_blocks["scans"] == 0


def test_exact_ties_among_texts_whose_latest_entries_were_removed(small_blocks):
    """Three texts with three entries each (scored per text), tied: the latest live entry wins,
    also after the latest entries of two texts are removed inside the block."""
    vectors = np.vstack([np.eye(1, 16, dtype=np.float32), tie_vectors(16, 15)])
    tier = group_of(vectors, [1, 2, 3] * 3)
    queries = [probe(100 + i, 0) for i in range(2)]
    tier.expect(queries)
    assert tier.find(queries[0], "w", 1.0)[0] is None  # 0.707 < 0.9
    assert _group(tier, "intent", "m").block.per_text
    tier.remove_lead("L8", 1.0)  # text 3's latest
    tier.remove_lead("L6", 1.0)  # text 1's latest
    tier.threshold = 0.7
    assert tier.find(queries[1], "w", 1.0)[0].origin.seq == 7  # text 2's latest, the latest live one
    assert small_blocks["full"] == 1 and small_blocks["scans"] == 0


def test_a_pruned_block_whose_bounding_entry_died_falls_back_to_the_scan(small_blocks):
    """The entry a pruned block measured its bounds against is removed (a tag change) before the
    look-up: the look-up is scanned, and finds the next best."""
    rng = np.random.default_rng(3)
    vectors = np.zeros((400, 32), dtype=np.float32)  # in 8 of the 32 coordinates: the heads hold
    vectors[:, 3:11] = rng.standard_normal((400, 8))  # all, so the best head is the best entry
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors[1] = vectors[0]  # the query's text: its best entry, row 1, is stored first (lead L0)
    tier = group_of(vectors, list(range(1, 400)), threshold=0.999)
    queries = [probe(1000 + i, 0) for i in range(8)]
    tier.expect(queries)
    entry, similarity = tier.find(queries[0], "w", 1.0)
    assert entry.origin.lead == "L0" and small_blocks["pruned"] == 1
    tier.remove_lead("L0", 1.0)
    entry, similarity = tier.find(queries[1], "w", 1.0)
    best = max(range(2, 400), key=lambda row: float(np.dot(vectors[row], vectors[0])))
    assert (entry, similarity) == (None, float(np.dot(vectors[best], vectors[0])))
    assert small_blocks["scans"] == 1


def test_a_group_where_the_bounds_do_not_prune_goes_back_to_full_scores(monkeypatch, small_blocks):
    """Vectors spread evenly in all 64 directions: the heads hold too little to prune, so after
    eight look-ups the group pauses pruning; the answers stay the scan's."""
    monkeypatch.setattr(semantic, "PRUNE_USEFUL", 1 / 8)
    rng = np.random.default_rng(5)
    vectors = rng.standard_normal((700, 64)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    tier, scanned = (group_of(vectors, list(range(500)), threshold=0.3) for _ in range(2))
    queries = [probe(1000 + i, 500 + i) for i in range(200)]
    tier.expect(queries)
    for query in queries:
        entry, similarity = tier.find(query, "w", 1.0)
        expected, expected_similarity = scanned.find(query, "w", 1.0)
        assert (entry and entry.key, similarity) == (expected and expected.key, expected_similarity)
    assert small_blocks["pruned"] == 1 and small_blocks["full"] >= 1
    assert _group(tier, "intent", "m").prune_paused > 0


def test_a_call_not_announced_is_scanned(small_blocks):
    vectors = tie_vectors(16, 15)
    tier = group_of(vectors, list(range(15)))
    unembedded = probe(99, 3)
    unembedded.text = "a text of a task with L3 off: not embedded"
    tier.expect([unembedded, probe(100, 3)])
    assert tier.find(probe(101, 3), "w", 1.0)[0].origin.seq == 3  # not among the calls announced
    assert tier.find(probe(100, 4), "w", 1.0)[0].origin.seq == 4  # announced with another text
    assert small_blocks["scans"] == 2 and small_blocks["full"] == 0


def _group(tier, task: str, model: str):
    """The one L3 group of a task and model (a group is also keyed by parameters and scope,
    semantic.l3_group; these logs record neither)."""
    groups = [group for key, group in tier.groups.items() if key[:2] == (task, model)]
    assert len(groups) == 1
    return groups[0]
