"""What a reader raises for one bad record, below every reader and the checks they share (the
depth bound among them), so each imports it at the top."""

from __future__ import annotations


class RecordProblem(Exception):
    """A problem in one record: the field and what is wrong with it (and a hint); the reader
    turns it into a LogError naming the file and line."""

    def __init__(self, field: str | None, problem: str, hint: str | None = None):
        self.field, self.problem, self.hint = field, problem, hint
