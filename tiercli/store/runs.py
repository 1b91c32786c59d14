"""Saved runs under $TIERCLI_HOME/runs/<id>/: the per-call table (Parquet), the summary, the
resolved settings and a fingerprint of the log. A run is written into a hidden folder and
renamed into place when complete, so an interrupted replay never leaves a run that looks whole."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from tiercli import __version__
from tiercli.errors import TiercliError
from tiercli.store.home import tiercli_home

FORMAT = 1  # bump when the files change incompatibly
FILES = ("run.json", "summary.json", "calls.parquet")
_INCOMPLETE = ".incomplete-"


def runs_dir() -> Path:
    return tiercli_home() / "runs"


def new_run_id() -> str:
    return f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


def settings_digest(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]


@dataclass
class SavedRun:
    id: str
    path: Path
    meta: dict
    summary: dict

    def calls(self) -> pd.DataFrame:
        try:
            return pd.read_parquet(self.path / "calls.parquet")
        except Exception as exc:
            raise TiercliError(f"run {self.id}: cannot read calls.parquet: {exc}",
                               hint=f"the run folder {self.path} is damaged; remove it with tiercli runs rm {self.id}") from None


def save_run(run_id: str, table: pd.DataFrame, summary: dict, log_meta: dict) -> Path:
    """Writes the run atomically; returns its folder."""
    root = runs_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
        staging = root / f"{_INCOMPLETE}{run_id}"
        staging.mkdir()
        try:
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
            os.replace(staging, root / run_id)  # the moment the run becomes visible, whole
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    except OSError as exc:
        raise TiercliError(f"cannot save the run under {root}: {exc.strerror or exc}",
                           hint="check TIERCLI_HOME, or pass --no-save") from None
    return root / run_id


def _existing_root() -> Path:
    root = runs_dir()
    home = tiercli_home()
    if not home.is_dir():
        raise TiercliError(f"no tiercli home at {home}",
                           hint="run tiercli replay LOG first (TIERCLI_HOME sets where runs are kept)")
    return root


def _created(folder: Path) -> str:
    """When the run was saved (ISO 8601), for ordering; from its id when run.json is unreadable."""
    try:
        return str(json.loads((folder / "run.json").read_text())["created"])
    except (OSError, ValueError, KeyError, TypeError):
        n = folder.name  # YYYYmmdd-HHMMSS-xxxxxx
        return f"{n[0:4]}-{n[4:6]}-{n[6:8]}T{n[9:11]}:{n[11:13]}:{n[13:15]}"


def run_ids() -> list[str]:
    """Complete runs, oldest first (several runs may share the second their id names)."""
    root = _existing_root()
    if not root.is_dir():
        return []
    folders = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return [p.name for p in sorted(folders, key=lambda p: (_created(p), p.name))]


def resolve_run_id(given: str | None) -> str:
    ids = run_ids()
    if not ids:
        raise TiercliError(f"no saved runs in {runs_dir()}", hint="run tiercli replay LOG first")
    if given is None or given == "latest":
        return ids[-1]
    if given in ids:
        return given
    matches = [i for i in ids if i.startswith(given)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise TiercliError(f"run id {given!r} is ambiguous: {', '.join(matches[:5])}", hint="give more of the id")
    raise TiercliError(f"no run {given!r} in {runs_dir()}", hint="tiercli runs lists the saved runs")


def load_run(given: str | None) -> SavedRun:
    run_id = resolve_run_id(given)
    path = runs_dir() / run_id
    missing = [name for name in FILES if not (path / name).is_file()]
    if missing:
        raise TiercliError(f"run {run_id} is incomplete (missing {', '.join(missing)})",
                           hint=f"remove it with tiercli runs rm {run_id} and replay again")
    try:
        meta = json.loads((path / "run.json").read_text())
        summary = json.loads((path / "summary.json").read_text())
    except (OSError, ValueError) as exc:
        raise TiercliError(f"run {run_id} is damaged: {exc}", hint=f"remove it with tiercli runs rm {run_id}") from None
    if meta.get("format") != FORMAT:
        raise TiercliError(f"run {run_id} was saved in format {meta.get('format')!r} by tiercli "
                           f"{meta.get('tiercli_version', '?')}; this tiercli reads format {FORMAT}",
                           hint="replay the log again with this version")
    return SavedRun(run_id, path, meta, summary)


def remove_run(given: str) -> str:
    run_id = resolve_run_id(given)
    shutil.rmtree(runs_dir() / run_id)
    return run_id
