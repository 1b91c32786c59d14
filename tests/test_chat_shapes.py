"""Requests and answers in the shapes frameworks record them (tiercli/ingest/chat.py), read
from real traces: Langfuse's own framework traces (langfuse/langfuse,
worker/src/__tests__/chatml/framework-traces/, recorded from each framework's integration
example; tests/fixtures/SOURCES.md), trimmed to their generations.

- LangChain.js records a tool's result with the tool's name as its role (issue 22 item 3);
- openai-agents records the OpenAI Responses API response, google-adk a Gemini response
  (its content), the Gemini SDK the whole GenerateContentResponse (`candidates`), and the
  Microsoft Agent Framework OpenTelemetry GenAI output messages (`parts` of type text with
  `content`): each answer's text is read (issue 22 item 7)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from formats_common import read, run
from logs import write
from tiercli.ingest import chat
from tiercli.core.shape import CallShape
from tiercli.ingest.records import RecordProblem
from tiercli.core.keys import response_digest

LANGFUSE = Path(__file__).parent / "fixtures" / "langfuse"
LANGGRAPH_JS = LANGFUSE / "langgraph_js_generations.json"
OPENAI_AGENTS = LANGFUSE / "openai_agents_generations.json"
GOOGLE_ADK = LANGFUSE / "google_adk_generations.json"
GOOGLE_GEMINI = LANGFUSE / "google_gemini_generations.json"
MICROSOFT_AGENT = LANGFUSE / "microsoft_agent_generations.json"

# the same calls' OpenTelemetry spans, from the same traces (tests/fixtures/SOURCES.md)
OTEL_OPENAI_AGENTS = Path(__file__).parent / "fixtures" / "otel" / "openai_agents.jsonl"
OTEL_GOOGLE_ADK = Path(__file__).parent / "fixtures" / "otel" / "google_adk.jsonl"

WEATHER_CALL = "call_VEZJgIQLgzcb80IIyQJm7JCi"  # the tool call's id in the second generation's input


def generations(path: Path) -> list[dict]:
    return json.loads(path.read_text())


# --- LangChain.js tool messages (item 3) -------------------------------------------------------

def test_a_tool_result_recorded_under_the_tools_name_is_read_in_order():
    # the second generation's input: user, assistant (a tool call), then the tool's result with
    # "role": "get_weather" (langfuse-langchain's CallbackHandler gives a ToolMessage its name)
    recorded = json.loads(generations(LANGGRAPH_JS)[1]["input"])
    assert recorded[2]["role"] == "get_weather"
    system, messages = chat.split_messages(recorded, "input")
    assert system is None
    assert messages == [
        {"role": "user", "content": [{"type": "text", "text": "What's the weather in San Francisco?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": ""},
                                          {"type": "tool_use", "id": WEATHER_CALL, "name": "get_weather",
                                           "input": {"city": "San Francisco"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": WEATHER_CALL,
                                      "content": "It's always sunny in San Francisco!"}]},
    ]


def test_langchain_js_generations_replay_with_the_key_of_the_request_as_sent(tmp_path):
    """The export reads (it was `input[2].role: must be system, user, assistant or tool`), and the
    second call has the key of the same request in OpenAI's shape, as ChatOpenAI sent it: the
    tool's result a `tool` message answering the tool call by its id."""
    calls = read(LANGGRAPH_JS, "langfuse").calls
    # figures from the generations: startTime to endTime, model, usageDetails.input, and the
    # output: usageDetails.output plus usageDetails.output_reasoning (24 + 0, 35 + 64), which
    # Langfuse keeps apart (its outputUsage: 24, 99)
    assert [(c.model, c.input_tokens, c.output_tokens, c.latency_ms) for c in calls] == [
        ("gpt-5-mini-2025-08-07", 142, 24, 1822.0), ("gpt-5-mini-2025-08-07", 179, 99, 3230.0)]
    as_sent = generations(LANGGRAPH_JS)
    messages = json.loads(as_sent[1]["input"])
    messages[2] = {"role": "tool", "tool_call_id": WEATHER_CALL, "content": messages[2]["content"]}
    as_sent[1]["input"] = json.dumps(messages)
    openai_shaped = read(write(tmp_path / "as_sent.json", as_sent), "langfuse").calls
    assert calls[1].key == openai_shaped[1].key
    assert calls[0].key == openai_shaped[0].key
    # the answer of the second call (output.content)
    assert calls[1].response_digest == response_digest(
        "It's always sunny in San Francisco! \n\nWould you like more details (current temperature, hourly "
        "forecast, or a multi-day outlook)?")


