"""What a request sends, as the node must know it before it runs: the text that becomes prompt tokens
(for the estimate when no usage comes back), the images (each reserved at a per-image token bound),
and what cannot be priced in advance, which is refused before any money moves.

Refused with 400 ``unbounded_input``: content by reference whose tokens neither the body's bytes nor a
per-item bound limit (files, stored responses and conversations, stored prompts, item references).
Refused with 400 ``unpriced_feature``: extras a provider bills beyond tokens (priority processing,
built-in server tools, background runs, audio output).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from routstr.core.errors import InvalidRequest

# tiers a provider bills at (or below) its standard token prices
STANDARD_TIERS = frozenset({"auto", "default", "flex", "standard_only"})
# tool types the client runs itself: their calls and results are ordinary tokens
CLIENT_TOOLS_RESPONSES = frozenset(
    {"function", "custom", "local_shell", "shell", "apply_patch", "computer_use_preview"}
)
CLIENT_TOOLS_CHAT = frozenset({"function", "custom"})
# Anthropic's server tools (billed per use by the provider) start with these
ANTHROPIC_SERVER_TOOLS = ("web_search", "web_fetch", "code_execution")


@dataclass(slots=True)
class Sent:
    """Bytes of everything that becomes prompt tokens, and the images among them."""

    text_bytes: int = 0
    images: int = 0

    def text(self, value: Any) -> None:
        if isinstance(value, str):
            self.text_bytes += len(value.encode())

    def json(self, value: Any) -> None:
        """Structured input (tool definitions, schemas, tool arguments): as its compact JSON."""
        if value is not None:
            self.text_bytes += len(value.encode()) if isinstance(value, str) else len(orjson.dumps(value))


def unbounded(what: str, param: str) -> InvalidRequest:
    return InvalidRequest(
        f"{what} cannot be priced before the request runs, so this node does not accept it; "
        "send the content itself in the request",
        details={"param": param},
        code="unbounded_input",
    )


def unpriced(what: str, param: str) -> InvalidRequest:
    return InvalidRequest(
        f"{what} is billed by providers beyond tokens, and this node does not price it",
        details={"param": param},
        code="unpriced_feature",
    )


def check_tier(body: dict[str, Any]) -> None:
    tier = body.get("service_tier")
    if tier is not None and tier not in STANDARD_TIERS:
        raise unpriced(f"service_tier {tier!r}", "service_tier")


def positive_count(body: dict[str, Any], name: str, most: int) -> int:
    v = body.get(name, 1)
    if v is None:
        return 1
    if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= most:
        raise InvalidRequest(f"'{name}' must be an integer from 1 to {most}", details={"param": name})
    return v


# --- OpenAI chat completions -------------------------------------------------------------------


def chat_inputs(body: dict[str, Any]) -> Sent:
    check_tier(body)
    if body.get("web_search_options") is not None:
        raise unpriced("Web search", "web_search_options")
    modalities = body.get("modalities")
    if body.get("audio") is not None or (isinstance(modalities, list) and "audio" in modalities):
        raise unpriced("Audio output", "modalities")
    sent = Sent()
    for tool in _list(body.get("tools")):
        if isinstance(tool, dict) and tool.get("type", "function") not in CLIENT_TOOLS_CHAT:
            raise unpriced(f"The built-in tool {tool.get('type')!r}", "tools")
    for name in ("tools", "functions", "response_format", "tool_choice", "prediction"):
        if isinstance(body.get(name), dict | list):
            sent.json(body[name])
    for m in _list(body.get("messages")):
        if not isinstance(m, dict):
            continue
        sent.text(m.get("name"))
        _chat_content(m.get("content"), sent)
        for call in _list(m.get("tool_calls")):
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict):
                sent.text(fn.get("name"))
                sent.json(fn.get("arguments"))
        if isinstance(m.get("function_call"), dict):
            sent.json(m["function_call"])
    return sent


def _chat_content(content: Any, sent: Sent) -> None:
    if isinstance(content, str):
        sent.text(content)
        return
    for part in _list(content):
        if isinstance(part, str):
            sent.text(part)
            continue
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "image_url":
            sent.images += 1
        elif kind == "file":
            raise unbounded("A file input", "messages")
        else:
            sent.text(part.get("text"))
            sent.text(part.get("refusal"))


# --- OpenAI Responses --------------------------------------------------------------------------


def responses_inputs(body: dict[str, Any]) -> Sent:
    for name, what in (
        ("previous_response_id", "A stored response"),
        ("conversation", "A stored conversation"),
        ("prompt", "A stored prompt"),
    ):
        if body.get(name) is not None:
            raise unbounded(what, name)
    if body.get("background"):
        raise unpriced("A background response", "background")
    check_tier(body)
    sent = Sent()
    for tool in _list(body.get("tools")):
        if isinstance(tool, dict) and tool.get("type") not in CLIENT_TOOLS_RESPONSES:
            raise unpriced(f"The built-in tool {tool.get('type')!r}", "tools")
    sent.json(body.get("tools"))
    sent.text(body.get("instructions"))
    text = body.get("text")
    if isinstance(text, dict):
        sent.json(text.get("format"))
    given = body.get("input")
    if isinstance(given, str):
        sent.text(given)
    for item in _list(given):
        if isinstance(item, dict):
            _responses_item(item, sent)
    return sent


def _responses_item(item: dict[str, Any], sent: Sent) -> None:
    kind = item.get("type", "message")
    if kind == "item_reference":
        raise unbounded("An item reference", "input")
    if kind == "message":
        content = item.get("content")
        if isinstance(content, str):
            sent.text(content)
        for part in _list(content):
            if not isinstance(part, dict):
                continue
            if part.get("type") == "input_image":
                sent.images += 1
            elif part.get("type") == "input_file":
                raise unbounded("A file input", "input")
            else:
                sent.text(part.get("text"))
        return
    for field in ("name", "arguments", "input", "call_id"):
        sent.text(item.get(field))
    output = item.get("output")
    if isinstance(output, str):
        sent.text(output)
    elif output is not None:
        sent.json(output)
    for part in _list(item.get("summary")) + _list(item.get("content")):
        if isinstance(part, dict):
            sent.text(part.get("text"))
    sent.text(item.get("encrypted_content"))
    if isinstance(item.get("action"), dict):
        sent.json(item["action"])


# --- Anthropic Messages ------------------------------------------------------------------------


def anthropic_inputs(body: dict[str, Any]) -> Sent:
    if body.get("mcp_servers"):
        raise unpriced("An MCP server connector", "mcp_servers")
    if body.get("container") is not None:
        raise unpriced("A code execution container", "container")
    sent = Sent()
    for tool in _list(body.get("tools")):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if isinstance(kind, str) and kind.startswith(ANTHROPIC_SERVER_TOOLS):
            raise unpriced(f"The server tool {kind!r}", "tools")
    sent.json(body.get("tools"))
    if isinstance(body.get("tool_choice"), dict):
        sent.json(body["tool_choice"])
    _anthropic_content(body.get("system"), sent)
    for m in _list(body.get("messages")):
        if isinstance(m, dict):
            _anthropic_content(m.get("content"), sent)
    return sent


def _anthropic_content(content: Any, sent: Sent) -> None:
    if isinstance(content, str):
        sent.text(content)
        return
    for block in _list(content):
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "image":
            sent.images += 1
        elif kind == "document":
            source = block.get("source")
            if not isinstance(source, dict) or source.get("type") not in ("text", "content"):
                raise unbounded("A document (PDF, file or URL)", "messages")
            sent.text(source.get("data"))
            _anthropic_content(source.get("content"), sent)
        elif kind == "container_upload":
            raise unbounded("A container upload", "messages")
        elif kind == "tool_use":
            sent.text(block.get("name"))
            sent.json(block.get("input"))
        elif kind == "tool_result":
            _anthropic_content(block.get("content"), sent)
        else:
            for field in ("text", "thinking", "data"):
                sent.text(block.get(field))
            _anthropic_content(block.get("content"), sent)


def _list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []
