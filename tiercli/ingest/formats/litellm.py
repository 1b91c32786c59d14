"""LiteLLM: rows of the proxy's `LiteLLM_SpendLogs` table (a JSON or JSON Lines dump, the
`/spend/logs` API's answer, a CSV of the table) and the StandardLoggingPayload records that
a custom, S3 or GCS logger writes (one JSON object per call, per line or per file).

Sources: litellm's schema.prisma (model LiteLLM_SpendLogs), proxy/spend_tracking/
spend_tracking_utils.py (how a row is filled), types/utils.py (StandardLoggingPayload) and
llms/anthropic/chat/transformation.py (calculate_usage: how prompt_tokens counts cache tokens).
docs/logs/index.md "Bring your logs" has the field table.

Tokens: LiteLLM's `prompt_tokens` is OpenAI's, cache reads and cache writes included (for
Anthropic models `calculate_usage` adds both to input_tokens), so tiercli's uncached input is
prompt_tokens minus cache reads minus cache writes. Some 2025 releases added only the cache
reads; a row whose prompt_tokens is smaller than its reads plus writes (so it cannot include
both) is read that way: prompt_tokens minus cache reads."""

from __future__ import annotations

from typing import Any

from tiercli.ingest import chat
from tiercli.ingest.foreign import Builder, api_params, boolean, number, text, timestamp
from tiercli.ingest.formats import Sample
from tiercli.ingest.formats.map import LATENCY_DECIMALS, TOKENS, mapped_fields
from tiercli.core.fieldmap import json_text
from tiercli.ingest.items import items
from tiercli.ingest.records import RecordProblem

# Call types that are not a model answering a prompt (embeddings, images, audio, files, batches,
# MCP tools, ...): such rows are skipped and counted (rows_skipped); failed calls are counted in failed_calls.
NOT_LLM_CALL_TYPES = ("embedding", "image", "transcription", "speech", "moderation", "rerank", "batch", "file",
                      "assistant", "thread", "vector_store", "search", "ocr", "mcp", "video", "fine_tun",
                      "container", "realtime")
# A request tag "taskName:X" (LiteLLM's own docs tag requests so), "task_type:X" or "task:X" names the task.
TASK_TAG_NAMES = ("taskName", "task_type", "task")
# LiteLLM's provider prefixes of model names ("anthropic/claude-sonnet-4-5"), for rows without
# custom_llm_provider; names elsewhere (tiercli's own logs, genai-prices) have none.
PROVIDER_PREFIXES = ("anthropic", "openai", "azure", "azure_ai", "bedrock", "vertex_ai", "gemini", "mistral", "groq",
                     "deepseek", "xai", "openrouter", "together_ai", "fireworks_ai", "cohere", "litellm_proxy")
TASK_METADATA_KEYS = ("task_type", "task", "taskName")  # in metadata.spend_logs_metadata
SYNC_CALL_TYPE = {"acompletion": "completion", "atext_completion": "text_completion", "aresponses": "responses",
                  "agenerate_content": "generate_content", "aanthropic_messages": "anthropic_messages"}


# The fields of a LiteLLM_SpendLogs row or a StandardLoggingPayload besides startTime (README's
# table, litellm's schema.prisma and StandardLoggingPayload): any one of them beside startTime
# marks a record as LiteLLM's, so a payload written with only what the table lists (no id, no
# response_cost) is read too. FIELDS also tells detection that a file nearly fits (formats.near).
MARKS = ("request_id", "spend", "call_type", "response_cost", "hidden_params", "model_parameters", "model_group",
         "prompt_tokens", "completion_tokens", "total_tokens", "end_user", "request_tags", "cache_hit",
         "proxy_server_request", "request_duration_ms", "custom_llm_provider", "api_base", "model_map_information")
FIELDS = ("startTime", "endTime", "completionStartTime", "messages", "response", "metadata", "stream", "status") + MARKS


def _payload(row: dict) -> bool:
    """A StandardLoggingPayload (a logger's record) rather than a spend-log row, which always
    has its request_id (the table's key)."""
    return "request_id" not in row


def _looks_like_row(record: Any) -> str | None:
    if not isinstance(record, dict):
        return "the first record is not a JSON object"
    if "startTime" not in record:
        return "no startTime in the first record (every spend-log row and logger payload has one)"
    if not any(key in record for key in MARKS):
        return ("startTime but none of the other fields of a spend-log row or logger payload (call_type, "
                "prompt_tokens, model_group, spend, response_cost, ...) in the first record")
    return None


