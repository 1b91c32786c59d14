"""`tiercli tune-ttl`: choose TTLs and the L3 threshold from the log, under a staleness budget."""

from __future__ import annotations

import dataclasses
from contextlib import ExitStack

import re
from functools import partial
from pathlib import Path
from typing import Annotated

import typer

from tiercli import options as opt
from tiercli.executor import executor_session
from tiercli.economics.noise import floors_of
from tiercli.engine import tune, tune_tasks
from tiercli.commands._edge import command_edge, print_json, stderr
from tiercli.commands.progress import progress_bars
from tiercli.config_write import write_config
from tiercli.durations import format_duration, parse_duration
from tiercli.errors import TiercliError, UsageError, of_log
from tiercli.ingest.logread import read_notes
from tiercli.pipeline import answer_judge, embeddings_for, load_events, run_replay, save
from tiercli.present.html import invocation, no_html_without_run, write_run_html
from tiercli.present.render import report_console
from tiercli.present.tune_view import tune_report
from tiercli.settings import (Settings, check_l3_text, check_threshold, check_tiers,
                              settings_from_flags)
from tiercli.present.plots import plot_tune


def _grid(text: str | None, flag: str, parse) -> tuple | None:
    if text is None:
        return None
    values = []
    for part in text.split(","):
        try:
            values.append(parse(part.strip()))
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint=flag) from None
    if not values:
        raise typer.BadParameter("give at least one value", param_hint=flag)
    return tuple(dict.fromkeys(values))


def _tier_sets(text: str | None) -> list[tuple[str, ...]] | None:
    """--tiers-grid: sets of tiers joined by +, separated by commas (l1+l2+l3,l1+l2,l1)."""
    if text is None:
        return None
    sets = []
    for part in text.split(","):
        try:
            sets.append(check_tiers(part.split("+")))
        except ValueError as exc:
            raise typer.BadParameter(f"{part.strip()!r}: {exc} (tiers joined by +, e.g. l1+l2)",
                                     param_hint="--tiers-grid") from None
    return list(dict.fromkeys(sets))


# A comma starts another choice only before a choice's name: a regex may hold commas (a{1,3}).
_NEXT_CHOICE = re.compile(r",\s*(?=(?:last-user|all-user|strip-template)\s*(?:,|$)|regex:|field:)")


def _l3_texts(values: list[str] | None) -> list[str] | None:
    """--l3-text-grid: l3_text choices, comma-separated or repeated."""
    if not values:
        return None
    texts = []
    for value in values:
        for part in _NEXT_CHOICE.split(value):
            try:
                texts.append(check_l3_text(part.strip()))
            except ValueError as exc:
                raise typer.BadParameter(str(exc), param_hint="--l3-text-grid") from None
    return list(dict.fromkeys(texts))


