"""Requests and usage as other tools record them, in tiercli's terms.

Messages: an OpenAI Chat Completions list (roles system, developer, user, assistant, tool;
content a string or a list of parts) or an Anthropic Messages list becomes tiercli's
(system blocks, user/assistant messages), so the same request has the same key whichever
format carried it: system and developer messages become system text blocks, in order; a tool
message becomes a user message holding a tool_result block; an assistant's tool_calls become
tool_use blocks; text parts become text blocks. Gemini's `model` turn and LangChain's `human`
and `ai` are the assistant and the user. Any other role is a tool's or a function's result, as
LangChain.js records a ToolMessage (`"role": "get_weather"`) and OpenAI's legacy function
messages do (`"role": "function", "name": ...`): a tool_result block, whose tool_use_id is
the message's own tool_call_id, else that of the earlier tool call it answers by name.

Transcripts: a prompt written as role-prefixed lines ("user: ...", OpenLIT's) is read message by
message (transcript_messages).

Answers: the text of a Chat Completions, Messages, Responses API or Gemini response, or of a
message (module function response_text).

Tokens: tiercli/ingest/usage.py (usage_object, usage_from), named here too for the formats."""

from __future__ import annotations

import re
from typing import Any

import orjson

from tiercli.errors import shown
from tiercli.core.problems import RecordProblem
# the usage readers live below this module and records.py; the formats read them here as chat.usage_object etc.
from tiercli.ingest.usage import Usage, split_into, token_count, usage_from, usage_object  # noqa: F401

SYSTEM_ROLES = ("system", "developer")
# Other names of the user's and the assistant's turns: LangChain's message types, Gemini's model turn
ROLE_ALIASES = {"human": "user", "ai": "assistant", "model": "assistant"}


def _part_text(part: Any) -> str | None:
    """The text of one content part: a string, a text part (`text`; OpenTelemetry GenAI's
    `{"type": "text", "content": ...}`); None for any other part, and for a Gemini thought
    (`"thought": true`: the model's reasoning, not its answer)."""
    if isinstance(part, str):
        return part
    if not isinstance(part, dict) or part.get("thought") is True:
        return None
    if isinstance(part.get("text"), str):
        return part["text"]
    if part.get("type") == "text" and isinstance(part.get("content"), str):
        return part["content"]
    return None


def text_of(content: Any) -> str | None:
    """The text of a content value: a string, or the text parts of a list (or of a Gemini
    content's `parts`) joined with newlines."""
    if content is None:
        return None
    if isinstance(content, str):
        return content
    if isinstance(content, dict) and isinstance(content.get("parts"), list) and "text" not in content:
        content = content["parts"]
    if isinstance(content, list):
        return "\n".join(t for t in map(_part_text, content) if t is not None)
    return _part_text(content) if isinstance(content, dict) else None


def _blocks(content: Any, field: str) -> list[dict]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, dict):
        content = [content]
    if not isinstance(content, list):
        raise RecordProblem(field, f"must be a string or a list of content parts, got {type(content).__name__}")
    blocks = []
    for i, part in enumerate(content):
        if isinstance(part, str):
            blocks.append({"type": "text", "text": part})
        elif isinstance(part, dict):
            kind = part.get("type", "text")
            if kind in ("text", "input_text", "output_text") or (kind is None and "text" in part):
                text = part.get("text", part.get("content"))
                if not isinstance(text, str):
                    raise RecordProblem(f"{field}[{i}].text", "must be a string")
                block = {"type": "text", "text": text}
                if part.get("cache_control") is not None:  # a prompt-caching breakpoint (tiercli compare);
                    block["cache_control"] = part["cache_control"]  # the request key leaves it out
                blocks.append(block)
            else:
                blocks.append(part)
        else:
            raise RecordProblem(f"{field}[{i}]", "must be a content part object or a string")
    return blocks


