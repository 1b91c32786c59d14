"""Seeded generator of realistic LLM-call logs for the real-estate SMS-bot reference case.

Lead/Buyer/Seller SMS bots call Claude for intent classification, lead scoring,
memory and market-context look-ups and response generation.  The sources of
repetition and their rates are the knobs below; sample_logs/README.md explains them.
Only ``random.Random(seed)`` is used, so output is byte-identical for equal arguments.
"""
from __future__ import annotations

import argparse
import json
import math
import random
from datetime import datetime, timedelta, timezone

# ---- knobs (documented in sample_logs/README.md) ---------------------------------
RETRY_RATE = 0.04            # share of inbound SMS the provider re-delivers (webhook retry)
HANDOFF_OTHER_WORKER = 0.6   # hand-off re-score lands on a different worker
MARKET_RATE_SCALE = 1.0      # multiplies per-intent market-look-up probabilities
STREAM_RATE = 0.30           # share of response generations that stream
MEMORY_TOOL_RATE = 0.5       # share of memory look-ups that call the CRM tool
SAME_REPLY_RATE = 0.70       # identical response-generation request -> identical text
SPECIFIC_RATE = 0.30         # SMS that mention an address / price / time / bed count
NEAR_DUP_RATE = 0.45         # SMS phrasings that get case/punctuation/typo/filler/emoji noise
OPT_OUT_QUIET = 0.7          # after "not interested" the lead stops texting for the day
ACTIVITY = [                 # (share of leads, sessions per day, messages per session)
    ("quiet", 0.35, 0.6, (1,)),
    ("normal", 0.55, 1.6, (1, 1, 2)),
    ("active", 0.10, 3.5, (2, 3, 3, 4)),
]
HOUR_WEIGHTS = [0.12, 0.07, 0.05, 0.04, 0.05, 0.10, 0.25, 0.50, 0.80, 1.00, 1.00, 1.00,
                0.80, 0.65, 0.60, 0.65, 0.80, 1.00, 1.00, 1.00, 0.85, 0.55, 0.35, 0.20]
WARM, HOT = 40, 70           # score thresholds for Cold / Warm / Hot
SCORE_NOISE = 8.0            # sd of per-message score change on top of the intent's delta
SCORE_PULL = 0.3             # each score moves this far back toward the lead's underlying fit
# unrecorded context (rubric examples, tool schemas, injected CRM/MLS rows) per task type
OVERHEAD = {"intent": 1200, "lead_scoring": 1690, "memory": 870, "market_context": 900,
            "response": 2420}
SONNET, HAIKU = "claude-sonnet-4-5", "claude-haiku-4-5"

# ---- static world --------------------------------------------------------------------
ZIPS = [  # (zip, city, median price in $K); listed roughly by lead share (Zipf-like weights)
    ("92503", "Riverside", 560), ("92504", "Riverside", 590), ("92880", "Eastvale", 815),
    ("92505", "Riverside", 575), ("92879", "Corona", 640), ("91710", "Chino", 700),
    ("92506", "Riverside", 720), ("92882", "Corona", 720), ("92509", "Jurupa Valley", 585),
    ("92507", "Riverside", 540), ("91761", "Ontario", 620), ("92508", "Riverside", 690),
    ("92881", "Corona", 850), ("92501", "Riverside", 545), ("92883", "Corona", 760),
    ("92860", "Norco", 820), ("91709", "Chino Hills", 900), ("92336", "Fontana", 680),
    ("92555", "Moreno Valley", 580), ("91730", "Rancho Cucamonga", 640),
    ("91752", "Jurupa Valley", 690), ("92335", "Fontana", 560), ("91762", "Ontario", 640),
    ("92553", "Moreno Valley", 500), ("91701", "Rancho Cucamonga", 780),
    ("92337", "Fontana", 620), ("91764", "Ontario", 600), ("92557", "Moreno Valley", 540),
    ("91737", "Rancho Cucamonga", 900), ("92376", "Rialto", 540), ("92584", "Menifee", 560),
    ("92570", "Perris", 500), ("92562", "Murrieta", 690), ("91739", "Rancho Cucamonga", 930),
    ("92592", "Temecula", 720), ("92571", "Perris", 520), ("92586", "Menifee", 480),
    ("92563", "Murrieta", 640), ("92590", "Temecula", 800), ("92532", "Lake Elsinore", 580),
    ("92407", "San Bernardino", 500), ("92530", "Lake Elsinore", 520),
    ("92404", "San Bernardino", 470), ("92373", "Redlands", 690), ("92399", "Yucaipa", 580),
    ("92223", "Beaumont", 520), ("92545", "Hemet", 420), ("92543", "Hemet", 390),
]
STREETS = ["Magnolia Ave", "Arlington Ave", "Victoria Ave", "Van Buren Blvd", "Central Ave",
           "Hamner Ave", "Foothill Pkwy", "Ontario Ave", "Main St", "Mission Blvd",
           "Citrus St", "Orange Grove Ave", "Sierra Vista Dr", "Canyon Crest Dr", "Limonite Ave",
           "Haven Ave", "Base Line Rd", "Chase Dr", "Cherry Ave", "Alessandro Blvd"]
