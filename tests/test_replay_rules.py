"""Golden tests: one small hand-written log per replay rule, with exact expected outcomes."""

import math

import pytest

from logs import call, replay_records, tag

LONG = 10**7  # seconds: longer than any TTL in these tests


def outcomes(tmp_path, records, **settings):
    return replay_records(tmp_path, records, **settings)[1]


# --- TTL ------------------------------------------------------------------------------------------

def test_ttl_boundary_hit_just_before_expiry_miss_at_it(tmp_path):
    records = [call(0), call(299.999), call(300)]
    assert outcomes(tmp_path, records, tiers=("l1",), l1_ttl=300) == ["miss", "l1", "miss"]


def test_hits_never_extend_expiry(tmp_path):
    records = [call(0), call(200), call(350), call(500)]
    # 0 stores until 300; the hit at 200 does not extend it; 350 misses and stores until 650.
    assert outcomes(tmp_path, records, tiers=("l1",), l1_ttl=300) == ["miss", "l1", "miss", "l1"]


def test_ttl_none_never_expires(tmp_path):
    assert outcomes(tmp_path, [call(0), call(LONG)], tiers=("l1",), l1_ttl=None) == ["miss", "l1"]


def test_each_tier_uses_its_own_ttl(tmp_path):
    # Same worker: L1 (5m) expires first, then L2 (15m) serves, then L3 (1h), then a miss.
    records = [call(0), call(301), call(1000), call(3700)]
    assert outcomes(tmp_path, records) == ["miss", "l2", "l3", "miss"]


# --- workers and promotion ------------------------------------------------------------------------

def test_l2_hit_is_copied_into_the_workers_l1_with_l1_ttl(tmp_path):
    records = [
        call(0, worker="w1"),
        call(10, worker="w2"),   # L2 hit, copied into w2's L1 until 310
        call(20, worker="w2"),   # L1 hit
        call(305, worker="w2"),  # still in w2's L1
        call(311, worker="w2"),  # w2's L1 copy expired; L2 (until 900) serves and copies again
        call(312, worker="w3"),  # w3 never had it
        call(899, worker="w2"),  # w2's second copy (until 611) expired; L2 still live
        call(900, worker="w4"),  # L2 expired; L3 (1h) serves
    ]
    assert outcomes(tmp_path, records) == ["miss", "l2", "l1", "l1", "l2", "l2", "l2", "l3"]


def test_calls_without_worker_share_the_default_worker(tmp_path):
    records = [call(0), call(1, worker="w1"), call(2)]
    assert outcomes(tmp_path, records) == ["miss", "l2", "l1"]


def test_workers_round_robin_ignores_recorded_worker_and_counts_bypassed_calls(tmp_path):
    records = [
        call(0, worker="x"),                   # w1: miss
        call(1, worker="x", streaming=True),   # w2: bypass (takes a slot)
        tag(2, lead="Z"),                      # takes no slot
        call(3, worker="x"),                   # w1: L1 hit
        call(4, worker="x"),                   # w2: L2 hit
    ]
    summary, got = replay_records(tmp_path, records, workers=2)
    assert got == ["miss", "bypass", "l1", "l2"]


# --- capacity -------------------------------------------------------------------------------------

def test_capacity_evicts_least_recently_used(tmp_path):
    records = [call(0, prompt="a"), call(1, prompt="b"), call(2, prompt="a"),  # a used after b
               call(3, prompt="c"),   # full: evicts b (LRU)
               call(4, prompt="a"),   # a survived
               call(5, prompt="b"),   # b was evicted: miss, evicts c (LRU: a used at 4)
               call(6, prompt="c")]
    assert outcomes(tmp_path, records, tiers=("l1",), l1_ttl=None, l1_max_entries=2) == [
        "miss", "miss", "l1", "miss", "l1", "miss", "miss"]


def test_capacity_drops_expired_entries_before_evicting_live_ones(tmp_path):
    records = [call(0, prompt="a"),   # until 10
               call(5, prompt="b"),   # until 15
               call(6, prompt="a"),   # hit: a is now most recently used, b least
               call(11, prompt="c"),  # full: a has expired and goes first, so b stays
               call(12, prompt="b")]
    assert outcomes(tmp_path, records, tiers=("l1",), l1_ttl=10, l1_max_entries=2) == [
        "miss", "miss", "l1", "miss", "l1"]


def test_l1_capacity_is_per_worker(tmp_path):
    records = [call(0, prompt="a", worker="w1"), call(1, prompt="b", worker="w2"),
               call(2, prompt="a", worker="w1"), call(3, prompt="b", worker="w2")]
    assert outcomes(tmp_path, records, tiers=("l1",), l1_max_entries=1) == ["miss", "miss", "l1", "l1"]