def split_messages(messages: Any, field: str = "messages", system: Any = None) -> tuple[list[dict] | None, list[dict]]:
    """(system blocks or None, user/assistant messages) of a chat in either API's shape."""
    if not isinstance(messages, list):
        raise RecordProblem(field, f"must be a list of messages, got {type(messages).__name__}")
    system_blocks = _blocks(system, "system") if system is not None else []
    out: list[dict] = []
    calls = ToolCalls()
    for i, message in enumerate(messages):
        where = f"{field}[{i}]"
        if not isinstance(message, dict):
            raise RecordProblem(where, "must be an object with role and content")
        role = message.get("role")
        content = message.get("content")
        turn = turn_of(role, where)
        if turn == "system":
            system_blocks += _blocks(content, f"{where}.content")
        elif turn in ("user", "assistant"):
            blocks = _blocks(content, f"{where}.content")
            tool_calls = message.get("tool_calls")
            extra = message.get("additional_kwargs")  # where LangChain's Python messages keep them
            if tool_calls is None and isinstance(extra, dict):
                tool_calls = extra.get("tool_calls")
            if tool_calls is not None and not isinstance(tool_calls, list):
                raise RecordProblem(f"{where}.tool_calls", f"must be a list of tool calls, got {type(tool_calls).__name__}")
            for j, call in enumerate(tool_calls or ()):
                function = call.get("function") or {} if isinstance(call, dict) else {}
                if not isinstance(function, dict):
                    raise RecordProblem(f"{where}.tool_calls[{j}].function",
                                        f"must be an object with name and arguments, got {type(function).__name__}")
                arguments = function.get("arguments")
                if isinstance(arguments, str):
                    try:
                        arguments = orjson.loads(arguments)
                    except orjson.JSONDecodeError:
                        pass
                call_id = call.get("id") if isinstance(call, dict) else None
                blocks.append({"type": "tool_use", "id": call_id, "name": function.get("name"), "input": arguments})
                calls.made(call_id, function.get("name"))
            out.append({"role": turn, "content": blocks})
        else:
            call_id = calls.answered(message.get("tool_call_id"), role, message.get("name"))
            # text as it is, as Anthropic's tool_result takes it (and the OpenTelemetry reader reads it)
            result = {"type": "tool_result", "tool_use_id": call_id,
                      "content": content if isinstance(content, str) else _blocks(content, f"{where}.content")}
            out.append({"role": "user", "content": [result]})
    if not out:
        raise RecordProblem(field, "holds no user or assistant message")
    return (system_blocks or None), out


# --- requests of other APIs, as chat messages ----------------------------------------------------

# Responses API input items read as messages; any other kind (reasoning, a built-in tool's call,
# an item reference) has no message of its own, and the input is then keyed as recorded
RESPONSES_ITEMS = ("message", "function_call", "function_call_output")


def responses_messages(items: Any) -> list[dict] | None:
    """The chat messages of an OpenAI Responses API `input` (as openai-agents records it):
    messages as they are (content text or input_text/output_text parts), `function_call` items
    the assistant's tool calls (with the assistant's text before them, one message, as Chat
    Completions has it), `function_call_output` items tool messages answering them by
    `call_id`. None when it is no such list, or holds an item of another kind."""
    if not (isinstance(items, list) and items and all(isinstance(item, dict) for item in items)):
        return None
    messages: list[dict] = []
    for item in items:
        kind = item.get("type", "message")
        if kind not in RESPONSES_ITEMS:
            return None
        if kind == "message":
            if not isinstance(item.get("role"), str):
                return None  # no message: an application's own list
            messages.append({"role": item["role"], "content": item.get("content")})
        elif kind == "function_call":
            call = {"id": item.get("call_id"), "type": "function",
                    "function": {"name": item.get("name"), "arguments": item.get("arguments")}}
            if messages and messages[-1]["role"] == "assistant":
                messages[-1].setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        else:
            messages.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": item.get("output")})
    return messages


GEMINI_SYSTEM = ("system_instruction", "systemInstruction")


