"""Answer rules: when two recorded answers of a task count as the same answer (README "Is a
cached answer right?"). A rule is set per task (`same_answer`) and decides what a cache hit's
"mismatched" means, and the noise floor it is read against."""

from __future__ import annotations

import re
from dataclasses import dataclass

RULE_KINDS = ("exact", "normalized", "json", "regex", "embedding", "any")


@dataclass(frozen=True)
class AnswerRule:
    kind: str  # one of RULE_KINDS
    text: str  # as written: "json:score,reason"
    fields: tuple[str, ...] = ()  # json: the fields compared (dotted paths)
    pattern: str | None = None  # regex: its first group is compared
    threshold: float | None = None  # embedding: the least cosine of two answers that are the same


def parse_rule(text: str) -> AnswerRule:
    """The rule a `same_answer` value names; ValueError says what is wrong and what is allowed."""
    if not isinstance(text, str):
        raise ValueError(f"must be a string such as \"exact\" or \"json:score\", got {text!r}")
    kind, colon, argument = text.partition(":")
    kind = kind.strip()
    if kind in ("exact", "normalized", "any") and not colon:
        return AnswerRule(kind, text)
    if kind == "json" and colon:
        fields = tuple(f.strip() for f in argument.split(",") if f.strip())
        if not fields:
            raise ValueError(f"{text!r}: name the fields to compare, e.g. json:score or json:intent,urgency")
        return AnswerRule(kind, text, fields=fields)
    if kind == "regex" and colon:
        try:
            compiled = re.compile(argument)
        except re.error as exc:
            raise ValueError(f"{text!r}: not a valid regular expression ({exc})") from None
        if compiled.groups < 1:
            raise ValueError(f"{text!r}: the pattern needs a capture group, e.g. regex:intent: (\\w+)")
        return AnswerRule(kind, text, pattern=argument)
    if kind == "embedding" and colon:
        try:
            threshold = float(argument)
        except ValueError:
            threshold = float("nan")
        if not 0 <= threshold <= 1:
            raise ValueError(f"{text!r}: the threshold must be a cosine from 0 to 1, e.g. embedding:0.9")
        return AnswerRule(kind, text, threshold=threshold)
    raise ValueError(f"unknown answer rule {text!r}: use exact, normalized, json:FIELD[,FIELD...], "
                     f"regex:PATTERN, embedding:T or any")