@pytest.mark.parametrize("tool_message, answers", [
    ({"role": "get_weather", "content": "sunny"}, "call_2"),  # LangChain.js: the tool's name
    ({"role": "function", "name": "get_weather", "content": "sunny"}, "call_2"),  # OpenAI's legacy function message
    ({"role": "tool", "name": "get_time", "content": "noon"}, "call_1"),  # a tool message without its id
    ({"role": "lookup", "content": "nothing"}, None),  # no call to that tool: a result all the same
])
def test_a_role_that_is_no_turn_is_a_tool_result_answering_the_call_of_that_name(tool_message, answers):
    calls = [{"id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
             {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]
    _, messages = chat.split_messages([{"role": "user", "content": "weather and time?"},
                                       {"role": "assistant", "content": None, "tool_calls": calls},
                                       tool_message], "messages")
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[2]["content"] == [{"type": "tool_result", "tool_use_id": answers,
                                       "content": tool_message["content"]}]


def test_langchain_and_gemini_names_of_the_turns():
    _, messages = chat.split_messages([{"role": "human", "content": "hi"}, {"role": "ai", "content": "hello"},
                                       {"role": "model", "content": "bye"}], "messages")
    assert [m["role"] for m in messages] == ["user", "assistant", "assistant"]


@pytest.mark.parametrize("message, problem", [
    ({"content": "x"}, "missing (required): system, user, assistant, tool, or the name of the tool whose "
                       "result the message holds"),
    ({"role": 7, "content": "x"}, "must be a string (system, user, assistant, tool, or the name of the tool "
                                  "whose result the message holds), got 7"),
])
def test_a_role_that_is_not_a_name_is_an_error(message, problem):
    with pytest.raises(RecordProblem) as caught:
        chat.split_messages([message], "messages")
    assert (caught.value.field, caught.value.problem) == ("messages[0].role", problem)


# --- requests of other APIs (follow-up to item 7) ------------------------------------------------

ADK_SYSTEM = 'Always greet using the say_hello tool.\n\nYou are an agent. Your internal name is "hello_agent".'


@pytest.mark.parametrize("export, spans, same", [(OPENAI_AGENTS, OTEL_OPENAI_AGENTS, [True, True]),
                                                 (GOOGLE_ADK, OTEL_GOOGLE_ADK, [True, False])],
                         ids=["openai-agents", "google-adk"])
def test_requests_of_other_apis_have_the_key_of_the_same_call_recorded_over_opentelemetry(export, spans, same):
    """openai-agents records a Responses API input (items without a role: function_call,
    function_call_output; the instructions in modelParameters), google-adk a Gemini request
    (system_instruction, contents of parts): each was keyed by its canonical JSON, so no call
    matched the same call recorded elsewhere. Read as messages, each has the key of the same
    call as OpenInference recorded it over OpenTelemetry (llm.input_messages: the same traces'
    spans, in the order of the generations). google-adk's second call differs there: OpenInference
    records no arguments of its call to say_hello (the request has `args: {}`) and the
    function's response as Python's json.dumps text (the request has the object).
    The messages are compared with the parameters apart (CallShape params_apart, as inspect keys):
    OpenInference records openai-agents' tools and Langfuse's export does not, so under
    key_params = "all" their keys differ, as they should; google-adk's tools, recorded by both
    (a Gemini Tool's declarations, one OpenInference llm.tools entry each), are equal."""
    apart = CallShape(params_apart=True)
    from_langfuse = read(export, "langfuse", keep_text=apart).calls
    from_otel = read(spans, "otel", keep_text=apart).calls
    assert [(c.task, c.model) for c in from_langfuse] == [(c.task, c.model) for c in from_otel]
    assert [a.key == b.key for a, b in zip(from_langfuse, from_otel, strict=True)] == same
    tools_recorded_alike = [a.params == b.params for a, b in zip(from_langfuse, from_otel, strict=True)]
    assert tools_recorded_alike == ([False, False] if export == OPENAI_AGENTS else [True, True])


def test_a_gemini_request_is_read_as_messages():
    """google-adk's LlmRequest: config.system_instruction the system, a `model` turn's
    function_call a tool call, the user's function_response its result (answering it by name,
    the response as JSON text); its config.tools offered: a tool-use call. The Gemini SDK's
    `contents` given as text is the user's message."""
    from tiercli.ingest.formats.langfuse import call_record

    second = generations(GOOGLE_ADK)[1]
    record, origin, _ = call_record(second, {})
    assert (record["system"], origin["system"]) == ([{"type": "text", "text": ADK_SYSTEM}], "input")
    assert record["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": None, "name": "say_hello", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": None,
                                      "content": '{"greeting":"Hello Langfuse \U0001f44b"}'}]}]
    assert record["use_tools"] is True and record["tools"] == [{"name": "say_hello"}]
    gemini, _, _ = call_record(generations(GOOGLE_GEMINI)[0], {})  # {"model": ..., "contents": "What is Langfuse?"}
    assert (gemini["system"], gemini["messages"]) == (None, [{"role": "user", "content": [
        {"type": "text", "text": "What is Langfuse?"}]}])


@pytest.mark.parametrize("request_body", [
    [{"role": "user", "content": "hi"}, {"type": "reasoning", "id": "rs_1", "summary": []}],  # a reasoning item
    [{"query": "weather"}],  # an application's own list: no message
    {"contents": [{"role": "user", "parts": [{"inline_data": {"mime_type": "image/png", "data": "iVBO"}}]}]},
])
def test_a_request_with_a_part_that_maps_to_no_message_is_keyed_as_recorded(tmp_path, request_body):
    [call] = read(write(tmp_path / "observations.json", [{
        "id": "g", "type": "GENERATION", "startTime": "2026-11-02T08:00:00Z", "model": "gpt-4.1",
        "input": request_body}]), "langfuse").calls
    assert call.text == json.dumps(request_body, sort_keys=True, separators=(",", ":"))