def gemini_request(body: Any) -> dict | None:
    """A Gemini generateContent request (google-genai's `{model, contents, config}`, google-adk's
    LlmRequest, the REST body) as a request body with chat messages: `system` from the
    system instruction (in `config`, or beside `contents`), `messages` from `contents` (text
    parts; a `model` turn's function calls its tool calls; function responses tool messages,
    answering the call of their name, their response as JSON text), `tools` from the tools.
    None when it is no such request, or a part is of another kind (an image, a file, code), or
    holds no message."""
    if not isinstance(body, dict) or "contents" not in body or "messages" in body:
        return None
    config = body.get("config") if isinstance(body.get("config"), dict) else {}
    contents = body["contents"]
    if isinstance(contents, (str, dict)):
        contents = [contents]
    if not isinstance(contents, list):
        return None
    messages: list[dict] = []
    for content in contents:
        read = _gemini_content(content)
        if read is None:
            return None
        messages += read
    if not messages:
        return None
    out: dict[str, Any] = {"messages": messages}
    system = next((where[name] for where in (config, body) for name in GEMINI_SYSTEM if where.get(name) is not None),
                  None)
    if system is not None:
        out["system"] = text_of(system)
    tools = config.get("tools", body.get("tools"))
    if tools is not None:
        out["tools"] = gemini_tools(tools)
    return out


def gemini_tools(tools: Any) -> Any:
    """A Gemini request's tools as one list of definitions: each Tool's function declarations in
    order (as OpenInference records them, one llm.tools entry a declaration), any other tool
    (google_search, code_execution) as recorded, so the same request keys alike from either."""
    if not isinstance(tools, list):
        return tools
    out: list[Any] = []
    for tool in tools:
        declarations = tool.get("function_declarations", tool.get("functionDeclarations")) \
            if isinstance(tool, dict) else None
        out.extend(declarations if isinstance(declarations, list) else [tool])
    return out


