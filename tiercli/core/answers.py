"""Answer rules: when two recorded answers of a task count as the same answer (README "Answer
rules"). A rule is set per task (`same_answer`) and decides what a cache hit's "mismatched"
means, and the noise floor it is read against. Ingest keeps only a digest of what the rule
compares (answer_digest); the replay compares digests, and AnswerJudge settles embedding:T."""

from __future__ import annotations

import hashlib
import json
import re
import sys
import time
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import regex

from tiercli.errors import described

RULE_KINDS = ("exact", "normalized", "json", "regex", "embedding", "any")


@dataclass(frozen=True)
class AnswerRule:
    kind: str  # one of RULE_KINDS
    text: str  # as written: "json:score,reason"
    fields: tuple[str, ...] = ()  # json: the fields compared (dotted paths)
    pattern: str | None = None  # regex: its first group is compared
    threshold: float | None = None  # embedding: the least cosine of two answers that are the same


# A user's pattern is read by Python's re (its syntax and errors are those documented) and
# matched by the `regex` module, whose searches take a timeout: a pattern can backtrack
# exponentially ((a|a)+$ over "aaa...!"), and one search of an answer or a text is abandoned after
# MATCH_SECONDS. `regex` compiles a fixed repeat by writing its body out that many times, so a
# pattern whose repeats write out to more than MAX_PATTERN_SIZE items is refused before it is.
MATCH_SECONDS = 0.1
MAX_PATTERN_SIZE = 100_000


def _written_out_size(subpattern) -> int:
    """The items of a pattern as re parses it, each repeat's body counted as many times as its
    least count (as `regex` writes it out); stops counting past MAX_PATTERN_SIZE."""
    from re._constants import MAX_REPEAT, MIN_REPEAT, POSSESSIVE_REPEAT
    from re._parser import SubPattern

    def parts(value):
        if isinstance(value, SubPattern):
            yield value
        elif isinstance(value, (list, tuple)):
            for item in value:
                yield from parts(item)

    total = 0
    for op, argument in subpattern:
        size = sum(_written_out_size(part) for part in parts(argument))
        if op in (MAX_REPEAT, MIN_REPEAT, POSSESSIVE_REPEAT):
            size *= max(argument[0], 1)
        total += 1 + size
        if total > MAX_PATTERN_SIZE:
            break
    return total


def _quoted(text: str, limit: int = 60) -> str:
    return repr(text) if len(text) <= limit else repr(text[:limit - 3]) + "..."


def capture_pattern(text: str, pattern: str, example: str) -> str:
    """A regex:PATTERN's pattern, checked: it compiles, writes out small enough, and has a
    capture group. Every way it can fail is a ValueError (a hostile pattern makes re raise
    OverflowError or RecursionError, not only re.error)."""
    from re._parser import parse

    try:
        size = _written_out_size(parse(pattern))
        compiled = _compiled(pattern) if size <= MAX_PATTERN_SIZE else None
    except RecursionError:
        raise ValueError(f"{_quoted(text)}: not a valid regular expression (nested too deeply)") from None
    except Exception as exc:  # re.error, OverflowError, MemoryError, ...: the pattern cannot be used
        raise ValueError(f"{_quoted(text)}: not a valid regular expression ({exc})") from None
    if compiled is None:
        raise ValueError(f"{_quoted(text)}: too large: its repeats write out to over {MAX_PATTERN_SIZE:,} items "
                         f"(a{{1000}} is 1,000)")
    if compiled.groups < 1:
        raise ValueError(f"{_quoted(text)}: the pattern needs a capture group, e.g. {example}")
    return pattern


def first_group(pattern: str, text: str) -> str | None:
    """The first capture group of the pattern's first match in the text; None when the pattern
    does not match, its first group takes no part in the match, or the search takes longer
    than MATCH_SECONDS."""
    try:
        match = _compiled(pattern).search(text, timeout=MATCH_SECONDS)
    except TimeoutError:
        return None
    return None if match is None else match.group(1)


