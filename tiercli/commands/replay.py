"""`tiercli replay`: the main job."""

from __future__ import annotations

import json
import sys

from tiercli import options as opt
from tiercli.commands._edge import command_edge, stderr
from tiercli.commands.progress import progress_bars
from tiercli.pipeline import load_events, run_replay, save
from tiercli.render import print_summary, report_console
from tiercli.settings import settings_from_flags


def replay(
    log: opt.LogArgument,
    config: opt.ConfigOption = None,
    tiers: opt.TiersOption = None,
    workers: opt.WorkersOption = None,
    l1_ttl: opt.L1TtlOption = None,
    l2_ttl: opt.L2TtlOption = None,
    l3_ttl: opt.L3TtlOption = None,
    l1_max_entries: opt.L1MaxOption = None,
    l2_max_entries: opt.L2MaxOption = None,
    l3_max_entries: opt.L3MaxOption = None,
    l3_threshold: opt.ThresholdOption = None,
    invalidation: opt.InvalidationOption = None,
    redis_url: opt.RedisUrlOption = None,
    redis_timeout: opt.RedisTimeoutOption = None,
    l2_maxmemory: opt.MaxmemoryOption = None,
    l2_eviction: opt.EvictionOption = None,
    keep_redis_keys: opt.KeepRedisKeysOption = False,
    skip_invalid: opt.SkipInvalidOption = False,
    no_save: opt.NoSaveOption = False,
    json_output: opt.JsonOption = False,
) -> None:
    """Replay a log through the L1/L2/L3 cache simulator and report hit rates, cost and latency.

    The log's format and the exact replay rules are in README.md. Progress goes to stderr;
    with --json, stdout holds one JSON object (or {"error": ...}) and nothing else.

    \b
    Examples:
      tiercli replay sample_logs/realestate_day.jsonl
      tiercli replay logs.jsonl --l2-ttl 1h --l3-threshold 0.95 --json
      tiercli replay logs.jsonl --tiers l1,l2 --workers 4 --invalidation broadcast
      tiercli replay logs.jsonl --config tiers.toml --l1-max-entries 1000
      tiercli replay logs.jsonl --redis embedded --l2-maxmemory 64mb
      tiercli replay logs.jsonl --redis-url redis://:PASSWORD@cache.internal:6379/2
    """
    with command_edge(json_output):
        settings = settings_from_flags(config, {
            "tiers": tiers, "workers": workers, "l1_ttl": l1_ttl, "l2_ttl": l2_ttl, "l3_ttl": l3_ttl,
            "l1_max_entries": l1_max_entries, "l2_max_entries": l2_max_entries, "l3_max_entries": l3_max_entries,
            "l3_threshold": l3_threshold, "invalidation": invalidation, "l2_redis_url": redis_url,
            "l2_redis_timeout": redis_timeout, "l2_maxmemory": l2_maxmemory, "l2_eviction": l2_eviction,
            "keep_redis_keys": keep_redis_keys or None,
        })
        read = load_events(log, settings, skip_invalid=skip_invalid)
        for error in read.skipped[:5]:
            stderr.print(f"skipped: {error.message}", markup=False, highlight=False)
        if len(read.skipped) > 5:
            stderr.print(f"skipped: ... {len(read.skipped) - 5} more bad lines", markup=False)
        with progress_bars() as progress:
            run = run_replay(read, settings, progress=progress)
        if not no_save:
            folder = save(run)
            stderr.print(f"saved run {run.id} ({folder}); see it again with: tiercli report {run.id}",
                         markup=False, highlight=False)
        if json_output:
            sys.stdout.write(json.dumps(run.summary) + "\n")
        else:
            print_summary(run.summary, report_console())
