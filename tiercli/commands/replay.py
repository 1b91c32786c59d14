"""`tiercli replay`: the main job."""

from __future__ import annotations

from contextlib import ExitStack

import sys

import typer

from tiercli import options as opt
from tiercli.executor import executor_session
from tiercli.commands._edge import command_edge, print_json, stderr
from tiercli.commands.progress import progress_bars
from tiercli.pipeline import load_events, run_replay, save
from tiercli.errors import TiercliError, UsageError
from tiercli.ingest.logread import read_notes
from tiercli.present.html import invocation, no_html_without_run, write_run_html
from tiercli.present.render import print_summary, report_console
from tiercli.procs import exit_code
from tiercli.settings import settings_from_flags
from tiercli.live.send import LiveOptions, api_key, live_phase


def _confirm(plan: str, yes: bool) -> bool:
    """Live mode asks before spending; without a terminal it needs --yes."""
    stderr.print(plan, markup=False, highlight=False)
    if yes:
        return True
    if not sys.stdin.isatty():
        raise TiercliError("live mode sends real, billed API calls: refusing without --yes when not interactive",
                           hint="check the plan above, then run again with --yes")
    return typer.confirm("Send these calls?", default=False, err=True)


def _spend_cap(max_spend: float | None, no_spend_cap: bool, settings) -> float | None:
    """Live mode's cap: --max-spend, else the config's max_spend; no cap only with --no-spend-cap.
    A missing cap is a usage error (exit 2), found before the replay runs and anything is sent."""
    if max_spend is not None and no_spend_cap:
        raise UsageError("--max-spend and --no-spend-cap contradict each other", hint="keep one of them")
    if max_spend is None and settings.max_spend is None and not no_spend_cap:
        raise UsageError("live mode needs a spend cap: nothing was sent",
                         hint="add --max-spend USD (or max_spend = USD in the config); --no-spend-cap sends without one")
    return None if no_spend_cap else max_spend if max_spend is not None else settings.max_spend


def replay(
    log: opt.LogArgument,
    config: opt.ConfigOption = None,
    log_format: opt.FormatOption = "auto",
    field_map: opt.MapOption = None,
    task: opt.TaskOption = None,
    same_answer: opt.SameAnswerOption = None,
    timezone: opt.TimezoneOption = None,
    l3_text: opt.L3TextOption = None,
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
    executor: opt.ExecutorOption = None,
    embedder: opt.EmbedderOption = None,
    ray_address: opt.RayAddressOption = None,
    redis_url: opt.RedisUrlOption = None,
    redis_timeout: opt.RedisTimeoutOption = None,
    l2_maxmemory: opt.MaxmemoryOption = None,
    l2_eviction: opt.EvictionOption = None,
    keep_redis_keys: opt.KeepRedisKeysOption = False,
    skip_invalid: opt.SkipInvalidOption = False,
    no_save: opt.NoSaveOption = False,
    html: opt.HtmlOption = None,
    live: opt.LiveOption = False,
    max_spend: opt.MaxSpendOption = None,
    no_spend_cap: opt.NoSpendCapOption = False,
    limit: opt.LimitOption = None,
    concurrency: opt.ConcurrencyOption = 1,
    yes: opt.YesOption = False,
    live_timeout: opt.LiveTimeoutOption = "60s",
    max_retries: opt.MaxRetriesOption = 5,
    retry_cap: opt.RetryCapOption = "30s",
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
      tiercli replay logs.jsonl --html report.html
    """
    with command_edge(json_output), ExitStack() as stack:
        settings = settings_from_flags(config, {
            "tiers": tiers, "workers": workers, "l1_ttl": l1_ttl, "l2_ttl": l2_ttl, "l3_ttl": l3_ttl,
            "l1_max_entries": l1_max_entries, "l2_max_entries": l2_max_entries, "l3_max_entries": l3_max_entries,
            "l3_threshold": l3_threshold, "invalidation": invalidation, "l2_redis_url": redis_url,
            "tasks": task, "same_answer": same_answer, "l3_text": l3_text, "timezone": timezone,
            "l2_redis_timeout": redis_timeout, "l2_maxmemory": l2_maxmemory, "l2_eviction": l2_eviction,
            "keep_redis_keys": keep_redis_keys or None, "executor": executor, "ray_address": ray_address,
            "embedder": embedder,
        })
        no_html_without_run(html, no_save)
        if not live and (max_spend is not None or limit is not None or no_spend_cap):
            raise UsageError("--max-spend, --no-spend-cap and --limit apply to --live runs", hint="add --live")
        if live:
            spend_cap = _spend_cap(max_spend, no_spend_cap, settings)
            api_key()  # no key: stop now, not after the replay
        stack.enter_context(executor_session(settings))  # Ray, when asked: reading, embedding, replay
        read = load_events(log, settings, log_format=log_format, field_map=field_map, skip_invalid=skip_invalid,
                           digest=not no_save)
        if live and (len(read.files) != 1 or read.files[0].format != "tiercli" or read.files[0].name == "<stdin>"):
            raise UsageError("--live sends the recorded requests of one log file in tiercli's own format",
                             hint="replay other formats without --live; convert a log with --format map first "
                                  "if it must be sent")
        for note in read_notes(read):
            stderr.print(note, markup=False, highlight=False)
        live_run = None
        with progress_bars() as progress:
            run = run_replay(read, settings, progress=progress)
            if live:
                options = LiveOptions(spend_cap, limit, concurrency, live_timeout, max_retries, retry_cap)
                live_run = live_phase(run, options, lambda plan: _confirm(plan, yes), progress)
        if not no_save:
            run.summary["command"] = invocation()  # what the HTML report says reproduces it
            folder = save(run)
            stderr.print(f"saved run {run.id} ({folder}); see it again with: tiercli report {run.id}",
                         markup=False, highlight=False)
            if html:
                write_run_html(run.id, html)
        else:
            run.summary["run_id"] = None  # nothing was saved: no id that report could find
        if live_run is not None:
            live_run.journal.remove()  # the saved run (or --no-save) now accounts for every billed call
        if json_output:
            print_json(run.summary)
        else:
            print_summary(run.summary, report_console())
        if live_run is not None and live_run.stopped:
            prefix = "error: live: " if live_run.fatal else "live: stopped early: "
            stderr.print(f"{prefix}{live_run.stopped}; " + ("the run is saved, marked incomplete" if not no_save
                                                            else "nothing was saved (--no-save)"),
                         markup=False, highlight=False)
            if live_run.interrupted:
                raise typer.Exit(exit_code(live_run.interrupted))  # 130 for Ctrl-C, 143 for SIGTERM
            if live_run.fatal:
                raise typer.Exit(1)