# --- bypass ---------------------------------------------------------------------------------------

def test_streaming_and_tool_calls_are_neither_looked_up_nor_stored(tmp_path):
    records = [call(0, streaming=True), call(1), call(2, use_tools=True), call(3)]
    summary, got = replay_records(tmp_path, records)
    assert got == ["bypass", "miss", "bypass", "l1"]
    assert summary["bypassed"] == 2 and summary["requests"] == 4 and summary["hit_rate"] == 0.25
    # bypassed calls are billed like misses
    per_call = 1000 * 3 / 1e6 + 100 * 15 / 1e6
    assert summary["cost"]["cached_usd"] == pytest.approx(3 * per_call)


# --- invalidation, staleness, mismatches ----------------------------------------------------------

def _cold_then_warm():
    # Lead A is scored on w1, served from L2 on w2, then w1 tags it Warm.
    return [call(0, worker="w1", response="Cold"), call(1, worker="w2", response="Cold"),
            tag(2, tag="Warm", worker="w1"),
            call(3, worker="w2", response="Warm"),   # w2's L1 still holds the Cold answer
            call(4, worker="w1", response="Warm")]


def test_local_invalidation_leaves_other_workers_l1_stale(tmp_path):
    summary, got = replay_records(tmp_path, _cold_then_warm())
    assert got == ["miss", "l2", "l1", "miss"]
    assert summary["tiers"]["l1"]["stale_hits"] == 1 and summary["tiers"]["l1"]["mismatched_hits"] == 1
    assert summary["stale_hits"] == 1
    assert summary["invalidated"] == {"l1": 1, "l2": 1, "l3": 1}


def test_broadcast_invalidation_clears_every_l1(tmp_path):
    summary, got = replay_records(tmp_path, _cold_then_warm(), invalidation="broadcast")
    assert got == ["miss", "l2", "miss", "l2"]
    assert summary["stale_hits"] == 0 and summary["mismatched_hits"] == 0
    assert summary["invalidated"] == {"l1": 2, "l2": 1, "l3": 1}


def test_tag_change_without_worker_clears_the_l1_of_the_leads_latest_call(tmp_path):
    records = [call(0, worker="w1"), call(1, worker="w2"), tag(2),  # latest call of A: w2
               call(3, worker="w2"), call(4, worker="w1")]
    summary, got = replay_records(tmp_path, records)
    assert got == ["miss", "l2", "miss", "l1"]
    assert summary["stale_hits"] == 1  # w1 still had A's entry from before the tag change


def test_tag_change_of_a_lead_without_calls_clears_no_l1(tmp_path):
    records = [tag(0, lead="A"), call(0, lead="A", worker="w1"), tag(1, lead="B"), call(2, lead="A", worker="w1")]
    summary, got = replay_records(tmp_path, records)
    assert got == ["miss", "l1"]
    assert summary["invalidated"] == {"l1": 0, "l2": 0, "l3": 0} and summary["tag_changes"] == 2


def test_with_round_robin_the_tag_changes_worker_field_is_ignored(tmp_path):
    records = [call(0, worker="x"),   # w1
               call(1, worker="x"),   # w2: L2 hit
               tag(2, worker="w1"),   # ignored: A's latest call was on w2, so w2 is cleared
               call(3),               # w1: still has A's entry, stale
               call(4)]               # w2: cleared, and L2/L3 were cleared: miss
    summary, got = replay_records(tmp_path, records, workers=2)
    assert got == ["miss", "l2", "l1", "miss"]
    assert summary["stale_hits"] == 1


def test_invalidation_removes_entries_filled_by_the_lead_not_those_it_was_served(tmp_path):
    same = "what is the price of 12 Elm St"
    records = [call(0, lead="B", prompt=same, worker="w1", response="450k"),
               call(1, lead="A", prompt=same, worker="w1", response="450k"),  # A served B's entry
               tag(2, lead="A", worker="w1"),
               call(3, lead="A", prompt=same, worker="w1", response="450k")]
    summary, got = replay_records(tmp_path, records)
    assert got == ["miss", "l1", "l1"]
    assert summary["stale_hits"] == 0  # filled by B: not stale for A


def test_stale_needs_fill_before_the_latest_tag_change(tmp_path):
    records = [call(0, worker="w1"), call(1, worker="w2"),
               tag(2, worker="w1"),
               call(3, worker="w1"),   # refilled after the tag change
               call(4, worker="w1"),   # L1 hit, filled at 3: fresh
               call(5, worker="w2")]   # w2's copy was filled at 0: stale
    summary, got = replay_records(tmp_path, records)
    assert got == ["miss", "l2", "miss", "l1", "l1"]
    assert summary["stale_hits"] == 1


