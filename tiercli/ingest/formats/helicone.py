"""Helicone requests (docs/logs/index.md "Bring your logs") as its export tool
writes them (`npx @helicone/export --include-body`: JSON Lines by default, or JSON or CSV):
one row per request, the rows of Helicone's `/v1/request/query-clickhouse` API, with the
request and response bodies fetched in (`request_body`, `response_body`). Without
--include-body the bodies are a `helicone_message` placeholder: such rows are keyless calls.

A body is the provider's own: an Anthropic Messages or OpenAI Chat Completions request
(`messages`, `system`, `tools`, `stream`) and its response, whose `usage` is taken as it is
(chat.usage_object: either API's convention). Without a usage in the response body, the
row's token columns are read: Helicone stores `prompt_tokens` without the cached tokens
(`prompt_cache_read_tokens`, `prompt_cache_write_tokens` beside it), as tiercli counts.

Rows for embeddings, moderations, images and audio are not chat calls (`rows_skipped`); a
request whose response status is not 2xx failed (`failed_calls`); a request Helicone
served from its own cache (`cache_reference_id` set) is a call the source's cache served.
The export pages by offset, newest first, so a request can come twice: repeats of a
request_id, in the file or in another file read with it, are dropped (`duplicates_dropped`).

The tool's CSV (examples/export/typescript/index.ts, convertToCSVRow) keeps 12 columns:
response_id, response_created_at, response_status, request_created_at, request_body,
request_properties, request_user_id, model, prompt_tokens, completion_tokens, latency and
cost, with no request_id (its response_id is the row's id then), no response body and no
request path (an embedding is told by its model's name), and object cells written as JSON
whose quotes are doubled once more than CSV asks (`{""model"": ...}` once unquoted), which
_bodies.json_value reads. Its JSON (`--format json`) leaves a comma after the last record,
which the JSON reader forgives (items.py)."""

from __future__ import annotations

import re
from typing import Any

from tiercli.ingest import chat
from tiercli.ingest.foreign import Builder, number, text, timestamp
from tiercli.ingest.formats import Sample
from tiercli.ingest.formats._bodies import (absent, answer_text, json_value, latency_ms, mapping, pick,
                                            request_fields, with_field_map)
from tiercli.ingest.items import Item
from tiercli.ingest.records import RecordProblem

REQUIRED = ("request_id", "request_created_at")
CSV_ID = "response_id"  # the tool's CSV has no request_id: the response's id is the row's
NOT_CHAT_MODEL = re.compile(r"embed|moderation|whisper|tts|dall-e|gpt-image", re.IGNORECASE)  # without a path
# The fields of a request row (Helicone's HeliconeRequest): detection tells a file that nearly
# fits by them (formats.near)
FIELDS = ("request_id", "request_created_at", "response_id", "response_created_at", "response_status",
          "request_body", "response_body", "request_path", "request_user_id", "request_properties",
          "request_model", "response_model", "delay_ms", "prompt_cache_read_tokens", "prompt_cache_write_tokens",
          "helicone_user", "target_url", "cache_reference_id", "signed_body_url", "time_to_first_token")
NIL_UUID = "00000000-0000-0000-0000-000000000000"  # cache_reference_id of a request not served from cache
PLACEHOLDER = "helicone_message"  # a body the export did not fetch ("fetching body from signed_url...")
NOT_CHAT_PATH = re.compile(r"/(embeddings|moderations|images|audio)(/|$)")

SESSION_PROPERTY = "helicone-session-id"  # Helicone-Session-Id, kept among the properties
TASK_PROPERTIES = ("task", "task_type", "task-type")  # Helicone-Property-Task (stored lowercased)
MODEL = ("model", "request_model", "response_model")
PROPERTIES = ("request_properties", "properties")
TOKEN_COLUMNS = ("prompt_tokens", "completion_tokens", "prompt_cache_read_tokens", "prompt_cache_write_tokens")


def _body(row: dict, field: str) -> Any:
    """A body as the export wrote it, or None when it is absent or the export's placeholder."""
    body = json_value(row.get(field))
    if absent(body) or (isinstance(body, dict) and PLACEHOLDER in body and len(body) <= 2):
        return None
    return body


def _property(properties: dict, names: tuple[str, ...]) -> tuple[Any, str | None]:
    """A property by name, any case (header names reach Helicone lowercased, or as sent)."""
    lowered = {str(key).lower(): key for key in properties}
    for name in names:
        key = lowered.get(name)
        if key is not None and not absent(properties[key]):
            return properties[key], key
    return None, None


def _properties(row: dict) -> tuple[dict, str]:
    raw, field = pick(row, PROPERTIES)
    return mapping(raw, field) or {}, field


