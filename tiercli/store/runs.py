"""Saved runs under $TIERCLI_HOME/runs/<id>/: the per-call table (Parquet), the summary, the
resolved settings and a fingerprint of the log. A run is written into a hidden staging folder
(with its writer's pid) and renamed into place when complete, so an interrupted replay never
leaves a run that looks whole; staging folders of dead writers are removed by the next save.

Reading never trusts the files: every way a run folder can be damaged (a file missing, empty,
not JSON, of the wrong shape, an older format, a Parquet file of another schema, unreadable)
is a one-line error naming the file, and `tiercli runs` lists such a run as unreadable
instead of failing for every run."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from tiercli import __version__
from tiercli.errors import TiercliError
from tiercli.procs import pid_alive
from tiercli.store.home import tiercli_home
from tiercli.engine.replay import OUTCOMES

FORMAT = 1  # bump when the files change incompatibly
FILES = ("run.json", "summary.json", "calls.parquet")
LATEST = "latest"
_STAGING = ".incomplete-"
_OWNER = "owner.pid"  # in a staging folder: the pid of the process writing it
# A staging folder without an owner file (one killed between mkdir and writing its pid, or
# left by an older tiercli) is stale once this old; saving a run takes seconds.
UNOWNED_STAGING_STALE_S = 3600

_NUMBER = (int, float)
# What tiercli reads from run.json and summary.json; checked on load so that a hand-edited or
# damaged file is an error naming the file and the field, not a KeyError in a view.
_META_SHAPE = {"created": str, "settings": dict, "settings_digest": str, "log": {"path": str, "sha256": str}}
_LATENCY = {stat: _NUMBER for stat in ("mean", "p50", "p95", "p99")}
_SUMMARY_SHAPE = {
    "requests": int, "hits": int, "bypassed": int, "leads": int, "stale_hits": int, "mismatched_hits": int,
    "tag_changes": int, "hit_rate": _NUMBER, "span_s": _NUMBER,
    "tiers": {tier: {"enabled": bool, "hits": int, "hit_rate": _NUMBER} for tier in ("l1", "l2", "l3")},
    "cost": {"baseline_usd": _NUMBER, "cached_usd": _NUMBER, "savings_pct": _NUMBER},
    "cost_per_lead": {"baseline_usd": _NUMBER, "cached_usd": _NUMBER},
    "latency_ms": {"baseline": _LATENCY, "cached": _LATENCY},
    "by_task": dict, "settings": {"tiers": list},
}
# calls.parquet columns the views read, by Arrow type test (pyarrow.types.is_*)
_CALL_COLUMNS = {"ts": "timestamp", "lead": "text", "task": "text", "model": "text", "worker": "text",
                 "outcome": "text", "stale": "boolean", "mismatched": "boolean",
                 "baseline_pusd": "integer", "cached_pusd": "integer"}


def runs_dir() -> Path:
    return tiercli_home() / "runs"


def new_run_id() -> str:
    return f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


def settings_digest(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]


class DamagedRun(TiercliError):
    """A saved run that cannot be read: names the file and what is wrong with it."""

    kind = "damaged_run"

    def __init__(self, run_id: str, path: Path, problem: str, hint: str | None = None):
        super().__init__(f"saved run {run_id}: {path}: {problem}",
                         hint or f"the run's files are damaged; remove it with: tiercli runs rm {run_id}")
        self.run_id, self.path, self.problem = run_id, path, problem

    def to_dict(self) -> dict:
        return {**super().to_dict(), "file": str(self.path), "problem": self.problem}


@dataclass
class SavedRun:
    id: str
    path: Path
    meta: dict
    summary: dict

    @property
    def complete(self) -> bool:
        """False for a run that stopped early (a live run's cap, limit, error or Ctrl-C)."""
        return self.meta.get("complete", True) is not False

    def calls(self) -> pd.DataFrame:
        path = self.path / "calls.parquet"  # its columns were checked by read_run
        try:
            calls = pd.read_parquet(path)
        except Exception as exc:  # pyarrow's errors share no base class with OSError
            raise DamagedRun(self.id, path, f"cannot read it as Parquet ({_one_line(exc)})") from None
        unknown = sorted(set(calls["outcome"].astype(str).unique()) - set(OUTCOMES))
        if unknown:
            raise DamagedRun(self.id, path, f"column 'outcome' holds {', '.join(map(repr, unknown[:3]))}, "
                                            f"not one of {', '.join(OUTCOMES)}")
        return calls


@dataclass
class ListedRun:
    """A run folder as `tiercli runs` lists it: read, or the reason it cannot be."""

    id: str
    run: SavedRun | None
    problem: TiercliError | None


# --- saving -------------------------------------------------------------------------------

def save_run(run_id: str, table: pd.DataFrame, summary: dict, log_meta: dict) -> Path:
    """Writes the run atomically; returns its folder."""
    root = runs_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
        clean_stale_staging(root)
        staging = root / f"{_STAGING}{run_id}"
        staging.mkdir()
        try:
            (staging / _OWNER).write_text(str(os.getpid()))
            table.to_parquet(staging / "calls.parquet", engine="pyarrow", index=False)
            (staging / "summary.json").write_text(json.dumps(summary, indent=1))
            meta = {
                "format": FORMAT,
                "id": run_id,
                "created": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
                "tiercli_version": __version__,
                "log": log_meta,
                "settings": summary["settings"],
                "settings_digest": settings_digest(summary["settings"]),
                # a live run stopped early (spend cap, limit, error, Ctrl-C) is saved, marked so
                "complete": (summary.get("live") or {}).get("complete", True),
            }
            (staging / "run.json").write_text(json.dumps(meta, indent=1))
            (staging / _OWNER).unlink()  # from here until the rename the folder is young, so kept
            # The moment the run becomes visible, whole. A rename never replaces a non-empty folder,
            # so a run id taken meanwhile (ids are random) fails here instead of overwriting a run.
            os.replace(staging, root / run_id)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    except OSError as exc:
        raise TiercliError(f"cannot save the run under {root}: {exc.strerror or exc}",
                           hint="check TIERCLI_HOME, or pass --no-save") from None
    return root / run_id


def clean_stale_staging(root: Path) -> list[str]:
    """Removes the staging folders of saves that died (their writer's pid is gone, or they have
    no pid and are old), never one a live process is still writing. Returns their names."""
    removed = []
    for folder in root.glob(f"{_STAGING}*"):
        if not folder.is_symlink() and folder.is_dir() and _staging_is_stale(folder):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
    return removed


def _staging_is_stale(folder: Path) -> bool:
    try:
        owner = int((folder / _OWNER).read_text())
        if owner > 0:
            return not pid_alive(owner)
    except (OSError, ValueError):  # no pid file (not yet, or no more), or a garbled one: judge by age
        pass
    try:
        return time.time() - folder.stat().st_mtime > UNOWNED_STAGING_STALE_S
    except OSError:  # renamed into place, or removed, meanwhile
        return False


# --- finding ------------------------------------------------------------------------------

def _created(folder: Path) -> str:
    """When the run was saved (ISO 8601), for ordering; from its id when run.json is unreadable."""
    meta = folder / "run.json"
    try:
        if meta.is_file():  # not a FIFO, which would block the read
            created = json.loads(meta.read_text())["created"]
            if isinstance(created, str):
                return created
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        pass
    n = folder.name  # YYYYmmdd-HHMMSS-xxxxxx
    return f"{n[0:4]}-{n[4:6]}-{n[6:8]}T{n[9:11]}:{n[11:13]}:{n[13:15]}"


def run_ids() -> list[str]:
    """Every run folder, readable or not, oldest first (several runs may share the second
    their id names); none when there is no home or no run yet. A link to a folder counts
    (runs may be kept on another disk), and so does a dangling one, so that it can be removed."""
    root = runs_dir()
    try:
        entries = list(root.iterdir())
    except FileNotFoundError:  # a fresh home: nothing saved yet
        return []
    except OSError as exc:
        raise TiercliError(f"cannot list the saved runs in {root}: {exc.strerror or exc}",
                           hint="check TIERCLI_HOME and the folder's permissions") from None
    folders = [p for p in entries if not p.name.startswith(".") and (p.is_dir() or p.is_symlink())]
    return [p.name for p in sorted(folders, key=lambda p: (_created(p), p.name))]


def _no_runs_error() -> TiercliError:
    home = tiercli_home()
    if not home.is_dir():
        return TiercliError(f"no tiercli home at {home}",
                            hint="run tiercli replay LOG first (TIERCLI_HOME sets where runs are kept)")
    return TiercliError(f"no saved runs in {runs_dir()}", hint="run tiercli replay LOG first")


def match_run_id(given: str, ids: list[str]) -> str:
    """The one run `given` names: an exact id, or the start of exactly one id."""
    if not given.strip():
        raise TiercliError("a run id cannot be empty", hint="tiercli runs lists the saved runs")
    if given in ids:
        return given
    matches = [i for i in ids if i.startswith(given)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        shown = ", ".join(matches[:10]) + (f" and {len(matches) - 10} more" if len(matches) > 10 else "")
        raise TiercliError(f"run id {given!r} is ambiguous: {len(matches)} runs start with it: {shown}",
                           hint="give more of the id")
    raise TiercliError(f"no run {given!r} in {runs_dir()}", hint="tiercli runs lists the saved runs")


def resolve_run_id(given: str | None) -> str:
    """The run `given` names; None or "latest": the newest run."""
    ids = run_ids()
    if not ids:
        raise _no_runs_error()
    if given is None or given == LATEST:
        return ids[-1]
    return match_run_id(given, ids)


# --- reading ------------------------------------------------------------------------------

def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _shape_problem(value, shape, where: str = "") -> str | None:
    """Why `value` does not have `shape` (a type, a tuple of types, or a dict of key -> shape)."""
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return f"{where or 'the file'}: {_kind(value)} where an object is expected"
        for key, inner in shape.items():
            if key not in value:
                return f"{where + '.' if where else ''}{key}: missing"
            problem = _shape_problem(value[key], inner, f"{where + '.' if where else ''}{key}")
            if problem:
                return problem
        return None
    types = shape if isinstance(shape, tuple) else (shape,)
    if isinstance(value, bool) and bool not in types or not isinstance(value, types):
        return f"{where}: {_kind(value)} where {_kind_name(types)} is expected"
    return None


_KINDS = {dict: "an object", list: "an array", str: "a string", bool: "true or false", int: "an integer",
          float: "a number", type(None): "null"}


def _kind(value) -> str:
    return _KINDS.get(type(value), type(value).__name__)


def _kind_name(types: tuple) -> str:
    return "a number" if types == _NUMBER else _KINDS[types[0]]


def _read_json(run_id: str, path: Path, shape: dict) -> dict:
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise DamagedRun(run_id, path, f"cannot read it: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise DamagedRun(run_id, path, "not UTF-8 text (binary garbage?)") from None
    if not text.strip():
        raise DamagedRun(run_id, path, "empty") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DamagedRun(run_id, path, f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise DamagedRun(run_id, path, "not valid JSON (nested too deeply)") from None
    if not isinstance(data, dict):
        raise DamagedRun(run_id, path, f"holds {_kind(data)} where an object is expected")
    fmt = data.get("format")
    if path.name == "run.json" and (type(fmt) is not int or fmt != FORMAT):
        version = data.get("tiercli_version")
        raise DamagedRun(run_id, path, f"saved in format {fmt!r}"
                         + (f" by tiercli {version}" if isinstance(version, str) else "")
                         + f"; this tiercli reads format {FORMAT}",
                         hint=f"replay the log again with this tiercli; remove the old run with: "
                              f"tiercli runs rm {run_id}")
    problem = _shape_problem(data, shape)
    if path.name == "run.json" and not problem and not isinstance(data.get("complete", True), bool):
        problem = f"complete: {_kind(data['complete'])} where true or false is expected"
    if problem:
        raise DamagedRun(run_id, path, problem)
    return data


def _arrow_type_is(kind: str, arrow_type) -> bool:
    import pyarrow as pa

    if kind == "text":
        if pa.types.is_dictionary(arrow_type):
            arrow_type = arrow_type.value_type
        return pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)
    return getattr(pa.types, f"is_{kind}")(arrow_type)


def _check_call_columns(run_id: str, path: Path) -> None:
    """From the Parquet footer only: the columns the views read, of the types they need."""
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except OSError as exc:
        if exc.errno is not None:  # a file-system error, not pyarrow's "not Parquet" (an OSError too)
            raise DamagedRun(run_id, path, f"cannot read it: {os.strerror(exc.errno)}") from None
        raise DamagedRun(run_id, path, f"not a Parquet file ({_one_line(exc)})") from None
    except Exception as exc:
        raise DamagedRun(run_id, path, f"not a Parquet file ({_one_line(exc)})") from None
    missing = [name for name in _CALL_COLUMNS if name not in schema.names]
    if missing:
        raise DamagedRun(run_id, path, f"not a tiercli calls table: no column {', '.join(map(repr, missing))}")
    for name, kind in _CALL_COLUMNS.items():
        arrow_type = schema.field(name).type
        if not _arrow_type_is(kind, arrow_type):
            raise DamagedRun(run_id, path, f"column {name!r} is {arrow_type}, not {kind}")


def read_run(run_id: str) -> SavedRun:
    """The run in folder `run_id`, checked: raises DamagedRun naming the file at fault."""
    path = runs_dir() / run_id
    file = path
    try:
        if path.is_symlink() and not path.exists():
            raise DamagedRun(run_id, path, f"a link to {os.readlink(path)}, which leads nowhere",
                             hint=f"remove the link with: tiercli runs rm {run_id}")
        if not path.is_dir():
            raise DamagedRun(run_id, path, "not a folder")
        for name in FILES:
            file = path / name
            if not file.exists():
                raise DamagedRun(run_id, file, "missing",
                                 hint=f"the run was not saved whole; remove it with: tiercli runs rm {run_id}")
            if not file.is_file():  # a folder or a FIFO (which would block a read)
                raise DamagedRun(run_id, file, "not a regular file")
    except OSError as exc:  # e.g. a run folder without read or search permission
        raise DamagedRun(run_id, file, f"cannot read it: {exc.strerror or exc}") from None
    meta = _read_json(run_id, path / "run.json", _META_SHAPE)
    summary = _read_json(run_id, path / "summary.json", _SUMMARY_SHAPE)
    _check_call_columns(run_id, path / "calls.parquet")
    return SavedRun(run_id, path, meta, summary)


def load_run(given: str | None) -> SavedRun:
    return read_run(resolve_run_id(given))


def list_runs() -> list[ListedRun]:
    """Every run folder, oldest first, each read or with the reason it cannot be."""
    listed = []
    for run_id in run_ids():
        try:
            listed.append(ListedRun(run_id, read_run(run_id), None))
        except TiercliError as exc:
            listed.append(ListedRun(run_id, None, exc))
    return listed


# --- removing -----------------------------------------------------------------------------

def runs_to_remove(given: list[str]) -> list[str]:
    """The runs named by `given` (whole ids or unique starts; not "latest": removing takes an
    id), each once; raises before anything is removed if any of them names no single run."""
    ids = run_ids()
    if not ids:
        raise _no_runs_error()
    chosen: list[str] = []
    for name in given:
        if name == LATEST and LATEST not in ids:
            raise TiercliError(f"runs rm takes run ids, not {LATEST!r} (the latest run is {ids[-1]})",
                               hint=f"to remove it: tiercli runs rm {ids[-1]}")
        run_id = match_run_id(name, ids)
        if run_id not in chosen:
            chosen.append(run_id)
    return chosen


def remove_run(run_id: str) -> str | None:
    """Removes one run by its exact id. A run folder that is a link: only the link goes, never
    what it points to (returned, to say so)."""
    path = runs_dir() / run_id
    try:
        if path.is_symlink():
            target = os.readlink(path)
            path.unlink()
            return target
        shutil.rmtree(path)
    except OSError as exc:
        raise TiercliError(f"cannot remove {path}: {exc.strerror or exc}",
                           hint="check the folder's permissions") from None
    return None