@lru_cache(maxsize=64)
def _compiled(pattern: str) -> regex.Pattern:
    return regex.compile(pattern)


def parse_rule(text: str) -> AnswerRule:
    """The rule a `same_answer` value names; ValueError says what is wrong and what is allowed."""
    if not isinstance(text, str):
        raise ValueError(f"must be a string such as \"exact\" or \"json:score\", got {described(text)}")
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
        return AnswerRule(kind, text, pattern=capture_pattern(text, argument, "regex:intent: (\\w+)"))
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


UNPARSABLE = b"\x00unparsable"  # the digest of an answer the rule cannot read: it differs from every answer
_ANY = b"\x00any"  # the one digest of every answer under `any`: they are all the same answer
DIGEST_BYTES = 16  # 128-bit BLAKE2b, as records.response_digest


def _hash(text: str) -> bytes:
    # surrogatepass: a lone surrogate a foreign reader let through still has a digest
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=DIGEST_BYTES).digest()


def answer_digest(rule: AnswerRule, response: str | None) -> bytes | None:
    """A digest of what the rule compares in a recorded answer; None when no answer was
    recorded, UNPARSABLE when the rule cannot read it (json, regex). Two answers are the same
    under the rule when their digests are equal (and neither is UNPARSABLE), except under
    `embedding`, whose digest only names the answer text (see AnswerJudge)."""
    if response is None:
        return None
    kind = rule.kind
    if kind in ("exact", "embedding"):
        return _hash(response.strip())  # = records.response_digest: the stripped text
    if kind == "normalized":
        return _hash(normalize(response))
    if kind == "json":
        values = json_fields(response, rule.fields)
        return UNPARSABLE if values is None else _hash(values)
    if kind == "regex":
        group = first_group(rule.pattern, response)
        return UNPARSABLE if group is None else _hash(group)
    if kind == "any":
        return _ANY
    raise ValueError(f"unknown answer rule {rule.text!r}")


@lru_cache(maxsize=1)
def _punctuation() -> dict[int, None]:
    """Every code point of Unicode general category P* (Pc Pd Ps Pe Pi Pf Po), mapped to
    nothing: a str.translate table, built once (about a quarter of a second)."""
    return {i: None for i in range(sys.maxunicode + 1) if unicodedata.category(chr(i))[0] == "P"}


def normalize(response: str) -> str:
    """The `normalized` rule's text: case folded (str.casefold), punctuation (Unicode P*)
    removed, whitespace runs (str.split) made one space, none at either end."""
    return " ".join(response.casefold().translate(_punctuation()).split())


# A code fence: from ``` to the next ```; a first line that is only an info string (json, JSON,
# empty) is not part of the body.
_FENCE = re.compile(r"```(.*?)```", re.S)
_INFO_STRING = re.compile(r"[\w.+-]*")
_JSON_START = re.compile(r"[\[{]")


class _NotJson(Exception):
    pass


def _reject_constant(name: str):
    raise _NotJson(name)  # NaN, Infinity, -Infinity: not JSON


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_NOT_FOUND = object()  # find_json: no JSON in the answer
_MISSING = object()  # _field: no such field


JSON_SECONDS = 0.1  # of the thread's CPU time: the search for an answer's JSON stops after it