def tune_ttl(
    log: opt.LogArgument,
    config: opt.ConfigOption = None,
    log_format: opt.FormatOption = "auto",
    field_map: opt.MapOption = None,
    task: opt.TaskOption = None,
    same_answer: opt.SameAnswerOption = None,
    timezone: opt.TimezoneOption = None,
    l3_text: opt.L3TextOption = None,
    l1_grid: Annotated[str | None, typer.Option("--l1-grid", metavar="DURATIONS", help="L1 TTLs to try [default: 1m,5m,15m]",
                                                show_default=False)] = None,
    l2_grid: Annotated[str | None, typer.Option("--l2-grid", metavar="DURATIONS", help="L2 TTLs to try [default: 5m,15m,1h,4h]",
                                                show_default=False)] = None,
    l3_grid: Annotated[str | None, typer.Option("--l3-grid", metavar="DURATIONS", help="L3 TTLs to try; 0 turns L3 off [default: 0,15m,1h,6h]",
                                                show_default=False)] = None,
    threshold_grid: Annotated[str | None, typer.Option(
        "--threshold-grid", metavar="COSINES", help="L3 thresholds to try, e.g. 0.85,0.88,0.90,0.92,0.95 [default: the configured one]",
        show_default=False)] = None,
    max_stale: opt.MaxStaleOption = "1%",
    max_mismatch: opt.MaxMismatchOption = "2%",
    above_noise_floor: Annotated[bool, typer.Option(
        "--above-noise-floor", help="The mismatch budget counts only each task's mismatched hits above its noise floor "
                                    "(what its identical requests' differing answers predict).")] = False,
    per_task: Annotated[bool, typer.Option(
        "--per-task", help="Also choose per task type its tiers, TTLs, L3 threshold (from --threshold-grid) and "
                           "l3_text, each task under the budgets, and show its threshold curve.")] = False,
    tiers_grid: Annotated[str | None, typer.Option(
        "--tiers-grid", metavar="SETS", help="With --per-task: the tier sets a task may use, tiers joined by +, "
        "e.g. l1+l2+l3,l1+l2,l1 [default: the enabled tiers, then without the last one, down to L1 alone]",
        show_default=False)] = None,
    l3_text_grid: Annotated[list[str] | None, typer.Option(
        "--l3-text-grid", metavar="CHOICES", help="With --per-task: what L3 may embed for a task, e.g. "
        "last-user,strip-template (comma-separated or repeated) [default: the configured l3_text]",
        show_default=False)] = None,
    scope_grid: Annotated[list[str] | None, typer.Option(
        "--scope-grid", metavar="SCOPES", help="The scopes to try (docs/keys-and-scope.md \"Keys and scope\"): none, or scope values "
        "joined by +, e.g. none,lead,attrs.zip_code+day (comma-separated or repeated); one read of the log per scope; "
        "with --per-task each task chooses its own [default: the configured scope, then lead alone when a candidate "
        "with it serves another lead's answer beyond --max-cross-lead]", show_default=False)] = None,
    max_cross_lead: opt.MaxCrossLeadOption = "0",
    adaptive: Annotated[bool, typer.Option("--adaptive", help="Also try TTLs that shrink with conversation velocity.")] = False,
    write_config_to: Annotated[Path | None, typer.Option("--write-config", metavar="FILE",
                                                         help="Write the recommended settings as a config for replay --config.",
                                                         show_default=False)] = None,
    plot: Annotated[Path | None, typer.Option("--plot", metavar="FILE.png", help="Plot hit rate and cost against TTL, and the frontier.",
                                              show_default=False)] = None,
    tiers: opt.TiersOption = None,
    workers: opt.WorkersOption = None,
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
    html: opt.HtmlOption = None,
    json_output: opt.JsonOption = False,
) -> None:
    """Find the cheapest TTLs (and L3 threshold) whose stale and mismatched hits stay within budget;
    with --per-task, each task's tiers, TTLs, L3 threshold and l3_text.

    Every combination of the grids is replayed with the same engine as `tiercli replay`, so each
    candidate's figures equal what replay reports with those settings. Budgets are shares of
    all requests. The recommendation is the cheapest candidate within both budgets; the
    frontier lists the candidates no other beats on both cost and stale+mismatched rate.

    With --per-task, each task gets the cheapest settings within the budgets on its own
    requests, and its curve of hit rate against mismatch rate over the threshold grid: a
    threshold optimiser that needs no hand-labelled pairs, since a hit is wrong when its answer
    differs from the one the call recorded, under the task's answer rule (same_answer).

    The run is saved (unless --no-save) as a replay of the recommended settings (of the
    configured ones when none is within the budgets) holding the sweep: `tiercli report RUN`
    shows the sweep again, and --html pages it.

    \b
    Examples:
      tiercli tune-ttl sample_logs/realestate_day.jsonl
      tiercli tune-ttl logs.jsonl --max-stale 0.5% --per-task --write-config tuned.toml
      tiercli tune-ttl logs.jsonl --threshold-grid 0.85,0.9,0.92,0.95 --l3-grid 1h --json
      tiercli tune-ttl logs.jsonl --tiers l1,l2 --adaptive --plot ttl.png
      tiercli tune-ttl logs.jsonl --per-task --threshold-grid 0.85,0.9,0.95 --l3-text-grid last-user,strip-template
      tiercli tune-ttl logs.jsonl --per-task --html ttl.html
    """
    grids = {"l1": _grid(l1_grid, "--l1-grid", parse_duration), "l2": _grid(l2_grid, "--l2-grid", parse_duration),
             "l3": _grid(l3_grid, "--l3-grid", parse_duration)}
    thresholds = _grid(threshold_grid, "--threshold-grid", lambda v: check_threshold(float(v)))
    stale_budget, mismatch_budget = opt.parse_share(max_stale, "--max-stale"), opt.parse_share(max_mismatch, "--max-mismatch")
    tier_sets, l3_texts = _tier_sets(tiers_grid), _l3_texts(l3_text_grid)
    cross_lead_budget, scope_choices = opt.parse_share(max_cross_lead, "--max-cross-lead"), opt.parse_scope_grid(scope_grid)
    with command_edge(json_output), ExitStack() as stack:
        no_html_without_run(html, no_save)
        if (tier_sets or l3_texts) and not per_task:
            raise UsageError("--tiers-grid and --l3-text-grid choose settings per task", hint="add --per-task")
        base = settings_from_flags(config, {
            "tiers": tiers, "workers": workers, "l1_max_entries": l1_max_entries, "l2_max_entries": l2_max_entries,
            "l3_max_entries": l3_max_entries, "l3_threshold": l3_threshold, "invalidation": invalidation,
            "tasks": task, "same_answer": same_answer, "l3_text": l3_text, "timezone": timezone,
            "executor": executor, "ray_address": ray_address, "embedder": embedder})
        if base.l2_redis_url:
            raise TiercliError("tune-ttl simulates L2 in process", hint="drop l2_redis_url from the config for tune-ttl")
        for tier_set in tier_sets or ():
            if not set(tier_set) <= set(base.tiers):
                raise UsageError(f"--tiers-grid: {'+'.join(tier_set)} names a tier that is not enabled",
                                 hint=f"the enabled tiers: {','.join(base.tiers)} (--tiers, and a TTL of 0 turns one off)")
        grids = {t: grids[t] or tune.DEFAULT_GRIDS[t] for t in grids}
        candidates = tune.grid_candidates(base, grids, thresholds or (base.l3_threshold,))
        stack.enter_context(executor_session(base))  # Ray, when asked: reading, embedding, replay
        read = load_events(log, base, log_format=log_format, field_map=field_map, skip_invalid=skip_invalid,
                           digest=not no_save)
        for note in read_notes(read):
            stderr.print(note, markup=False, highlight=False)
        scopes = scope_choices or tune_tasks.default_scopes(base)
        with progress_bars() as progress:
            sweep = _sweep(read, base, progress, above_noise_floor)
            reread = partial(_read_again, log, log_format=log_format, field_map=field_map, skip_invalid=skip_invalid)
            sweep_for = _sweeps_for(sweep, reread, progress, above_noise_floor)
            # a scope changes the keys, made as the log is read: one sweep per scope
            scope_sweeps = {}
            rows = []

            def sweep_scopes(todo: list[tuple[str, ...]]) -> None:
                for scope in todo:
                    scope_sweeps[scope] = sweep_for(dataclasses.replace(base, scope=scope))
                    what = f"candidates, scope {tune_tasks.scope_text(scope)}" if len(scopes) > 1 else "candidates"
                    rows.extend({**row, "scope": scope}
                                for row in scope_sweeps[scope].run(candidates, progress(what, len(candidates))))

            sweep_scopes(scopes)
            # by default the lead alone is tried too when a candidate served another lead's answer
            # (not from stdin, which cannot be read again)
            lead = tune_tasks.lead_scope(scopes, rows, cross_lead_budget) if scope_choices is None and "-" not in log else None
            if lead:
                scopes = [*scopes, lead]
                sweep_scopes([lead])
            show_scope = len(scopes) > 1 or any(scopes)
            row_of = partial(_row, base=base, show_scope=show_scope)
            fixed_best, _, _ = tune.recommend(rows, stale_budget, mismatch_budget, cross_lead_budget)
            adaptive_rows, adaptive_candidates = [], []
            if adaptive:
                seed = fixed_best or min(rows, key=lambda r: r["cached_usd"])
                adaptive_candidates = tune.adaptive_candidates(seed["candidate"])
                adaptive_rows = [{**row, "scope": seed["scope"]} for row in scope_sweeps[seed["scope"]].run(
                    adaptive_candidates, progress("adaptive candidates", len(adaptive_candidates)))]
            all_rows = rows + adaptive_rows
            best, runner_up, reasons = tune.recommend(all_rows, stale_budget, mismatch_budget, cross_lead_budget)
            if per_task:
                # per task, even when no single set of TTLs is in budget: a task may then go uncached
                neutral = tune_tasks.neutral_settings(base)
                tier_sets = tier_sets or tune_tasks.default_tier_sets(neutral.tiers)
                task_grid = tune_tasks.task_candidates(neutral, grids, thresholds or tune_tasks.default_thresholds(base),
                                                       tier_sets)
                per_task_result = tune_tasks.tune_per_task(
                    sweep_for, neutral, task_grid,
                    l3_texts or tune_tasks.default_l3_texts(base), stale_budget, mismatch_budget,
                    adaptive=adaptive_candidates, anchor=best["candidate"] if best else None, tier_sets=tier_sets,
                    scopes=scopes, max_cross_lead=cross_lead_budget, progress=progress)
        data = {
            "log": read.path, "requests": len(read.calls), "candidates": len(all_rows),
            "budgets": {"max_stale": stale_budget, "max_mismatch": mismatch_budget,
                        "max_cross_lead": cross_lead_budget, "above_noise_floor": above_noise_floor},
            "scopes": [tune_tasks.scope_text(scope) for scope in scopes],
            "noise_floor": floors_of(read.calls, sweep.repeats),
            "tiers": list(base.tiers),
            "recommended": row_of(best), "runner_up": row_of(runner_up), "why": reasons,
            "frontier": [row_of(r) for r in tune.frontier(all_rows)],
            "results": [row_of(r) for r in sorted(all_rows, key=tune.rank)],
            # docs/tune-ttl.md "How the sweep shares work": how many candidates shared the work, and why not the rest
            "replays": sweep.replays,
        }
        for reason, count in sweep.replays["engine"].items():
            stderr.print(f"note: {count} candidate{'s' if count > 1 else ''} replayed in full, without the sweep's "
                         f"shared work: {reason}", markup=False, highlight=False)
        if "l3" in base.tiers:
            data["thresholds"] = _threshold_sweep(rows, stale_budget, mismatch_budget, cross_lead_budget)
        if adaptive:
            best_adaptive, _, _ = tune.recommend(adaptive_rows, stale_budget, mismatch_budget, cross_lead_budget)
            data["adaptive"] = {"best_fixed": row_of(fixed_best), "best_adaptive": row_of(best_adaptive),
                                "beats_fixed": bool(best_adaptive and (fixed_best is None or
                                                    best_adaptive["cached_usd"] < fixed_best["cached_usd"])),
                                "windows": [format_duration(w) for w in tune.ADAPTIVE_WINDOWS],
                                "scales": list(tune.ADAPTIVE_SCALES), "stretch": list(tune.ADAPTIVE_STRETCH)}
        chosen = dataclasses.replace(best["candidate"].settings(base), scope=best["scope"]) if best else None
        if per_task:
            data["per_task"] = tune_tasks.report(per_task_result, neutral, stale_budget, mismatch_budget,
                                                 best["cached_usd"] if best else None, cross_lead_budget)
            if data["per_task"]["within_budgets"]:
                chosen = per_task_result.settings
        if write_config_to is not None:
            if chosen is None:
                raise TiercliError("no settings are within the budgets, so there is no config to write",
                                   hint="raise --max-stale/--max-mismatch or widen the grids")
            write_config(write_config_to, chosen, [
                f"written by tiercli tune-ttl from {read.path}",
                f"budgets: stale <= {stale_budget * 100:g}%, another lead's answer <= {cross_lead_budget * 100:g}%, "
                f"mismatched <= {mismatch_budget * 100:g}% of requests"
                + (" (above the noise floor)" if above_noise_floor else "")])
            data["config_written"] = str(write_config_to)
            stderr.print(f"wrote {write_config_to}", markup=False, highlight=False)
        if plot is not None:
            plot_tune(rows, base, best, tune.frontier(all_rows), plot,
                      task_curves=data["per_task"]["tasks"] if per_task else None, max_mismatch=mismatch_budget)
            stderr.print(f"wrote {plot}", markup=False, highlight=False)
        if not no_save:
            data["run_id"] = _save_tuned(read, base, chosen, data, None if "-" in log else partial(
                load_events, log, log_format=log_format, field_map=field_map, skip_invalid=skip_invalid))
            if html:
                write_run_html(data["run_id"], html)
        if json_output:
            print_json(data)
        else:
            tune_report(data, report_console())