def test_mismatch_compares_responses_after_stripping_whitespace(tmp_path):
    records = [call(0, response="intent: price"), call(1, response="  intent: price\n"),
               call(2, response="intent: schedule"), call(3), call(4, prompt="other"),
               call(5, prompt="other", response="x")]
    summary, got = replay_records(tmp_path, records)
    assert got == ["miss", "l1", "l1", "l1", "miss", "l1"]
    # only the call at 2 differs; a missing response on either side is never a mismatch
    assert summary["mismatched_hits"] == 1


def test_copies_keep_the_origin_call(tmp_path):
    records = [call(0, worker="w1", response="first"),
               call(1, worker="w2", response="second"),  # L2 hit: copy of the first
               call(2, worker="w2", response="second")]  # L1 copy still says "first"
    summary, _ = replay_records(tmp_path, records)
    assert summary["mismatched_hits"] == 2


# --- ordering -------------------------------------------------------------------------------------

def test_events_are_processed_in_ts_order_and_ties_keep_file_order(tmp_path):
    records = [call(10, response="late"),
               call(5, response="early"),
               call(7, worker="w2"), tag(7, worker="w2"), call(7, worker="w2"),
               "", "   "]  # blank lines are skipped
    summary, got = replay_records(tmp_path, records)
    # processing order: 5 (miss), 7 (w2: L2 hit), tag, 7 (w2: cleared; L2 cleared: miss), 10 (L1 hit)
    assert got == ["miss", "l2", "miss", "l1"]
    assert summary["mismatched_hits"] == 1  # the call at 10 ("late") got the entry of the call at 5


def test_string_timestamps_and_epoch_numbers_mix(tmp_path):
    records = [call("1970-01-01T00:01:40Z"), call(99.5), call("1970-01-01T01:01:40+01:00")]
    # processing order: 99.5 (miss), then the two equal times 100 in file order
    assert outcomes(tmp_path, records) == ["miss", "l1", "l1"]


# --- keys -----------------------------------------------------------------------------------------

def test_equivalent_requests_share_a_key(tmp_path):
    records = [
        call(0, prompt="hi"),
        call(1, messages=[{"role": "user", "content": "hi"}]),
        call(2, messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]}]),
        call(3, messages=[{"role": "user", "content": [{"type": "text", "text": "hi",
                                                       "cache_control": {"type": "ephemeral"}}]}]),
    ]
    assert outcomes(tmp_path, records, tiers=("l1",)) == ["miss", "l1", "l1", "l1"]


def test_task_model_system_and_history_are_part_of_the_key(tmp_path):
    records = [
        call(0), call(1, task="scoring"), call(2, model="claude-haiku-4-5"), call(3, system="be brief"),
        call(4, messages=[{"role": "assistant", "content": "hello"}, {"role": "user", "content": "hello there"}]),
        call(5, system=[{"type": "text", "text": "be brief"}]),
    ]
    assert outcomes(tmp_path, records, tiers=("l1",)) == ["miss"] * 5 + ["l1"]


# --- L3 (fast hashing embedder: cosine = shared words / words) ------------------------------------

WORDS12 = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima"


def test_l3_threshold_is_inclusive_and_per_task_and_model(tmp_path):
    twelve_of_thirteen = (WORDS12 + " mike", WORDS12 + " november")  # cosine 12/13 = 0.923
    eleven_of_twelve = (WORDS12.rsplit(" ", 1)[0] + " oscar", WORDS12.rsplit(" ", 1)[0] + " papa")
    records = [
        call(0, prompt=twelve_of_thirteen[0], worker="w1"),
        call(1, prompt=twelve_of_thirteen[1], worker="w2"),  # 0.923 >= 0.92: L3
        call(2, prompt=eleven_of_twelve[0], worker="w1"),
        call(3, prompt=eleven_of_twelve[1], worker="w2"),    # 0.917 < 0.92: miss
        call(4, prompt=twelve_of_thirteen[1], task="other", worker="w3"),  # other task: miss
        call(5, prompt=twelve_of_thirteen[1], worker="w2"),  # the L3 hit was copied into w2's L1
    ]
    summary, got = replay_records(tmp_path, records)
    assert got == ["miss", "l3", "miss", "miss", "miss", "l1"]
    assert summary["tiers"]["l3"]["hits"] == 1