NAMES = ["Maria", "Jose", "Jennifer", "David", "Ana", "Michael", "Jessica", "Luis", "Ashley",
         "Daniel", "Priya", "Kevin", "Sandra", "Carlos", "Emily", "Brian", "Yesenia", "Tom",
         "Linh", "Marcus", "Rosa", "Jason", "Karen", "Omar", "Nicole", "Steve", "Grace", "Erik"]
SOURCES = ["Zillow inquiry", "website form", "Facebook ad", "open house sign-in", "referral",
           "Realtor.com inquiry"]
TIMELINES = ["0-3 months", "3-6 months", "6-12 months", "just exploring"]
WHENS = ["Saturday at 2pm", "tomorrow after 5", "Sunday morning", "this weekend",
         "Friday at 10am", "tonight around 6", "tomorrow at noon", "Thursday evening"]
BOTS = {"lead": "Ava, the lead concierge", "buyer": "Ben, the buyer specialist",
        "seller": "Sofia, the seller specialist"}

# intent label -> (hand-off bot, score delta, market-look-up prob, calendar tool,
#                  generic phrasings (most common first), phrasings with specifics)
CLUSTERS = {
    "price_question": (None, 8, 0.6, False, [
        "How much is it?", "What's the price?", "whats the asking price", "Is the price negotiable?",
        "How much are they asking?", "Can you tell me the price", "Has the price dropped at all?",
        "What's the list price on that one?", "Is that price firm?", "Any room on the price?"], [
        "How much is {addr}?", "What's the asking price for {addr}?", "Is {addr} still listed at {price}?",
        "Would they take {price} for {addr}?", "Price on {addr}?"]),
    "schedule_viewing": ("buyer", 16, 0.2, True, [
        "Can I see the house this weekend?", "When can I tour it?", "I'd like to schedule a showing",
        "Can we set up a viewing?", "Is there an open house?", "Can I go see it?",
        "Can we look at it tomorrow?", "I want to see it in person"], [
        "Can we tour {addr} {when}?", "Can I see {addr} {when}?", "Is {when} ok for a showing at {addr}?",
        "Schedule me for {when} please", "Can you show me {addr} {when}"]),
    "mortgage_preapproval": ("buyer", 12, 0.1, False, [
        "Do I need to be pre-approved?", "Can you recommend a lender?", "How do I get pre-approved?",
        "What credit score do I need?", "Do you work with FHA loans?",
        "How much do I need for a down payment?", "Can I buy with 3% down?",
        "Do you know any good mortgage brokers?"], [
        "I'm pre-approved for {price}, what can I get?", "We got pre-approved for {price}",
        "Is {price} enough for a {beds} bedroom in {city}?", "Lender says I qualify for {price}"]),
    "ready_to_buy": ("buyer", 24, 0.5, False, [
        "We're ready to make an offer", "I want to put in an offer", "Ready to buy, what's next?",
        "How do we make an offer?", "We want to move forward", "Let's do it, I want to buy",
        "I'm ready to start looking seriously", "We need to buy before the school year"], [
        "I want to offer {price} on {addr}", "Can we put an offer in on {addr}?",
        "Ready to offer on {addr}, how fast can we do it?",
        "We're looking for a {beds} bedroom in {city}, ready to buy now"]),
    "selling_valuation": ("seller", 18, 0.7, False, [
        "What's my home worth?", "How much could I sell my house for?", "Thinking about selling my house",
        "Can you do a home valuation?", "What would my place go for right now?", "I want to list my home",
        "Is now a good time to sell?", "How much is my house worth in this market?"], [
        "What's {addr} worth?", "How much could I get for {addr}?",
        "Thinking of selling {addr}, can you give me a number?",
        "My neighbor sold for {price}, what's mine worth?", "Would {addr} sell for {price}?"]),
    "not_interested": (None, -30, 0.0, False, [
        "Not interested", "Please stop texting me", "STOP", "No thanks", "Remove me from your list",
        "I already bought a house", "Not looking anymore", "We decided not to move", "Wrong number",
        "Unsubscribe"], [
        "I already bought in {city}, please stop"]),
    "neighbourhood_schools": (None, 6, 0.5, False, [
        "How are the schools there?", "Is it a safe neighborhood?", "What school district is it in?",
        "How's the commute to LA?", "Are there parks nearby?", "Is the area quiet?",
        "What's the neighborhood like?", "Good schools around there?"], [
        "How are the schools near {addr}?", "What district is {addr} in?",
        "Is {city} a good area for families?", "How long is the commute from {city} to Irvine?"]),
    "hoa_fees": (None, 5, 0.1, False, [
        "Is there an HOA?", "What are the HOA fees?", "Any HOA?", "How much is the HOA a month?",
        "Are there Mello-Roos taxes?", "What are the property taxes?", "Does the HOA cover water?"], [
        "What's the HOA on {addr}?", "Does {addr} have Mello-Roos?", "Property taxes on {addr}?"]),
    "just_browsing": (None, -6, 0.2, False, [
        "Just looking for now", "Maybe next year", "Just browsing", "Not ready yet",
        "We're still thinking about it", "Not in a rush", "Maybe in the spring",
        "Just curious about prices"], [
        "Just curious what's selling in {city}", "Maybe once we sell in {city}"]),
    "callback_request": (None, 10, 0.0, True, [
        "Can someone call me?", "Call me please", "Can you give me a call?",
        "I'd rather talk on the phone", "Have an agent call me", "What's a good number to reach you?"], [
        "Call me {when}", "Can you call me {when}?", "I'm free {when}, call me"]),
    "property_details": (None, 8, 0.2, False, [
        "How many bedrooms?", "Does it have a pool?", "Is it still available?", "How big is the lot?",
        "Does it have a garage?", "Is it single story?", "Any photos of the backyard?",
        "When was it built?", "Does it have solar?"], [
        "Is {addr} still available?", "How many bedrooms at {addr}?", "Does {addr} have a pool?",
        "Is {addr} single story?", "Looking for {beds} bedrooms, does {addr} have that?"]),
}
LABELS = list(CLUSTERS)
MIX = {  # intent mix per lead kind, same order as LABELS
    "buyer":   [16, 11, 10, 7, 2, 6, 10, 7, 10, 6, 15],
    "seller":  [5, 2, 2, 3, 35, 8, 4, 4, 15, 12, 5],
    "unknown": [12, 6, 6, 4, 12, 9, 7, 5, 16, 9, 10],
}
REPLIES = {
    "price_question": "{addr} is listed at {list_price}; comparable homes in {city} closed around {median} last quarter, so there may be a little room.",
    "schedule_viewing": "I can get you into {addr} {when} - I'm holding that slot on the calendar and the agent will confirm shortly.",
    "mortgage_preapproval": "Getting pre-approved first makes your offer much stronger; our partner lenders do FHA and 3.5% down and usually turn it around in 24-48h.",
    "ready_to_buy": "Love it! Next step is a quick call to confirm your pre-approval and write the offer on {addr}; homes in {city} are going in about 30 days.",
    "selling_valuation": "Homes like yours in {city} are selling around {median}; I can prepare a free valuation for {own} with recent comps on your street.",
    "not_interested": "Understood, I've updated your preferences and you won't get more texts from us. Best of luck!",
    "neighbourhood_schools": "{city} is popular with families; {addr} is zoned for the {city} Unified district and there are two parks within a mile.",
    "hoa_fees": "{addr} has an HOA of about $120/mo that covers common areas; property tax is roughly 1.1% of the purchase price, no Mello-Roos.",
    "just_browsing": "No rush at all! I can send you new {beds}-bedroom listings in {city} under {budget_hi} as they come up so you can watch the market.",
    "callback_request": "Absolutely - I've asked an agent to call you {when}; they'll have your notes on {addr} ready.",
    "property_details": "{addr} is a {beds}bd/2ba, about {sqft} sqft on a {lot} sqft lot, built {year}, with a two-car garage and paid-off solar.",
}
OPENERS = ["Hi {first}!", "Thanks {first}!", "Great question, {first}.", "Hey {first}!", "Happy to help, {first}!"]
CLOSERS = ["Want me to set up a time?", "Does that help?", "Any other questions?",
           "Shall I send a few similar homes?", "Let me know what works for you."]

