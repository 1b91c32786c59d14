"""The logs a command was given, as they come: paths, folders, globs and `-` (standard input),
each plain, gzip or zstd (told by its first bytes, not its name).

Memory stays bounded whatever a log's size once decompressed: logs are read as streams, a
line (a record) may be at most MAX_LINE_BYTES long and so may a log that is one JSON document,
and standard input is spooled to a temporary file, since detection and reading each read it
from the start."""

from __future__ import annotations

import glob
import gzip
import io
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from tiercli.errors import LogError
from tiercli.settings import Settings

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
PARQUET_MAGIC = b"PAR1"
STDIN = "-"
HEAD_BYTES = 1 << 16  # what format detection looks at
# The longest line (one record) or one-document log read (docs/logs/native.md "Log format"): far above any
# real record, and what bounds the memory one record takes, a decompression bomb's included.
MAX_LINE_BYTES = 64 << 20
_GLOB_CHARS = frozenset("*?[")


def size_text(size: int) -> str:
    """'64 MiB', '1 KiB', '100 bytes': a bound as messages name it."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift and size % (1 << shift) == 0:
            return f"{size >> shift:,} {unit}"
    return f"{size:,} bytes"


@dataclass
class Source:
    """One input log. `name` is what messages call it: the path as found, or "<stdin>"."""

    name: str
    path: Path | None  # None: standard input
    compression: str | None = None  # "gzip", "zstd" or None
    _spool: BinaryIO | None = field(default=None, repr=False)  # standard input, spooled to a temporary file
    _head: bytes | None = field(default=None, repr=False)  # the first HEAD_BYTES, once read

    @property
    def plain_file(self) -> bool:
        """A file on disk as it is: the native reader reads it in blocks, in two processes when large."""
        return self.path is not None and self.compression is None

    def open_raw(self) -> BinaryIO:
        """The log's bytes as given (compressed ones compressed), from the start; each call
        reads on its own."""
        if self.path is None:
            return io.BufferedReader(_SpoolReader(self._spool.fileno()), 1 << 20)
        try:
            return open(self.path, "rb")
        except OSError as exc:
            raise cannot_read(self.name, exc) from None

    def open(self) -> BinaryIO:
        """The log's bytes, decompressed, from the start; each call reads on its own."""
        raw = self.open_raw()
        if self.compression == "gzip":
            return _Checked(gzip.GzipFile(fileobj=raw), self.name, raw)
        if self.compression == "zstd":
            return _Checked(_ZstdFrames(raw), self.name, raw)
        return raw

    def read_document(self) -> bytes:
        """The whole log as one document (JSON), at most MAX_LINE_BYTES once decompressed."""
        with self.open() as handle:
            try:
                data = handle.read(MAX_LINE_BYTES + 1)
            except OSError as exc:
                raise cannot_read(self.name, exc) from None
        if len(data) > MAX_LINE_BYTES:
            raise LogError(self.name, None, None,
                           f"one JSON document longer than {size_text(MAX_LINE_BYTES)}, the longest tiercli reads",
                           hint="write it as JSON Lines, one record a line (for an array: jq -c '.[]' FILE > "
                                "FILE.jsonl), which has no bound on the file, only on a line")
        return data

    def open_seekable(self) -> BinaryIO:
        """The decompressed bytes as a file that can seek (Parquet reads its footer first): the
        file itself, standard input's spool, or a compressed file decompressed to a temporary one."""
        if self.compression is None:
            return self.open()
        copy = _temporary(self.name)
        with self.open() as handle:
            try:
                while chunk := handle.read(1 << 20):
                    copy.write(chunk)
            except OSError as exc:
                copy.close()
                raise cannot_read(self.name, exc) from None
        copy.seek(0)
        return copy

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
            return os.fstat(self._spool.fileno()).st_size
        return self.path.stat().st_size


class _SpoolReader(io.RawIOBase):
    """Standard input's spool, read from the start with a position of its own (os.pread), so
    that several readers of one spool never move each other's place."""

    def __init__(self, fd: int):
        self.fd, self.position = fd, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = os.pread(self.fd, len(buffer), self.position)
        buffer[:len(data)] = data
        self.position += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: os.fstat(self.fd).st_size}[whence]
        self.position = base + offset
        return self.position

    def tell(self) -> int:
        return self.position


