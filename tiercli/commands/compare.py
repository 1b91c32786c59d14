"""`tiercli compare`: the whole cost decision on one log."""

from __future__ import annotations

import dataclasses
from contextlib import ExitStack

from pathlib import Path
from typing import Annotated

import typer

from tiercli import options as opt
from tiercli.executor import executor_session
from tiercli.commands._edge import command_edge, stderr
from tiercli.commands.progress import progress_bars
from tiercli.economics.compare import Budgets, compare as compare_options, parse_option, per_call_columns
from tiercli.economics.pricing import Pricer
from tiercli.economics.summary import cross_lead_figures
from tiercli.engine.tune_tasks import default_scopes, scope_text
from tiercli.errors import UsageError
from tiercli.ingest.logread import read_notes
from tiercli.pipeline import load_events, run_replay, save
from tiercli.present.html import invocation, no_html_without_run, write_run_html
from tiercli.present.outputs import show_comparison
from tiercli.settings import check_batch_latency, check_breakpoints, check_discount, check_prompt_cache_ttl, \
    settings_from_flags


def _routes(values: list[str] | None) -> dict[str, str]:
    routes: dict[str, str] = {}
    for value in values or ():
        task, equals, model = value.partition("=")
        task, model = task.strip(), model.strip()
        if not equals or not task or not model:
            raise typer.BadParameter(f"{value!r}: expected TASK=MODEL, e.g. intent=claude-haiku-4-5",
                                     param_hint="--route")
        if task in routes and routes[task] != model:
            raise typer.BadParameter(f"task {task!r} is routed twice ({routes[task]}, {model})", param_hint="--route")
        routes[task] = model
    return routes


def _check_tasks(flag: str, tasks, known: list[str]) -> None:
    missing = [t for t in tasks if t not in known]
    if missing:
        raise UsageError(f"{flag}: no calls of task {missing[0]!r} in the log",
                         hint=f"the log's tasks: {', '.join(known)}")


