"""Command-line options, defined once and shared by the commands (Annotated aliases)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from tiercli import settings as S
from tiercli.durations import UNIT_WORDS, parse_duration
from tiercli.ingest.formats import CHOICES


def _checked(check):
    """A typer callback that runs one of the settings' checks and turns ValueError into a usage error."""

    def callback(value):
        if value is None:
            return None
        try:
            return check(value)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None

    return callback


def finite_number(low: float, high: float | None, what: str):
    """A typer callback for a float flag: a finite number from low to high. (typer's own min and
    max let inf, 1e400 and nan through, and would print a budget of Infinity in --json.)"""

    def callback(value: float | None) -> float | None:
        if value is not None and not (math.isfinite(value) and low <= value and (high is None or value <= high)):
            raise typer.BadParameter(f"must be {what}, got {value!r}")
        return value

    return callback


def _format_choice(value: str) -> str:
    if value not in CHOICES:
        raise ValueError(f"{value!r} is not one of {', '.join(CHOICES)}")
    return value


def _duration_text(value: str | None) -> str | None:
    if value is not None:
        try:
            parse_duration(value)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
    return value  # kept as text: None means "not given", while "none" means "never expires"


def _logs(values: list[str]) -> list[str]:
    """`--l1-ttl 5 min` unquoted leaves `min` as a log: say so, rather than that no file `min` exists."""
    for value in values:
        if value.lower() in UNIT_WORDS and not Path(value).exists():
            raise typer.BadParameter(f"{value!r} is not a log file: a duration with a space needs quotes, "
                                     f"e.g. --l1-ttl '5 {value}'")
    return values


LogArgument = Annotated[list[str], typer.Argument(
    metavar="LOG", help="The logs: files (.gz and .zst too), folders, globs, or - for stdin; "
    "tiercli's JSON Lines or another tool's export (docs/logs/index.md \"Bring your logs\").", callback=_logs,
    show_default=False)]
FormatOption = Annotated[str, typer.Option(
    "--format", metavar="FORMAT", help="The logs' format: auto (detected per file), tiercli, otel, langfuse, "
    "litellm, helicone or map.", callback=_checked(lambda v: _format_choice(v)))]
MapOption = Annotated[list[str] | None, typer.Option(
    "--map", metavar="FIELD=PATH", help="Where a field of ours is in the records, e.g. lead_id=metadata.contact_id "
    "(repeatable; docs/logs/index.md \"Bring your logs\").", show_default=False)]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout and nothing else there.")]
ConfigOption = Annotated[Path | None, typer.Option(
    "--config", metavar="FILE", help="A TOML file of settings; flags override it.", show_default=False)]
TiersOption = Annotated[str | None, typer.Option(
    "--tiers", metavar="TIERS", help="Enabled tiers, e.g. l1,l2 [default: l1,l2,l3]",
    callback=_checked(S.check_tiers), show_default=False)]
WorkersOption = Annotated[int | None, typer.Option(
    "--workers", metavar="N", help="Spread calls round-robin over N workers (ignores recorded worker fields).",
    callback=_checked(S.check_workers), show_default=False)]
L1TtlOption = Annotated[str | None, typer.Option(
    "--l1-ttl", metavar="DURATION", help="L1 TTL: 300, 30s, 5m, 5 min, 1h or none [default: 5m]",
    callback=_duration_text, show_default=False)]
L2TtlOption = Annotated[str | None, typer.Option(
    "--l2-ttl", metavar="DURATION", help="L2 TTL [default: 15m]", callback=_duration_text, show_default=False)]
L3TtlOption = Annotated[str | None, typer.Option(
    "--l3-ttl", metavar="DURATION", help="L3 TTL [default: 1h]", callback=_duration_text, show_default=False)]
L1MaxOption = Annotated[int | None, typer.Option(
    "--l1-max-entries", metavar="N", help="Capacity of each worker's L1 (LRU) [default: unlimited]",
    callback=_checked(S.check_positive_int), show_default=False)]
L2MaxOption = Annotated[int | None, typer.Option(
    "--l2-max-entries", metavar="N", help="Capacity of L2 (LRU) [default: unlimited]",
    callback=_checked(S.check_positive_int), show_default=False)]
L3MaxOption = Annotated[int | None, typer.Option(
    "--l3-max-entries", metavar="N", help="Capacity of L3 (LRU) [default: unlimited]",
    callback=_checked(S.check_positive_int), show_default=False)]
