"""Replay settings: defaults from the reference case, a TOML config file, then command-line flags."""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tiercli.durations import format_duration, parse_duration
from tiercli.errors import ConfigError, UsageError, described
from tiercli.core.answers import parse_rule
from tiercli.core.fieldmap import TARGETS, parse_map
from tiercli.core.keys import PARAM_ALIASES, PARAMS
from tiercli.core.l3text import parse_l3_text
from tiercli.core.ttl import TIER_NAMES
from tiercli.redis.conn import URL_FORMS, mask_url, url_problem

INVALIDATION_MODES = ("local", "broadcast")
CACHE_MODES = ("live", "shadow")  # the runtime cache (tiercli.cache): serve hits, or only record what it would serve
# key = "request" (today's rule) | "last-user" | "conversation" | "scope-only" | a list of parts
KEY_PARTS = ("system", "messages", "conversation", "last-user")
KEY_MODES = {"request": ("system", "messages"), "last-user": ("last-user",), "conversation": ("conversation",),
             "scope-only": ()}


@dataclass(frozen=True)
class ModelPrice:
    """USD per million tokens, for models genai-prices does not know (or to override it)."""

    input_per_mtok: float
    output_per_mtok: float
    cache_read_per_mtok: float | None = None  # default: 10% of input, as Anthropic prices it
    cache_write_per_mtok: float | None = None  # default: 125% of input (5-minute writes)
    cache_write_1h_per_mtok: float | None = None  # default: 200% of input (1-hour writes, prompt_cache_ttl = "1h")


