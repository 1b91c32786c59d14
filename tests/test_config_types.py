"""Every key a config file accepts, given a value of every TOML type: a wrong one is one line,
`FILE: KEY: ...` saying what the key takes, never an internal error; an unknown key suggests
the close ones (issue 21 items 18 and 10). The loader is called directly: no replay."""

import pytest

from tiercli.errors import ConfigError
from tiercli.settings import TASK_SETTINGS, load_config

# One value of each TOML type (an array and an array of arrays of what no key takes, a table
# with a key no table takes), and the empty array and table.
SAMPLES = {
    "integer": "5", "float": "2.5", "boolean": "true", "string": '"x"', "array": "[5]",
    "array of strings": '["x"]', "array of arrays": '[["l1"]]', "table": "{ a = 1 }",
    "offset date-time": "1979-05-27T07:32:00Z", "local date-time": "1979-05-27T07:32:00",
    "local date": "1979-05-27", "local time": "07:32:00", "empty array": "[]", "empty table": "{}",
}
NUMBER = {"integer", "float"}
DURATION = NUMBER  # "x" is not a duration; 5 and 2.5 are seconds

# The samples each key takes (every other sample is an error); the key as the error names it.
TOP_LEVEL = {
    "tiers": set(), "workers": {"integer"}, "invalidation": set(), "mode": set(), "embedder": set(), "default_latency_ms": NUMBER,
    "l3_model": {"string"}, "l2_redis_url": set(), "l2_redis_timeout": DURATION, "l2_maxmemory": {"integer"},
    "l2_eviction": set(), "keep_redis_keys": {"boolean"}, "adaptive_window": DURATION, "adaptive_scale": NUMBER,
    "max_spend": NUMBER, "same_answer": set(), "l3_text": set(), "template_share": set(), "l3_threshold": set(),
    "map": {"empty table"}, "tasks": {"empty table"}, "prices": {"empty table"},
    "prompt_cache_ttl": set(), "prompt_cache_breakpoints": set(), "prompt_cache_min_tokens": {"table", "empty table"},
    "batch_discount": set(), "batch_latency": DURATION, "executor": {"empty table"}, "ray_address": set(),
    "key_params": {"empty array"},  # no parameter: as "none"
    "scope": {"empty array"}, "key": set(), "timezone": set(),  # no scope value: as "none"
    **{f"{tier}_ttl": DURATION for tier in ("l1", "l2", "l3")},
    **{f"{tier}_max_entries": {"integer"} for tier in ("l1", "l2", "l3")},
    **{f"{tier}_latency_ms": NUMBER for tier in ("l1", "l2", "l3")},
}
# The same keys written in their tables: [l1] ttl = ..., [prompt_cache] breakpoints = ...
IN_TABLES = {(table, key.removeprefix(table + "_")): key for key in TOP_LEVEL
             for table in ("l1", "l2", "l3", "prompt_cache") if key.startswith(table + "_")}
IN_TABLES[("executor", "use")] = "executor"
IN_TABLES[("executor", "ray_address")] = "ray_address"
TASK_KEYS = {"l1_ttl": DURATION, "l2_ttl": DURATION, "l3_ttl": DURATION, "tiers": {"empty array"},
             "l3_threshold": set(), "same_answer": set(), "l3_text": set(), "key_params": {"empty array"},
             "scope": {"empty array"}, "key": set()}
MAP_KEYS = ("ts", "lead_id", "task_type", "model", "prompt", "messages", "response", "usage")
PRICE_KEYS = ("input_per_mtok", "output_per_mtok", "cache_read_per_mtok", "cache_write_per_mtok",
              "cache_write_1h_per_mtok")


def loaded(tmp_path, text):
    config = tmp_path / "c.toml"
    config.write_text(text)
    return config, load_config(config)


def check(tmp_path, text, key, sample, takes):
    """The config loads when the key takes the sample; else one ConfigError line naming the file
    and the key (or, in a table given as the sample, the key inside it)."""
    if sample in takes:
        loaded(tmp_path, text)
        return
    with pytest.raises(ConfigError) as caught:
        loaded(tmp_path, text)
    error = caught.value
    where = f"{tmp_path / 'c.toml'}: {key}"
    assert error.message.startswith((f"{where}: ", f"{where}.")), error.message  # the key, or one inside it
    assert "\n" not in error.message and "\n" not in (error.hint or "")
    assert "'int' object" not in error.message and "attribute" not in error.message  # no Python internals


def test_every_key_of_the_settings_is_covered():
    from tiercli.settings import _CHECKS

    assert set(TOP_LEVEL) == set(_CHECKS) | {"prices"}
    assert set(TASK_KEYS) == set(TASK_SETTINGS)


@pytest.mark.parametrize("sample", SAMPLES)
@pytest.mark.parametrize("key", TOP_LEVEL)
def test_top_level_keys(tmp_path, key, sample):
    check(tmp_path, f"{key} = {SAMPLES[sample]}\n", key, sample, TOP_LEVEL[key])


@pytest.mark.parametrize("sample", SAMPLES)
@pytest.mark.parametrize("table, key", IN_TABLES)
def test_keys_in_their_tables(tmp_path, table, key, sample):
    flat = IN_TABLES[(table, key)]
    takes = TOP_LEVEL[flat] - {"empty table"} if table == "executor" else TOP_LEVEL[flat]  # executor = {} is [executor]
    check(tmp_path, f"[{table}]\n{key} = {SAMPLES[sample]}\n", flat, sample, takes)


@pytest.mark.parametrize("sample", SAMPLES)
@pytest.mark.parametrize("key", TASK_KEYS)
def test_task_keys(tmp_path, key, sample):
    check(tmp_path, f"[tasks.t]\n{key} = {SAMPLES[sample]}\n", f"tasks.t.{key}", sample, TASK_KEYS[key])


