"""A request's Call without its log record, for the shapes the SDK sends (tiercli.cache's hit path).

The cache's keys are the log's by construction: a request becomes the native log record
tiercli.record writes (a JSON copy), and the record becomes a Call through the log reader's
call_of_record. That costs tens of microseconds a call, mostly copying and checking what a
plain request does not need copied or checked. `plain_request` takes the requests whose every
value is already what the record's JSON copy would hold (text or text-block content, a system
string or text blocks, JSON-typed parameters and attrs) and builds their Call with the reader's
own _make_call, as the reader's msgspec fast path does for the lines it accepts; anything else
gives None, and the cache goes the record's way. tests/test_cache_keys.py checks that both ways
give equal Calls."""

from __future__ import annotations

from tiercli.core.events import Call
from tiercli.ingest.records import TS_MAX, TS_MIN, _make_call  # the reader's Call builder
from tiercli.ingest.records import request_params as checked_params
from tiercli.record import given_params, is_given, uses_tools

_SCALARS = frozenset((str, int, float, bool, type(None)))  # what a JSON copy gives back as it was
_JSON_LEVELS = 32  # deeper values take the record's way (which bounds depth with its own checks)
_ROLES = frozenset(("user", "assistant"))
_TEXT_BLOCK_KEYS = frozenset(("type", "text", "cache_control"))


class PlainRequest:
    """A request of the shapes taken here, its parts as the record's reader would see them."""

    __slots__ = ("lead", "task", "model", "system", "messages", "params", "attrs", "shape")

    def __init__(self, lead, task, model, system, messages, params, attrs, shape):
        self.lead, self.task, self.model, self.system, self.messages = lead, task, model, system, messages
        self.params, self.attrs, self.shape = params, attrs, shape

    def call(self, t: float, worker: str, streaming: bool) -> Call | None:
        """The Call that call_of_record(record, 0, None, shape, {}) gives for the record the
        cache writes of this request at time `t` from `worker`; None for a `t` the reader refuses."""
        if not TS_MIN <= t < TS_MAX:  # NaN too
            return None
        return _make_call(0, t, self.lead, self.task, self.model, worker, self.system, self.messages, None, None,
                          None, None, None, streaming, False, None, self.shape, None, params=self.params,
                          attrs_root=self.attrs)


def plain_request(meta: dict, kwargs: dict, shape) -> PlainRequest | None:
    """The request's parts, or None when it is not of the shapes taken here (its Call is then
    the record's). `meta`: CallLabels.of_call's metadata (lead_id and task_type there); `shape`:
    the cache's CallShape."""
    lead, task, model = meta["lead_id"], meta["task_type"], kwargs.get("model")
    if type(lead) is int:
        lead = str(lead)
    if type(lead) is not str or type(task) is not str or type(model) is not str or not model \
            or uses_tools(kwargs):
        return None
    attrs = meta.get("attrs")
    if attrs is not None and not _json_typed(attrs, _JSON_LEVELS):
        return None
    if shape.l3_choice(task).kind == "field":  # L3 embeds a field of the record itself
        return None
    system = kwargs.get("system")
    if is_given(system):
        system = _text_blocks(system)
        if system is None:
            return None
    else:
        system = None
    messages = kwargs.get("messages")
    if type(messages) is not list or not messages:
        return None
    canonical = []
    for message in messages:
        if type(message) is not dict or len(message) != 2 or type(message.get("role")) is not str \
                or message["role"] not in _ROLES:
            return None
        content = _text_blocks(message.get("content"))
        if content is None:
            return None
        canonical.append({"role": message["role"], "content": content})
    given = given_params(kwargs)
    for value in given.values():
        if not _json_typed(value, _JSON_LEVELS):
            return None
    params = checked_params(given, None) if given else {}
    return PlainRequest(lead, task, model, system, canonical, params, attrs, shape)


def _text_blocks(content) -> list[dict] | None:
    """Content as the reader keeps it (records._text_blocks), when it is a string or text blocks
    of {type, text} and an optional cache_control (dropped: it does not change the answer)."""
    if type(content) is str:
        return [{"type": "text", "text": content}]
    if type(content) is not list:
        return None
    blocks = []
    for block in content:
        if type(block) is not dict or type(block.get("type")) is not str or block["type"] != "text" \
                or type(block.get("text")) is not str or not block.keys() <= _TEXT_BLOCK_KEYS:
            return None
        if "cache_control" in block:
            if not _json_typed(block["cache_control"], _JSON_LEVELS):
                return None
            block = {"type": "text", "text": block["text"]}
        blocks.append(block)
    return blocks


def _json_typed(value, levels: int) -> bool:
    """Whether a JSON copy (json.dumps, then json.loads) of `value` equals it: exact JSON types,
    string keys, no deeper than `levels`."""
    kind = type(value)
    if kind in _SCALARS:  # NaN and infinities too: json writes and reads them back
        return True
    if levels == 0:
        return False
    if kind is dict:
        return all(type(key) is str and _json_typed(item, levels - 1) for key, item in value.items())
    if kind is list:
        return all(_json_typed(item, levels - 1) for item in value)
    return False