def _rows(value: Any) -> list[tuple[Any, str | None]]:
    """The rows of one record: itself, or the rows of a page of /spend/logs/v2 ({"data": [...]})."""
    if isinstance(value, dict) and isinstance(value.get("data"), list) and "startTime" not in value:
        return [(row, f"data[{i}]") for i, row in enumerate(value["data"])]
    return [(value, None)]


class LiteLLM:
    name = "litellm"

    def fits(self, sample: Sample) -> str | None:
        first = sample.records[0]
        rows = _rows(first)
        return _looks_like_row(rows[0][0]) if rows else "an empty page of spend logs (data: [])"

    def read(self, source, options, file_index, names):
        builder = Builder(source, file_index, options, names)
        for item in items(source):
            for row, where in _rows(item.value):
                builder.out.counts["records"] += 1
                with builder.checking(item, where) as ok:
                    skipped = _not_a_call(row)
                    if skipped is not None:
                        builder.out.counts[skipped] += 1
                        continue
                    identity = text(row.get("request_id", row.get("id")))
                    if builder.repeated(identity):  # a spend log dumped twice, or a page read again
                        continue
                    record, origin, cache_hit = call_record(row, options)
                if ok[0]:
                    builder.call(item, record, origin, where=where, source_cache_hit=cache_hit, identity=identity)
        return builder.out


def _not_a_call(row: Any) -> str | None:
    """None for a row of a model answering a prompt; else the count it goes to: rows_skipped
    (an embedding, say) or failed_calls (status "failure": no answer to cache, nothing billed)."""
    if not isinstance(row, dict):
        raise RecordProblem(None, f"not an object (a {type(row).__name__})")
    call_type = str(row.get("call_type") or "").lower()
    if any(word in call_type for word in NOT_LLM_CALL_TYPES):
        return "rows_skipped"
    status = row.get("status")
    if status is None:
        metadata = json_text(row.get("metadata"))
        status = metadata.get("status") if isinstance(metadata, dict) else None
    return "failed_calls" if status == "failure" else None


def _object(row: dict, name: str) -> dict:
    """A JSON column (or JSON text of one) as a dict; absent or empty: {}."""
    value = json_text(row.get(name))
    if value is None or value == "" or value == [] or value == {}:
        return {}
    if not isinstance(value, dict):
        raise RecordProblem(name, f"must be an object (or JSON text of one), got {type(value).__name__}")
    return value


def call_record(row: dict, options) -> tuple[dict, dict, bool]:
    """(the call in tiercli's record shape, origin: tiercli field -> LiteLLM field, whether
    LiteLLM's own cache served it) of one row or payload, --map overrides applied."""
    payload = _payload(row)
    metadata = _object(row, "metadata")
    request = {} if payload else _object(row, "proxy_server_request")
    if isinstance(request.get("body"), dict):
        request = request["body"]
    params = _object(row, "model_parameters") if payload else {}
    record: dict[str, Any] = {}
    origin: dict[str, str] = {}

    if row.get("startTime") in (None, ""):
        raise RecordProblem("startTime", "missing (required)")
    record["ts"] = timestamp(row["startTime"], "startTime")
    origin["ts"] = "startTime"
    if row.get("endTime") not in (None, ""):
        end = timestamp(row["endTime"], "endTime")
        if end < record["ts"]:
            raise RecordProblem("endTime", "before startTime")
        record["latency_ms"] = round((end - record["ts"]) * 1000, LATENCY_DECIMALS)
        origin["latency_ms"] = "endTime"
    elif row.get("request_duration_ms") not in (None, ""):
        record["latency_ms"] = number(row["request_duration_ms"], "request_duration_ms")
        origin["latency_ms"] = "request_duration_ms"

    record["model"], origin["model"] = _model(row, options.priced)
    # the customer: end_user (the proxy sets it from the request's `user`), else that `user` itself
    lead, origin["lead_id"] = _first((row.get("end_user"), "end_user"),
                                     (metadata.get("user_api_key_end_user_id"), "metadata.user_api_key_end_user_id"),
                                     (request.get("user"), "proxy_server_request.user"),
                                     (params.get("user"), "model_parameters.user"))
    if isinstance(lead, (dict, list)):
        raise RecordProblem(origin["lead_id"], f"must be a string or a number, got {type(lead).__name__}")
    lead = text(lead)
    record["lead_id"] = lead
    record["task_type"], origin["task_type"] = _task(row, metadata)

    _content(row, request, params, record, origin)
    response = _response(row.get("response"))
    if response is not None:
        record["response"], origin["response"] = response, "response"
    _tokens(row, metadata, record, origin)

    # A stored request body, or a logger's model_parameters, holds every option the call was made
    # with: no "stream" or "tools" there means none. Without either (prompts not stored): unknown.
    options_given = request if request else params if payload else None
    if payload and row.get("stream") is not None:
        record["streaming"], origin["streaming"] = boolean(row["stream"], "stream"), "stream"
    elif options_given is not None:
        name = "proxy_server_request" if request else "model_parameters"
        record["streaming"] = boolean(options_given.get("stream"), f"{name}.stream") or False
        origin["streaming"] = f"{name}.stream"
    if options_given is not None:
        name = "proxy_server_request" if request else "model_parameters"
        record["use_tools"], origin["use_tools"] = bool(options_given.get("tools")), f"{name}.tools"
        params, params_origin = api_params(options_given, name)
        if params:
            record["params"] = params
            origin.update(params_origin)
    cache_hit = row.get("cache_hit")
    cache_hit = boolean(cache_hit, "cache_hit") if cache_hit not in ("None", "null") else False

    if options.field_map:
        _override(row, options.field_map, record, origin)
    return record, origin, bool(cache_hit)