# --- tokens and costs as the data says ------------------------------------------------------------

@pytest.mark.parametrize("export", [LANGGRAPH_JS, OPENAI_AGENTS, GOOGLE_ADK, GOOGLE_GEMINI, MICROSOFT_AGENT],
                         ids=lambda p: p.stem)
def test_tokens_and_costs_are_what_langfuse_recorded(export, tmp_path):
    """Each call's model, input and output tokens are the generation's (model, usageDetails.input,
    and outputUsage: Langfuse's sum of its usage keys that name output), and the replay costs
    what Langfuse priced the generations at (the sum of their costDetails.total). The output
    counts the reasoning tokens Langfuse keeps apart from `output` (LangGraph.js's second call:
    35 + output_reasoning 64; they were left out, and the call cost $0.000128 less), and no
    reasoning twice where Langfuse kept it inside `output` (google-genai's
    completion_details.reasoning 1104 of output 2055)."""
    recorded = generations(export)
    calls = read(export, "langfuse").calls
    assert [(c.model, c.input_tokens, c.output_tokens) for c in calls] == [
        (g["model"], g["usageDetails"]["input"], g["outputUsage"]) for g in recorded]
    result = run("replay", export, "--tiers", "l1,l2", "--json", "--no-save")
    assert result.exit_code == 0, result.output
    cost = json.loads(result.stdout)["cost"]["baseline_usd"]
    assert cost == pytest.approx(sum(g["costDetails"]["total"] for g in recorded), rel=1e-9)


# --- answers of other APIs (item 7) ------------------------------------------------------------

# Each generation's answer as its output records it (the path into `output` says where).
ANSWERS = {
    OPENAI_AGENTS: [
        "",  # output.output[0] is a function_call (get_weather): no text
        # output.output[0].content[0].text, an output_text part
        "The weather in Tokyo is currently sunny. If you need more details like temperature or forecast for the "
        "upcoming days, just let me know!",
    ],
    GOOGLE_ADK: [
        "",  # content.parts[0] is a function_call (say_hello): no text
        "Hello Langfuse \U0001f44b!\n",  # content.parts[0].text
    ],
    MICROSOFT_AGENT: [
        "",  # output[0].parts[0] is a tool_call (get_weather): no text
        "Current conditions in Tokyo, Japan: stormy, high around 23\u00b0C.",  # output[0].parts[0].content
    ],
}


@pytest.mark.parametrize("export", list(ANSWERS), ids=lambda p: p.stem)
def test_each_answer_is_read_from_its_response_object(export):
    calls = read(export, "langfuse").calls
    assert [c.response_digest for c in calls] == [response_digest(text) for text in ANSWERS[export]]


def test_a_gemini_response_is_read_from_its_first_candidate_without_its_thoughts():
    output = json.loads(generations(GOOGLE_GEMINI)[0]["output"])
    parts = output["candidates"][0]["content"]["parts"]
    assert [sorted(part) for part in parts] == [["text"]]
    # the whole GenerateContentResponse the Gemini SDK returned: candidates[0].content.parts[0].text
    expected = parts[0]["text"]
    assert expected.startswith("**Langfuse** is an **open-source observability and evaluation platform")
    assert read(GOOGLE_GEMINI, "langfuse").calls[0].response_digest == response_digest(expected)
    thought = {"candidates": [{"content": {"role": "model", "parts": [
        {"text": "The user asks about Langfuse; answer briefly.", "thought": True}, {"text": "An LLM tracer."}]}}]}
    assert chat.response_text(thought) == "An LLM tracer."


def test_inspect_shows_every_answer_recorded(tmp_path):
    result = run("inspect", OPENAI_AGENTS, GOOGLE_ADK, MICROSOFT_AGENT, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["calls"] == 6
    assert report["coverage"]["response"] == 1.0  # was 0.0 for openai-agents and google-adk
    assert not any(gap.startswith("no response") for gap in report["gaps"])


@pytest.mark.parametrize("response, text", [
    ({"object": "response", "output": [{"type": "reasoning", "summary": []},
                                       {"type": "message", "role": "assistant",
                                        "content": [{"type": "output_text", "text": "Paris."}]}]}, "Paris."),
    ({"output": [{"type": "function_call", "name": "f", "arguments": "{}", "call_id": "c"}]}, ""),
    ({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hi"}, {"text": "there"}]}}]}, "Hi\nthere"),
    ({"candidates": [{"finishReason": "SAFETY"}]}, None),
    ({"index": 0, "message": {"role": "assistant", "content": "Choice text"}}, "Choice text"),
    ({"output": {"answer": 42}}, None),  # an application's own object: not a response
])
def test_response_shapes(response, text):
    assert chat.response_text(response) == text