def _temporary(name: str) -> BinaryIO:
    try:
        return tempfile.TemporaryFile(prefix="tiercli-")
    except OSError as exc:
        raise _no_room(name, exc) from None


def _no_room(name: str, exc: OSError) -> LogError:
    return LogError(name, None, None, f"cannot keep a copy to read: {exc.strerror or exc}",
                    hint=f"set TMPDIR to a folder with room (now {tempfile.gettempdir()}), or give the log as a "
                         "plain file")


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
        except MemoryError:
            raise  # no fault of the file's (logread.read_source says it)
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


# Files plainly not logs, told by their first bytes: (magic, what the file is, what to do).
_LOG_KINDS = ("a log is JSON Lines, JSON, CSV or Parquet, plain or compressed with gzip or zstd "
              "(docs/logs/index.md \"Bring your logs\")")
_NOT_LOGS = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image", None),
    (b"\xff\xd8\xff", "a JPEG image", None),
    (b"GIF87a", "a GIF image", None),
    (b"GIF89a", "a GIF image", None),
    (b"%PDF-", "a PDF document", None),
    (b"PK\x03\x04", "a ZIP archive", "unpack it (unzip FILE) and give the logs inside, or their folder"),
    (b"PK\x05\x06", "an empty ZIP archive", None),
    (b"SQLite format 3\x00", "an SQLite database", "export the table of calls as JSON Lines or CSV"),
    (b"\xfd7zXZ\x00", "an xz-compressed file", "tiercli reads gzip and zstd: unxz it, or recompress it with gzip"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive", "unpack it and give the logs inside, or their folder"),
    (b"\x7fELF", "a program", None),
    (b"\xff\xfe", "UTF-16 text", "tiercli reads UTF-8: convert it (iconv -f UTF-16 -t UTF-8 FILE > FILE.utf8)"),
    (b"\xfe\xff", "UTF-16 text", "tiercli reads UTF-8: convert it (iconv -f UTF-16 -t UTF-8 FILE > FILE.utf8)"),
)
# tiercli's config tables, beside its settings: a TOML file holding one is a config file
_CONFIG_TABLES = ("tasks", "prices", "map", "executor", "prompt_cache", "l1", "l2", "l3")


def refuse_non_log(source: Source) -> None:
    """A LogError when a source is plainly not a log, whatever --format says: a config file,
    an image, an archive, a database, another compression, a binary file. Said first, as
    any reader would only report its first bytes as a bad record."""
    head = source.head()
    compressed = f", {source.compression}-compressed" if source.compression else ""
    if _config_file(source, head):
        raise LogError(source.name, None, None, "this is a TOML config file, not a log",
                       hint=f"pass it with --config {source.name}" if source.path is not None
                       else "save it to a file and pass that with --config FILE")
    for magic, what, hint in _NOT_LOGS:
        if head.startswith(magic):
            raise LogError(source.name, None, None, f"{what}{compressed}, not a log",
                           hint=(hint or _LOG_KINDS).replace("FILE", source.name))
    if head[:3] == b"BZh" and head[4:10] == b"1AY&SY":  # the 4th byte is the block size
        raise LogError(source.name, None, None, f"a bzip2-compressed file{compressed}, not a log",
                       hint="tiercli reads gzip and zstd: bunzip2 it, or recompress it with gzip")
    if head[257:262] == b"ustar":
        raise LogError(source.name, None, None, f"a tar archive{compressed}, not a log",
                       hint=f"unpack it (tar -xf {source.name}) and give the logs inside, or their folder")
    # No text format holds a NUL byte. Length-prefixed zstd frames are the OpenTelemetry
    # Collector's message-level compression, which the otel reader names.
    if not head.startswith(PARQUET_MAGIC) and head[4:8] != ZSTD_MAGIC and b"\x00" in head:
        raise LogError(source.name, None, None, f"a binary file{compressed}, not a log", hint=_LOG_KINDS)