ThresholdOption = Annotated[float | None, typer.Option(
    "--l3-threshold", metavar="COSINE", help="L3 cosine similarity needed for a hit [default: 0.92]",
    callback=_checked(S.check_threshold), show_default=False)]
InvalidationOption = Annotated[str | None, typer.Option(
    "--invalidation", metavar="local|broadcast", help="On a tag change, clear the lead's L1 entries on one worker "
    "(local) or all (broadcast) [default: local]", callback=_checked(S.check_invalidation), show_default=False)]
RedisUrlOption = Annotated[str | None, typer.Option(
    "--redis-url", "--redis", metavar="URL", help="Keep L2 in this Redis (redis://[:password@]host:port/db, "
    "rediss:// for TLS), or 'embedded' to start a private redis-server [default: L2 in process]",
    callback=_checked(S.check_redis_url), show_default=False)]
RedisTimeoutOption = Annotated[str | None, typer.Option(
    "--redis-timeout", metavar="DURATION", help="Connect and per-command timeout for Redis [default: 2s]",
    callback=_checked(S.check_timeout), show_default=False)]
MaxmemoryOption = Annotated[str | None, typer.Option(
    "--l2-maxmemory", metavar="SIZE", help="With --redis embedded: Redis's maxmemory, e.g. 64mb [default: none]",
    callback=_checked(S.check_memory), show_default=False)]
EvictionOption = Annotated[str | None, typer.Option(
    "--l2-eviction", metavar="POLICY", help="With --redis embedded: maxmemory-policy, e.g. allkeys-lru, volatile-ttl "
    "[default: allkeys-lru]", callback=_checked(S.check_eviction), show_default=False)]
KeepRedisKeysOption = Annotated[bool, typer.Option(
    "--keep-redis-keys", help="Leave this run's keys in Redis (they are deleted at the end otherwise).")]


def _task_flags(values: list[str] | None) -> list[str] | None:
    if values:
        try:
            S.check_tasks(S.task_flags(values))
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
    return values


TaskOption = Annotated[list[str] | None, typer.Option(
    "--task", metavar="TASK.SETTING=VALUE", help="A setting for one task type, as in [tasks.TASK]: tiers, "
    "l1_ttl, l2_ttl, l3_ttl, l3_threshold, same_answer, l3_text, key_params, scope, key (repeatable), e.g. "
    "memory.tiers=l1,l2",
    callback=_task_flags, show_default=False)]
SameAnswerOption = Annotated[str | None, typer.Option(
    "--same-answer", metavar="RULE", help="When two answers are the same: exact, normalized, "
    "json:FIELD[,FIELD...], regex:PATTERN, embedding:T or any [default: exact]",
    callback=_checked(S.check_answer_rule), show_default=False)]
TimezoneOption = Annotated[str | None, typer.Option(
    "--timezone", metavar="ZONE", help="The time zone of the day and hour scopes: an IANA name such as "
    "America/Chicago [default: UTC]", callback=_checked(S.check_timezone), show_default=False)]
L3TextOption = Annotated[str | None, typer.Option(
    "--l3-text", metavar="CHOICE", help="What L3 embeds: last-user, all-user, regex:PATTERN, field:PATH or "
    "strip-template [default: last-user]", callback=_checked(S.check_l3_text), show_default=False)]
HtmlOption = Annotated[Path | None, typer.Option(
    "--html", metavar="FILE", help="Also write the saved run as one self-contained HTML page to share: headline, per "
    "task, per lead, latency, provenance and settings (no network needed to read it).", show_default=False)]
NoSaveOption = Annotated[bool, typer.Option("--no-save", help="Do not save the run (for tiercli report).")]
RunArgument = Annotated[str | None, typer.Argument(
    metavar="RUN", help="A run id (or a unique start of one) [default: the latest run]", show_default=False)]
LiveOption = Annotated[bool, typer.Option("--live", help="Send the misses and bypassed calls to the Anthropic API "
                                          "(key from ANTHROPIC_API_KEY) and report recorded against live.")]
MaxSpendOption = Annotated[float | None, typer.Option(
    "--max-spend", metavar="USD", help="Live: hard cap on what the sent calls may cost (required in live mode, "
    "here or as max_spend in the config).", callback=_checked(S.check_max_spend), show_default=False)]
