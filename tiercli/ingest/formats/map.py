"""`--format map`: any JSON Lines, JSON, CSV or Parquet file whose records are calls, read
through a field map (`--map FIELD=PATH`, or `[map]` in the config; fieldmap.py has the path
syntax). This is how an application's own logs come in without code.

Every record is a call, but one whose `type` is "tag_change" (any other value, an app's own
"llm_call" say, is a call too). A field the map does not name is read from tiercli's own field
name at the top level, so a native-like log with one renamed field needs one --map. Values are
read in the forms applications log them: timestamps as RFC 3339 text (no offset: UTC) or epoch
seconds, milliseconds, microseconds or nanoseconds; numbers and booleans as text (CSV);
messages in either API's shape; a whole usage object (`usage`, either API's); `end_ts` for the
latency. An empty value (an empty CSV cell) is an absent one.

The helpers here (`value_at`, `mapped_fields`) also serve the other formats' --map overrides."""

from __future__ import annotations

import json
from typing import Any

from tiercli.core import fieldmap
from tiercli.ingest import chat
from tiercli.core.depth import require_within
from tiercli.ingest.foreign import Builder, api_params, boolean, number, text, timestamp
from tiercli.ingest.formats import Sample
from tiercli.core.fieldmap import json_text, value_at
from tiercli.ingest.items import items
from tiercli.ingest.records import RecordProblem

MISSING = fieldmap.MISSING
CALL_REQUIRED = ("ts", "lead_id", "task_type", "model")
TAG_FIELDS = ("ts", "lead_id", "tag", "worker")
TAG_REQUIRED = ("ts", "lead_id", "tag")
CONTENT = ("prompt", "messages")
TOKENS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
LATENCY_DECIMALS = 3  # ms to the microsecond: what the exports' times hold; hides float noise of t1 - t0


# --- reading a path -----------------------------------------------------------------------------


def _without_nones(value: dict) -> dict:
    return {k: _without_nones(v) if isinstance(v, dict) else v for k, v in value.items() if v is not None}


def _absent(value: Any) -> bool:
    return value is MISSING or value is None or value == ""


# --- values as applications log them ------------------------------------------------------------

def _name(value: Any, path: str) -> str | None:
    """An id or a name (lead, task, model, worker, tag): text or a number."""
    if isinstance(value, (dict, list)):
        raise RecordProblem(path, f"must be a string or a number, got {type(value).__name__}")
    return text(value)