def _save_tuned(read, base: Settings, chosen: Settings | None, data: dict, read_with) -> str:
    """Saves the sweep as a run: one replay of the chosen settings (the configured ones when none
    is within the budgets) with the sweep in its summary, so that report and --html show both.
    The chosen settings' keys and L3 texts are made as the log is read: read again for them
    (read_with(settings, digest=); None for stdin, which cannot be: then the configured settings
    are replayed, and the run says so)."""
    settings, replayed = (chosen, "recommended") if chosen is not None else (base, "configured")
    if settings != base:
        if read_with is None:
            settings, replayed = base, "configured"
        else:
            read = read_with(settings, digest=True)
    with progress_bars() as progress:
        run = run_replay(read, settings, progress=progress)
    run.summary["tune"] = {**data, "replayed": replayed}
    run.summary["command"] = invocation()  # what the HTML report says reproduces it
    folder = save(run)
    stderr.print(f"saved run {run.id} ({folder}), a replay of the {replayed} settings; see it again with: "
                 f"tiercli report {run.id}", markup=False, highlight=False)
    return run.id


def _row(row: dict | None, base, show_scope: bool = False) -> dict | None:
    """A row as --json gives it; its label names the scope when the scope grid tried one."""
    if row is None:
        return None
    c = row["candidate"]
    scope = tune_tasks.scope_text(row.get("scope", ()))
    out = {"settings": {"l1_ttl": format_duration(c.l1_ttl), "l2_ttl": format_duration(c.l2_ttl),
                        "l3_ttl": format_duration(c.l3_ttl), "l3_threshold": c.l3_threshold,
                        "adaptive_window": None if c.adaptive_window is None else format_duration(c.adaptive_window),
                        "adaptive_scale": c.adaptive_scale, "scope": scope},
           "label": c.label(base.tiers) + (f", scope {scope}" if show_scope else "")}
    out.update({k: v for k, v in row.items() if k not in ("candidate", "scope")})
    return out