def find_json(response: str):
    """The JSON value in an answer, or _NOT_FOUND: the whole answer (whitespace stripped) if it
    is JSON; else the body of the first ``` code fence that is JSON; else the value that starts
    at the first { or [ from which a JSON value parses (text after it is ignored).

    Each try reads up to the whole answer, and an answer can hold a million { or [ that start
    no value (nested, unclosed): no try starts after JSON_SECONDS, and the answer's JSON is then
    _NOT_FOUND."""
    deadline = time.thread_time() + JSON_SECONDS
    try:
        return _DECODER.decode(response.strip())
    except (ValueError, _NotJson, RecursionError):
        pass
    for fence in _FENCE.finditer(response):
        if time.thread_time() > deadline:
            return _NOT_FOUND
        body = fence.group(1)
        first, newline, rest = body.partition("\n")
        if newline and _INFO_STRING.fullmatch(first.strip()):
            body = rest
        try:
            return _DECODER.decode(body.strip())
        except (ValueError, _NotJson, RecursionError):
            continue
    for start in _JSON_START.finditer(response):
        if time.thread_time() > deadline:
            return _NOT_FOUND
        try:
            return _DECODER.raw_decode(response, start.start())[0]
        except (ValueError, _NotJson, RecursionError):
            continue
    return _NOT_FOUND


def _field(value, path: str):
    """The value at a dotted path: each part a key of an object, or an index (0, 1, ...) of an
    array; _MISSING when a part is not there."""
    for part in path.split("."):
        if isinstance(value, dict):
            if part not in value:
                return _MISSING
            value = value[part]
        elif isinstance(value, list) and part.isascii() and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def _canonical(value):
    """A JSON value with numbers compared by value (5, 5.0 and 5e0 are one number)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    if isinstance(value, dict):
        return {key: _canonical(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_canonical(item) for item in value]
    return value


def json_fields(response: str, fields: tuple[str, ...]) -> str | None:
    """The canonical JSON (sorted keys, no spaces) of the list of the named fields' values in
    the answer's JSON; None when there is no JSON or a field is missing (the answer is
    unparsable under the rule)."""
    value = find_json(response)
    if value is _NOT_FOUND:
        return None
    found = [_field(value, path) for path in fields]
    if any(item is _MISSING for item in found):
        return None
    try:
        return json.dumps(_canonical(found), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except RecursionError:  # nested deeper than Python recurses (several hundred levels)
        return None


def uses_embedding(settings) -> bool:
    """Whether any task's answer rule (the default or a [tasks.NAME] one) is `embedding`: its
    answers' texts are then kept at ingest and embedded before the replay."""
    if settings is None:
        return False
    texts = [settings.same_answer] + [options["same_answer"] for options in settings.task_options.values()
                                      if "same_answer" in options]
    return any(parse_rule(text).kind == "embedding" for text in texts)


class AnswerJudge:
    """Whether two recorded answers of a task differ under its rule, from their digests.
    `answer_vectors`: digest -> unit vector of the answer text, for tasks whose rule is
    `embedding` (pipeline.answer_judge embeds them)."""

    def __init__(self, settings, answer_vectors=None):
        self.settings = settings
        self.answer_vectors = answer_vectors if answer_vectors is not None else {}
        self.uses_embedding = uses_embedding(settings)
        self._rules: dict[str, AnswerRule] = {}

    def rule(self, task: str) -> AnswerRule:
        rule = self._rules.get(task)
        if rule is None:
            rule = self._rules[task] = (self.settings.answer_rule(task) if self.settings is not None
                                        else parse_rule("exact"))
        return rule

    def differ(self, task: str, a: bytes | None, b: bytes | None) -> bool | None:
        """None when either answer was not recorded (nothing to compare); True when either is
        UNPARSABLE; under `embedding:T`, whether the answers' cosine is below T; else whether
        the digests differ."""
        if a is None or b is None:
            return None
        if a == UNPARSABLE or b == UNPARSABLE:
            return True
        if a == b:
            return False
        if not self.uses_embedding:
            return True
        rule = self.rule(task)
        if rule.kind != "embedding":
            return True
        va, vb = self.answer_vectors.get(a), self.answer_vectors.get(b)
        if va is None or vb is None:
            raise ValueError(f"task {task!r} compares answers by embedding ({rule.text}), but its answers were "
                             f"not embedded: build the AnswerJudge with pipeline.answer_judge")
        # float32, for this pair alone, as L3's similarity
        return float(np.dot(np.asarray(va, dtype=np.float32), np.asarray(vb, dtype=np.float32))) < rule.threshold
