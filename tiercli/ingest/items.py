"""The records of a source in the container it came in: JSON Lines, one JSON document (an
object, or an array of records), CSV with a header row, or Parquet. Formats other than the
native one read their records through here; each record comes with where it is, for errors."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from tiercli.core.fieldmap import json_text
from tiercli.errors import LogError
from tiercli.ingest.records import json_problem
from tiercli.ingest import sources
from tiercli.ingest.sources import PARQUET_MAGIC, Source, size_text

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
    # A document over several lines opens with a line of its own; an array is a document of
    # records however it is laid out (on one line: what `curl .../spend/logs > FILE` writes),
    # whether or not the head holds all of it. Anything else is JSON Lines (a bad line
    # among them the reader names).
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
    given = 0
    for first_line, _, block in sources.lines_of(source):
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
    data = source.read_document()
    if data.startswith(UTF8_BOM):
        data = data[len(UTF8_BOM):]
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        value = _without_final_comma(data)
        if value is None:
            line = getattr(exc, "lineno", None)
            raise LogError(source.name, line, None, json_problem(data, exc)) from None
    if isinstance(value, list):
        for i, element in enumerate(value[:limit] if limit is not None else value):
            yield Item(None, f"record {i + 1}", element)
    else:
        yield Item(1, None, value)


def _without_final_comma(data: bytes) -> list | None:
    """An array whose last record is followed by a comma, as Helicone's export tool writes its
    JSON (`--format json`: each record then ",\n", then "]"), read without that comma; None
    for any other document that is not JSON (its error stands)."""
    body = data.rstrip()
    if not (body.lstrip().startswith(b"[") and body.endswith(b"]")):
        return None
    head = body[:-1].rstrip()
    if not head.endswith(b","):
        return None
    try:
        value = orjson.loads(head[:-1] + b"]")
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, list) else None



def _csv(source: Source, limit: int | None) -> Iterator[Item]:
    """Rows as a stream of lines (each at most sources.MAX_LINE_BYTES, as a cell and a row may be);
    bytes that are not UTF-8 are an error naming their line (detection stops before them)."""
    lines = _CsvLines(source)
    csv.field_size_limit(sources.MAX_LINE_BYTES)  # a cell as long as a line may be (csv's default: 128 KiB)
    reader = csv.reader(lines)
    line, header, given = 1, None, 0
    while True:
        lines.row_starts(line)
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise LogError(source.name, line, None, f"not valid CSV ({exc})") from None
        bad = _not_utf8(row)
        if bad is not None:
            if limit is not None:
                return
            raise LogError(source.name, line + bad[0], None, f"not valid UTF-8 (byte 0x{bad[1]:02x})") from None
        if header is None:
            header = row
        elif row and any(cell.strip() for cell in row):
            if len(row) > len(header):
                raise LogError(source.name, line, None,
                               f"{len(row)} cells, but the header names {len(header)} columns")
            yield Item(line, None, {name: json_text(cell) for name, cell in zip(header, row)})
            given += 1
            if limit is not None and given >= limit:
                return
        line = reader.line_num + 1


class _CsvLines:
    """A CSV source's lines, decoded (undecodable bytes kept as surrogates, found per row), for
    csv.reader; a row that spans lines may be at most sources.MAX_LINE_BYTES long in all."""

    def __init__(self, source: Source):
        self.source, self.lines = source, self._lines()
        self.row_line, self.row_chars = 1, 0  # where the row being read starts, and its length so far

    def _lines(self) -> Iterator[str]:
        for first_line, _, block in sources.lines_of(self.source):
            if first_line == 1 and block.startswith(UTF8_BOM):
                block = block[len(UTF8_BOM):]
            pieces = block.decode("utf-8", "surrogateescape").split("\n")
            for piece in pieces[:-1]:
                yield piece + "\n"
            if pieces[-1]:
                yield pieces[-1]

    def __iter__(self):
        return self

    def __next__(self) -> str:
        text = next(self.lines)
        self.row_chars += len(text)
        if self.row_chars > sources.MAX_LINE_BYTES:
            raise LogError(self.source.name, self.row_line, None,
                           f"a row longer than {size_text(sources.MAX_LINE_BYTES)}, the longest tiercli reads",
                           hint="is a quote left open? A cell in quotes runs on to the next quote")
        return text

    def row_starts(self, line: int) -> None:
        self.row_line, self.row_chars = line, 0


def _not_utf8(row: list[str]) -> tuple[int, int] | None:
    """(lines into the row, the byte) of the first byte in a row that was not UTF-8."""
    for i, cell in enumerate(row):
        if not cell.isascii():
            try:
                cell.encode()
            except UnicodeEncodeError as bad:
                before = "\n".join(row[:i]) + cell[:bad.start]
                return before.count("\n"), ord(cell[bad.start]) - 0xDC00
    return None


def _parquet(source: Source, limit: int | None) -> Iterator[Item]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    handle = source.path if source.plain_file else source.open_seekable()
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
