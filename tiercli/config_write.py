"""Writes settings as a TOML config that `replay --config` reads back to the same settings.
Secrets are never written: a Redis URL is left out."""

from __future__ import annotations

import json
from pathlib import Path

from tiercli.durations import format_duration
from tiercli.present.files import write_output  # whole or not at all; a device is written in place
from tiercli.settings import Settings, key_params_text, key_text, option_text


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value))  # a TOML basic string is a JSON string


def _duration(seconds: float | None) -> str:
    return _toml(format_duration(seconds))


def config_text(settings: Settings, comments: list[str]) -> str:
    lines = [f"# {c}" for c in comments]
    lines += [f"tiers = {_toml(list(settings.tiers))}", f"invalidation = {_toml(settings.invalidation)}"]
    if settings.workers is not None:
        lines.append(f"workers = {settings.workers}")
    lines.append(f"default_latency_ms = {_toml(settings.default_latency_ms)}")
    if settings.adaptive_window is not None:
        lines += [f"adaptive_window = {_duration(settings.adaptive_window)}",
                  f"adaptive_scale = {_toml(settings.adaptive_scale)}"]
    for tier in settings.tiers:  # a tier that is off is left out: replaying the file keeps it off
        lines += ["", f"[{tier}]", f"ttl = {_duration(settings.ttl(tier))}",
                  f"latency_ms = {_toml(settings.latency_ms(tier))}"]
        if settings.max_entries(tier) is not None:
            lines.append(f"max_entries = {settings.max_entries(tier)}")
        if tier == "l3":
            lines.append(f"threshold = {_toml(settings.l3_threshold)}")
            if settings.l3_model:
                lines.append(f"model = {_toml(settings.l3_model)}")
        if tier == "l2" and settings.l2_maxmemory:
            lines.append(f"maxmemory = {_toml(settings.l2_maxmemory)}")
        if tier == "l2" and settings.l2_eviction:
            lines.append(f"eviction = {_toml(settings.l2_eviction)}")
    if settings.same_answer != "exact":
        lines.insert(lines.index(f"invalidation = {_toml(settings.invalidation)}") + 1,
                     f"same_answer = {_toml(settings.same_answer)}")
    if settings.template_share != 0.5:
        lines.insert(lines.index(f"invalidation = {_toml(settings.invalidation)}") + 1,
                     f"template_share = {_toml(settings.template_share)}")
    if settings.l3_text != "last-user":
        lines.insert(lines.index(f"invalidation = {_toml(settings.invalidation)}") + 1,
                     f"l3_text = {_toml(settings.l3_text)}")
    if key_params_text(settings.key_params) != "all":
        lines.insert(lines.index(f"invalidation = {_toml(settings.invalidation)}") + 1,
                     f"key_params = {_toml(key_params_text(settings.key_params))}")
    for name, value, default in (("timezone", settings.timezone, None), ("key", key_text(settings.key), "request"),
                                 ("scope", list(settings.scope), [])):  # docs/keys-and-scope.md "Keys and scope"
        if value != default:
            lines.insert(lines.index(f"invalidation = {_toml(settings.invalidation)}") + 1, f"{name} = {_toml(value)}")
    for task in sorted(set(settings.task_ttls) | set(settings.task_options)):
        lines += ["", f"[tasks.{_toml(task)}]"]
        lines += [f"{tier}_ttl = {_duration(ttl)}" for tier, ttl in sorted(settings.task_ttls.get(task, {}).items())]
        for key, value in sorted(settings.task_options.get(task, {}).items()):
            lines.append(f"{key} = {_toml(option_text(key, value))}")
    for model, price in sorted(settings.prices.items()):
        lines += ["", f"[prices.{_toml(model)}]"]
        lines += [f"{k} = {_toml(v)}" for k, v in vars(price).items() if v is not None]
    return "\n".join(lines) + "\n"


def write_config(path: Path, settings: Settings, comments: list[str]) -> None:
    text = config_text(settings, comments)
    write_output(path, lambda file: file.write(text.encode()), "config")
