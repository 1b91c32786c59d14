"""Field maps: `--map lead_id=metadata.contact_id` (or a `[map]` table in the config) says
where one of tiercli's fields is in another format's records.

In JSON, CSV and Parquet records a path is dotted: `metadata.contact_id` is the field
`contact_id` of the object `metadata`; a number picks a list element (`messages.0.content`);
a key that itself contains a dot is written with a backslash before the dot (`attrs.app\\.lead`).
A key that matches the whole path as written is taken first, so flat records with dotted
column names (`metadata.task` as one CSV column) need no escape. In span formats (otel) a
path names a span attribute, else a resource attribute, whole: `session.id`."""

from __future__ import annotations

import re
from typing import Any

import orjson

from tiercli.errors import UsageError

# What a map can set: tiercli's record fields (docs/logs/native.md "Log format") and what spans lack.
TARGETS = ("ts", "lead_id", "task_type", "model", "prompt", "messages", "system", "response", "input_tokens",
           "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens", "latency_ms", "worker",
           "streaming", "use_tools", "type", "tag", "usage", "end_ts", "params")
_UNESCAPED_DOT = re.compile(r"(?<!\\)\.")
MISSING = object()


def parse_map(entries: list[str] | dict[str, Any] | None, origin: str = "--map") -> dict[str, str]:
    """{target: path} from `TARGET=PATH` flags or a config table; a bad entry is a usage error."""
    if not entries:
        return {}
    pairs: list[tuple[str, Any]]
    if isinstance(entries, dict):
        pairs = list(entries.items())
    else:
        pairs = []
        for entry in entries:
            target, equals, path = entry.partition("=")
            if not equals:
                raise UsageError(f"{origin} {entry!r}: expected FIELD=PATH, e.g. lead_id=metadata.contact_id")
            pairs.append((target.strip(), path.strip()))
    out: dict[str, str] = {}
    for target, path in pairs:
        if target == "contact_id":
            target = "lead_id"
        if target not in TARGETS:
            raise UsageError(f"{origin}: {target!r} is not a field tiercli reads",
                             hint="one of: " + ", ".join(TARGETS))
        if not isinstance(path, str) or not path:
            raise UsageError(f"{origin}: {target}: the path is empty", hint=f"e.g. {target}=metadata.{target}")
        out[target] = path
    return out


def split_path(path: str) -> list[str]:
    return [part.replace("\\.", ".") for part in _UNESCAPED_DOT.split(path)]


def lookup(record: Any, path: str) -> Any:
    """The value at a dotted path in a record, or MISSING."""
    if isinstance(record, dict):
        whole = path.replace("\\.", ".")
        if whole in record:
            return record[whole]
    value = record
    for part in split_path(path):
        if isinstance(value, dict):
            if part not in value:
                return MISSING
            value = value[part]
        elif isinstance(value, list) and part.lstrip("-").isdigit():
            index = int(part)
            if not -len(value) <= index < len(value):
                return MISSING
            value = value[index]
        else:
            return MISSING
    return value


def get(record: Any, path: str, default: Any = None) -> Any:
    value = lookup(record, path)
    return default if value is MISSING else value


def json_text(value: Any) -> Any:
    """A string holding a JSON object or array, parsed (exports keep nested fields as JSON
    text: a CSV cell, LiteLLM's metadata); any other value as it is."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] in ("{", "[") and stripped[-1:] in ("}", "]"):
            try:
                return orjson.loads(stripped)
            except orjson.JSONDecodeError:
                return value
    return value


def value_at(record: Any, path: str) -> Any:
    """The value at a dotted path (fieldmap.py's syntax), or MISSING; JSON text met on the way
    is parsed, so `metadata.contact_id` reaches into a metadata column kept as JSON text."""
    value = lookup(record, path)
    if value is not MISSING:
        return value
    value = record
    for part in split_path(path):
        value = json_text(value)
        if isinstance(value, dict):
            if part not in value:
                return MISSING
            value = value[part]
        elif isinstance(value, list) and part.lstrip("-").isdigit() and -len(value) <= int(part) < len(value):
            value = value[int(part)]
        else:
            return MISSING
    return value
