"""Model names with a provider path (issue 22 item 4): a Vertex AI resource name, a Bedrock ARN,
model id or inference profile, a LiteLLM or Langfuse provider prefix, a Vertex @version, each
priced by one resolver (pricing.name_forms, Pricer.priced_as) for every format, for replay and
for inspect alike, with a note on stderr saying which name was priced as which, once per name;
a name no price is known for gets a hint with its own name and never another vendor's prices.

Where the forms come from: the Vertex AI name is the one Langfuse recorded in a real trace
(tests/fixtures/langfuse/vertex_ai_generations.json, see tests/fixtures/SOURCES.md); the Bedrock
and prefixed forms follow published schemas, not recorded exports: AWS's ARN and model id forms
as hashicorp/terraform-provider-aws's testdata writes them, and the forms Langfuse's own price
table matches (langfuse/langfuse worker/src/constants/default-model-prices.json: `anthropic/`,
`us.anthropic.…-v1:0`, `…@20241022`, `google/`). Every expected cost is genai-prices' own price of
the name and provider the form stands for, asked here directly."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from genai_prices import Usage, calc_price
from typer.testing import CliRunner

from logs import write
from tiercli.cli import app
from tiercli.economics.pricing import PICO, PricedName, Pricer
from tiercli.settings import ModelPrice

runner = CliRunner()
FIXTURES = Path(__file__).parent / "fixtures"
VERTEX_TRACE = FIXTURES / "langfuse" / "vertex_ai_generations.json"
VERTEX_MODEL = "projects/vertex-ai-integration-467711/locations/europe-central2/publishers/google/models/gemini-2.5-flash"
TS = "2026-11-02T08:00:00Z"
DAY = datetime(2026, 11, 2, 12, tzinfo=timezone.utc)

# (name as a log records it, the name and genai-prices provider it is priced as)
FORMS = [
    (VERTEX_MODEL, "gemini-2.5-flash", "google"),
    ("projects/p/locations/us-east5/publishers/anthropic/models/claude-3-5-sonnet-v2@20241022",
     "claude-3-5-sonnet-v2@20241022", "google"),  # Claude on Vertex AI: Google's price list
    ("arn:aws:bedrock:eu-central-1::foundation-model/anthropic.claude-3-5-sonnet-20240620-v1:0",
     "anthropic.claude-3-5-sonnet-20240620-v1:0", "aws"),
    ("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-sonnet-20241022-v2:0",
     "us.anthropic.claude-3-5-sonnet-20241022-v2:0", "aws"),
    ("us.anthropic.claude-3-5-sonnet-20240620-v1:0", "us.anthropic.claude-3-5-sonnet-20240620-v1:0", "aws"),
    ("bedrock/anthropic.claude-3-haiku-20240307-v1:0", "anthropic.claude-3-haiku-20240307-v1:0", "aws"),
    ("amazon.nova-pro-v1:0", "amazon.nova-pro-v1:0", "aws"),
    ("vertex_ai/gemini-2.0-flash-001", "vertex_ai/gemini-2.0-flash-001", None),  # genai-prices knows it as written
    ("google/gemini-2.5-flash", "gemini-2.5-flash", "google"),
    ("anthropic/claude-sonnet-4-5", "claude-sonnet-4-5", "anthropic"),
    ("openai/gpt-4o", "gpt-4o", "openai"),
    ("azure/gpt-4o-mini", "gpt-4o-mini", "azure"),
    ("gemini-2.0-flash@001", "gemini-2.0-flash-001", None),
]
# names that name no model a price is known for: an application inference profile's id is the
# account's own, an Azure deployment's name is the customer's, and the Gemini is not one
UNPRICED = ["arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc1", "azure/my-gpt-deployment",
            "gemini-9-ultra"]


def genai_pico(name: str, provider: str | None, input_tokens: int, output_tokens: int) -> int:
    price = calc_price(Usage(input_tokens=input_tokens, output_tokens=output_tokens), name, provider_id=provider,
                       genai_request_timestamp=DAY)
    return int((Decimal(price.total_price) * PICO).to_integral_value())


def genai_label(recorded: str, name: str, provider: str | None) -> str | None:
    """What the note says `recorded` was priced as: genai-prices' model and provider; None (no
    note) when that model is the recorded name itself."""
    found = calc_price(Usage(input_tokens=1, output_tokens=1), name, provider_id=provider)
    return None if found.model.id == recorded else f"{found.model.id} ({found.provider.name})"


@pytest.mark.parametrize("recorded, name, provider", FORMS, ids=[f[0][:40] for f in FORMS])
def test_each_form_is_priced_as_its_own_model(recorded, name, provider):
    pricer = Pricer()
    assert pricer.priced_as(recorded) == PricedName(name, provider)
    ts = datetime.fromisoformat(TS).timestamp()
    assert pricer.price(recorded, ts, 1000, 100) == genai_pico(name, provider, 1000, 100)
    assert pricer.by_another_name(recorded) == genai_label(recorded, name, provider)


def test_names_without_a_price_stay_unpriced():
    pricer = Pricer()
    assert [pricer.knows(model) for model in UNPRICED] == [False, False, False]
    # the name genai-prices knows as written is priced as written, and no note is due
    assert pricer.priced_as("claude-3-5-sonnet-v2@20241022") == PricedName("claude-3-5-sonnet-v2@20241022")
    assert pricer.by_another_name("claude-3-5-sonnet-v2@20241022") is None


def test_the_configs_price_of_the_short_name_prices_the_long_one():
    price = ModelPrice(input_per_mtok=0.5, output_per_mtok=2.0)
    pricer = Pricer({"gemini-2.5-flash": price})
    assert pricer.priced_as(VERTEX_MODEL) == PricedName("gemini-2.5-flash", override=price)
    assert pricer.price(VERTEX_MODEL, 0, 1000, 100) == (1000 * 0.5 + 100 * 2.0) * 10**6
    assert pricer.name_notes([VERTEX_MODEL, VERTEX_MODEL]) == [
        f"note: priced {VERTEX_MODEL} as gemini-2.5-flash (the config's [prices])"]


def _all_forms_log(tmp_path: Path) -> Path:
    """One call of each form (the first form twice: its note is said once), then one call of
    each unpriced name; 1,000 tokens in and 100 out each."""
    models = [FORMS[0][0]] + [recorded for recorded, _, _ in FORMS] + UNPRICED
    return write(tmp_path / "models.jsonl", [
        {"ts": TS, "lead_id": f"L{i}", "task_type": "t", "model": model, "prompt": f"question {i}",
         "input_tokens": 1000, "output_tokens": 100} for i, model in enumerate(models)])


def test_inspect_and_replay_agree_on_every_form(tmp_path):
    log = _all_forms_log(tmp_path)
    inspected = runner.invoke(app, ["inspect", str(log), "--json"])
    assert inspected.exit_code == 0, inspected.output
    priced = {m["model"]: m["priced"] for m in json.loads(inspected.stdout)["models"]}
    replayed = runner.invoke(app, ["replay", str(log), "--tiers", "l1", "--no-save", "--json", "--skip-invalid"])
    assert replayed.exit_code == 0, replayed.output
    models = [json.loads(line)["model"] for line in log.read_text().splitlines()]
    skipped = {models[int(line.split(":")[2]) - 1] for line in replayed.stderr.splitlines()
               if line.startswith(f"skipped: {log}:") and ": model: no price known for model " in line}
    # what inspect says is unpriced is what replay stops at, and nothing else
    assert {model for model, known in priced.items() if not known} == skipped == set(UNPRICED)
    assert {model for model, known in priced.items() if known} == {recorded for recorded, _, _ in FORMS}
    summary = json.loads(replayed.stdout)
    expected = sum(genai_pico(name, provider, 1000, 100) for _, name, provider in [FORMS[0], *FORMS])
    assert summary["requests"] == len(FORMS) + 1
    assert round(summary["cost"]["baseline_usd"] * PICO) == pytest.approx(expected, abs=PICO // 10**6)
    notes = [line for line in replayed.stderr.splitlines() if line.startswith("note: priced ")]
    assert notes == [f"note: priced {recorded} as {genai_label(recorded, name, provider)}"
                     for recorded, name, provider in FORMS if genai_label(recorded, name, provider)]
    assert [line for line in inspected.stderr.splitlines() if line.startswith("note: priced ")] == notes


def test_an_unpriced_gemini_is_never_offered_anthropics_prices(tmp_path):
    log = write(tmp_path / "log.jsonl", [{"ts": TS, "lead_id": "A", "task_type": "t", "model": "gemini-9-ultra",
                                          "prompt": "hi", "input_tokens": 10, "output_tokens": 1}])
    replayed = runner.invoke(app, ["replay", str(log), "--tiers", "l1", "--no-save"])
    assert replayed.exit_code == 1
    assert replayed.stderr.splitlines() == [
        f"error: {log}:1: model: no price known for model 'gemini-9-ultra'",
        'hint: give its list prices in a config file (--config), in USD per million tokens: '
        '[prices."gemini-9-ultra"] input_per_mtok = IN and output_per_mtok = OUT (docs/replay-semantics.md "Cost")']
    inspected = runner.invoke(app, ["inspect", str(log)], env={"COLUMNS": "200"})
    assert inspected.exit_code == 0, inspected.output
    assert ('hint: give its list prices in a config file (--config), in USD per million tokens: '
            '[prices."gemini-9-ultra"] input_per_mtok = IN and output_per_mtok = OUT') in inspected.stdout
    assert "15.0" not in inspected.stdout and "3.0" not in inspected.stdout


def test_langfuse_vertex_trace_replays_at_geminis_price():
    """The real Vertex AI generation Langfuse recorded: usageDetails input 5, output 845; the
    model is its resource name; genai-prices prices gemini-2.5-flash at Google's list."""
    replayed = runner.invoke(app, ["replay", str(VERTEX_TRACE), "--tiers", "l1", "--no-save", "--json"])
    assert replayed.exit_code == 0, replayed.output
    summary = json.loads(replayed.stdout)
    assert summary["requests"] == 1
    day = datetime(2025, 8, 1, 12, tzinfo=timezone.utc)
    price = calc_price(Usage(input_tokens=5, output_tokens=845), "gemini-2.5-flash", provider_id="google",
                       genai_request_timestamp=day).total_price
    assert summary["cost"]["baseline_usd"] == pytest.approx(float(price), rel=1e-12)
    assert f"note: priced {VERTEX_MODEL} as gemini-2.5-flash (Google)" in replayed.stderr.splitlines()

    inspected = runner.invoke(app, ["inspect", str(VERTEX_TRACE), "--json"])
    assert inspected.exit_code == 0, inspected.output
    out = json.loads(inspected.stdout)
    assert out["models"] == [{"model": VERTEX_MODEL, "calls": 1, "priced": True,
                              "priced_as": "gemini-2.5-flash (Google)"}]
    assert (f"1 model priced by another name: {VERTEX_MODEL} as gemini-2.5-flash (Google)"
            in out["files"][0]["reading"])


