"""tiercli's own JSON Lines (docs/logs/native.md "Log format"), read by the fast reader in logread.py."""

from __future__ import annotations

from tiercli.ingest.formats import Sample
from tiercli.ingest.logread import read_native

OWN_FIELDS = ("ts", "task_type", "lead_id", "contact_id")


class Native:
    name = "tiercli"

    def fits(self, sample: Sample) -> str | None:
        if sample.container != "jsonl":
            return f"not JSON Lines (a {sample.container} file)"
        first = sample.records[0]
        if not isinstance(first, dict):
            return "the first record is not a JSON object"
        # Any of our own fields is enough: the reader then names what is missing or wrong.
        if first.get("type") in ("call", "tag_change") or any(name in first for name in OWN_FIELDS):
            return None
        return "the first record has none of " + ", ".join(f'"{name}"' for name in OWN_FIELDS)

    def read(self, source, options, file_index, names):
        return read_native(source, options, file_index, names)[0]


FORMAT = Native()