def compare(
    log: opt.LogArgument,
    route: Annotated[list[str] | None, typer.Option(
        "--route", metavar="TASK=MODEL", help="Price the task's calls at MODEL's prices, same tokens (repeatable).",
        show_default=False)] = None,
    batch: Annotated[list[str] | None, typer.Option(
        "--batch", metavar="TASK", help="Send the task's calls through the batch API (repeatable).",
        show_default=False)] = None,
    options: Annotated[str | None, typer.Option(
        "--options", metavar="LIST", help="The rows, comma-separated: baseline, no-prompt-cache, or parts cache, "
        "route, batch, prompt-cache joined by +, e.g. baseline,cache,cache+prompt-cache [default: baseline and "
        "every combination of cache, prompt-cache, and route and batch when --route or --batch is given]",
        show_default=False)] = None,
    max_stale: opt.MaxStaleOption = "1%",
    max_mismatch: opt.MaxMismatchOption = "2%",
    max_cross_lead: opt.MaxCrossLeadOption = "0",
    scope_grid: Annotated[list[str] | None, typer.Option(
        "--scope-grid", metavar="SCOPES", help="Scopes to key the response cache under (docs/keys-and-scope.md \"Keys and scope\"): "
        "none, or scope values joined by +, e.g. none,lead,attrs.zip_code+day (comma-separated or repeated); one "
        "read and replay of the log per scope, each adding its cache rows as NAME@SCOPE [default: the configured "
        "scope, then lead alone when a row serves another lead's answer beyond --max-cross-lead]",
        show_default=False)] = None,
    max_p95_ms: Annotated[float | None, typer.Option(
        "--max-p95-ms", metavar="MS", help="Budget: the 95th percentile latency in ms [default: none].",
        callback=opt.finite_number(0, None, "a number of milliseconds >= 0"), show_default=False)] = None,
    prompt_cache_ttl: Annotated[str | None, typer.Option(
        "--prompt-cache-ttl", metavar="5m|1h", help="The provider's cache lifetime: 5m (writes 1.25x input) or 1h (writes 2x) "
        "[default: 5m]", show_default=False)] = None,
    prompt_cache_breakpoints: Annotated[str | None, typer.Option(
        "--prompt-cache-breakpoints", metavar="WHERE", help="Where a request without cache_control markers caches: system, last, "
        "or system,last [default: system,last]", show_default=False)] = None,
    batch_latency: Annotated[str | None, typer.Option(
        "--batch-latency", metavar="DURATION", help="How long a batched call waits for its answer [default: 1h]",
        show_default=False)] = None,
    batch_discount: Annotated[str | None, typer.Option(
        "--batch-discount", metavar="SHARE", help="The batch API's discount, e.g. 50% or 0.5 [default: 50%]", show_default=False)] = None,
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
    skip_invalid: opt.SkipInvalidOption = False,
    no_save: opt.NoSaveOption = False,
    plot: Annotated[Path | None, typer.Option("--plot", metavar="FILE.png",
                                              help="Also draw each option's cost, stacked by task, to a PNG.",
                                              show_default=False)] = None,
    csv: Annotated[Path | None, typer.Option("--csv", metavar="FILE",
                                             help="Also write the rows (whole log and per task) as CSV.",
                                             show_default=False)] = None,
    html: opt.HtmlOption = None,
    json_output: opt.JsonOption = False,
) -> None:
    """Compare the ways to cut the log's cost: response caching, the provider's prompt
    caching, routing tasks to another model, batching, and their combinations.

    Each option is a row, priced call by call from one replay (the `cache` row is exactly
    `tiercli replay` with the same settings) and one pass of the provider prompt-cache engine
    (rules in docs/compare.md "Compare the options"). The recommendation is the cheapest row within
    the budgets (stale and mismatched hits as shares of requests, p95 latency). The same
    table per task type follows: the right choice often differs per task.

    \b
    Examples:
      tiercli compare sample_logs/realestate_day.jsonl
      tiercli compare logs.jsonl --route intent=claude-haiku-4-5 --batch market_context
      tiercli compare logs.jsonl --options baseline,prompt-cache,cache+route+batch+prompt-cache --route intent=claude-haiku-4-5 --batch memory
      tiercli compare logs.jsonl --prompt-cache-ttl 1h --max-mismatch 1% --max-p95-ms 3000 --json
      tiercli compare logs.jsonl --plot options.png --csv options.csv
      tiercli compare logs.jsonl --html options.html
    """
    stale_budget, mismatch_budget = opt.parse_share(max_stale, "--max-stale"), opt.parse_share(max_mismatch,
                                                                                                "--max-mismatch")
    cross_lead_budget = opt.parse_share(max_cross_lead, "--max-cross-lead")
    scope_choices = opt.parse_scope_grid(scope_grid)
    routes, batch_tasks = _routes(route), list(dict.fromkeys(b.strip() for b in batch or ()))
    with command_edge(json_output), ExitStack() as stack:
        no_html_without_run(html, no_save)
        names = None if options is None else list(dict.fromkeys(
            parse_option(o, routes, batch_tasks) for o in options.split(",") if o.strip()))
        if names is not None and not names:
            raise UsageError("--options: no option named", hint="e.g. --options baseline,cache,prompt-cache")
        flags = {"prompt_cache_ttl": (prompt_cache_ttl, check_prompt_cache_ttl),
                 "prompt_cache_breakpoints": (prompt_cache_breakpoints, check_breakpoints),
                 "batch_latency": (batch_latency, check_batch_latency),
                 "batch_discount": (batch_discount, check_discount)}
        checked = {}
        for name, (value, check) in flags.items():
            if value is not None:
                try:
                    checked[name] = check(value)
                except ValueError as exc:
                    raise UsageError(f"--{name.replace('_', '-')}: {exc}") from None
        settings = settings_from_flags(config, {
            "tiers": tiers, "workers": workers, "l1_ttl": l1_ttl, "l2_ttl": l2_ttl, "l3_ttl": l3_ttl,
            "l1_max_entries": l1_max_entries, "l2_max_entries": l2_max_entries, "l3_max_entries": l3_max_entries,
            "l3_threshold": l3_threshold, "invalidation": invalidation,
            "tasks": task, "same_answer": same_answer, "l3_text": l3_text, "timezone": timezone,
            "executor": executor, "ray_address": ray_address, "embedder": embedder, **checked})
        pricer = Pricer(settings.prices)
        for task_name, model in routes.items():
            if not pricer.knows(model):
                raise UsageError(f"--route {task_name}={model}: no price known for model {model!r}",
                                 hint=f'give its prices in a config file (--config): [prices."{model}"] '
                                      f'input_per_mtok = ... and output_per_mtok = ...')
        stack.enter_context(executor_session(settings))  # Ray, when asked: reading, embedding, replay
        read = load_events(log, settings, log_format=log_format, field_map=field_map, skip_invalid=skip_invalid,
                           digest=not no_save, prompt_parts=True)
        known = sorted({c.task for c in read.calls})
        _check_tasks("--route", routes, known)
        _check_tasks("--batch", batch_tasks, known)
        for note in read_notes(read):
            stderr.print(note, markup=False, highlight=False)
        with progress_bars() as progress:
            run = run_replay(read, settings, progress=progress)
            scopes = _other_scopes(scope_choices, settings, run.table, cross_lead_budget, log)
            scoped = []
            for scope in scopes:  # the key is made as the log is read: one read and replay per scope
                scoped_settings = dataclasses.replace(settings, scope=scope)
                scoped_read = load_events(log, scoped_settings, log_format=log_format, field_map=field_map,
                                          skip_invalid=skip_invalid, digest=False, prompt_parts=True)
                scoped_run = run_replay(scoped_read, scoped_settings, progress=progress)
                scoped.append((scope_text(scope), scoped_run.outcome.calls, scoped_run.table))
            update = progress("comparing options", None)
            span_s = read.events[-1].ts - read.events[0].ts
            comparison = compare_options(run.outcome.calls, run.table, settings, pricer, span_s=span_s,
                                         routes=routes, batch=batch_tasks, options=names,
                                         budgets=Budgets(stale_budget, mismatch_budget, max_p95_ms, cross_lead_budget),
                                         scoped=scoped, scope=scope_text(settings.scope))
            update(1)
        result = comparison.result
        result["run_id"] = None if no_save else run.id
        if not no_save:
            for name, column in per_call_columns(comparison).items():
                run.table[name] = column
            run.summary["compare"] = result
            run.summary["command"] = invocation()  # what the HTML report says reproduces it
            folder = save(run)
            stderr.print(f"saved run {run.id} ({folder}); see it again with: tiercli report {run.id}",
                         markup=False, highlight=False)
            if html:
                write_run_html(run.id, html)
        show_comparison(result, json_output, csv, plot)


def _other_scopes(chosen: list[tuple[str, ...]] | None, settings, table, max_cross_lead: float,
                  log: str) -> list[tuple[str, ...]]:
    """The scopes replayed besides the configured one: those of --scope-grid; by default, as
    tune-ttl's grid, those [tasks.NAME] tables name, then lead alone when the cache row serves
    another lead's answer beyond the budget (so a log within it is replayed once, as before)."""
    configured = tuple(settings.scope)
    if chosen is None:
        chosen = default_scopes(settings)
        over = cross_lead_figures(table)["cross_lead_hits"] > max_cross_lead * max(len(table), 1)
        if over and not any("lead" in s for s in chosen):
            chosen = [*chosen, ("lead",)]
        if log == "-":  # stdin is read once: no other scope by default
            return []
    others = [s for s in chosen if s != configured]
    if others and log == "-":
        raise UsageError("--scope-grid: each scope reads the log again, and stdin can be read only once",
                         hint="give the log as a file")
    return others