def test_litellm_names_the_model_replay_prices_in_inspect_too(tmp_path):
    """A LiteLLM row whose deployment name has no price but whose model_group has: inspect shows
    (and prices) the name replay prices, not the deployment's."""
    row = json.loads((FIXTURES / "litellm" / "spend_logs.jsonl").read_text().splitlines()[0])
    row.update(model="azure/sales-gpt4o-eu", custom_llm_provider="azure", model_group="gpt-4o")
    log = write(tmp_path / "spend.jsonl", [row])
    inspected = runner.invoke(app, ["inspect", str(log), "--json"])
    assert inspected.exit_code == 0, inspected.output
    assert json.loads(inspected.stdout)["models"] == [{"model": "gpt-4o", "calls": 1, "priced": True,
                                                       "priced_as": None}]
    replayed = runner.invoke(app, ["replay", str(log), "--tiers", "l1", "--no-save", "--json"])
    assert replayed.exit_code == 0, replayed.output
    usage = (row["prompt_tokens"], row["completion_tokens"])
    day = datetime.fromisoformat(row["startTime"]).replace(hour=12, minute=0, second=0, tzinfo=timezone.utc)
    price = calc_price(Usage(input_tokens=usage[0], output_tokens=usage[1]), "gpt-4o", genai_request_timestamp=day)
    assert json.loads(replayed.stdout)["cost"]["baseline_usd"] == pytest.approx(float(price.total_price), rel=1e-12)
