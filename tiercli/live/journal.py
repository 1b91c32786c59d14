"""The live journal: a durable record of billed calls while a live run is sending.

$TIERCLI_HOME/live-journal/<run-id>.jsonl holds a header line (run id, log, settings, cap),
then one line per call the API answered, appended, flushed and fsynced as it returns and
before the next call goes out, so a SIGKILL loses at most the calls in flight. When the run is
saved (or ends with --no-save) the journal is removed; one left behind is an orphan: the
record of what a killed run spent, which `orphaned_journals()` lists.

A writer holds an exclusive flock on its journal while it runs; the kernel drops the lock when
the process dies, however it dies. So a journal whose lock can be taken is an orphan, and a
journal of a live run still sending is never mistaken for one (pid reuse cannot fool this)."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import orjson

from tiercli.economics.pricing import PICO
from tiercli.errors import TiercliError
from tiercli.store.home import tiercli_home

FORMAT = 1
SUFFIX = ".jsonl"

try:
    import fcntl
except ImportError:  # not POSIX: no locks; every journal of a dead run is still listed
    fcntl = None


def journal_dir() -> Path:
    return tiercli_home() / "live-journal"


class Journal:
    """Append-only, one JSON object a line; every write is on disk before record() returns."""

    def __init__(self, path: Path, handle):
        self.path, self.handle = path, handle

    @classmethod
    def start(cls, run_id: str, header: dict) -> "Journal":
        """Creates the journal with its header; a run that cannot keep one sends nothing."""
        folder = journal_dir()
        path = folder / f"{run_id}{SUFFIX}"
        staging = folder / f".{run_id}{SUFFIX}.new"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            handle = open(staging, "xb")
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_EX)  # taken before the journal has its listed name
            journal = cls(path, handle)
            journal._write({"journal": FORMAT, "run_id": run_id, "pid": os.getpid(),
                            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"), **header})
            os.replace(staging, path)
            _fsync_dir(folder)
        except OSError as exc:
            raise TiercliError(f"cannot write the live journal under {folder}: {exc.strerror or exc}; nothing was sent",
                               hint="live mode records every billed call on disk as it returns; check TIERCLI_HOME") from None
        return journal

    def record(self, entry: dict) -> None:
        self._write(entry)

    def _write(self, entry: dict) -> None:
        self.handle.write(orjson.dumps(entry) + b"\n")  # NaN (no latency) becomes null
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def remove(self) -> None:
        """The run is saved (or was not to be): the journal has served its purpose."""
        try:
            self.path.unlink(missing_ok=True)
        finally:
            self.handle.close()


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def orphaned_journals() -> list[dict]:
    """Journals of live runs that died before saving (SIGKILL, a crash, a failed save), oldest
    first: {"id", "path", "started", "log", "max_spend_usd", "calls_sent", "failed", "spent_usd"}.
    A torn last line (the process died writing it) is ignored; the calls before it count."""
    folder = journal_dir()
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob(f"*{SUFFIX}")):
        try:
            with open(path, "rb") as handle:
                if fcntl is not None:
                    try:
                        fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
                    except BlockingIOError:
                        continue  # its run is still sending
                lines = handle.read().splitlines()
        except OSError:
            continue
        out.append(_describe(path, lines))
    return sorted(out, key=lambda j: (j["started"] or "", j["id"]))


def _describe(path: Path, lines: list[bytes]) -> dict:
    entries = []
    for raw in lines:
        try:
            entry = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    header = entries.pop(0) if entries and "journal" in entries[0] else {}
    calls = [e for e in entries if isinstance(e.get("seq"), int)]
    spent = sum(e["cost_pusd"] for e in calls if isinstance(e.get("cost_pusd"), int))
    return {"id": str(header.get("run_id") or path.stem), "path": str(path), "started": header.get("started"),
            "log": (header.get("log") or {}).get("path"), "max_spend_usd": header.get("max_spend_usd"),
            "calls_sent": len(calls), "failed": sum(1 for e in calls if not e.get("ok")), "spent_usd": spent / PICO}