@dataclass(frozen=True)
class Settings:
    tiers: tuple[str, ...] = TIER_NAMES
    workers: int | None = None  # None: use each call's recorded `worker`
    l1_ttl: float | None = 300.0
    l2_ttl: float | None = 900.0
    l3_ttl: float | None = 3600.0
    l1_max_entries: int | None = None
    l2_max_entries: int | None = None
    l3_max_entries: int | None = None
    l3_threshold: float = 0.92
    invalidation: str = "local"
    # Look-up latency of each tier in ms; see README "Latency model" for where they come from.
    l1_latency_ms: float = 0.01
    l2_latency_ms: float = 1.0
    l3_latency_ms: float = 13.0
    default_latency_ms: float = 1200.0  # a call with no recorded latency_ms
    l3_model: str | None = None  # a local sentence-transformers model folder; None: all-MiniLM-L6-v2
    embedder: str = "onnx"  # L3's backend: onnx (ONNX Runtime, checked against torch) or torch (sentence-transformers)
    l2_redis_url: str | None = None  # L2 in this Redis; "embedded": start a private redis-server
    l2_redis_timeout: float = 2.0  # seconds, for connecting and for each command
    l2_maxmemory: str | None = None  # embedded server only: Redis's maxmemory, e.g. "64mb"
    l2_eviction: str | None = None  # embedded server only: maxmemory-policy (default allkeys-lru)
    keep_redis_keys: bool = False
    task_ttls: dict[str, dict[str, float | None]] = field(default_factory=dict)  # [tasks.NAME] l2_ttl = "1h"
    adaptive_window: float | None = None  # seconds; None: fixed TTLs (see tiercli/core/ttl.py)
    adaptive_scale: float = 1.0  # calls per minute at which the TTL halves
    prices: dict[str, ModelPrice] = field(default_factory=dict)
    max_spend: float | None = None  # live mode's spend cap in USD; --max-spend overrides it
    field_map: dict[str, str] = field(default_factory=dict)  # [map]: where other formats keep our fields
    same_answer: str = "exact"  # when two answers are the same (tiercli/core/answers.py)
    l3_text: str = "last-user"  # what L3 embeds (tiercli/core/l3text.py)
    template_share: float = 0.5  # strip-template: the share of a task's texts a template must fit
    # the request parameters a key holds where the log records them (docs/replay-semantics.md "Replay semantics")
    key_params: tuple[str, ...] = PARAMS
    # what a key holds of a call besides its task and model (docs/keys-and-scope.md "Keys and scope"): its scope,
    # the values a hit must share (lead, day, hour, worker, attrs.PATH), and its key parts
    scope: tuple[str, ...] = ()
    key: tuple[str, ...] = KEY_MODES["request"]
    timezone: str | None = None  # the day and hour scopes' zone (IANA name); None: UTC
    # [tasks.NAME] tiers, l3_threshold, same_answer, l3_text, key_params, scope, key (the TTLs are in task_ttls)
    task_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    # tiercli compare (docs/compare.md "Compare the options"): the provider's prompt cache, and batching
    prompt_cache_ttl: str = "5m"  # "5m" (writes 1.25x input) or "1h" (writes 2x)
    prompt_cache_breakpoints: tuple[str, ...] = ("system", "last")  # where a request without markers caches
    prompt_cache_min_tokens: dict[str, int] = field(default_factory=dict)  # over the documented defaults
    batch_discount: float = 0.5  # the batch APIs' published discount (Anthropic's and OpenAI's)
    batch_latency: float = 3600.0  # seconds a batched call waits for its answer
    # where the work runs (docs/ray.md "Running on Ray"): "local", or "ray" (a cluster at ray_address,
    # else a private local instance)
    executor: str = "local"
    ray_address: str | None = None
    mode: str = "live"  # the runtime cache's (tiercli.cache): "live" serves hits, "shadow" calls the API always

    def __post_init__(self):
        # A TTL of 0 turns a tier off: a tier off for every task is not looked up, stored or
        # embedded for, and is reported as off (see also off_for_task).
        off = [t for t in self.tiers if self.ttl(t) == 0
               and not any(ttls.get(t, 0) != 0 for ttls in self.task_ttls.values())]
        if off:
            object.__setattr__(self, "tiers", tuple(t for t in self.tiers if t not in off))

    def ttl(self, tier: str) -> float | None:
        return getattr(self, f"{tier}_ttl")

    def task_ttl(self, tier: str, task: str) -> float | None:
        """The TTL that applies to calls of this task: its [tasks.NAME] one, else the tier's."""
        return self.task_ttls.get(task, {}).get(tier, self.ttl(tier))

    def off_for_task(self, tier: str, task: str) -> bool:
        """A tier is off for a task's calls (no look-up, no store, nothing embedded) when its
        TTL for the task is 0, or the task's `tiers` leave it out."""
        listed = self.task_options.get(task, {}).get("tiers")
        return tier not in self.tiers or self.task_ttl(tier, task) == 0 or (listed is not None and tier not in listed)

    def task_tiers(self, task: str) -> tuple[str, ...]:
        """The tiers on for a task's calls, in order."""
        return tuple(t for t in self.tiers if not self.off_for_task(t, task))

    def threshold_for(self, task: str) -> float:
        return self.task_options.get(task, {}).get("l3_threshold", self.l3_threshold)

    def answer_rule(self, task: str):
        """The task's answer rule (its same_answer, else the default one): an AnswerRule."""
        return parse_rule(self.task_options.get(task, {}).get("same_answer", self.same_answer))

    def l3_text_for(self, task: str):
        """What L3 embeds for a task's calls (its l3_text, else the default): an L3Text."""
        return parse_l3_text(self.task_options.get(task, {}).get("l3_text", self.l3_text))

    def key_params_for(self, task: str) -> tuple[str, ...]:
        """The request parameters a task's keys hold (its key_params, else the default)."""
        return self.task_options.get(task, {}).get("key_params", self.key_params)

    def scope_for(self, task: str) -> tuple[str, ...]:
        """The values a task's hits must share (its scope, else the default)."""
        return self.task_options.get(task, {}).get("scope", self.scope)

    def key_for(self, task: str) -> tuple[str, ...]:
        """The parts of a call's request a task's keys hold (its key, else the default)."""
        return self.task_options.get(task, {}).get("key", self.key)

    def max_entries(self, tier: str) -> int | None:
        return getattr(self, f"{tier}_max_entries")

    def capped_tiers(self) -> list[str]:
        """The enabled tiers with a capacity limit (one LRU across every task and model)."""
        return [t for t in self.tiers if self.max_entries(t) is not None]

    def latency_ms(self, tier: str) -> float:
        return getattr(self, f"{tier}_latency_ms")

    def resolved(self) -> dict[str, Any]:
        """Plain, human-readable form (durations as text), for reports and saved runs."""
        out = dataclasses.asdict(self)
        out["tiers"] = list(self.tiers)
        for tier in TIER_NAMES:
            out[f"{tier}_ttl"] = format_duration(self.ttl(tier))
        out["task_ttls"] = {task: {k: format_duration(v) for k, v in ttls.items()}
                            for task, ttls in sorted(self.task_ttls.items())}
        out["adaptive_window"] = None if self.adaptive_window is None else format_duration(self.adaptive_window)
        out["prompt_cache_breakpoints"] = list(self.prompt_cache_breakpoints)
        out["batch_latency"] = format_duration(self.batch_latency)
        out["key_params"] = key_params_text(self.key_params)
        out["scope"], out["key"] = list(self.scope), key_text(self.key)
        out["task_options"] = {task: {k: option_text(k, v) for k, v in options.items()}
                               for task, options in self.task_options.items()}
        if self.l2_redis_url:
            out["l2_redis_url"] = mask_url(self.l2_redis_url)  # never a password in output or files
        return out

    def check(self) -> None:
        """Checks across settings; raises ConfigError."""
        if self.l2_redis_url and "l2" not in self.tiers:
            raise ConfigError("a Redis URL is set but the l2 tier is off", hint="add l2 to --tiers")
        if (self.l2_maxmemory or self.l2_eviction) and self.l2_redis_url != "embedded":
            raise ConfigError("l2_maxmemory and l2_eviction apply to --redis embedded only",
                              hint="tiercli never reconfigures your own server: set maxmemory there")
        scoped = [task for task, options in self.task_options.items() if "worker" in options.get("scope", ())]
        if self.workers and ("worker" in self.scope or scoped):
            where = "scope" if "worker" in self.scope else f"tasks.{scoped[0]}.scope"
            raise UsageError(f"{where}: the worker scope needs each call's recorded worker, and --workers "
                             f"{self.workers} assigns workers round-robin at replay",
                             hint="drop --workers (each call then has its log's worker), or take worker out "
                                  "of the scope")