def _prompt(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise RecordProblem(path, f"must be a string, got {type(value).__name__}"
                            + (" (a list of messages? map it as messages)" if isinstance(value, list) else ""))
    return value


def _response(value: Any, path: str) -> str:
    """The answer: text as it is; an API response object (Messages or Chat Completions) gives
    its text; any other JSON (an answer that was JSON, parsed from a CSV cell) is written back."""
    if isinstance(value, str):
        return value
    answer = chat.response_text(value) if isinstance(value, (dict, list)) else None
    if answer is None:
        if not isinstance(value, (dict, list)):
            raise RecordProblem(path, f"must be a string or a response object, got {type(value).__name__}")
        require_within(value, path)
        return json.dumps(value, ensure_ascii=False)
    return answer


def _converted(target: str, value: Any, path: str) -> Any:
    """One present value of a scalar field, in tiercli's terms."""
    if target in ("ts", "end_ts"):
        return timestamp(value, path)
    if target in ("lead_id", "task_type", "model", "worker", "tag"):
        return _name(value, path)
    if target == "prompt":
        return _prompt(value, path)
    if target == "response":
        return _response(value, path)
    if target in TOKENS:
        return chat.usage_from(value, input_includes_cache=False, fields=(path,) * 4).input_tokens
    if target == "latency_ms":
        return number(value, path)
    if target in ("streaming", "use_tools"):
        return boolean(value, path)
    raise AssertionError(target)


def mapped_params(value: Any, path: str) -> tuple[dict, dict]:
    """(params, origin) of a mapped `params`: an object of request parameters (a request body,
    an SDK's parameters; JSON text of one), named as the APIs name them (foreign.api_params),
    its `tools` too."""
    value = json_text(value)
    if not isinstance(value, dict):
        raise RecordProblem(path, f"must be an object of request parameters, got {type(value).__name__}")
    params, origin = api_params(value, path)
    if value.get("tools") is not None:
        params["tools"], origin["params.tools"] = value["tools"], f"{path}.tools"
    return params, origin


def mapped_fields(record: Any, paths: dict[str, str], required: tuple[str, ...] = ()) -> tuple[dict, dict]:
    """(fields in tiercli's record shape, origin: tiercli field -> the path it came from) of
    the fields `paths` names ({tiercli field: path}). An absent field is None (unknown), or a
    RecordProblem naming its path when it is in `required`. `messages` may be either API's
    list (its system messages join `system`); `usage` (either API's usage object) fills the
    token fields that are not mapped and present themselves; `end_ts` gives the latency unless
    latency_ms is present."""
    fields: dict[str, Any] = {}
    origin: dict[str, str] = {}
    present: dict[str, Any] = {}
    for target, path in paths.items():
        value = value_at(record, path)
        if _absent(value):
            if target in required:
                raise RecordProblem(path, "missing (required)",
                                    hint=f"say where the record keeps it: --map {target}=PATH (or [map] in the "
                                         f"config)" if path == target else None)
            if target not in ("usage", "end_ts", "messages", "system", "type"):
                fields[target] = None
        elif target != "type":
            present[target] = value
            origin[target] = path
    for target, value in present.items():
        if target not in ("messages", "system", "usage", "params"):
            fields[target] = _converted(target, value, origin[target])
    if "params" in present:
        fields["params"], params_origin = mapped_params(present["params"], origin["params"])
        origin.update(params_origin)
    if "messages" in present or "system" in present:
        system = json_text(present.get("system"))
        if "messages" in present:
            system, fields["messages"] = chat.split_messages(json_text(present["messages"]), origin["messages"],
                                                             system)
            if system is not None and "system" not in origin:
                origin["system"] = origin["messages"]
        fields["system"] = system  # else a string or blocks, as natively: the native checks name its path
    if "usage" in present:
        usage = json_text(present["usage"])
        if isinstance(usage, dict):  # a Parquet struct has every key of the column, None where a row has none
            usage = _without_nones(usage)
        usage = chat.usage_object(usage, origin["usage"])
        for name, amount in zip(TOKENS, (usage.input_tokens, usage.output_tokens, usage.cache_read,
                                         usage.cache_write)):
            if fields.get(name) is None and amount is not None:
                fields[name] = amount
                origin[name] = origin["usage"]
        chat.split_into(usage, fields, origin)
    end = fields.pop("end_ts", None)
    if end is not None and fields.get("latency_ms") is None and fields.get("ts") is not None:
        if end < fields["ts"]:
            raise RecordProblem(origin["end_ts"], f"before the call's start ({origin.get('ts', 'ts')})")
        fields["latency_ms"] = round((end - fields["ts"]) * 1000, LATENCY_DECIMALS)
        origin["latency_ms"] = origin["end_ts"]
    return fields, origin


# --- the format ---------------------------------------------------------------------------------

def paths_of(field_map: dict[str, str], record: Any) -> dict[str, str]:
    """Where each of tiercli's fields is: the map's path, else our own name at the top level
    (`contact_id` for the lead when `lead_id` is absent, as in the native format)."""
    paths = {target: target for target in fieldmap.TARGETS}
    if "lead_id" not in field_map and isinstance(record, dict) and "lead_id" not in record and "contact_id" in record:
        paths["lead_id"] = "contact_id"
    paths.update(field_map)
    return paths


def record_of(value: Any, field_map: dict[str, str]) -> tuple[str, dict, dict]:
    """("call" or "tag_change", the record in tiercli's shape, origin) of one source record."""
    if not isinstance(value, dict):
        raise RecordProblem(None, f"not an object (a {type(value).__name__})")
    paths = paths_of(field_map, value)
    # every record is a call but those whose type says tag_change (an app's own event names,
    # "llm_call" say, need no translation)
    if value_at(value, paths["type"]) == "tag_change":
        fields, origin = mapped_fields(value, {t: paths[t] for t in TAG_FIELDS}, TAG_REQUIRED)
        return "tag_change", fields, origin
    wanted = {t: p for t, p in paths.items() if t not in ("type", "tag")}
    fields, origin = mapped_fields(value, wanted, CALL_REQUIRED)
    # content is required where the map says it is (either, when it names both); a log with
    # no content at all gives keyless calls
    mapped = [field_map[t] for t in CONTENT if t in field_map]
    if mapped and fields.get("prompt") is None and fields.get("messages") is None:
        raise RecordProblem(mapped[0], "missing (required" + "".join(f"; or {p}" for p in mapped[1:]) + ")")
    return "call", fields, origin


class FieldMapFormat:
    name = "map"

    def fits(self, sample: Sample) -> str | None:
        return "never detected: choose it with --format map and --map FIELD=PATH"

    def read(self, source, options, file_index, names):
        builder = Builder(source, file_index, options, names)
        for item in items(source):
            builder.out.counts["records"] += 1
            with builder.checking(item) as ok:
                kind, record, origin = record_of(item.value, options.field_map)
            if not ok[0]:
                continue
            if kind == "tag_change":
                builder.tag_change(item, record, origin)
            else:
                builder.call(item, record, origin)
        return builder.out


FORMAT = FieldMapFormat()