_COMMON = (
    "You are {who} for Inland Empire Home Group, a real-estate brokerage serving Riverside and "
    "San Bernardino counties. You reply to leads by SMS. Rules: keep the SMS under 320 characters, "
    "friendly and plain; never promise a price, loan approval or investment return; follow Fair "
    "Housing rules (never describe neighborhoods by protected characteristics, do not steer); honor "
    "opt-outs immediately (STOP, unsubscribe, not interested) and confirm once; do not give legal or "
    "tax advice; when a showing or call is requested use the calendar tool to hold a slot; hand off "
    "to the buyer or seller specialist when the lead is ready to transact. Use the lead memory and "
    "market snapshot provided in context; if a fact is missing, say you will check. After the SMS, "
    "output [next_action] and [crm_note] lines for the CRM (not sent to the lead).\n")
SYSTEMS = {
    "intent": (
        "You classify inbound SMS messages sent by real-estate leads to our brokerage's texting line. "
        "Return exactly one line 'intent: <label>' with one of: " + ", ".join(LABELS) + ". Definitions: "
        "price_question = asks list price, negotiability or price changes; schedule_viewing = wants to "
        "tour or see a property or open house; mortgage_preapproval = financing, lenders, down payment, "
        "credit; ready_to_buy = wants to make an offer or start buying now; selling_valuation = wants to "
        "sell or know their home's value; not_interested = opt-out, already bought, wrong number; "
        "neighbourhood_schools = area, safety, schools, commute; hoa_fees = HOA, Mello-Roos, property "
        "taxes; just_browsing = no near-term plans; callback_request = wants a phone call; "
        "property_details = bedrooms, pool, lot, availability of a listing. Ignore greetings, emoji "
        "and typos. If several apply, pick the one that needs the soonest action."),
    "lead_scoring": (
        "You score real-estate leads for likelihood to transact within 90 days, 0-100. Rubric: "
        "timeline (0-3 months +25, 3-6 +15, 6-12 +5), financing (pre-approved +15, cash +20, none 0), "
        "engagement (asks about a specific property +10, requests showing or call +15, replies "
        "quickly +5), intent signals in the newest SMS (offer/showing/valuation strongly positive, "
        "opt-out or 'just browsing' strongly negative), budget fit with the target area's median "
        "price (+/-10). Weigh the newest message most. Do not use protected characteristics. Return "
        "compact JSON {\"score\": int, \"reason\": str} and nothing else."),
    "memory": (
        "You are the lead-memory service. Using the CRM record and conversation archive provided via "
        "the crm tool or context, write a concise summary for the conversation agent: current tag "
        "(Cold/Warm/Hot) first, then budget, target areas, bedrooms, timeline, financing, properties "
        "of interest, contact preferences and open questions. Plain text, at most 80 words."),
    "market_context": (
        "You are the market-data service. From the MLS statistics provided, write a one-paragraph "
        "snapshot for the given ZIP and date: median list and sold price with year-over-year change, "
        "median days on market, active inventory, new listings this week, months of supply and "
        "list-to-sale ratio. Numbers only from the data; no forecasts."),
    "response": {b: _COMMON.format(who=w) + (
        {"lead": "You qualify new leads: learn whether they want to buy or sell, timeline and budget.",
         "buyer": "You help buyers find homes, book showings, connect with lenders and write offers.",
         "seller": "You help sellers with valuations, listing prep, pricing strategy and timing."}[b])
        for b, w in BOTS.items()},
}


