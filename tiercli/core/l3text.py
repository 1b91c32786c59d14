"""What L3 embeds for a call, per task (`l3_text`; docs/answers.md "What L3 embeds"). The L1/L2 key
is always the whole request; only the semantic tier's text changes.

Four choices are made call by call at ingest (`l3_text`): last-user, all-user, regex:PATTERN
and field:PATH. The fifth, strip-template, needs every text of the task: ingest keeps the
last user message's text, and once the log is read `apply_templates` learns each such task's
template (`learn_template`) and replaces each text by what varies (`strip_template`)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from tiercli.core.answers import capture_pattern, first_group
from tiercli.core.fieldmap import MISSING, value_at
from tiercli.core.keys import embedding_text
from tiercli.core.problems import RecordProblem
from tiercli.errors import described

L3_TEXT_KINDS = ("last-user", "all-user", "regex", "field", "strip-template")


@dataclass(frozen=True)
class L3Text:
    kind: str  # one of L3_TEXT_KINDS
    text: str  # as written
    pattern: str | None = None  # regex: its first group is embedded
    path: str | None = None  # field: a dotted path into the log record


def parse_l3_text(text: str) -> L3Text:
    """The choice an `l3_text` value names; ValueError says what is wrong and what is allowed."""
    if not isinstance(text, str):
        raise ValueError(f"must be a string such as \"last-user\", got {described(text)}")
    kind, colon, argument = text.partition(":")
    kind = kind.strip()
    if kind in ("last-user", "all-user", "strip-template") and not colon:
        return L3Text(kind, text)
    if kind == "regex" and colon:
        return L3Text(kind, text, pattern=capture_pattern(text, argument, "regex:SMS: (.*)"))
    if kind == "field" and colon and argument.strip():
        return L3Text(kind, text, path=argument.strip())
    raise ValueError(f"unknown l3_text {text!r}: use last-user, all-user, regex:PATTERN, field:PATH or "
                     f"strip-template")


# --- per call, at ingest ---------------------------------------------------------------------------

def l3_text(choice: L3Text, messages: list[dict], record: dict | None, needed: bool = True) -> str:
    """The text L3 embeds for one call (strip-template: the last user message's text, which
    apply_templates cuts once the whole log is read).

    field:PATH reads `record`, the record as its source wrote it; a field that is absent or
    null is a RecordProblem naming PATH (the reader makes it a LogError naming the line),
    unless the text is not `needed` (a bypassed or keyless call, never looked up): then ""."""

    if choice.kind in ("last-user", "strip-template"):
        return embedding_text(messages)
    if choice.kind == "all-user":
        return all_user_text(messages)
    if choice.kind == "regex":
        return regex_text(choice.pattern, embedding_text(messages))
    if choice.kind == "field":
        return field_text(choice.path, record, needed)
    raise ValueError(f"unknown l3_text kind {choice.kind!r}")


def all_user_text(messages: list[dict]) -> str:
    """Every user message's text (each as last-user reads one), in order, joined with a
    newline; a user message with no text (only images, say) adds nothing."""

    return "\n".join(text for m in messages if m["role"] == "user" and (text := embedding_text([m])))


def regex_group(pattern: str, text: str) -> str | None:
    """The first capture group of the pattern's first match in the text; None when the
    pattern does not match, its first group took no part in the match, or the search took
    longer than answers.MATCH_SECONDS (the whole text is embedded then, as for no match)."""
    return first_group(pattern, text)


def regex_text(pattern: str, text: str) -> str:
    """regex_group, or the whole text when there is none."""
    group = regex_group(pattern, text)
    return text if group is None else group


def field_text(path: str, record: dict | None, needed: bool = True) -> str:
    """The value at a dotted path of the record (--map's syntax, tiercli/core/fieldmap.py;
    JSON text met on the way is parsed), as text: a string as it is, a number as JSON writes it."""
    value = value_at(record, path) if record is not None else None
    if value is None or value is MISSING:
        if not needed:
            return ""
        raise RecordProblem(path, f"missing (l3_text field:{path} embeds it)",
                            hint=f"record {path} on every call of the task, or give the task another l3_text "
                                 f"(e.g. last-user); --skip-invalid skips such calls")
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return str(value)
    if not needed:
        return ""
    raise RecordProblem(path, f"must be a string or a number for l3_text field:{path}, got {_kind(value)}",
                        hint=f"name a string inside it, e.g. field:{path}.text")


def _kind(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return {dict: "an object", list: "a list"}.get(type(value), type(value).__name__)


# --- strip-template: after reading -----------------------------------------------------------------

@dataclass(frozen=True)
class Template:
    """A task's template: what at least `share` of its distinct texts start or end with."""

    prefix: str
    suffix: str
    texts: int  # distinct texts it was learned from
    stripped: int  # of which those the prefix or the suffix (or both) was cut from

    def as_dict(self) -> dict:
        return {"prefix": self.prefix, "suffix": self.suffix, "texts": self.texts, "stripped": self.stripped}


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


