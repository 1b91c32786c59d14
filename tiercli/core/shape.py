"""What ingest keeps of a call's request and answer for the engine to compare, per task: the
text L3 embeds (`l3_text`), a digest of what the answer rule compares (`same_answer`), the
request parameters its key holds (`key_params`), and the rest of its key: its key parts and
scope (`key`, `scope`: docs/keys-and-scope.md "Keys and scope").
Only digests and the embedded text are kept, so memory does not grow with answers' length."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from tiercli.core.problems import RecordProblem
from tiercli.core.answers import answer_digest, parse_rule, uses_embedding
from tiercli.core.events import NO_LEAD
from tiercli.core.fieldmap import MISSING, lookup
from tiercli.core.keys import PARAMS, REQUEST_PARTS, embedding_text, response_digest
from tiercli.core.l3text import l3_text, parse_l3_text, regex_group

MISSING_SCOPE = None  # the scope value of a call that has none (counted: CallShape.scope_missing)


class CallShape:
    """Built from the settings (or none: today's defaults, last user message and exact
    answers). `keep_text` False: L3 is off for every task, no text is kept."""

    def __init__(self, settings=None, keep_text: bool = True, prompt_parts: bool = False, params_apart: bool = False):
        self.settings, self.keep_text = settings, keep_text
        self.prompt_parts = prompt_parts  # keep each call's prompt parts (Call.parts), for tiercli compare
        # inspect: each call's key without parameters, and Call.params the digest of all of them
        self.params_apart = params_apart
        self._key_params: dict[str, tuple[str, ...]] = {}
        self._rules: dict[str, object] = {}
        self._texts: dict[str, object] = {}
        self.answer_texts: dict[bytes, str] = {}  # digest -> answer text, for tasks whose rule is embedding
        self.regex_unmatched: dict[str, int] = {}  # task -> calls whose regex l3_text matched nothing
        # task -> scope value -> [calls without it, calls scoped], of the calls looked up
        self.scope_missing: dict[str, dict[str, list[int]]] = {}
        self._keying: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
        self._zone = None

    def rule(self, task: str):
        rule = self._rules.get(task)
        if rule is None:
            rule = self._rules[task] = (self.settings.answer_rule(task) if self.settings is not None
                                        else parse_rule("exact"))
        return rule

    def l3_choice(self, task: str):
        choice = self._texts.get(task)
        if choice is None:
            choice = self._texts[task] = (self.settings.l3_text_for(task) if self.settings is not None
                                          else parse_l3_text("last-user"))
        return choice

    def kept_params(self, task: str, params: dict) -> tuple[dict, dict]:
        """(the parameters the task's key_params keeps, those of them its key holds) of a call's
        recorded `params`: every one without settings."""
        if self.params_apart:
            return params, {}
        names = self._key_params.get(task)
        if names is None:
            names = self._key_params[task] = (self.settings.key_params_for(task) if self.settings is not None
                                              else PARAMS)
        kept = {name: value for name, value in params.items() if name in names}
        return kept, kept

    def keying(self, task: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(the task's key parts, its scope): today's key and none without settings."""
        found = self._keying.get(task)
        if found is None:
            found = self._keying[task] = ((self.settings.key_for(task), self.settings.scope_for(task))
                                          if self.settings is not None else (REQUEST_PARTS, ()))
        return found

    def scope_values(self, task: str, ts: float, lead: str, worker: str | None, attrs_root: Any,
                     counted: bool = True) -> list:
        """The call's value of each of its task's scope values (docs/keys-and-scope.md "Keys and scope"): its
        lead, its day or hour (UTC, or in the timezone setting), its worker as the replay
        assigns it (its recorded one; "default" when it has none, as engine/replay.py
        fixed_workers), an attrs.PATH's value in `attrs_root`. A value the call lacks (no lead,
        no such field, null) is MISSING_SCOPE, counted in scope_missing when `counted`."""
        values: list = []
        misses = self.scope_missing.setdefault(task, {}) if counted else None
        for name in self.keying(task)[1]:
            if name == "lead":
                value = MISSING_SCOPE if lead == NO_LEAD else lead
            elif name in ("day", "hour"):
                when = datetime.fromtimestamp(ts, self.zone())
                value = when.strftime("%Y-%m-%d" if name == "day" else "%Y-%m-%dT%H")
            elif name == "worker":
                value = worker or "default"
            else:
                value = lookup(attrs_root, name.removeprefix("attrs.")) if attrs_root is not None else MISSING
                if value is MISSING:
                    value = MISSING_SCOPE
                elif isinstance(value, (dict, list)):
                    raise RecordProblem(name, "must be a string, a number or true/false to scope by it, "
                                              f"got {'an object' if isinstance(value, dict) else 'a list'}",
                                        hint=f"scope by a field inside it, e.g. {name}.id")
            if misses is not None:
                count = misses.setdefault(name, [0, 0])
                count[0] += value is MISSING_SCOPE
                count[1] += 1
            values.append(value)
        return values

    def zone(self):
        if self._zone is None:
            from zoneinfo import ZoneInfo

            name = self.settings.timezone if self.settings is not None else None
            self._zone = ZoneInfo(name) if name else timezone.utc
        return self._zone

    def needs_record(self, task: str) -> bool:
        """Whether the task's L3 text is a field of the log record (`field:PATH`), or its scope
        reads the record's attrs: the native reader then reads its lines with the reference
        validator, which keeps the record."""
        return (self.keep_text and self.l3_choice(task).kind == "field") \
            or any(name.startswith("attrs.") for name in self.keying(task)[1])

    def text(self, task: str, messages: list[dict], record: dict | None = None, needed: bool = True) -> str:
        """What L3 embeds for the call (strip-template: the last user message's text, cut
        after reading by pipeline.prepare_l3_texts). Not `needed` (a bypassed or keyless call,
        never looked up): a field:PATH the record lacks gives "" instead of an error."""
        if not self.keep_text:
            return ""
        choice = self.l3_choice(task)
        if choice.kind == "last-user":
            return embedding_text(messages)
        if choice.kind == "regex":  # counted when it matches nothing: the whole text is embedded then
            whole = embedding_text(messages)
            group = regex_group(choice.pattern, whole)
            if group is None and needed:
                self.regex_unmatched[task] = self.regex_unmatched.get(task, 0) + 1
            return whole if group is None else group
        return l3_text(choice, messages, record, needed)

    def digest(self, task: str, response: str | None) -> bytes | None:
        rule = self.rule(task)
        if rule.kind == "exact" or response is None:
            return response_digest(response)
        digest = answer_digest(rule, response)
        if rule.kind == "embedding":  # its answers are embedded before the replay: keep their texts
            self.answer_texts[digest] = response.strip()
        return digest

    @property
    def keeps_answer_texts(self) -> bool:
        """Whether this shape keeps what a forked reader would not send back: the answer texts
        of tasks that compare answers by embedding, or the count of calls a regex l3_text
        matched nothing in. Such logs are read in one process."""
        if self.settings is None:
            return False
        l3_texts = [self.settings.l3_text] + [options["l3_text"] for options in self.settings.task_options.values()
                                              if "l3_text" in options]
        return uses_embedding(self.settings) or any(text.startswith("regex:") for text in l3_texts)


DEFAULT = CallShape()
NO_TEXT = CallShape(keep_text=False)


def shape_of(keep_text) -> CallShape:
    """A CallShape from what readers are given: a CallShape, or a bool (keep texts or not)."""
    if isinstance(keep_text, CallShape):
        return keep_text
    return DEFAULT if keep_text else NO_TEXT