# --- checking single values: shared by the config file and the command line -------------------

class SettingError(ValueError):
    """A problem with a key inside a table, named in full (tasks.NAME.KEY, map.FIELD, prices.MODEL):
    the config loader names it so rather than by the table's key."""

    def __init__(self, key: str, problem: str, hint: str | None = None):
        super().__init__(f"{key}: {problem}" + (f" ({hint})" if hint else ""))  # as a flag's message says it
        self.key, self.problem, self.hint = key, problem, hint


def did_you_mean(key: str, known: list[str] | tuple[str, ...], listing: str) -> str:
    """The hint for an unknown key: the known keys close to it (difflib's ratio at least 0.6
    and within 0.1 of the closest, at most three), else `listing` and every known key."""
    scored = sorted(((-difflib.SequenceMatcher(None, key, name).ratio(), name) for name in known))
    close = [name for ratio, name in scored if -ratio >= max(0.6, -scored[0][0] - 0.1)][:3] if scored else []
    if not close:
        return f"{listing}: {', '.join(sorted(known))}"
    return "did you mean " + (close[0] if len(close) == 1 else ", ".join(close[:-1]) + " or " + close[-1]) + "?"


def _names(value: Any, expected: str) -> list[str]:
    """The names in a comma-separated string or an array of strings, stripped and lower-cased."""
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, (list, tuple)):
        wrong = [item for item in value if not isinstance(item, str)]
        if wrong:
            raise ValueError(f"must be {expected}, got an array holding {described(wrong[0])}")
        items = value
    else:
        raise ValueError(f"must be {expected}, got {described(value)}")
    return [item.strip().lower() for item in items]


TIERS_FORM = 'a list of tier names such as ["l1", "l2"] (or "l1,l2")'


def check_tiers(value: str | list[str]) -> tuple[str, ...]:
    names = [n for n in _names(value, TIERS_FORM) if n]
    unknown = [n for n in names if n not in TIER_NAMES]
    if unknown or not names:
        raise ValueError(f"unknown tier {unknown[0]!r}" if unknown else "no tier named")
    if len(set(names)) != len(names):
        raise ValueError("a tier is named twice")
    return tuple(n for n in TIER_NAMES if n in names)  # look-up order is always l1, l2, l3


def check_positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"must be a whole number >= 1, got {described(value)}")
    return value


