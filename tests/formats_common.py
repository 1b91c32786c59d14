"""What every format's tests check: a log in that format replays exactly as the same calls
written in tiercli's own format."""

from __future__ import annotations

import gzip
from pathlib import Path

from logs import write
from tiercli.ingest.logread import read_logs
from tiercli.pipeline import run_replay
from tiercli.settings import Settings
from tiercli.store.embeddings import HashingEmbedder

# The field maps the logs of tests/fixtures/map/ are read with (test_format_map, the fuzz seeds).
ORCHESTRATOR_MAP = {"ts": "logged_at", "lead_id": "metadata.contact_id", "system": "system_prompt",
                    "response": "completion", "latency_ms": "duration_ms", "type": "event", "tag": "new_tag",
                    "streaming": "stream"}
WAREHOUSE_MAP = {"ts": "started_at_ms", "end_ts": "finished_at", "lead_id": "contact_id", "task_type": "metadata.task",
                 "input_tokens": "tokens_in", "output_tokens": "tokens_out", "cache_read_input_tokens": "cache_read",
                 "response": "answer"}

# Summary fields that say where a run came from, not what the caches did.
NOT_COMPARED = ("run_id", "settings", "embeddings", "logs", "source_cache_hits", "failed_calls")  # where calls came from


def comparable(summary: dict) -> dict:
    """A summary without what says where the calls came from."""
    return {k: v for k, v in summary.items() if k not in NOT_COMPARED}


def read(paths, log_format: str = "auto", field_map: dict | None = None, **kwargs):
    paths = [str(p) for p in (paths if isinstance(paths, (list, tuple)) else [paths])]
    return read_logs(paths, log_format, field_map=field_map, known_model=lambda m: True, **kwargs)


def replay_of(read_result, **settings):
    run = run_replay(read_result, Settings(**settings), embedder=HashingEmbedder())
    summary = comparable(run.summary)
    columns = ["ts", "lead", "task", "model", "worker", "outcome", "stale", "mismatched", "source_seq", "similarity",
               "tokens_estimated", "baseline_pusd", "cached_pusd", "baseline_ms", "cached_ms"]
    columns = [c for c in columns if c in run.table.columns]
    return summary, run.table[columns].astype(str).values.tolist()


def assert_same_replay(foreign, native_records: list[dict], tmp_path: Path, log_format: str = "auto",
                       field_map: dict | None = None, **settings):
    """The foreign log(s) and the native records give the same summary and per-call table."""
    native = write(tmp_path / "native.jsonl", native_records)
    if "tiers" not in settings:  # L3 too, with a fast embedder: the same texts must embed alike
        with_l3 = replay_of(read(foreign, log_format, field_map), **settings, tiers=("l1", "l2", "l3"))
        assert with_l3 == replay_of(read(native, "tiercli"), **settings, tiers=("l1", "l2", "l3"))
    settings = {"tiers": ("l1", "l2"), **settings}
    theirs = replay_of(read(foreign, log_format, field_map), **settings)
    ours = replay_of(read(native, "tiercli"), **settings)
    assert theirs[0] == ours[0]
    assert theirs[1] == ours[1]
    return theirs


def run(*args, input=None):
    """The CLI through typer's runner, arguments as text."""
    from typer.testing import CliRunner

    from tiercli.cli import app

    return CliRunner().invoke(app, [str(a) for a in args], input=input)


def sample_of(path: Path):
    """What format detection sees of a file."""
    from tiercli.ingest.formats import sample
    from tiercli.ingest.sources import expand

    return sample(expand([str(path)])[0])


def fixture_logs(exclude: tuple[str, ...]) -> list[Path]:
    """Every format's fixture logs but those of the `exclude` folders."""
    return [p for p in sorted((Path(__file__).parent / "fixtures").glob("*/*")) if p.is_file()
            and p.parent.name not in exclude
            and p.suffix not in (".toml", ".md")]  # configs and notes beside the logs are not logs


def assert_fits_only_its_own(name: str, exports: list[Path]):
    """The format fits each of its exports, and no other format's fixture nor the sample log."""
    from tiercli.ingest.formats import get

    log_format = get(name)
    for export in exports:
        assert log_format.fits(sample_of(export)) is None, export
    others = [Path(__file__).parent.parent / "sample_logs" / "realestate_day.jsonl"] + fixture_logs((name,))
    for path in others:
        assert log_format.fits(sample_of(path)) is not None, path


def gzipped(path: Path) -> Path:
    out = path.with_name(path.name + ".gz")
    out.write_bytes(gzip.compress(path.read_bytes()))
    return out


def zstd_compressed(path: Path) -> Path:
    import zstandard

    out = path.with_name(path.name + ".zst")
    out.write_bytes(zstandard.ZstdCompressor().compress(path.read_bytes()))
    return out