def _threshold_sweep(rows: list[dict], stale_budget: float, mismatch_budget: float,
                     cross_lead_budget: float) -> list[dict]:
    """Per threshold, the cheapest candidate with L3 on: its L3 hits and how many were wrong."""
    best: dict[float, dict] = {}
    for row in rows:
        c = row["candidate"]
        if c.l3_ttl == 0 or c.adaptive_window is not None:
            continue
        if c.l3_threshold not in best or tune.rank(row) < tune.rank(best[c.l3_threshold]):
            best[c.l3_threshold] = row
    out = []
    for threshold, row in sorted(best.items()):
        hits = row["tiers"]["l3"]["hits"]
        c = row["candidate"]
        out.append({"l3_threshold": threshold, "at": {"l1_ttl": format_duration(c.l1_ttl),
                                                      "l2_ttl": format_duration(c.l2_ttl),
                                                      "l3_ttl": format_duration(c.l3_ttl)},
                    "l3_hits": hits, "l3_mismatched_hits": row["l3_mismatched_hits"],
                    "l3_mismatch_share": row["l3_mismatched_hits"] / hits if hits else 0.0,
                    "cached_usd": row["cached_usd"], "mismatch_rate": row["mismatch_rate"],
                    "within_budgets": tune.within(row, stale_budget, mismatch_budget, cross_lead_budget)})
    return out