@pytest.mark.parametrize("sample", SAMPLES)
@pytest.mark.parametrize("key", MAP_KEYS)
def test_map_keys(tmp_path, key, sample):
    check(tmp_path, f"[map]\n{key} = {SAMPLES[sample]}\n", f"map.{key}", sample, {"string"})


@pytest.mark.parametrize("sample", SAMPLES)
@pytest.mark.parametrize("key", PRICE_KEYS)
def test_price_keys(tmp_path, key, sample):
    others = "".join(f"{other} = 1\n" for other in ("input_per_mtok", "output_per_mtok") if other != key)
    check(tmp_path, f'[prices."m"]\n{others}{key} = {SAMPLES[sample]}\n', f"prices.m.{key}", sample, NUMBER)


@pytest.mark.parametrize("sample", SAMPLES)
def test_min_tokens_of_a_model(tmp_path, sample):
    check(tmp_path, f'[prompt_cache.min_tokens]\n"m" = {SAMPLES[sample]}\n', "prompt_cache_min_tokens.m", sample,
          {"integer"})


@pytest.mark.parametrize("table", ["l1", "l2", "l3", "prompt_cache", "tasks", "prices", "map"])
@pytest.mark.parametrize("sample", ["integer", "string", "array"])
def test_a_table_given_as_a_value(tmp_path, table, sample):
    check(tmp_path, f"{table} = {SAMPLES[sample]}\n", table, sample, set())


@pytest.mark.parametrize("sample", SAMPLES)
def test_a_task_or_a_price_that_is_not_a_table(tmp_path, sample):
    check(tmp_path, f"[tasks]\nt = {SAMPLES[sample]}\n", "tasks.t", sample, {"empty table"})
    check(tmp_path, f'[prices]\nm = {SAMPLES[sample]}\n', "prices.m", sample, set())


# --- the issue's cases, word for word ---------------------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ("tiers = 5\n",
     'tiers: must be a list of tier names such as ["l1", "l2"] (or "l1,l2"), got an integer (5)'),
    ("[tasks.t]\ntiers = 5\n",
     'tasks.t.tiers: must be a list of tier names such as ["l1", "l2"] (or "l1,l2"), got an integer (5)'),
    ("tiers = [5]\n",
     'tiers: must be a list of tier names such as ["l1", "l2"] (or "l1,l2"), got an array holding an integer (5)'),
    ('tiers = [["l1"]]\n',
     'tiers: must be a list of tier names such as ["l1", "l2"] (or "l1,l2"), got an array holding an array'),
    ("[prompt_cache]\nbreakpoints = [1, 2]\n",
     'prompt_cache_breakpoints: must be system, last, or both (["system", "last"] or "system,last"), '
     "got an array holding an integer (1)"),
    ("[map]\nlead_id = 5\n", 'map.lead_id: must be a path into the records as a string, e.g. "metadata.lead_id", '
                            "got an integer (5)"),
    ('l3_model = 5\n', "l3_model: must be the path of a local sentence-transformers model folder, got an integer (5)"),
    ('l1_ttl = [5]\n', 'l1_ttl: must be a duration: seconds (300), or text such as "5m", "1h" or "none", got an array'),
])
def test_the_issues_type_errors(tmp_path, text, message):
    with pytest.raises(ConfigError) as caught:
        loaded(tmp_path, text)
    assert caught.value.message == f"{tmp_path / 'c.toml'}: {message}"


# --- unknown keys: did you mean ---------------------------------------------------------------------

@pytest.mark.parametrize("text, key, hint", [
    ("l2_tll = 5\n", "l2_tll", "did you mean l2_ttl?"),
    ("[l2]\ntll = 5\n", "l2_tll", "did you mean l2_ttl?"),
    ("same_anwser = 'exact'\n", "same_anwser", "did you mean same_answer?"),
    ("[prompt_cache]\nbreakpionts = 'last'\n", "prompt_cache_breakpionts", "did you mean prompt_cache_breakpoints?"),
    ("[tasks.t]\nl3_treshold = 0.9\n", "tasks.t.l3_treshold", "did you mean l3_threshold?"),
    ("ttl = '5m'\n", "ttl", "did you mean l1_ttl, l2_ttl or l3_ttl?"),
    ('[prices."m"]\ninput_per_mtk = 1\noutput_per_mtok = 1\n', "prices.m.input_per_mtk",
     "did you mean input_per_mtok?"),
    ("[executor]\nuse = 'ray'\nray_adress = 'auto'\n", "executor.ray_adress", "did you mean ray_address?"),
])
def test_an_unknown_key_suggests_the_close_one(tmp_path, text, key, hint):
    with pytest.raises(ConfigError) as caught:
        loaded(tmp_path, text)
    assert caught.value.message == f"{tmp_path / 'c.toml'}: {key}: unknown setting"
    assert caught.value.hint == hint


def test_an_unknown_field_of_the_map_suggests_the_close_one(tmp_path):
    with pytest.raises(ConfigError) as caught:
        loaded(tmp_path, "[map]\nlead = 'a'\n")
    assert caught.value.message == f"{tmp_path / 'c.toml'}: map.lead: not a field tiercli reads"
    assert caught.value.hint == "did you mean lead_id?"


def test_an_unknown_key_far_from_every_one_lists_them_all(tmp_path):
    with pytest.raises(ConfigError) as caught:
        loaded(tmp_path, "colour = 'blue'\n")
    assert caught.value.message.endswith(": colour: unknown setting")
    assert caught.value.hint.startswith("known settings: adaptive_scale, adaptive_window, batch_discount, ")
    assert caught.value.hint.count(", ") == 41  # all 42, prices among them