def test_l3_hit_copies_into_l2_under_the_callers_key(tmp_path):
    records = [call(0, prompt=WORDS12 + " mike", worker="w1"),
               call(1, prompt=WORDS12 + " november", worker="w2"),  # L3
               call(2, prompt=WORDS12 + " november", worker="w3")]  # L2, copied at 1
    assert outcomes(tmp_path, records) == ["miss", "l3", "l2"]


def test_l3_ties_go_to_the_most_recently_stored(tmp_path):
    # "p x" and "p y" have cosine 0.5 (both stored); "p x y" is 0.816 from each: an exact tie.
    records = [call(0, prompt="p x", response="older"), call(1, prompt="p y", response="newer"),
               call(2, prompt="p x y", response="newer")]
    summary, got = replay_records(tmp_path, records, tiers=("l3",), l3_threshold=0.8)
    assert got == ["miss", "miss", "l3"]
    assert summary["mismatched_hits"] == 0  # served "newer"


def test_l3_takes_the_most_similar_live_entry(tmp_path):
    records = [call(0, prompt="p q r s", response="far"), call(1, prompt="t u v w", response="near"),
               call(2, prompt="t u v w p", response="near")]  # cosine 0.22 to the first, 0.89 to the second
    summary, got = replay_records(tmp_path, records, tiers=("l3",), l3_threshold=0.6)
    assert got == ["miss", "miss", "l3"]
    assert summary["mismatched_hits"] == 0


def test_l3_ignores_expired_entries(tmp_path):
    records = [call(0, prompt=WORDS12, worker="w1"), call(3600, prompt=WORDS12 + " x", worker="w2")]
    assert outcomes(tmp_path, records, tiers=("l3",)) == ["miss", "miss"]


def test_only_enabled_tiers_are_looked_up_and_filled(tmp_path):
    records = [call(0, worker="w1"), call(1, worker="w1"), call(2, worker="w2")]
    summary, got = replay_records(tmp_path, records, tiers=("l2",))
    assert got == ["miss", "l2", "l2"]
    assert not summary["tiers"]["l1"]["enabled"] and summary["tiers"]["l2"]["enabled"]
    assert "embeddings" not in summary  # no L3: nothing embedded


# --- cost and latency -----------------------------------------------------------------------------

def test_cost_latency_and_per_lead_figures(tmp_path):
    records = [call(0, lead="A", worker="w1", latency_ms=1000),
               call(1, lead="A", worker="w1", latency_ms=900),   # L1: 0.01 ms
               call(2, lead="B", worker="w2", latency_ms=800),   # L2: 0.01 + 1 ms
               call(3, lead="B", prompt="new", worker="w2")]     # miss: 1000 + 0.01 + 1 + 13 ms
    summary, got = replay_records(tmp_path, records)
    assert got == ["miss", "l1", "l2", "miss"]
    per_call = 1000 * 3 / 1e6 + 100 * 15 / 1e6
    assert summary["cost"]["baseline_usd"] == pytest.approx(4 * per_call)
    assert summary["cost"]["cached_usd"] == pytest.approx(2 * per_call)
    assert summary["cost"]["savings_pct"] == pytest.approx(50.0)
    assert summary["leads"] == 2
    assert summary["cost_per_lead"]["baseline_usd"] == pytest.approx(2 * per_call)
    cached = sorted([1014.01, 0.01, 1.01, 1014.01])
    assert summary["latency_ms"]["cached"]["mean"] == pytest.approx(sum(cached) / 4)
    assert summary["latency_ms"]["baseline"]["mean"] == pytest.approx(925.0)
    assert summary["latency_ms"]["baseline"]["p50"] == pytest.approx(950.0)
    assert summary["by_task"]["intent"] == {
        "requests": 4, "tiers": ["l1", "l2", "l3"], "l1": 1, "l2": 1, "l3": 0, "misses": 2, "bypassed": 0,
        "baseline_usd": pytest.approx(4 * per_call), "cached_usd": pytest.approx(2 * per_call),
        "stale_hits": 0, "mismatched_hits": 0, "mismatched_unparsable": 0, "unparsable_answers": 0,
        "mismatched_by_tier": {"l1": 0, "l2": 0, "l3": 0},
        # B's L2 hit is A's entry: another lead's answer (no answers recorded: none differs)
        "cross_lead_hits": 1, "cross_lead_mismatched": 0, "cross_lead_unknown": 0,
        "cross_lead_by_tier": {"l1": {"hits": 0, "mismatched": 0}, "l2": {"hits": 1, "mismatched": 0},
                               "l3": {"hits": 0, "mismatched": 0}},
        "noise_floor": {"repeats": 0, "differ": 0, "share": None}}  # no answers recorded: no repeats to judge