def _sweep(read, settings: Settings, progress, above_floor: bool) -> tune.Sweep:
    """A sweep over a read log: its L3 texts embedded for every task (a candidate may turn L3
    on for any task), and the judge of its answers under the tasks' rules."""
    vectors = row_of_text = None
    if "l3" in settings.tiers:
        vectors, row_of_text, _ = embeddings_for(read, None, settings, progress, every_task=True)
    judge, _ = answer_judge(read, None, settings, progress)
    with of_log(read.path, [f.name for f in read.files]):  # a cost beyond what sums exactly names the log and the line
        return tune.Sweep(read, settings, vectors, row_of_text, above_floor=above_floor, judge=judge)


def _read_again(log: list[str], settings: Settings, log_format: str, field_map, skip_invalid: bool):
    if "-" in log:
        raise UsageError("tune-ttl reads the log again for each scope (and with --per-task each l3_text) it tries, "
                         "and stdin cannot be read twice",
                         hint="save the log to a file, or leave out --scope-grid and --l3-text-grid")
    return load_events(log, settings, log_format=log_format, field_map=field_map, skip_invalid=skip_invalid,
                       digest=False)


def _sweeps_for(first: tune.Sweep, read_again, progress, above_floor: bool):
    """Per-task tuning's sweep_for(settings). What L3 embeds for each task is decided as the log
    is read, so the log is read again (and its new texts embedded) only for settings that
    change it for some task; each such read serves every settings that embed alike."""
    tasks = sorted({call.task for call in first.read.calls})

    def texts_of(settings: Settings) -> tuple:  # and the keys: a scope is in them
        return settings.template_share, tuple((settings.l3_text_for(task).text, settings.scope_for(task))
                                              for task in tasks)

    sweeps = {texts_of(first.base): first}

    def sweep_for(settings: Settings) -> tune.Sweep:
        if settings == first.base:
            return first  # the candidates it has replayed are not replayed again
        key = texts_of(settings)
        if key not in sweeps:
            sweeps[key] = _sweep(read_again(settings), settings, progress, above_floor)
        known = sweeps[key]
        if known.base == settings:
            return known
        return tune.Sweep(known.read, settings, known.vectors, known.row_of_text, above_floor=above_floor,
                          judge=known.judge)

    return sweep_for