def check_threshold(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not -1.0 <= value <= 1.0:
        raise ValueError(f"must be a cosine similarity between -1 and 1, got {described(value)}")
    return float(value)


def check_invalidation(value: Any) -> str:
    if value not in INVALIDATION_MODES:
        raise ValueError(f"must be one of {', '.join(INVALIDATION_MODES)}, got {described(value)}")
    return value


def check_mode(value: Any) -> str:
    if value not in CACHE_MODES:
        raise ValueError(f"must be one of {', '.join(CACHE_MODES)}, got {described(value)}")
    return value


EVICTION_POLICIES = ("noeviction", "allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru",
                     "volatile-lfu", "volatile-random", "volatile-ttl")


def check_eviction(value: Any) -> str:
    if value not in EVICTION_POLICIES:
        raise ValueError(f"must be one of {', '.join(EVICTION_POLICIES)}, got {described(value)}")
    return value


def check_memory(value: Any) -> str:
    text = str(value).strip().lower()
    if isinstance(value, bool) or not re.fullmatch(r"[1-9]\d*(b|k|kb|m|mb|g|gb)?", text):
        raise ValueError(f"must be a size like 64mb, 1gb or 1000000, got {described(value)}")
    return text


def check_redis_url(value: Any) -> str:
    """'embedded', or a URL redis-py reads as it looks; the message never quotes the URL."""
    if value == "embedded":
        return value
    if not isinstance(value, str):
        raise ValueError(f"must be {URL_FORMS}")
    scheme, sep, rest = value.partition("://")
    value = scheme.lower() + sep + rest if sep and scheme.isalpha() else value  # REDIS:// is redis://
    problem = url_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def check_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {described(value)}")
    return value


DURATION_FORM = 'a duration: seconds (300), or text such as "5m", "1h" or "none"'


def check_duration(value: Any) -> float | None:
    """Seconds, or None (no expiry), from a number or text (durations.parse_duration)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"must be {DURATION_FORM}, got {described(value)}")
    return parse_duration(value)


def check_timeout(value: Any) -> float:
    seconds = check_duration(value)
    if seconds is None or seconds <= 0:
        raise ValueError(f"must be a positive duration, got {described(value)}")
    return seconds


def check_scale(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
        raise ValueError(f"must be a positive number of calls per minute, got {described(value)}")
    return float(value)


TASK_SETTINGS = ("l1_ttl", "l2_ttl", "l3_ttl", "tiers", "l3_threshold", "same_answer", "l3_text", "key_params",
                 "scope", "key")
KEY_PARAMS_FORM = 'all, none, or a list of request parameters such as ["max_tokens", "tools"] (or "max_tokens,tools")'


def check_key_params(value: Any) -> tuple[str, ...]:
    """key_params: "all" (every parameter in PARAMS), "none", or a list of them (output_format
    is response_format), as a tuple in PARAMS order."""
    names = [n for n in _names(value, KEY_PARAMS_FORM) if n]
    if names == ["all"]:
        return PARAMS
    if names in (["none"], []):
        return ()
    names = [PARAM_ALIASES.get(n, n) for n in names]
    unknown = [n for n in names if n not in PARAMS]
    if unknown:
        hint = did_you_mean(unknown[0], PARAMS + ("all", "none"), "the parameters")
        raise ValueError(f"unknown request parameter {unknown[0]!r} ({hint})")
    if len(set(names)) != len(names):
        raise ValueError("a parameter is named twice")
    return tuple(n for n in PARAMS if n in names)


def key_params_text(names: tuple[str, ...]) -> str | list[str]:
    """key_params as a config writes it: "all", "none", or the list."""
    return "all" if names == PARAMS else "none" if not names else list(names)


SCOPES = ("lead", "day", "hour", "worker")  # and attrs.PATH (docs/keys-and-scope.md "Keys and scope")
SCOPE_FORM = 'a list of scope values such as ["lead", "attrs.zip_code", "day"] (or "lead,day"), or "none"'


def check_scope(value: Any) -> tuple[str, ...]:
    """scope: lead, day, hour, worker and attrs.PATH (a dotted path, as --map's, kept as
    written: keys are case-sensitive), in the order given; "none" or [] for no scope."""
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        items = list(value)
    else:
        raise ValueError(f"must be {SCOPE_FORM}, got {described(value)}")
    names = [item.strip() for item in items if item.strip()]
    if [name.lower() for name in names] == ["none"]:
        return ()
    for name in names:
        if name.lower() in SCOPES:
            continue
        if name.startswith("attrs.") and name != "attrs.":
            continue
        if "." in name:  # attr.zip_code, metadata.zip_code: a path, written attrs.PATH
            hint = f"did you mean attrs.{name.split('.', 1)[1]}? a path of the record is attrs.PATH"
        else:
            hint = did_you_mean(name, SCOPES + ("attrs.PATH",), "the scope values")
        raise ValueError(f"unknown scope value {name!r} ({hint})")
    names = [name.lower() if name.lower() in SCOPES else name for name in names]
    if len(set(names)) != len(names):
        raise ValueError("a scope value is named twice")
    return tuple(names)


KEY_FORM = ('request, last-user, conversation, scope-only, or a list of key parts such as ["system", "last-user"] '
            '(or "system,last-user")')


def check_key(value: Any) -> tuple[str, ...]:
    """key: a mode (KEY_MODES) or a list of KEY_PARTS, as a tuple of parts in KEY_PARTS order."""
    names = [n for n in _names(value, KEY_FORM) if n]
    if len(names) == 1 and names[0] in KEY_MODES:
        return KEY_MODES[names[0]]
    unknown = [n for n in names if n not in KEY_PARTS]
    if unknown:
        hint = did_you_mean(unknown[0], tuple(dict.fromkeys(tuple(KEY_MODES) + KEY_PARTS)),
                            "the key modes and parts")
        raise ValueError(f"unknown key part {unknown[0]!r} ({hint})")
    if not names:
        raise ValueError(f"must be {KEY_FORM}: an empty list is scope-only")
    if len(set(names)) != len(names):
        raise ValueError("a key part is named twice")
    return tuple(n for n in KEY_PARTS if n in names)


def key_text(parts: tuple[str, ...]) -> str | list[str]:
    """key as a config writes it: its mode's name, else the list of parts."""
    return next((mode for mode, mode_parts in KEY_MODES.items() if mode_parts == parts), list(parts))


def option_text(name: str, value: Any) -> Any:
    """A [tasks.NAME] option as a config writes it."""
    if name == "key_params":
        return key_params_text(value)
    if name == "key":
        return key_text(value)
    return list(value) if name in ("tiers", "scope") else value


def check_timezone(value: Any) -> str:
    """An IANA time zone name (zoneinfo), e.g. America/Chicago; UTC is "UTC"."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be an IANA time zone name such as \"America/Chicago\", got {described(value)}")
    try:
        ZoneInfo(value.strip())
    except (ZoneInfoNotFoundError, ValueError):
        hint = did_you_mean(value.strip(), sorted(available_timezones()), "IANA names")
        if not hint.startswith("did"):  # not the whole list of zones
            hint = "an IANA name such as America/Chicago, or UTC"
        raise ValueError(f"unknown time zone {value.strip()!r} ({hint})") from None
    return value.strip()


def check_answer_rule(value: Any) -> str:
    return parse_rule(value).text


def check_l3_text(value: Any) -> str:
    return parse_l3_text(value).text


def check_task_tiers(value: Any) -> tuple[str, ...]:
    if isinstance(value, (list, tuple)) and not value:
        return ()  # every tier off for the task
    return check_tiers(value)


def _number_text(value: Any) -> Any:
    """A flag's text as a number, for the checks that take numbers (a config gives numbers)."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


_TASK_CHECKS = {"tiers": check_task_tiers, "l3_threshold": lambda v: check_threshold(_number_text(v)),
                "same_answer": check_answer_rule, "l3_text": check_l3_text, "key_params": check_key_params,
                "scope": check_scope, "key": check_key}


def check_tasks(value: Any) -> tuple[dict[str, dict[str, float | None]], dict[str, dict[str, Any]]]:
    """[tasks.NAME] tables: (TTLs per task, other settings per task)."""
    if not isinstance(value, dict):
        raise SettingError("tasks", "must be tables [tasks.NAME] with " + ", ".join(TASK_SETTINGS) +
                           f", got {described(value)}")
    ttls_of, options_of = {}, {}
    for task, table in value.items():
        if not isinstance(table, dict):
            raise SettingError(f"tasks.{task}", "must be a table with " + ", ".join(TASK_SETTINGS) +
                               f", got {described(table)}")
        ttls, options = {}, {}
        for key, setting in table.items():
            if key not in TASK_SETTINGS:
                raise SettingError(f"tasks.{task}.{key}", "unknown setting",
                                   did_you_mean(key, TASK_SETTINGS, "[tasks.NAME] takes"))
            try:
                if key in ("l1_ttl", "l2_ttl", "l3_ttl"):
                    ttls[key.removesuffix("_ttl")] = check_duration(setting)
                else:
                    options[key] = _TASK_CHECKS[key](setting)
            except ValueError as exc:
                raise SettingError(f"tasks.{task}.{key}", str(exc)) from None
        if ttls:
            ttls_of[task] = ttls
        if options:
            options_of[task] = options
    return ttls_of, options_of


def task_flags(values: list[str]) -> dict[str, dict[str, str]]:
    """`--task NAME.SETTING=VALUE` flags as [tasks.NAME] tables (checked by check_tasks). A
    task name may hold dots: the setting is the part after the last one."""
    tables: dict[str, dict[str, str]] = {}
    for value in values:
        target, equals, setting = value.partition("=")
        task, dot, key = target.rpartition(".")
        if not equals or not dot or not task:
            raise ValueError(f"{value!r}: expected TASK.SETTING=VALUE, e.g. memory.tiers=l1,l2")
        tables.setdefault(task, {})[key] = setting
    return tables


MAX_LATENCY_MS = 3_600_000.0  # an hour: beyond any real call or look-up; keeps every mean finite


def check_latency(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_LATENCY_MS:
        raise ValueError(f"must be a number of milliseconds from 0 to {MAX_LATENCY_MS:,.0f}, got {described(value)}")
    return float(value)


def check_max_spend(value: Any) -> float:
    """Live mode's spend cap in USD: a finite number >= 0 (0 sends nothing)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"must be a number of US dollars >= 0, got {described(value)}")
    return float(value)


MAX_WORKERS = 65_536  # each worker has an L1 of its own; the bound keeps memory bounded


def check_workers(value: Any) -> int:
    workers = check_positive_int(value)
    if workers > MAX_WORKERS:
        raise ValueError(f"must be at most {MAX_WORKERS:,}, got {described(value)}")
    return workers


# USD per million tokens: 50x the dearest list price today ($200/Mtok), and small enough that
# a call's cost in pico-dollars cannot overflow 64 bits within the token bounds of the reader.
MAX_PRICE_PER_MTOK = 10_000


PRICE_KEYS = tuple(f.name for f in dataclasses.fields(ModelPrice))


def check_prices(value: Any) -> dict[str, ModelPrice]:
    """[prices."MODEL"] tables: input_per_mtok and output_per_mtok, and the optional cache rates."""
    if not isinstance(value, dict):
        raise SettingError("prices", f'must be a table of [prices."MODEL"] tables, got {described(value)}')
    prices = {}
    for model, table in value.items():
        if not isinstance(table, dict):
            raise SettingError(f"prices.{model}", "must be a table with input_per_mtok and output_per_mtok, "
                                                  f"got {described(table)}")
        for name, number in table.items():
            if name not in PRICE_KEYS:
                raise SettingError(f"prices.{model}.{name}", "unknown setting",
                                   did_you_mean(name, PRICE_KEYS, '[prices."MODEL"] takes'))
            if isinstance(number, bool) or not isinstance(number, (int, float)) or not 0 <= number <= MAX_PRICE_PER_MTOK:
                raise SettingError(f"prices.{model}.{name}", f"must be a number of USD per million tokens from 0 "
                                                             f"to {MAX_PRICE_PER_MTOK:,}, got {described(number)}")
        if "input_per_mtok" not in table or "output_per_mtok" not in table:
            raise SettingError(f"prices.{model}", "must have input_per_mtok and output_per_mtok")
        prices[model] = ModelPrice(**table)
    return prices


def check_map(value: Any) -> dict[str, str]:
    """A [map] table: tiercli field = "path in the log's records" (tiercli/core/fieldmap.py)."""
    if not isinstance(value, dict):
        raise SettingError("map", f'must be a table of FIELD = "PATH", e.g. [map] lead_id = "metadata.contact_id", '
                                  f"got {described(value)}")
    for field_name, path in value.items():
        if field_name not in TARGETS and field_name != "contact_id":
            raise SettingError(f"map.{field_name}", "not a field tiercli reads",
                               did_you_mean(field_name, TARGETS, "one of"))
        if not isinstance(path, str) or not path:
            raise SettingError(f"map.{field_name}", f'must be a path into the records as a string, e.g. '
                                                    f'"metadata.{field_name}", got {described(path)}')
    try:
        return parse_map(value, "map")
    except UsageError as exc:
        raise SettingError("map", exc.message.removeprefix("map: "), exc.hint) from None


PROMPT_CACHE_TTLS = ("5m", "1h")
PROMPT_CACHE_BREAKPOINTS = ("system", "last")


def check_prompt_cache_ttl(value: Any) -> str:
    text = str(value).strip().lower()
    if text not in PROMPT_CACHE_TTLS:
        raise ValueError(f"must be 5m or 1h (the provider's two cache lifetimes), got {described(value)}")
    return text


BREAKPOINTS_FORM = 'system, last, or both (["system", "last"] or "system,last")'


def check_breakpoints(value: Any) -> tuple[str, ...]:
    names = _names(value, BREAKPOINTS_FORM)
    if not [n for n in names if n]:
        raise ValueError(f"must be {BREAKPOINTS_FORM}, got {described(value)}")
    unknown = [n for n in names if n and n not in PROMPT_CACHE_BREAKPOINTS]
    if unknown:
        raise ValueError(f"unknown breakpoint {unknown[0]!r} (use system, last, or both)")
    return tuple(n for n in PROMPT_CACHE_BREAKPOINTS if n in names)


def check_min_tokens(value: Any) -> dict[str, int]:
    if not isinstance(value, dict):
        raise SettingError("prompt_cache_min_tokens", 'must be a table of "MODEL" = TOKENS, e.g. '
                           f'[prompt_cache.min_tokens] "claude-haiku-4-5" = 4096, got {described(value)}')
    out = {}
    for model, tokens in value.items():
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
            raise SettingError(f"prompt_cache_min_tokens.{model}",
                               f"must be a whole number of tokens >= 0, got {described(tokens)}")
        out[str(model)] = tokens
    return out


EXECUTORS = ("local", "ray")


def check_model_path(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be the path of a local sentence-transformers model folder, got {described(value)}")
    return value


EMBEDDERS = ("torch", "onnx")


def check_embedder(value: Any) -> str:
    if value not in EMBEDDERS:
        raise ValueError(f"must be one of {', '.join(EMBEDDERS)}, got {described(value)}")
    return value


def check_executor(value: Any) -> str:
    if value not in EXECUTORS:
        raise ValueError(f"must be one of {', '.join(EXECUTORS)}, got {described(value)}")
    return value


# Checked here, with every other setting, so that reading a config never imports the executor
# package (the runtime cache reads configs: tests/test_cache_imports.py); tiercli.executor re-exports it.
RAY_ADDRESS_FORMS = "auto (a cluster started on this machine with `ray start --head`) or HOST:PORT of the head node"
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
                   r"|\[[0-9A-Fa-f:.]+\]")


def check_ray_address(value: Any) -> str:
    """'auto', or HOST:PORT (a port from 1 to 65535); a ray:// address (Ray Client) is refused
    with what to use instead. Raises ValueError, which the flag and config readers report."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be {RAY_ADDRESS_FORMS}, got {value!r}")
    address = value.strip()
    if address == "auto":
        return address
    if address.lower().startswith("ray://"):
        raise ValueError(f"{address!r}: ray:// addresses (Ray Client) are not supported; give the head node's "
                         f"HOST:PORT (the port of `ray start --head`, 6379 by default) from a machine of the "
                         f"cluster's network, or run tiercli on the head node with auto")
    host, colon, port = address.rpartition(":")
    if not colon or not _HOST.fullmatch(host) or not port.isdigit():
        raise ValueError(f"{address!r} is not a Ray address: use {RAY_ADDRESS_FORMS}, e.g. 10.0.0.5:6379")
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"{address!r}: port {port} is out of range (1 to 65535)")
    return address


