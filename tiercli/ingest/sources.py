"""The logs a command was given, as they come: paths, folders, globs and `-` (standard input),
each plain, gzip or zstd (told by its first bytes, not its name)."""

from __future__ import annotations

import glob
import gzip
import io
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from tiercli.errors import LogError

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
PARQUET_MAGIC = b"PAR1"
STDIN = "-"
HEAD_BYTES = 1 << 16  # what format detection looks at
_GLOB_CHARS = frozenset("*?[")


@dataclass
class Source:
    """One input log. `name` is what messages call it: the path as found, or "<stdin>"."""

    name: str
    path: Path | None  # None: standard input
    compression: str | None = None  # "gzip", "zstd" or None
    _data: bytes | None = field(default=None, repr=False)  # standard input, read once
    _head: bytes | None = field(default=None, repr=False)  # the first HEAD_BYTES, once read

    @property
    def plain_file(self) -> bool:
        """A file on disk as it is: the native reader reads it in blocks, in two processes when large."""
        return self.path is not None and self.compression is None

    def open(self) -> BinaryIO:
        """The log's bytes, decompressed."""
        if self.path is None:
            raw: BinaryIO = io.BytesIO(self._data or b"")
        else:
            try:
                raw = open(self.path, "rb")
            except OSError as exc:
                raise cannot_read(self.name, exc) from None
        if self.compression == "gzip":
            return _Checked(gzip.GzipFile(fileobj=raw), self.name, raw)
        if self.compression == "zstd":
            return _Checked(_ZstdFrames(raw), self.name, raw)
        return raw

    def read_bytes(self) -> bytes:
        with self.open() as handle:
            try:
                return handle.read()
            except OSError as exc:
                raise cannot_read(self.name, exc) from None

    def head(self, size: int = HEAD_BYTES) -> bytes:
        """The first `size` decompressed bytes; the first HEAD_BYTES are read once, as detection
        and the empty-file checks each look at them."""
        if size <= HEAD_BYTES and self._head is not None:
            return self._head[:size]
        with self.open() as handle:
            try:
                data = handle.read(max(size, HEAD_BYTES))
            except OSError as exc:
                raise cannot_read(self.name, exc) from None
        self._head = data[:HEAD_BYTES]
        return data[:size]

    def size(self) -> int:
        """Bytes on disk (compressed), or read from standard input."""
        if self.path is None:
            return len(self._data or b"")
        return self.path.stat().st_size


class _Checked(io.RawIOBase):
    """A decompressing stream whose corrupt or cut data is a LogError naming the file."""

    def __init__(self, inner, name: str, raw: BinaryIO):
        self.inner, self.name, self.raw = inner, name, raw

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        try:
            return self.inner.read(size)
        except EOFError:
            raise LogError(self.name, None, None, "the compressed file is cut short",
                           hint="the file may still be being written, or was truncated in transfer") from None
        except Exception as exc:  # zlib.error, zstd.ZstdError, gzip.BadGzipFile: a damaged file
            if isinstance(exc, LogError):
                raise
            raise LogError(self.name, None, None, f"cannot decompress: {exc}") from None

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            self.inner.close()
        finally:
            self.raw.close()
            super().close()


class _ZstdFrames:
    """Decompressed bytes of one or more zstd frames. zstandard's stream_reader returns what it
    has when the data stops mid-frame; here a cut file raises EOFError instead of looking short."""

    def __init__(self, raw: BinaryIO):
        self.raw, self.buffer, self.pieces = raw, bytearray(), self._pieces()

    def _pieces(self) -> Iterator[bytes]:
        import zstandard

        new = zstandard.ZstdDecompressor().decompressobj
        frame, in_frame = new(), False
        while data := self.raw.read(1 << 20):
            while data:
                in_frame = True
                if piece := frame.decompress(data):
                    yield piece
                if frame.eof:  # what follows starts the next frame
                    data, frame, in_frame = frame.unused_data, new(), False
                else:
                    data = b""
        if in_frame:
            raise EOFError

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self.buffer) < size:
            piece = next(self.pieces, None)
            if piece is None:
                break
            self.buffer += piece
        cut = len(self.buffer) if size < 0 else min(size, len(self.buffer))
        out = bytes(self.buffer[:cut])
        del self.buffer[:cut]
        return out

    def close(self) -> None:
        pass