def _common_start(a: str, b: str) -> int:
    """The length of the longest common prefix of a and b (a binary search of slice
    comparisons, each done in C)."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    low, high = 0, n  # a[:low] == b[:low]; a[:high] != b[:high]
    while high - low > 1:
        middle = (low + high) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle
    return low


def shared_start(texts: list[str], k: int) -> str:
    """The longest string that at least k of the texts (distinct, sorted) start with. The texts
    that start with a given string are consecutive in sorted order, and the common start of
    consecutive texts is that of the first and the last: so it is the longest common start of
    the first and last text of a window of k consecutive texts, over all windows."""
    best, best_at = 0, -1
    for i in range(len(texts) - k + 1):
        first, last = texts[i], texts[i + k - 1]
        if min(len(first), len(last)) <= best:
            continue  # cannot beat the best so far
        length = _common_start(first, last)
        if length > best:
            best, best_at = length, i
    return texts[best_at][:best] if best_at >= 0 else ""


def whole_words_start(prefix: str) -> str:
    """A prefix never ends inside a word: one whose last character is a letter, digit or
    underscore is cut back to just after its last other character (to "" if it has none)."""
    if not prefix or not _is_word_char(prefix[-1]):
        return prefix
    for i in range(len(prefix) - 1, -1, -1):
        if not _is_word_char(prefix[i]):
            return prefix[:i + 1]
    return ""


def template_size(share: float, n: int) -> int:
    """How many of n distinct texts a template must fit: at least share of them, and two."""
    return max(2, math.ceil(round(share * n, 9)))


def learn_template(texts: Iterable[str], share: float) -> Template:
    """The template of a task's texts (docs/answers.md "What L3 embeds", strip-template): the longest
    prefix and the longest suffix that at least `template_size(share, n)` of its n distinct
    texts have, each cut back to whole words. Prefix and suffix are found independently."""
    distinct = sorted(set(texts))
    n = len(distinct)
    k = template_size(share, n)
    if n < k:
        return Template("", "", n, 0)
    prefix = whole_words_start(shared_start(distinct, k))
    suffix = whole_words_start(shared_start(sorted(t[::-1] for t in distinct), k))[::-1]
    template = Template(prefix, suffix, n, 0)
    stripped = sum(1 for t in distinct if _cuts(t, template))
    return Template(prefix, suffix, n, stripped)


def _cuts(text: str, template: Template) -> bool:
    return bool(template.prefix and text.startswith(template.prefix)) or bool(
        template.suffix and text.endswith(template.suffix))


def strip_template(text: str, template: Template) -> str:
    """What varies in a text: the prefix cut off if the text starts with it, then the suffix
    cut off if what is left ends with it (so the two never overlap), then leading and trailing
    whitespace. A text that does not share an end keeps it. When nothing is left (the text is
    all template), the whole text is kept, whitespace-stripped, so that it is compared whole."""
    rest = text
    if template.prefix and rest.startswith(template.prefix):
        rest = rest[len(template.prefix):]
    if template.suffix and rest.endswith(template.suffix):
        rest = rest[:len(rest) - len(template.suffix)]
    rest = rest.strip()
    return rest if rest else text.strip()


def strip_tasks(settings, tasks: Iterable[str]) -> list[str]:
    """The tasks among these whose l3_text is strip-template."""
    return sorted(task for task in set(tasks) if settings.l3_text_for(task).kind == "strip-template")


def apply_templates(calls: list, settings) -> dict[str, Template]:
    """Learn the template of each task whose l3_text is strip-template from its cacheable calls'
    texts (not bypassed, not keyless), and replace every call's text of the task by what
    varies in it. Returns {task: Template}. Runs once per read, before anything is embedded."""
    tasks = set(strip_tasks(settings, (call.task for call in calls)))
    of_task: dict[str, list] = {task: [] for task in tasks}
    for call in calls:
        if call.task in tasks:
            of_task[call.task].append(call)
    templates: dict[str, Template] = {}
    for task in sorted(tasks):
        template = learn_template((c.text for c in of_task[task] if not (c.bypass or c.keyless)),
                                  settings.template_share)
        templates[task] = template
        stripped: dict[str, str] = {}  # one string per distinct text
        for call in of_task[task]:
            text = stripped.get(call.text)
            if text is None:
                text = stripped[call.text] = strip_template(call.text, template)
            call.text = text
    return templates