def check_discount(value: Any) -> float:
    """A share off the price: 0.5, or "50%"."""
    number = value
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            number = None
    if isinstance(number, bool) or not isinstance(number, (int, float)) or not 0 <= number < 1:
        raise ValueError(f"must be a discount from 0 to under 1 (0.5) or a percentage (50%), got {described(value)}")
    return float(number)


def check_batch_latency(value: Any) -> float:
    seconds = check_duration(value)
    if seconds is None or seconds < 0 or seconds * 1000 > MAX_LATENCY_MS * 24:
        raise ValueError(f"must be a duration from 0 to 24h, e.g. 30s or 1h, got {described(value)}")
    return seconds


_CHECKS = {
    "map": check_map,
    "prompt_cache_ttl": check_prompt_cache_ttl,
    "prompt_cache_breakpoints": check_breakpoints,
    "prompt_cache_min_tokens": check_min_tokens,
    "batch_discount": check_discount,
    "batch_latency": check_batch_latency,
    "executor": check_executor,
    "ray_address": check_ray_address,
    "same_answer": check_answer_rule,
    "l3_text": check_l3_text,
    "key_params": check_key_params,
    "scope": check_scope,
    "key": check_key,
    "timezone": check_timezone,
    "template_share": lambda v: _share_value(v),
    "tiers": check_tiers,
    "workers": check_workers,
    "l3_threshold": check_threshold,
    "invalidation": check_invalidation,
    "mode": check_mode,
    "l3_model": check_model_path,
    "embedder": check_embedder,
    "default_latency_ms": check_latency,
    "l2_redis_url": check_redis_url,
    "l2_redis_timeout": check_timeout,
    "l2_maxmemory": check_memory,
    "l2_eviction": check_eviction,
    "keep_redis_keys": check_bool,
    "tasks": check_tasks,  # -> task_ttls and task_options (load_config)
    "adaptive_window": check_timeout,
    "adaptive_scale": check_scale,
    "max_spend": check_max_spend,
    "prices": check_prices,
}
_FIELD_OF = {"map": "field_map"}  # config key -> Settings field, where they differ
for _tier in TIER_NAMES:
    _CHECKS[f"{_tier}_ttl"] = check_duration
    _CHECKS[f"{_tier}_max_entries"] = check_positive_int
    _CHECKS[f"{_tier}_latency_ms"] = check_latency


