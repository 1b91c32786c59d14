"""A small FastAPI app of the reference case (a real-estate brokerage's SMS bots) that runs the
cache configuration `tiercli tune-ttl --write-config` chose for its log (README "Run it in
your application"; how to run it: README.md beside this file).

One endpoint per bot task, each a Messages API call through the wrapped client with the lead
and task named; a tag-change endpoint for the CRM's webhook. Environment:

    TIERCLI_CONFIG   the config (default: tiercli.toml beside this file)
    TIERCLI_MODE     "shadow" or "live" (default: the config's `mode`, else live)
    TIERCLI_LOG      the cache's own log, for `tiercli verify` (default: none)
    TIERCLI_WORKER   this process's worker name, its L1's (default: host-pid)
    REDIS_URL        L2 and L3 shared by the processes (default: none, kept in this process)
    ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL   as the SDK reads them
"""

from __future__ import annotations

import os
import socket
from contextlib import asynccontextmanager
from pathlib import Path

import anthropic
from fastapi import FastAPI
from pydantic import BaseModel

from tiercli.cache import TieredCache, outcome_of

HERE = Path(__file__).resolve().parent
HAIKU, SONNET = "claude-haiku-4-5", "claude-sonnet-4-5"
INTENT_SYSTEM = ("You classify inbound SMS messages sent by real-estate leads. Return exactly one line "
                 "'intent: <label>' with one of: price_question, schedule_viewing, mortgage_preapproval, "
                 "ready_to_buy, selling_valuation, not_interested, just_browsing, callback_request.")
SCORING_SYSTEM = ('You score real-estate leads for likelihood to transact within 90 days, 0-100. '
                  'Return JSON: {"score": N, "reason": "..."}.')
MARKET_SYSTEM = "You are the market-data service. Write a one-paragraph snapshot for the given ZIP and date."
MEMORY_SYSTEM = "You are the lead-memory service. Write a concise summary of the lead for the conversation agent."
REPLY_SYSTEM = "You are Ava, the lead concierge of a real-estate brokerage. Reply to the lead's SMS briefly."


@asynccontextmanager
async def lifespan(app: FastAPI):
    cache = TieredCache(config=os.environ.get("TIERCLI_CONFIG", str(HERE / "tiercli.toml")),
                        redis_url=os.environ.get("REDIS_URL"), mode=os.environ.get("TIERCLI_MODE"),
                        log=os.environ.get("TIERCLI_LOG"),
                        worker=os.environ.get("TIERCLI_WORKER", f"{socket.gethostname()}-{os.getpid()}"))
    with cache:
        app.state.cache = cache
        app.state.claude = cache.wrap(anthropic.AsyncAnthropic())
        yield
        await app.state.claude.close()


app = FastAPI(title="tiercli example: real-estate SMS bots", lifespan=lifespan)


class Sms(BaseModel):
    lead_id: str
    sms: str
    zip_code: str | None = None


class Lead(BaseModel):
    lead_id: str
    profile: str
    sms: str


class Market(BaseModel):
    lead_id: str
    zip_code: str
    date: str


class Conversation(BaseModel):
    lead_id: str
    messages: list[dict]  # the Messages API's turns, the lead's new SMS last


class TagChange(BaseModel):
    tag: str


async def ask(task: str, lead_id: str, model: str, system: str, messages: list[dict], *,
              max_tokens: int = 256, attrs: dict | None = None) -> dict:
    """One call through the cache: its answer and where it came from (outcome_of)."""
    labels = {"lead_id": lead_id, "task_type": task}
    if attrs := {name: value for name, value in (attrs or {}).items() if value is not None}:
        labels["attrs"] = attrs  # what a scope of attrs.PATH reads
    message = await app.state.claude.messages.create(
        model=model, max_tokens=max_tokens, system=system, messages=messages, tiercli=labels)
    return {"text": "".join(block.text for block in message.content if block.type == "text"),
            "cache": outcome_of(message)}


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


@app.post("/intent")
async def intent(body: Sms) -> dict:
    prompt = f'Classify the intent of this inbound SMS from a real-estate lead.\nSMS: "{body.sms}"\n' \
             "Answer with one line: intent: <label>"
    return await ask("intent", body.lead_id, HAIKU, INTENT_SYSTEM, user(prompt), max_tokens=16,
                     attrs={"zip_code": body.zip_code})


@app.post("/lead-score")
async def lead_score(body: Lead) -> dict:
    prompt = f"{body.profile}\nNew inbound SMS: \"{body.sms}\"\nScore this lead (0-100) using the rubric and return the JSON."
    return await ask("lead_scoring", body.lead_id, SONNET, SCORING_SYSTEM, user(prompt), max_tokens=128)


@app.post("/market-context")
async def market_context(body: Market) -> dict:
    prompt = f"Market snapshot for ZIP {body.zip_code} on {body.date}: median price, days on market, inventory"
    return await ask("market_context", body.lead_id, SONNET, MARKET_SYSTEM, user(prompt),
                     attrs={"zip_code": body.zip_code})


@app.get("/leads/{lead_id}/memory")
async def memory(lead_id: str) -> dict:
    prompt = (f"Summarise lead {lead_id}'s profile, preferences and history for the conversation agent. "
              "Include current tag, budget, target areas, timeline, financing and open questions.")
    return await ask("memory", lead_id, SONNET, MEMORY_SYSTEM, user(prompt))


@app.post("/reply")
async def reply(body: Conversation) -> dict:
    return await ask("response", body.lead_id, SONNET, REPLY_SYSTEM, body.messages, max_tokens=512)


@app.post("/leads/{lead_id}/tag")
async def tag_change(lead_id: str, body: TagChange) -> dict:
    """The CRM changed the lead's tag: its cached answers are stale from now on (removed from
    L2, L3 and this L1, or every L1 with `invalidation = "broadcast"`)."""
    app.state.cache.tag_change(lead_id, body.tag)
    return {"lead_id": lead_id, "tag": body.tag}


@app.get("/cache/stats")
def stats() -> dict:
    return app.state.cache.stats()