def _gemini_content(content: Any) -> list[dict] | None:
    """The chat messages of one Gemini Content (`role`, `parts`) or text (the user's)."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    if not isinstance(content, dict) or not isinstance(content.get("parts"), list):
        return None
    texts, calls, results = [], [], []
    for part in content["parts"]:
        if not isinstance(part, dict):
            return None
        call = part.get("function_call", part.get("functionCall"))
        response = part.get("function_response", part.get("functionResponse"))
        if isinstance(part.get("text"), str):
            if part.get("thought") is not True:  # the model's reasoning: no part of the conversation
                texts.append({"type": "text", "text": part["text"]})
        elif isinstance(call, dict):
            calls.append({"id": call.get("id"), "type": "function",
                          "function": {"name": call.get("name"), "arguments": call.get("args")}})
        elif isinstance(response, dict):
            answer = response.get("response")
            results.append({"role": "tool", "tool_call_id": response.get("id"), "name": response.get("name"),
                            "content": answer if isinstance(answer, str) else orjson.dumps(answer).decode()})
        else:
            return None
    role = content.get("role", "user")
    if calls:
        return results + [{"role": role, "content": texts, "tool_calls": calls}]
    return results + ([{"role": role, "content": texts}] if texts or not results else [])


def turn_of(role: Any, where: str) -> str:
    """The turn a message's role names: "system" (system, developer), "user" or "assistant"
    (and their other names, ROLE_ALIASES), else "tool": a tool's or a function's result (tool,
    function, or the tool's own name, as LangChain.js records a ToolMessage). A missing or
    non-text role is the one error, at `where`.role."""
    if not isinstance(role, str) or not role:
        roles = "system, user, assistant, tool, or the name of the tool whose result the message holds"
        raise RecordProblem(f"{where}.role", f"missing (required): {roles}" if role in (None, "") else
                            f"must be a string ({roles}), got {shown(role)}")
    role = ROLE_ALIASES.get(role, role)
    if role in SYSTEM_ROLES:
        return "system"
    return role if role in ("user", "assistant") else "tool"


class ToolCalls:
    """The tool calls a conversation has made and not yet had answered, in order: which call
    a tool's result answers."""

    def __init__(self):
        self.unanswered: list[tuple[Any, Any]] = []  # (id, name)

    def made(self, call_id: Any, name: Any) -> None:
        self.unanswered.append((call_id, name))

    def answered(self, call_id: Any, role: Any, name: Any = None) -> Any:
        """The id of the call a result answers: its own `call_id` when it has one, else the
        first unanswered call to its tool, named by `name` for a tool or function message, else
        by its role (the tool's own name); None when there is none."""
        if call_id is not None:
            self.unanswered = [call for call in self.unanswered if call[0] != call_id]
            return call_id
        tool = (name if name is not None else role) if role in ("tool", "function") else role
        for index, (made_id, called) in enumerate(self.unanswered):
            if called == tool:
                del self.unanswered[index]
                return made_id
        return None


# A line that opens a message in a transcript: OpenLIT (1.27 and later releases that record
# gen_ai.prompt) writes each message as "{role}: {content}", one after another on new lines.
TRANSCRIPT_ROLE = re.compile(r"^(system|developer|user|assistant|tool): ", re.MULTILINE)


def transcript_messages(prompt: str) -> list[dict] | str:
    """The messages of a prompt written as "user: What is ..." lines (a message's own lines run
    on until the next line that opens with a role); a prompt that does not open with a role is
    one user message's text, as it is."""
    starts = list(TRANSCRIPT_ROLE.finditer(prompt))
    if not starts or starts[0].start() != 0:
        return prompt
    ends = [m.start() - 1 for m in starts[1:]] + [len(prompt)]  # up to the newline before the next role
    return [{"role": m.group(1), "content": prompt[m.end():end]} for m, end in zip(starts, ends)]


def responses_output(value: Any) -> list | None:
    """The `output` items of an OpenAI Responses API response (`"object": "response"`, or an
    `output` list of typed items: messages, function calls, reasoning), else None."""
    if not isinstance(value, dict) or not isinstance(value.get("output"), list):
        return None
    output = value["output"]
    if value.get("object") == "response" or (
            output and all(isinstance(item, dict) and isinstance(item.get("type"), str) for item in output)):
        return output
    return None


def is_response(value: Any) -> bool:
    """Whether an object is a provider's response in a shape response_text reads beyond a
    message: a Responses API response, a Gemini response (`candidates`), or one Chat
    Completions choice (`message`)."""
    return isinstance(value, dict) and (responses_output(value) is not None or isinstance(value.get("candidates"), list)
                                        or (isinstance(value.get("message"), dict) and "content" not in value))


def response_text(value: Any) -> str | None:
    """The answer's text from what a tool recorded: a string, an Anthropic Messages response,
    a Chat Completions response (its first choice) or choice, a Responses API response (its
    output messages), a Gemini response (its first candidate; an ADK response's `content`),
    a list of output messages, or a message."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict):
        if isinstance(value.get("choices"), list) and value["choices"]:
            choice = value["choices"][0]
            if isinstance(choice, dict):
                message = choice.get("message") or choice.get("delta") or {}
                text = text_of(message.get("content")) if isinstance(message, dict) else None
                return text if text is not None else text_of(choice.get("text"))
            return None
        output = responses_output(value)
        if output is not None:  # its messages' text; "" when it answered with tool calls only
            texts = [text_of(item.get("content")) for item in output  # what is not an object holds no message
                     if isinstance(item, dict) and item.get("type") == "message"]
            return "\n".join(t for t in texts if t is not None) if output else None
        if isinstance(value.get("candidates"), list):
            candidate = value["candidates"][0] if value["candidates"] else None
            return response_text(candidate) if isinstance(candidate, dict) and "content" in candidate else None
        if isinstance(value.get("message"), dict) and "content" not in value:
            return response_text(value["message"])
        if "content" in value:
            return text_of(value["content"])
        if isinstance(value.get("text"), str):
            return value["text"]
        return None
    if isinstance(value, list):
        texts = [response_text(element) if isinstance(element, dict) and "role" in element else text_of([element])
                 for element in value]
        texts = [t for t in texts if t is not None]
        return "\n".join(texts) if texts else None
    return None