def _share_value(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ValueError(f"must be a share above 0 and at most 1, e.g. 0.5, got {described(value)}")
    return float(value)


def check_setting(name: str, value: Any) -> Any:
    """The checked value of one setting; ValueError names what is wrong."""
    return _CHECKS[name](value)


def load_config(path: Path) -> dict[str, Any]:
    """Settings from a TOML file, checked. Tables [l1], [l2], [l3] may hold ttl, max_entries,
    latency_ms (and threshold, model for l3) as an alternative to flat keys like l2_ttl; so may
    [prompt_cache] hold ttl, breakpoints and a min_tokens table (prompt_cache_ttl, ...)."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        return _checked_config(raw)
    except SettingError as exc:
        raise ConfigError(f"{path}: {exc.key}: {exc.problem}", hint=exc.hint) from None


_EXECUTOR_KEYS = {"use": "executor", "ray_address": "ray_address"}  # [executor] key -> setting


def _checked_config(raw: dict[str, Any]) -> dict[str, Any]:
    """A config's settings, checked; SettingError names the key."""
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        if key in TIER_NAMES or key == "prompt_cache":
            if not isinstance(value, dict):
                subs = [name.removeprefix(key + "_") for name in _CHECKS if name.startswith(key + "_")]
                raise SettingError(key, f"must be a table [{key}] with {', '.join(subs)}, got {described(value)}")
            for sub, sub_value in value.items():
                flat[f"{key}_{sub}"] = sub_value
        elif key == "executor" and isinstance(value, dict):  # [executor] use = "ray", ray_address = "auto"
            for sub, sub_value in value.items():
                if sub not in _EXECUTOR_KEYS:
                    raise SettingError(f"executor.{sub}", "unknown setting",
                                       did_you_mean(sub, tuple(_EXECUTOR_KEYS), "[executor] takes"))
                flat[_EXECUTOR_KEYS[sub]] = sub_value
        else:
            flat[key] = value
    out: dict[str, Any] = {}
    for key, value in flat.items():
        if key not in _CHECKS:
            raise SettingError(key, "unknown setting", did_you_mean(key, tuple(_CHECKS), "known settings"))
        try:
            checked = check_setting(key, value)
        except SettingError:
            raise
        except ValueError as exc:
            raise SettingError(key, str(exc)) from None
        if key == "tasks":
            out["task_ttls"], out["task_options"] = checked
        else:
            out[_FIELD_OF.get(key, key)] = checked
    return out


def build_settings(config_file: Path | None, overrides: dict[str, Any]) -> Settings:
    """Defaults, then the config file, then the flags that were given (already checked); per
    task settings merge setting by setting."""
    values: dict[str, Any] = load_config(config_file) if config_file else {}
    for name in ("task_ttls", "task_options"):
        if name in overrides:
            merged = {task: dict(table) for task, table in values.get(name, {}).items()}
            for task, table in overrides.pop(name).items():
                merged.setdefault(task, {}).update(table)
            values[name] = merged
    values.update(overrides)
    settings = Settings(**values)
    settings.check()
    return settings


_TIER_TTLS = tuple(f"{tier}_ttl" for tier in TIER_NAMES)


def settings_from_flags(config_file: Path | None, flags: dict[str, Any]) -> Settings:
    """Settings from command-line values: None means the flag was not given; TTLs arrive as
    text, since "none" (never expires) is a real value."""
    tasks = flags.pop("tasks", None)
    overrides = {name: parse_duration(value) if name in _TIER_TTLS else value  # not prompt_cache_ttl: "5m" or "1h"
                 for name, value in flags.items() if value is not None}
    if tasks:  # --task NAME.SETTING=VALUE, already checked by its option
        overrides["task_ttls"], overrides["task_options"] = check_tasks(task_flags(tasks))
    return build_settings(config_file, overrides)