def test_cache_tokens_are_priced_and_missing_figures_are_counted(tmp_path):
    records = [call(0, cache_read_input_tokens=10000, cache_creation_input_tokens=2000),
               call(1, prompt="x" * 400, input_tokens=None, output_tokens=None, latency_ms=None, response="y" * 41)]
    summary, _ = replay_records(tmp_path, records)
    first = (1000 * 3 + 100 * 15 + 10000 * 0.3 + 2000 * 3.75) / 1e6
    second = (100 * 3 + 11 * 15) / 1e6  # 400 chars -> 100 tokens; 41 chars -> 11 tokens
    assert summary["cost"]["baseline_usd"] == pytest.approx(first + second)
    assert summary["estimated_token_calls"] == 1
    assert summary["default_latency_calls"] == 1
    assert summary["latency_ms"]["baseline"]["mean"] == pytest.approx((1000 + 1200) / 2)
    assert math.isclose(summary["span_s"], 1.0)


# --- per-task and adaptive TTLs -------------------------------------------------------------------

def test_a_task_uses_its_own_ttl_in_every_tier(tmp_path):
    records = [call(0, task="market_context"), call(0, task="intent"),
               call(400, task="market_context", worker="w2"), call(400, task="intent", worker="w2")]
    # market context keeps L2 for 1h; intent keeps the default 5m L1 and a 2m L2
    summary, got = replay_records(tmp_path, records, tiers=("l1", "l2"),
                                  task_ttls={"market_context": {"l2": 3600}, "intent": {"l2": 120}})
    assert got == ["miss", "miss", "l2", "miss"]


def test_adaptive_ttl_shrinks_with_the_leads_velocity(tmp_path):
    # lead A makes 4 calls in a minute: at the 4th, velocity 4/min, scale 2/min -> TTL / 3
    fast = [call(0, prompt="x"), call(10, prompt="y"), call(20, prompt="z"), call(30, prompt="p"),
            call(30 + 100, prompt="p")]  # 100 s later: beyond 300/3 = 100 s
    assert outcomes(tmp_path, fast, tiers=("l1",), adaptive_window=60, adaptive_scale=2) == ["miss"] * 5
    # the same TTL without adaptive, or for a quiet lead (velocity 1/min -> TTL / 1.5 = 200 s)
    assert outcomes(tmp_path, fast, tiers=("l1",)) == ["miss"] * 4 + ["l1"]
    quiet = [call(0, prompt="p"), call(199, prompt="p"), call(200, prompt="p")]
    assert outcomes(tmp_path, quiet, tiers=("l1",), adaptive_window=60, adaptive_scale=2) == ["miss", "l1", "miss"]


def test_vectorised_prices_equal_call_by_call_prices(tmp_path):
    import random

    from tiercli.ingest.logread import read_log
    from tiercli.economics.pricing import Pricer
    from tiercli.settings import ModelPrice

    rng = random.Random(3)
    records = [call(rng.randrange(0, 3 * 86400), prompt=f"p{i}", model=rng.choice(["claude-sonnet-4-5", "claude-haiku-4-5", "own-model"]),
                    input_tokens=rng.choice([0, 5, 1999, 150_000, 199_999, 200_001, 400_000]),
                    output_tokens=rng.randrange(0, 4000), cache_read_input_tokens=rng.choice([0, 1000, 60_000]),
                    cache_creation_input_tokens=rng.choice([0, 7, 2048])) for i in range(300)]
    from logs import write

    calls = read_log(write(tmp_path / "log.jsonl", records), known_model=lambda m: True).calls
    pricer = Pricer({"own-model": ModelPrice(0.123, 0.4567)})
    assert list(pricer.costs(calls)) == [pricer.cost(c) for c in calls]


def test_a_tier_left_out_of_a_tasks_tiers_is_off_for_it_and_reported(tmp_path):
    records = [call(0, prompt="same words here", task="memory"), call(10, prompt="same words here!", task="memory"),
               call(20, prompt="same words here", task="intent"), call(30, prompt="same words here!", task="intent")]
    summary, got = replay_records(tmp_path, records, task_options={"memory": {"tiers": ("l1", "l2")}},
                                  l3_threshold=0.5)
    assert got == ["miss", "miss", "miss", "l3"]  # the near-duplicate hits L3 for intent only
    assert summary["by_task"]["memory"]["tiers"] == ["l1", "l2"]
    assert summary["by_task"]["intent"]["tiers"] == ["l1", "l2", "l3"]