def _usage(row: dict, response: Any, record: dict, origin: dict) -> None:
    """Tokens: the response body's usage (the provider's own counts), else the row's columns."""
    usage = chat.Usage()
    if isinstance(response, dict) and not absent(response.get("usage")):
        usage = chat.usage_object(response["usage"], "response_body.usage")
        names = ("response_body.usage",) * 4
    if usage.input_tokens is None and usage.output_tokens is None:
        usage = chat.usage_from(*(row.get(column) for column in TOKEN_COLUMNS), input_includes_cache=False,
                                fields=TOKEN_COLUMNS)
        names = TOKEN_COLUMNS
    for ours, amount, name in zip(("input_tokens", "output_tokens", "cache_read_input_tokens",
                                   "cache_creation_input_tokens"),
                                  (usage.input_tokens, usage.output_tokens, usage.cache_read, usage.cache_write),
                                  names):
        if amount is not None:
            record[ours], origin[ours] = amount, name
    chat.split_into(usage, record, origin)  # an Anthropic response's writes by TTL


def call_record(row: dict, field_map: dict[str, str]) -> tuple[dict, dict]:
    """(record in tiercli's shape, origin: our field -> the row's field) of a request row."""
    start = row.get("request_created_at")
    record: dict[str, Any] = {"ts": timestamp(start, "request_created_at")}
    origin: dict[str, str] = {"ts": "request_created_at"}
    delay = number(row.get("delay_ms"), "delay_ms")
    if delay is not None:
        record["latency_ms"], origin["latency_ms"] = delay, "delay_ms"
    elif not absent(row.get("response_created_at")):
        record["latency_ms"] = latency_ms(start, "request_created_at", row["response_created_at"],
                                          "response_created_at")
        origin["latency_ms"] = "response_created_at"

    request, response = _body(row, "request_body"), _body(row, "response_body")
    model, origin["model"] = pick(row, MODEL)
    if model is None and isinstance(request, dict) and not absent(request.get("model")):
        model, origin["model"] = request["model"], "request_body.model"
    record["model"] = text(model)

    properties, properties_field = _properties(row)
    lead, origin["lead_id"] = row.get("request_user_id"), "request_user_id"
    if absent(lead):
        lead, key = _property(properties, (SESSION_PROPERTY,))
        if key is not None:
            origin["lead_id"] = f"{properties_field}.{key}"
    record["lead_id"] = text(lead)
    task, key = _property(properties, TASK_PROPERTIES)
    origin["task_type"] = f"{properties_field}.{key}" if key is not None else "request_path"
    for column in ("prompt_id", "request_path"):
        if absent(task) and not absent(row.get(column)):
            task, origin["task_type"] = row[column], column
    record["task_type"] = text(task)

    fields, content_origin = request_fields(request, "request_body", whole_body=True)
    record.update(fields)
    origin.update(content_origin)
    if response is not None:
        record["response"], origin["response"] = answer_text(response, "response_body"), "response_body"
    _usage(row, response, record, origin)
    with_field_map(row, field_map, record, origin, "request_created_at")
    return record, origin


def _skip_reason(row: dict) -> str | None:
    """Which count a row that is not a replayable chat call goes to, or None."""
    path = str(row.get("request_path") or row.get("target_url") or "")
    if NOT_CHAT_PATH.search(path) or (not path and NOT_CHAT_MODEL.search(str(row.get("model") or ""))):
        return "rows_skipped"
    status = number(row.get("response_status"), "response_status")
    if status is not None and not 200 <= status < 300:
        return "failed_calls"
    return None


def _required(row: Any) -> tuple[str, str]:
    """The row's id and start: request_id, or response_id in the tool's CSV, which has no request_id."""
    if isinstance(row, dict) and "request_id" not in row and CSV_ID in row:
        return CSV_ID, REQUIRED[1]
    return REQUIRED


class Helicone:
    name = "helicone"

    def fits(self, sample: Sample) -> str | None:
        first = sample.records[0]
        if not isinstance(first, dict):
            return "the first record is not an object"
        missing = [name for name in _required(first) if name not in first]
        if missing:
            return "no " + " or ".join(missing) + " in the first record"
        return None

    def read(self, source, options, file_index, names):
        builder = Builder(source, file_index, options, names)
        return builder.calls_of_objects(lambda item: self._request(item, options.field_map, builder))

    @staticmethod
    def _request(item: Item, field_map: dict[str, str], builder: Builder) -> tuple[dict, dict, bool, str] | None:
        row = item.value
        required = _required(row)
        for name in required:
            if absent(row.get(name)):
                raise RecordProblem(name, "missing (required)")
        identity = text(row[required[0]])
        if builder.repeated(identity):
            return None
        reason = _skip_reason(row)
        if reason is not None:
            builder.out.counts[reason] += 1
            return None
        record, origin = call_record(row, field_map)
        reference = row.get("cache_reference_id")
        cached = not absent(reference) and str(reference) != NIL_UUID
        return record, origin, cached, identity


FORMAT = Helicone()