NoSpendCapOption = Annotated[bool, typer.Option("--no-spend-cap", help="Live: send without a spend cap (instead "
                                                "of --max-spend), if you mean it.")]
LimitOption = Annotated[int | None, typer.Option(
    "--limit", metavar="N", min=1, help="Live: send at most N calls.", show_default=False)]
ConcurrencyOption = Annotated[int, typer.Option(
    "--concurrency", metavar="N", min=1, max=64, help="Live: calls in flight at once.")]
YesOption = Annotated[bool, typer.Option("--yes", help="Live: do not ask for confirmation (needed when not interactive).")]
LiveTimeoutOption = Annotated[str, typer.Option(
    "--live-timeout", metavar="DURATION", help="Live: timeout of one API call.", callback=_checked(S.check_timeout))]
MaxRetriesOption = Annotated[int, typer.Option(
    "--max-retries", metavar="N", min=0, max=20, help="Live: retries of a call on 429, 500, 529 and connection errors.")]
RetryCapOption = Annotated[str, typer.Option(
    "--retry-cap", metavar="DURATION", help="Live: the longest single wait between retries (retry-after included).",
    callback=_checked(S.check_timeout))]
SkipInvalidOption = Annotated[bool, typer.Option("--skip-invalid", help="Skip bad lines (and say how many) instead of stopping.")]


def parse_share(text: str, flag: str) -> float:
    """A budget: '1%', or a fraction under 1 like 0.01. A bare 1 or more is refused, not read as a
    fraction (1 would be 100%, when 1% was surely meant) nor guessed to be a percentage."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise typer.BadParameter(f"not a share: {text!r} (use 1% or 0.01)", param_hint=flag) from None
    if not text.endswith("%") and 1 <= value <= 100:
        raise typer.BadParameter(f"{text!r}: a bare number is a fraction under 1 (0.01 is 1%); for {text.strip()} "
                                 f"percent write {text.strip()}%", param_hint=flag)
    if not 0 <= value <= 1:  # NaN too
        raise typer.BadParameter(f"must be between 0% and 100%, got {text!r}", param_hint=flag)
    return value


MaxStaleOption = Annotated[str, typer.Option(
    "--max-stale", metavar="SHARE", help="Budget: stale hits as a share of requests: a percentage (1%) or a "
    "fraction under 1 (0.01).")]
MaxMismatchOption = Annotated[str, typer.Option(
    "--max-mismatch", metavar="SHARE", help="Budget: mismatched hits as a share of requests: a percentage (2%) "
    "or a fraction under 1 (0.02).")]
MaxCrossLeadOption = Annotated[str, typer.Option(
    "--max-cross-lead", metavar="SHARE", help="Budget: hits that serve another lead's answer (cross_lead_hits) as a "
    "share of requests: a percentage (1%) or a fraction under 1 (0.01); 0, the default, never recommends serving "
    "one.")]
ExecutorOption = Annotated[str | None, typer.Option(
    "--executor", metavar="local|ray", help="Where the work runs: local, or ray (a Ray cluster at --ray-address, "
    "else a local Ray instance; needs tiercli[ray]) [default: local]", callback=_checked(S.check_executor),
    show_default=False)]
EmbedderOption = Annotated[str | None, typer.Option(
    "--embedder", metavar="onnx|torch", help="L3's embedding backend: onnx (ONNX Runtime: the same model, "
    "exported once and checked against torch; torch if the check fails), or torch (sentence-transformers) "
    "[default: onnx]", callback=_checked(S.check_embedder), show_default=False)]
RayAddressOption = Annotated[str | None, typer.Option(
    "--ray-address", metavar="ADDRESS", help="With --executor ray: the cluster, e.g. auto or head:6379 "
    "[default: a new local instance]", callback=_checked(S.check_ray_address), show_default=False)]


def parse_scope_grid(values: list[str] | None) -> list[tuple[str, ...]] | None:
    """--scope-grid: scopes, each none or scope values joined by + (lead, attrs.zip_code+day),
    comma-separated or repeated."""
    if not values:
        return None
    scopes = []
    for value in values:
        for part in value.split(","):
            try:
                scopes.append(S.check_scope(part.strip().replace("+", ",")))
            except ValueError as exc:
                raise typer.BadParameter(f"{part.strip()!r}: {exc} (scope values joined by +, e.g. attrs.zip_code+day)",
                                         param_hint="--scope-grid") from None
    return list(dict.fromkeys(scopes))