def _first(*candidates: tuple[Any, str]) -> tuple[Any, str]:
    """The first value given (not None or empty), with its field name; else (None, the first name)."""
    for value, name in candidates:
        if value is not None and value != "":
            return value, name
    return None, candidates[0][1]


def _model(row: dict, priced) -> tuple[Any, str]:
    """The model's name: `model` without LiteLLM's provider prefix (`anthropic/claude-sonnet-4-5`:
    the deployment's name); when that has no price (`priced`, the pricer's resolver, which also
    prices a name's provider path: pricing.name_forms), model_group when that has one; else the
    name without the prefix (the error names it)."""
    model, group = row.get("model"), row.get("model_group")
    candidates: list[tuple[str, str]] = []
    if isinstance(model, str) and model:
        prefix, slash, rest = model.partition("/")
        if slash and rest and (prefix == row.get("custom_llm_provider") or prefix in PROVIDER_PREFIXES):
            candidates.append((rest, "model"))
        else:
            candidates.append((model, "model"))
    if isinstance(group, str) and group:
        candidates.append((group, "model_group"))
    if not candidates:
        return None, "model"
    if priced is not None:
        for name, field_name in candidates:
            if priced(name):
                return name, field_name
    return candidates[0]


def _task(row: dict, metadata: dict) -> tuple[str | None, str]:
    tags = json_text(row.get("request_tags"))
    for tag in tags if isinstance(tags, list) else ():
        if isinstance(tag, str):
            name, colon, value = tag.partition(":")
            if colon and name.strip() in TASK_TAG_NAMES and value.strip():
                return value.strip(), "request_tags"
    extra = metadata.get("spend_logs_metadata")
    if isinstance(extra, dict):
        for key in TASK_METADATA_KEYS:
            if isinstance(extra.get(key), (str, int)) and extra[key] != "":
                return text(extra[key]), f"metadata.spend_logs_metadata.{key}"
    call_type = row.get("call_type")
    if not isinstance(call_type, str) or not call_type:
        return None, "call_type"
    # the task is part of the request's key: a call made with acompletion is the same request as with completion
    return SYNC_CALL_TYPE.get(call_type, call_type), "call_type"


def _content(row: dict, request: dict, params: dict, record: dict, origin: dict) -> None:
    """The request's messages: the `messages` field (older spend logs, loggers' payloads), else
    the stored request body (proxy_server_request, when the proxy stores prompts): its messages
    (either API's shape, Anthropic's `system` beside them), prompt, or Responses API input."""
    stored = json_text(row.get("messages"))
    system = request.get("system", params.get("system"))
    system_field = "proxy_server_request.system" if "system" in request else "model_parameters.system"
    if isinstance(stored, list) and stored:
        messages, field_name = stored, "messages"
    elif isinstance(stored, str) and stored.strip() not in ("", "{}", "[]", "null"):
        record["prompt"], origin["prompt"] = stored, "messages"
        return
    elif isinstance(request.get("messages"), list) and request["messages"]:
        messages, field_name = request["messages"], "proxy_server_request.messages"
    elif isinstance(request.get("prompt"), str):
        record["prompt"], origin["prompt"] = request["prompt"], "proxy_server_request.prompt"
        return
    elif request.get("input") not in (None, "", []):
        messages, field_name = request["input"], "proxy_server_request.input"
        system, system_field = request.get("instructions"), "proxy_server_request.instructions"
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
    else:
        return  # prompts not stored: a keyless call (or a bypass, when streamed)
    blocks, record["messages"] = chat.split_messages(messages, field_name, system)
    origin["messages"] = field_name
    if blocks is not None:
        record["system"] = blocks
        origin["system"] = system_field if system is not None else field_name