def _tok(n_chars: int) -> int:
    return max(1, math.ceil(n_chars / 4))


def _band(score: int) -> str:
    return "Hot" if score >= HOT else "Warm" if score >= WARM else "Cold"


class _Gen:
    def __init__(self, seed, leads, days, workers, start):
        self.r = random.Random(seed)
        self.base = datetime.fromisoformat(start.replace("Z", "+00:00")).astimezone(timezone.utc)
        self.end = int(days * 86_400_000)
        self.workers = [f"w{i + 1}" for i in range(max(1, workers))]
        self.out: list[tuple[int, dict]] = []
        self.memo: dict = {}        # deterministic answers: request key -> (response, output_tokens)
        self.first_reply: dict = {}  # response-generation request key -> first (response, tokens)
        self.listings = {z: [self._listing(z, c, m) for _ in range(3)] for z, c, m in ZIPS}
        self.leads = [self._lead(i + 1) for i in range(leads)]

    # -- world ---------------------------------------------------------------------
    def _listing(self, z, city, median):
        r = self.r
        return {"addr": f"{r.randint(1100, 9899)} {r.choice(STREETS)}", "beds": r.choice([3, 3, 4, 4, 5]),
                "price": round(median * r.uniform(0.8, 1.25)) * 1000, "sqft": r.randrange(1300, 3200, 10),
                "lot": r.randrange(5000, 9500, 100), "year": r.randint(1962, 2021), "dom": r.randint(3, 75)}

    def _lead(self, i):
        r = self.r
        zi = r.choices(range(len(ZIPS)), weights=[1 / (k + 1) ** 0.8 for k in range(len(ZIPS))])[0]
        z, city, median = ZIPS[zi]
        kind = r.choices(["buyer", "seller", "unknown"], [60, 25, 15])[0]
        act = r.choices(ACTIVITY, [a[1] for a in ACTIVITY])[0]
        tag = r.choices(["Cold", "Warm", "Hot"], [55, 35, 10])[0]
        lo = round(median * r.uniform(0.7, 1.1) / 10) * 10
        lead = {"id": f"L{i:04d}", "first": r.choice(NAMES), "initial": chr(65 + r.randrange(26)),
                "kind": kind, "zip": z, "city": city, "median": median, "budget": (lo, lo + r.choice([50, 70, 100])),
                "beds": r.choice([2, 3, 3, 4, 4, 5]), "timeline": r.choice(TIMELINES),
                "financing": r.choice(["not pre-approved", "pre-approved", "FHA, not pre-approved", "cash", "unknown"]),
                "source": r.choice(SOURCES), "since": f"2026-{r.randint(6, 10):02d}-{r.randint(1, 28):02d}",
                "listing": r.choice(self.listings[z]), "own": f"{r.randint(1100, 9899)} {r.choice(STREETS)}",
                "pref": r.choice(["texts after 5pm", "texts any time", "calls on weekends", "Spanish or English"]),
                "tag": tag, "fit": r.uniform(15, 80),  # fit: the score the lead drifts back to
                "score": {"Cold": r.uniform(18, 38), "Warm": r.uniform(42, 66), "Hot": r.uniform(71, 86)}[tag],
                "bot": "lead" if kind == "unknown" or r.random() < 0.65 else kind,
                "activity": act, "history": [], "inbound": []}
        for _ in range(r.choice([0, 0, 1, 1, 2, 3, 4])):  # earlier exchanges, before the log starts
            label, text = self._sms(lead)
            lead["history"] += [{"role": "user", "content": text},
                                {"role": "assistant", "content": self._reply_text(lead, label, "this weekend")[0]}]
            lead["inbound"].append(text)
        return lead

    def _fill(self, lead):
        lo, hi = lead["budget"]
        return {"addr": lead["own"] if lead["kind"] == "seller" else lead["listing"]["addr"],
                "price": self.r.choice([f"${hi}k", f"{hi}K", f"${hi},000", f"${lo}k"]),
                "when": self.r.choice(WHENS), "beds": lead["beds"], "city": lead["city"]}

    def _sms(self, lead):
        """Draw an inbound SMS: (intent label, text)."""
        r = self.r
        w = list(MIX[lead["kind"]])
        if lead["tag"] == "Cold":
            w[5] *= 2; w[8] *= 2
        elif lead["tag"] == "Hot":
            w[1] *= 2; w[3] *= 2.5
        label = r.choices(LABELS, w)[0]
        _, _, _, _, generic, specific = CLUSTERS[label]
        if specific and r.random() < SPECIFIC_RATE:
            text = r.choice(specific).format(**self._fill(lead))
        else:
            text = r.choices(generic, [1 / (k + 1) for k in range(len(generic))])[0]
        if r.random() < NEAR_DUP_RATE:
            text = self._noise(text)
        return label, text

    def _noise(self, t):
        r = self.r
        for _ in range(r.choice([1, 1, 2])):
            k = r.randrange(6)
            if k == 0:
                t = t.lower()
            elif k == 1:
                t = t.rstrip("?.!") + r.choice(["", "??", "?!", "."])
            elif k == 2:
                t = r.choice(["hi ", "Hey, ", "hello! ", "ok ", "Hi there. ", "Thanks! "]) + t[0].lower() + t[1:]
            elif k == 3:
                t = t + r.choice([" thanks", " thx", " 🙂", " 👍", " 🏡", "!!", " pls"])
            elif k == 4 and len(t) > 6:  # swap two adjacent letters
                i = r.randrange(1, len(t) - 2)
                t = t[:i] + t[i + 1] + t[i] + t[i + 2:]
            elif k == 5 and len(t) > 6:  # drop a letter
                i = r.randrange(1, len(t) - 1)
                t = t[:i] + t[i + 1:]
        return t

    def _reply_text(self, lead, label, when):
        r, l = self.r, lead["listing"]
        f = {"first": lead["first"], "addr": l["addr"], "city": lead["city"], "when": when,
             "list_price": f"${l['price']:,}", "median": f"${lead['median']}K", "own": lead["own"],
             "beds": lead["beds"], "budget_hi": f"${lead['budget'][1]}K", "sqft": f"{l['sqft']:,}",
             "lot": f"{l['lot']:,}", "year": l["year"]}
        sms = " ".join([r.choice(OPENERS), REPLIES[label], r.choice(CLOSERS)]).format(**f)
        note = (f"[next_action] {label.replace('_', ' ')} follow-up\n[crm_note] {lead['first']} {lead['initial']}. "
                f"({lead['kind']}, {lead['city']} {lead['zip']}) texted about {label.replace('_', ' ')}; budget "
                f"${lead['budget'][0]}-{lead['budget'][1]}K, {lead['beds']}+ bd, timeline {lead['timeline']}, "
                f"{lead['financing']}.")
        return sms, f"{sms}\n\n{note}"

    # -- calls -----------------------------------------------------------------------
    def _ts(self, ms):
        d = self.base + timedelta(milliseconds=ms)
        return f"{d:%Y-%m-%dT%H:%M:%S}.{d.microsecond // 1000:03d}Z"

    def _call(self, t, lead, task, model, system, body, answer, worker, bot, msg_id, stream=False, tools=False):
        """Record one call starting at t; return its latency in ms."""
        response, out_tok = answer
        n = len(system) + (len(body) if isinstance(body, str) else sum(len(m["content"]) + 12 for m in body))
        base, per = (250, 8) if model == HAIKU else (400, 15)
        lat = (base + per * out_tok) * self.r.lognormvariate(-0.06, 0.35) + (self.r.uniform(300, 1500) if tools else 0)
        rec = {"ts": self._ts(t), "lead_id": lead["id"], "task_type": task, "model": model, "system": system}
        rec["prompt" if isinstance(body, str) else "messages"] = body if isinstance(body, str) else [dict(m) for m in body]
        rec.update(input_tokens=_tok(n) + OVERHEAD[task], output_tokens=out_tok, latency_ms=round(lat),
                   response=response, worker=worker)
        if stream:
            rec["streaming"] = True
        if tools:
            rec["use_tools"] = True
        rec["attrs"] = {"bot": bot, "zip_code": lead["zip"], "msg_id": msg_id}
        self.out.append((t, rec))
        return round(lat)

    def _pipeline(self, lead, t, plan, worker):
        """Run one delivery of an inbound SMS through the bot pipeline; return end time (ms)."""
        r, gap = self.r, lambda: r.randint(15, 120)
        mid = plan["msg_id"]
        t += r.randint(80, 400)
        t += self._call(t, lead, "intent", HAIKU, SYSTEMS["intent"], plan["intent"],
                        self.memo[plan["intent"]], worker, lead["bot"], mid) + gap()
        lat = self._call(t, lead, "lead_scoring", SONNET, SYSTEMS["lead_scoring"], plan["scoring"],
                         self.memo[plan["scoring"]], worker, lead["bot"], mid)
        if _band(plan["score"]) != lead["tag"]:
            lead["tag"] = _band(plan["score"])
            tc = t + lat + r.randint(3, 40)
            self.out.append((tc, {"type": "tag_change", "ts": self._ts(tc), "lead_id": lead["id"],
                                  "tag": lead["tag"], "worker": worker}))
        t += lat + gap()
        target = CLUSTERS[plan["label"]][0]
        if target and target != lead["bot"]:  # hand-off: the new bot re-scores the same message
            lead["bot"] = target
            if len(self.workers) > 1 and r.random() < HANDOFF_OTHER_WORKER:
                worker = r.choice([w for w in self.workers if w != worker])
            t += r.randint(1000, 6000)
            t += self._call(t, lead, "lead_scoring", SONNET, SYSTEMS["lead_scoring"], plan["scoring"],
                            self.memo[plan["scoring"]], worker, lead["bot"], mid) + gap()
        mem = self._memory_prompt(lead)
        key = (lead["id"], lead["tag"])
        if key not in self.memo:
            self.memo[key] = self._answer(self._memory_text(lead))
        t += self._call(t, lead, "memory", SONNET, SYSTEMS["memory"], mem, self.memo[key], worker,
                        lead["bot"], mid, tools=plan["mem_tools"]) + gap()
        context = f"[lead memory]\n{self.memo[key][0]}"
        if plan["market"]:
            day = self._ts(t)[:10]
            prompt = f"Market snapshot for ZIP {lead['zip']} on {day}: median price, days on market, inventory"
            if prompt not in self.memo:
                self.memo[prompt] = self._answer(self._market_text(lead, day))
            t += self._call(t, lead, "market_context", SONNET, SYSTEMS["market_context"], prompt,
                            self.memo[prompt], worker, lead["bot"], mid) + gap()
            context += f"\n\n[market snapshot]\n{self.memo[prompt][0]}"
        system = SYSTEMS["response"][plan["reply_bot"] or lead["bot"]]
        plan["reply_bot"] = plan["reply_bot"] or lead["bot"]
        messages = plan["prior"] + [{"role": "user", "content": f'New SMS from {lead["first"]} ({lead["id"]}): '
                                                                 f'"{plan["sms"]}"\n\n{context}'}]
        key = (system, json.dumps(messages))
        if key not in self.first_reply or r.random() >= SAME_REPLY_RATE:
            sms, text = self._reply_text(lead, plan["label"], plan["when"])
            answer = (text, _tok(len(text)) + r.randint(20, 200))
            if key not in self.first_reply:
                self.first_reply[key] = answer
                lead["history"].append({"role": "assistant", "content": sms})
        else:
            answer = self.first_reply[key]
        return t + self._call(t, lead, "response", SONNET, system, messages, answer, worker,
                              lead["bot"], mid, stream=plan["stream"], tools=plan["calendar"])

    def _answer(self, text):
        return text, _tok(len(text)) + 1

    def _memory_prompt(self, lead):
        return (f"Summarise lead {lead['id']}'s profile, preferences and history for the conversation agent. "
                "Include current tag, budget, target areas, timeline, financing and open questions.")

    def _memory_text(self, lead):
        lo, hi = lead["budget"]
        return (f"Tag: {lead['tag']}. {lead['first']} {lead['initial']}., {lead['kind']} lead via {lead['source']} "
                f"since {lead['since']}. Budget ${lo}-{hi}K, {lead['financing']}. Wants {lead['beds']}+ bd in "
                f"{lead['city']} ({lead['zip']}); timeline {lead['timeline']}. Interested in "
                f"{lead['listing']['addr']}; own home {lead['own']}. Prefers {lead['pref']}.")

    def _market_text(self, lead, day):
        r, m = self.r, lead["median"]
        med = round(m * r.uniform(0.97, 1.03)) * 1000
        return (f"ZIP {lead['zip']} ({lead['city']}) on {day}: median list price ${med:,} "
                f"({r.uniform(-3, 6):+.1f}% YoY), median sold ${round(med * r.uniform(0.96, 0.99), -3):,.0f}, "
                f"median days on market {r.randint(18, 62)}, active listings {r.randint(25, 260)}, new this week "
                f"{r.randint(3, 40)}, months of supply {r.uniform(1.4, 4.2):.1f}, list-to-sale ratio "
                f"{r.uniform(96.5, 100.8):.1f}%.")

    def _plan(self, lead):
        """Draw a new inbound SMS and the requests its pipeline will make (reused by retries)."""
        r = self.r
        label, text = self._sms(lead)
        _, delta, p_market, calendar, _, _ = CLUSTERS[label]
        lead["score"] = min(98.0, max(2.0, lead["score"] + SCORE_PULL * (lead["fit"] - lead["score"]) + delta + r.gauss(0, SCORE_NOISE)))
        score = round(lead["score"])
        lo, hi = lead["budget"]
        l = lead["listing"]
        recent = "\n".join(f'- "{m}"' for m in lead["inbound"][-3:]) or "- (none)"
        scoring = (f"Lead: {lead['id']}\nName: {lead['first']} {lead['initial']}.\nSource: {lead['source']} "
                   f"({lead['since']})\nType: {lead['kind']} | Area: {lead['city']} ({lead['zip']}) | Budget: "
                   f"${lo}K-${hi}K | Beds: {lead['beds']}+ | Timeline: {lead['timeline']} | Financing: "
                   f"{lead['financing']}\nProperty of interest: {l['addr']}, {lead['city']} {lead['zip']} - "
                   f"{l['beds']}bd/2ba, {l['sqft']:,} sqft, lot {l['lot']:,}, built {l['year']}, listed "
                   f"${l['price']:,}, {l['dom']} days on market\nArea median price: ${lead['median']}K\n"
                   f"Engagement: {len(lead['inbound'])} earlier inbound SMS; contact preference {lead['pref']}\n"
                   f"Recent inbound messages (oldest first):\n{recent}\nNew inbound SMS: \"{text}\"\n"
                   "Score this lead (0-100) using the rubric and return the JSON.")
        intent = (f'Classify the intent of this inbound SMS from a real-estate lead.\nSMS: "{text}"\n'
                  "Answer with one line: intent: <label>")
        self.memo.setdefault(intent, self._answer(f"intent: {label}"))
        reason = {1: "positive signal in newest SMS", -1: "negative signal in newest SMS"}[1 if delta > 0 else -1]
        self.memo[scoring] = self._answer(json.dumps(
            {"score": score, "reason": f"{label.replace('_', ' ')}: {reason}; timeline {lead['timeline']}, "
                                       f"{lead['financing']}, budget vs area median {hi - lead['median']:+d}K"}))
        lead["inbound"].append(text)
        prior = lead["history"][-18:]
        if prior and prior[0]["role"] != "user":
            prior = prior[1:]
        lead["history"].append({"role": "user", "content": text})
        return {"msg_id": f"SM{r.getrandbits(128):032x}", "label": label, "score": score, "intent": intent,
                "scoring": scoring, "sms": text, "prior": [dict(m) for m in prior], "when": r.choice(WHENS),
                "market": r.random() < p_market * MARKET_RATE_SCALE, "mem_tools": r.random() < MEMORY_TOOL_RATE,
                "stream": r.random() < STREAM_RATE, "calendar": calendar, "reply_bot": None}

    # -- timeline --------------------------------------------------------------------
    def _session_starts(self, n):
        slots = math.ceil(self.end / 3_600_000)
        w = [HOUR_WEIGHTS[(self.base + timedelta(hours=k)).hour] * min(1.0, (self.end - k * 3_600_000) / 3_600_000)
             for k in range(slots)]
        ks = self.r.choices(range(slots), w, k=n) if n else []
        return sorted(min(self.end - 1, k * 3_600_000 + self.r.randrange(3_600_000)) for k in ks)

    def _poisson(self, lam):
        k, p, limit = 0, 1.0, math.exp(-lam)
        while True:
            p *= self.r.random()
            if p <= limit:
                return k
            k += 1

    def run(self):
        r = self.r
        for lead in self.leads:
            _, _, rate, per_session = lead["activity"]
            busy, retries, quiet_day = 0, [], -1
            for start in self._session_starts(self._poisson(rate * self.end / 86_400_000)):
                t = max(start, busy + r.randint(20_000, 60_000))
                for _ in range(r.choice(per_session)):
                    if t >= self.end or t // 86_400_000 == quiet_day:
                        break
                    for rt, _, rp in sorted((x for x in retries if x[0] <= t), key=lambda x: x[:2]):
                        self._pipeline(lead, rt, rp, r.choice(self.workers))
                    retries = [x for x in retries if x[0] > t]
                    plan = self._plan(lead)
                    busy = self._pipeline(lead, t, plan, r.choice(self.workers))
                    if r.random() < RETRY_RATE:
                        delay = r.randint(2_000, 20_000) if r.random() < 0.5 else r.randint(20_000, 150_000)
                        if t + delay < self.end:
                            retries.append((t + delay, r.random(), plan))
                    if plan["label"] == "not_interested" and r.random() < OPT_OUT_QUIET:
                        quiet_day = t // 86_400_000
                    t = busy + r.randint(20_000, 60_000) + int(r.expovariate(1 / 150_000))
            for rt, _, rp in sorted(retries, key=lambda x: x[:2]):
                self._pipeline(lead, rt, rp, r.choice(self.workers))
        self.out.sort(key=lambda x: x[0])
        return [rec for _, rec in self.out]


def generate(seed: int = 7, leads: int = 500, days: float = 1.0, workers: int = 3,
             start: str = "2026-11-02T00:00:00Z") -> list[dict]:
    """Records in ts order (ties in any order), each a dict ready for json.dumps."""
    return _Gen(seed, leads, days, workers, start).run()


def write_log(path, **kwargs) -> int:
    """Write generate(**kwargs) as JSONL to path; return the record count."""
    records = generate(**kwargs)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for rec in records:
            f.write(json.dumps(rec, separators=(",", ":")) + "\n")
    return len(records)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tiercli.samplegen", description=__doc__.splitlines()[0])
    ap.add_argument("out", help="output .jsonl path")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--leads", type=int, default=500)
    ap.add_argument("--days", type=float, default=1.0)
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--start", default="2026-11-02T00:00:00Z")
    a = ap.parse_args(argv)
    n = write_log(a.out, seed=a.seed, leads=a.leads, days=a.days, workers=a.workers, start=a.start)
    print(f"wrote {n} records to {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
