"""The runtime cache imports only the core it shares with the simulator (issue 24 "Layout"):
never the CLI, tables, plots, pandas or Ray; and the embedding model's packages (torch,
sentence-transformers) only at the first L3 look-up. Each check runs in a fresh interpreter."""

import json
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
FORBIDDEN = ("typer", "click", "rich", "pandas", "pyarrow", "matplotlib", "ray", "tiercli.cli", "tiercli.commands",
             "tiercli.present", "tiercli.economics", "tiercli.executor", "tiercli.pipeline", "tiercli.engine")
# what the cache may use of tiercli: the shared core and what reads a config, a request and Redis
ALLOWED = ("tiercli.cache", "tiercli.core", "tiercli.settings", "tiercli.ingest", "tiercli.store.embeddings",
           "tiercli.store.onnx_embed",
           "tiercli.store.home", "tiercli.redis.conn", "tiercli.record", "tiercli.errors", "tiercli.durations",
           "tiercli.words")
PACKAGES = ("tiercli", "tiercli.redis", "tiercli.store")  # their __init__ modules import nothing
MODEL_PACKAGES = ("torch", "sentence_transformers", "transformers", "onnxruntime")


def run(code: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=TESTS)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def loaded(names, prefixes) -> list[str]:
    return sorted(n for n in names if any(n == p or n.startswith(p + ".") for p in prefixes))


def test_importing_the_cache_loads_no_cli_table_plot_or_ray_module():
    modules = run("import json, sys\nimport tiercli.cache\nprint(json.dumps({'modules': sorted(sys.modules)}))")["modules"]
    assert loaded(modules, FORBIDDEN) == []
    assert loaded(modules, MODEL_PACKAGES) == []
    ours = [n for n in modules if n == "tiercli" or n.startswith("tiercli.")]
    assert "tiercli.cache.cache" in ours and "tiercli.core.lookup" in ours
    assert [n for n in ours if n not in PACKAGES and not loaded([n], ALLOWED)] == []


CALLS = """
import json, sys
import anthropic
from messages_server import MessagesServer
from tiercli.cache import TieredCache, outcome_of
from tiercli.settings import Settings

seen = {}
def model_loaded():
    return sorted(n for n in sys.modules if n.split(".")[0] in ("torch", "sentence_transformers", "onnxruntime"))

settings = Settings(task_ttls={"memory": {"l3": 0}})  # L3 on for intent, off for memory
with MessagesServer() as server, TieredCache(settings, embedding_store=False) as cache:
    client = cache.wrap(anthropic.Anthropic(api_key="sk-test", base_url=server.url, max_retries=0))
    seen["built"] = model_loaded()
    ask = lambda task: client.messages.create(model="claude-sonnet-4-5", max_tokens=20,
                                              messages=[{"role": "user", "content": "hello"}],
                                              tiercli={"lead_id": "L1", "task_type": task})
    seen["memory"] = [outcome_of(ask("memory"))["outcome"], model_loaded()]
    seen["intent"] = [outcome_of(ask("intent"))["outcome"], model_loaded()]
    seen["stats"] = cache.stats()
print(json.dumps(seen))
"""


def test_the_embedding_model_loads_at_the_first_l3_look_up_only():
    seen = run(CALLS)
    assert seen["built"] == []
    assert seen["memory"] == ["miss", []]  # L1 and L2 only: nothing to embed
    outcome, modules = seen["intent"]
    # the default backend's runtime (torch too if this home's graph is exported and checked now)
    assert outcome == "miss" and "onnxruntime" in modules
    assert seen["stats"]["l3_off"] is None and seen["stats"]["cache_errors"] == 0