def cannot_read(name: str, exc: OSError) -> LogError:
    return LogError(name, None, None, f"cannot read: {exc.strerror or exc}")


def _compression(head: bytes) -> str | None:
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return None


def _file_source(path: Path, name: str) -> Source:
    try:
        with open(path, "rb") as handle:  # open, not stat: a folder or an unreadable file fails here
            head = handle.read(4)
    except OSError as exc:
        raise cannot_read(name, exc) from None
    return Source(name, path, _compression(head))


def _stdin_source() -> Source:
    if sys.stdin is None or (sys.stdin.isatty() if hasattr(sys.stdin, "isatty") else False):
        raise LogError("<stdin>", None, None, "standard input (-) is a terminal, not a log",
                       hint="pipe a log into it: zcat logs.jsonl.gz | tiercli replay -")
    stream = getattr(sys.stdin, "buffer", None)
    data = stream.read() if stream is not None else sys.stdin.read().encode()
    return Source("<stdin>", None, _compression(data[:4]), data)


def expand(arguments: list[str]) -> list[Source]:
    """The logs named by the arguments, in argument order: a folder gives its files (not hidden
    ones) sorted by name, a glob its matches sorted by name, `-` standard input (once)."""
    sources: list[Source] = []
    for argument in arguments:
        argument = str(argument)
        if argument == STDIN:
            if any(source.path is None for source in sources):
                raise LogError("<stdin>", None, None, "standard input (-) is given twice")
            sources.append(_stdin_source())
        elif os.path.isdir(argument):
            files = sorted(p for p in Path(argument).iterdir() if p.is_file() and not p.name.startswith("."))
            if not files:
                raise LogError(argument, None, None, "the folder holds no files",
                               hint="give log files, a folder of them, or a glob such as 'logs/*.jsonl.gz'")
            sources += [_file_source(p, str(p)) for p in files]
        elif not os.path.exists(argument) and _GLOB_CHARS & set(argument):
            files = sorted(p for p in glob.glob(argument, recursive=True) if os.path.isfile(p))
            if not files:
                raise LogError(argument, None, None, "no file matches this pattern")
            sources += [_file_source(Path(p), p) for p in files]
        else:
            sources.append(_file_source(Path(argument), argument))
    if not sources:
        raise LogError("", None, None, "no log given", hint="give a log file, several, a folder, a glob or - (stdin)")
    return sources


def lines_of(source: Source, block_bytes: int = 1 << 20) -> Iterator[tuple[int, int, bytes]]:
    """A source's decompressed bytes in blocks of whole lines (see line_blocks)."""
    with source.open() as handle:
        yield from line_blocks(handle, source.name, block_bytes)


def line_blocks(handle: BinaryIO, name: str, block_bytes: int = 1 << 20,
                left: int | None = None) -> Iterator[tuple[int, int, bytes]]:
    """The next `left` bytes of a stream (all, when None) in blocks of whole lines (the last
    may lack its newline): the number of each block's first line (counted from where the
    stream stands), its line count, the block."""
    line_no, rest = 1, b""
    while left is None or left > 0:
        try:
            chunk = handle.read(block_bytes if left is None else min(block_bytes, left))
        except OSError as exc:
            raise cannot_read(name, exc) from None
        if not chunk:
            break
        if left is not None:
            left -= len(chunk)
        chunk = rest + chunk if rest else chunk
        cut = chunk.rfind(b"\n") + 1
        if cut == 0:
            rest = chunk
            continue
        block, rest = chunk[:cut], chunk[cut:]
        lines = block.count(b"\n")
        yield line_no, lines, block
        line_no += lines
    if rest:
        yield line_no, rest.count(b"\n") + 1, rest
