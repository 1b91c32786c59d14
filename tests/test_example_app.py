"""examples/fastapi_app: the FastAPI example runs the config tune-ttl wrote for the sample,
through FastAPI's TestClient, its AsyncAnthropic client talking real HTTP to the local Messages
test server, with the real embedding model for L3. Exact counts of API calls and outcomes."""

import importlib.util
import json

import pytest
from typer.testing import CliRunner

from conftest import ROOT
from messages_server import MessagesServer
from tiercli.cli import app as tiercli

pytest.importorskip("fastapi", reason="the example needs fastapi (in the test extra)")
from fastapi.testclient import TestClient  # noqa: E402

EXAMPLE = ROOT / "examples" / "fastapi_app"


def load_app():
    spec = importlib.util.spec_from_file_location("fastapi_example_main", EXAMPLE / "main.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.app


@pytest.fixture(params=["live"])
def example(request, tmp_path, monkeypatch):
    """The example app, started (lifespan) against the local Messages server in the mode of the
    parameter; yields the test client, the server and the cache's own log."""
    log = tmp_path / "cache.jsonl"
    with MessagesServer() as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-example-app")
        monkeypatch.setenv("TIERCLI_LOG", str(log))
        monkeypatch.setenv("TIERCLI_WORKER", "w1")
        monkeypatch.setenv("TIERCLI_MODE", request.param)
        for name in ("TIERCLI_CONFIG", "REDIS_URL"):
            monkeypatch.delenv(name, raising=False)
        with TestClient(load_app()) as client:
            yield client, server, log


def test_a_repeated_request_is_an_l1_hit_and_a_tag_change_ends_it(example):
    client, server, log = example
    sms = {"lead_id": "L0461", "sms": "Is there an HOA?", "zip_code": "92504"}

    first = client.post("/intent", json=sms).json()
    again = client.post("/intent", json=sms).json()
    assert first["cache"]["outcome"] == "miss"
    assert again["cache"]["outcome"] == "l1"
    assert again["cache"]["source_lead"] == "L0461"
    assert again["text"] == first["text"] and first["text"].startswith("live answer to: Classify")
    assert len(server.requests) == 1  # the hit never reached the API

    # the config scopes intent by lead (tune-ttl chose it): another lead's same SMS is a miss
    other = client.post("/intent", json={**sms, "lead_id": "L0357"}).json()
    assert other["cache"]["outcome"] == "miss"

    # the lead's tag changed: its entries are gone from L2, L3 and this L1
    assert client.post("/leads/L0461/tag", json={"tag": "Hot"}).json() == {"lead_id": "L0461", "tag": "Hot"}
    after = client.post("/intent", json=sms).json()
    assert after["cache"]["outcome"] == "miss"
    assert len(server.requests) == 3

    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line.get("cache_outcome", line.get("type")) for line in lines] == ["miss", "l1", "miss", "tag_change", "miss"]
    assert [line["lead_id"] for line in lines] == ["L0461", "L0461", "L0357", "L0461", "L0461"]
    assert {line["worker"] for line in lines} == {"w1"}


def test_every_bot_endpoint_answers_through_the_cache(example):
    client, server, _ = example
    profile = "Lead: L0461\nType: buyer | Area: Riverside (92504) | Budget: $540K-$610K"
    calls = [("post", "/lead-score", {"lead_id": "L0461", "profile": profile, "sms": "Is there an HOA?"}),
             ("post", "/market-context", {"lead_id": "L0461", "zip_code": "92504", "date": "2026-11-02"}),
             ("get", "/leads/L0461/memory", None),
             ("post", "/reply", {"lead_id": "L0461", "messages": [{"role": "user", "content": "Is there an HOA?"}]})]
    for method, path, body in calls:
        for expected in ("miss", "l1"):
            answer = getattr(client, method)(path, **({"json": body} if body else {}))
            assert answer.status_code == 200, answer.text
            assert answer.json()["cache"]["outcome"] == expected, path
    assert len(server.requests) == 4
    assert [request["model"] for request in server.requests] == ["claude-sonnet-4-5"] * 4


@pytest.mark.parametrize("example", ["shadow"], indirect=True)
def test_shadow_mode_calls_the_api_every_time_and_its_log_verifies(example):
    client, server, log = example
    sms = {"lead_id": "L0461", "sms": "Is there an HOA?", "zip_code": "92504"}
    answers = [client.post("/intent", json=sms).json()["cache"] for _ in range(2)]
    client.post("/leads/L0461/tag", json={"tag": "Hot"})
    answers.append(client.post("/intent", json=sms).json()["cache"])
    # intent's answer rule reads the label (regex:intent: (\w+)); the test server's answers
    # have none, so the would-be hit's answer is unreadable under the rule: mismatched 2
    assert [(a["outcome"], a["would_be"], a["mismatched"]) for a in answers] == [
        ("miss", True, 0), ("l1", True, 2), ("miss", True, 0)]
    assert len(server.requests) == 3  # every call went to the API
    assert client.get("/cache/stats").json()["shadow_mismatched"] == 1

    # what the app's cache did is what the replay of its log with the same config does
    verified = CliRunner().invoke(tiercli, ["verify", str(log), "--config", str(EXAMPLE / "tiercli.toml")])
    assert verified.exit_code == 0, verified.output
    assert verified.output.strip() == "parity: 100.0% of 3 calls"