def _config_file(source: Source, head: bytes) -> bool:
    """A TOML file: named .toml, or a whole small file that parses as TOML with tiercli's
    settings or tables (JSON and CSV never parse as TOML with such keys)."""
    if source.path is not None and source.path.name.lower().endswith((".toml", ".toml.gz", ".toml.zst")):
        return True
    if len(head) >= HEAD_BYTES or head.lstrip()[:1] in (b"{", b"["):
        return False
    import dataclasses
    import tomllib

    try:
        table = tomllib.loads(head.decode("utf-8-sig"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return False
    known = set(_CONFIG_TABLES) | {f.name for f in dataclasses.fields(Settings)}
    return bool(known & set(table))


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
    spool = _temporary("<stdin>")
    try:
        if stream is None:  # a text stream only (a test's)
            spool.write(sys.stdin.read().encode())
        else:
            while chunk := stream.read(1 << 20):
                spool.write(chunk)
        spool.flush()
    except OSError as exc:
        spool.close()
        raise _no_room("<stdin>", exc) from None
    return Source("<stdin>", None, _compression(os.pread(spool.fileno(), 4, 0)), spool)


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
            sources += [_file_source(p, str(p)) for p in _folder_files(argument)]
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


def _folder_files(folder: str) -> list[Path]:
    """A folder's files but hidden ones, sorted by name; none is an error that says what it holds."""
    try:
        entries = list(Path(folder).iterdir())
    except OSError as exc:
        raise cannot_read(folder, exc) from None
    files = sorted(p for p in entries if p.is_file() and not p.name.startswith("."))
    if files:
        return files
    folders = [p for p in entries if p.is_dir() and not p.name.startswith(".")]
    if folders:
        held = "only folders, which are not searched" if len(folders) > 1 else "only a folder, which is not searched"
    else:
        held = "only hidden files, which are not read" if entries else "it is empty"
    example = f"'{folders[0]}/*.jsonl'" if folders else "'logs/*.jsonl.gz'"
    raise LogError(folder, None, None, f"the folder holds no log files ({held})",
                   hint=f"give log files, a folder of them, or a glob such as {example}")


def lines_of(source: Source, block_bytes: int = 1 << 20) -> Iterator[tuple[int, int, bytes]]:
    """A source's decompressed bytes in blocks of whole lines (see line_blocks)."""
    with source.open() as handle:
        yield from line_blocks(handle, source.name, block_bytes)


def line_blocks(handle: BinaryIO, name: str, block_bytes: int = 1 << 20,
                left: int | None = None) -> Iterator[tuple[int, int, bytes]]:
    """The next `left` bytes of a stream (all, when None) in blocks of whole lines (the last
    may lack its newline): the number of each block's first line (counted from where the
    stream stands), its line count, the block. A line longer than MAX_LINE_BYTES is a LogError
    naming it; a line that spans reads is gathered piece by piece and joined once, so reading
    takes time linear in the bytes read."""
    line_no = 1
    pieces: list[bytes] = []  # the line that the last reads did not end, not yet joined
    pending = 0  # their length
    while left is None or left > 0:
        try:
            chunk = handle.read(block_bytes if left is None else min(block_bytes, left))
        except OSError as exc:
            raise cannot_read(name, exc) from None
        if not chunk:
            break
        if left is not None:
            left -= len(chunk)
        cut = chunk.rfind(b"\n") + 1
        if cut == 0:
            pending += len(chunk)
            if pending > MAX_LINE_BYTES:
                raise _line_too_long(name, line_no)
            pieces.append(chunk)
            continue
        if pieces:
            if pending + chunk.find(b"\n") > MAX_LINE_BYTES:
                raise _line_too_long(name, line_no)
            pieces.append(chunk[:cut])
            block = b"".join(pieces)
        else:
            block = chunk[:cut]  # lines within one read: shorter than a read, far below the bound
        rest = chunk[cut:]
        pieces, pending = ([rest], len(rest)) if rest else ([], 0)
        lines = block.count(b"\n")
        yield line_no, lines, block
        line_no += lines
    if pieces:
        rest = b"".join(pieces)
        yield line_no, rest.count(b"\n") + 1, rest


def _line_too_long(name: str, line_no: int) -> LogError:
    return LogError(name, line_no, None, f"line longer than {size_text(MAX_LINE_BYTES)}, the longest tiercli reads",
                    hint="a record is one line of JSON, far shorter than this: is this a log? (docs/logs/native.md \"Log format\")")
