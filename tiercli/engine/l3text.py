"""What L3 embeds for a call, per task (`l3_text`; README "What L3 embeds"). The L1/L2 key
is always the whole request; only the semantic tier's text changes."""

from __future__ import annotations

import re
from dataclasses import dataclass

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
        raise ValueError(f"must be a string such as \"last-user\", got {text!r}")
    kind, colon, argument = text.partition(":")
    kind = kind.strip()
    if kind in ("last-user", "all-user", "strip-template") and not colon:
        return L3Text(kind, text)
    if kind == "regex" and colon:
        try:
            compiled = re.compile(argument)
        except re.error as exc:
            raise ValueError(f"{text!r}: not a valid regular expression ({exc})") from None
        if compiled.groups < 1:
            raise ValueError(f"{text!r}: the pattern needs a capture group, e.g. regex:SMS: (.*)")
        return L3Text(kind, text, pattern=argument)
    if kind == "field" and colon and argument.strip():
        return L3Text(kind, text, path=argument.strip())
    raise ValueError(f"unknown l3_text {text!r}: use last-user, all-user, regex:PATTERN, field:PATH or "
                     f"strip-template")