def _response(value: Any) -> str | None:
    """The answer's text from the `response` field: a Chat Completions or Messages response
    object (or JSON text of one), or text; `{}` (prompts not stored) is none."""
    if value is None or (isinstance(value, str) and value.strip() in ("", "{}", "[]", "null")):
        return None
    parsed = json_text(value)
    if parsed in ({}, []):
        return None
    answer = chat.response_text(parsed)
    if answer is None and isinstance(value, str):
        return value
    return answer


def _tokens(row: dict, metadata: dict, record: dict, origin: dict) -> None:
    """Tokens in tiercli's terms (uncached input; module docstring has the rule)."""
    usages = [(metadata.get("usage_object"), "metadata.usage_object"),
              (metadata.get("additional_usage_values"), "metadata.additional_usage_values"),
              (_object(row, "hidden_params").get("usage_object") if _payload(row) else None,
               "hidden_params.usage_object")]
    response = json_text(row.get("response"))
    if isinstance(response, dict):
        usages.append((response.get("usage"), "response.usage"))
    usages = [(u, name) for u, name in usages if isinstance(u, dict)]

    def field(*keys: str) -> tuple[Any, str | None]:
        for usage, name in usages:
            value: Any = usage
            for key in keys:
                value = value.get(key) if isinstance(value, dict) else None
            if value is not None:
                return value, ".".join((name,) + keys)
        return None, None

    prompt, prompt_field = _first((row.get("prompt_tokens"), "prompt_tokens"), (field("prompt_tokens")))
    completion, completion_field = _first((row.get("completion_tokens"), "completion_tokens"),
                                          (field("completion_tokens")))
    read, read_field = _first(field("cache_read_input_tokens"), field("prompt_tokens_details", "cached_tokens"))
    write, write_field = _first(field("cache_creation_input_tokens"),
                                field("prompt_tokens_details", "cache_creation_tokens"))
    fields = (prompt_field, completion_field, read_field or "cache_read_input_tokens",
              write_field or "cache_creation_input_tokens")
    # the writes' split by TTL, as LiteLLM's Usage keeps Anthropic's (CacheCreationTokenDetails), or
    # Anthropic's own usage.cache_creation (a /v1/messages response, passed through)
    split, split_field = _first(field("prompt_tokens_details", "cache_creation_token_details"), field("cache_creation"))
    usage = chat.usage_from(prompt, completion, read, write, input_includes_cache=False, fields=fields,
                            split=split, split_field=split_field or "cache_creation")
    if not usage.input_tokens and not usage.output_tokens:  # 0 and 0: the columns' default, no usage recorded
        usage.input_tokens = usage.output_tokens = None
    cached_read, cached_write = usage.cache_read or 0, usage.cache_write or 0
    if usage.input_tokens is not None and (cached_read or cached_write):
        if usage.input_tokens >= cached_read + cached_write:
            usage.input_tokens -= cached_read + cached_write
        elif usage.input_tokens >= cached_read:  # a release that counted only cache reads in prompt_tokens
            usage.input_tokens -= cached_read
        else:
            raise RecordProblem(prompt_field, f"{usage.input_tokens:,} prompt tokens, fewer than the "
                                f"{cached_read:,} cache reads LiteLLM counts in them",
                                hint="is the row's usage from another call?")
    for name, value, source_field in zip(TOKENS, (usage.input_tokens, usage.output_tokens, usage.cache_read,
                                                  usage.cache_write), fields):
        record[name] = value
        origin[name] = source_field
    chat.split_into(usage, record, origin)


def _override(row: dict, field_map: dict[str, str], record: dict, origin: dict) -> None:
    """--map: each mapped field is read from its path instead (absent there: unknown)."""
    wanted = {target: path for target, path in field_map.items() if target not in ("type", "tag")}
    fields, mapped_origin = mapped_fields(row, wanted)
    if "prompt" in wanted or "messages" in wanted:
        for name in ("prompt", "messages", "system"):
            record.pop(name, None)
    if "usage" in wanted:
        for name in TOKENS:
            record.pop(name, None)
    if "end_ts" in wanted and "latency_ms" not in wanted:
        record.pop("latency_ms", None)
    record.update(fields)
    origin.update(mapped_origin)
    origin.update({target: path for target, path in wanted.items() if target not in mapped_origin
                   and target not in ("usage", "end_ts")})


FORMAT = LiteLLM()
