"""The records of a source in the container it came in: JSON Lines, one JSON document (an
object, or an array of records), CSV with a header row, or Parquet. Formats other than the
native one read their records through here; each record comes with where it is, for errors."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from tiercli.errors import LogError
from tiercli.ingest.records import json_problem
from tiercli.ingest.sources import PARQUET_MAGIC, Source

SAMPLE_RECORDS = 20  # what format detection looks at
UTF8_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Item:
    line: int | None  # line in the file (JSON Lines, CSV, a one-line document)
    record: str | None  # "record 3" (a document's array), "row 3" (Parquet)
    value: Any

    def error(self, source: Source, field: str | None, problem: str, hint: str | None = None,
              record: str | None = None) -> LogError:
        where = "; ".join(part for part in (self.record, record) if part) or None
        return LogError(source.name, self.line, field, problem, hint, record=where)


def container(source: Source, head: bytes | None = None) -> str:
    """"parquet", "csv", "json" (one document over several lines) or "jsonl"."""
    head = source.head() if head is None else head
    if head.startswith(PARQUET_MAGIC):
        return "parquet"
    text = head[len(UTF8_BOM):] if head.startswith(UTF8_BOM) else head
    stripped = text.lstrip()
    if not stripped:
        return "jsonl"
    if stripped[:1] not in (b"{", b"["):
        return "csv"
    first = stripped.split(b"\n", 1)[0]
    try:
        orjson.loads(first)
        return "jsonl"
    except orjson.JSONDecodeError:
        pass
    # a document over several lines opens with a line of its own, or an array; anything else
    # is JSON Lines with a bad line, which the reader names
    return "json" if first.strip() in (b"{", b"[") or first.startswith(b"[") else "jsonl"


def items(source: Source, kind: str | None = None, *, limit: int | None = None) -> Iterator[Item]:
    """The records of a source, in file order. With `limit` (detection), at most that many,
    and lines of JSON Lines that are not JSON are passed over: the reader names them later."""
    kind = kind or container(source)
    if kind == "parquet":
        yield from _parquet(source, limit)
    elif kind == "csv":
        yield from _csv(source, limit)
    elif kind == "json":
        yield from _document(source, limit)
    else:
        yield from _json_lines(source, limit)


def _json_lines(source: Source, limit: int | None) -> Iterator[Item]:
    from tiercli.ingest.sources import lines_of

    given = 0
    for first_line, _, block in lines_of(source):
        if first_line == 1 and block.startswith(UTF8_BOM):
            block = block[len(UTF8_BOM):]
        for i, raw in enumerate(block.split(b"\n")):
            if not raw.strip():
                continue
            try:
                value = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                if limit is not None:
                    continue
                raise LogError(source.name, first_line + i, None, json_problem(raw, exc)) from None
            yield Item(first_line + i, None, value)
            given += 1
            if limit is not None and given >= limit:
                return


def _document(source: Source, limit: int | None) -> Iterator[Item]:
    data = source.read_bytes()
    if data.startswith(UTF8_BOM):
        data = data[len(UTF8_BOM):]
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        line = getattr(exc, "lineno", None)
        raise LogError(source.name, line, None, json_problem(data, exc)) from None
    if isinstance(value, list):
        for i, element in enumerate(value[:limit] if limit is not None else value):
            yield Item(None, f"record {i + 1}", element)
    else:
        yield Item(1, None, value)


def json_text(value: Any) -> Any:
    """A string holding a JSON object or array, parsed (exports keep nested fields as JSON
    text: a CSV cell, LiteLLM's metadata); any other value as it is."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] in ("{", "[") and stripped[-1:] in ("}", "]"):
            try:
                return orjson.loads(stripped)
            except orjson.JSONDecodeError:
                return value
    return value


def _csv(source: Source, limit: int | None) -> Iterator[Item]:
    data = source.read_bytes() if limit is None else source.head(1 << 22)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as bad:
        if limit is None:
            line = data[:bad.start].count(b"\n") + 1
            raise LogError(source.name, line, None, f"not valid UTF-8 (byte 0x{data[bad.start]:02x})") from None
        text = data[:bad.start].decode("utf-8-sig", errors="ignore")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        raise LogError(source.name, 1, None, f"not valid CSV ({exc})") from None
    given, line = 0, reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise LogError(source.name, line, None, f"not valid CSV ({exc})") from None
        if row and any(cell.strip() for cell in row):
            if len(row) > len(header):
                raise LogError(source.name, line, None,
                               f"{len(row)} cells, but the header names {len(header)} columns")
            yield Item(line, None, {name: json_text(cell) for name, cell in zip(header, row)})
            given += 1
            if limit is not None and given >= limit:
                return
        line = reader.line_num + 1


def _parquet(source: Source, limit: int | None) -> Iterator[Item]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    handle = source.path if source.plain_file else io.BytesIO(source.read_bytes())
    try:
        parquet = pq.ParquetFile(handle)
        row = 0
        for batch in parquet.iter_batches(batch_size=min(limit or 4096, 4096)):
            for value in batch.to_pylist():
                row += 1
                yield Item(None, f"row {row}", value)
                if limit is not None and row >= limit:
                    return
    except (pa.ArrowException, OSError) as exc:
        raise LogError(source.name, None, None, f"not a readable Parquet file ({exc})") from None
