"""The pure rules of the fake provider (:mod:`routstr.devtools.fake_provider`): tokens, directives, output.

No I/O, so a test can work out what the provider bills for a request. The rules (written down here only):

* **Output** is made of 4-byte words (``"tok "``): ``tokens = UTF-8 bytes / 4`` exactly, for text and for
  tool-call arguments alike (``arguments(n)`` is valid JSON of exactly ``4 * n`` bytes). A provider writes
  until the request's output limit (``max_completion_tokens`` / ``max_tokens`` / ``max_output_tokens``),
  or ``DEFAULT_MAX_TOKENS`` (16,384) when there is none, as a real model that does not stop would.
* **Prompt tokens** are ``ceil(bytes / 4)`` of every text the request carries (messages, system prompts,
  instructions, tool calls and results), plus ``PER_MESSAGE_TOKENS`` (3) per chat/Anthropic message,
  plus ``ceil(bytes / 4)`` of the JSON of ``tools`` (all definitions, built-in ones included), plus:
  ``IMAGE_TOKENS`` (1,105) per image part (``image_url``, ``input_image``, Anthropic ``image``) whatever its
  bytes, ``FILE_TOKENS`` (25,000) per file (``file``, ``input_file``, Anthropic ``document``),
  ``STORED_CONTEXT_TOKENS`` (50,000) when a Responses request names stored context
  (``previous_response_id``, ``conversation`` or a stored ``prompt``), ``SEARCH_TOKENS`` (8,000) per web
  search run (built-in search tools, chat ``web_search_options``): the results are read as input.
* **Directives** in the request body's text (anywhere in the JSON, e.g. in the prompt):
  ``[slow:S]`` waits S seconds before each streamed event that carries output (a stream of 400 tokens
  with ``[slow:0.2]`` lasts 5 s: ``CHUNK_TOKENS`` = 16 tokens per event); ``[cut:N]`` closes the
  connection once N output tokens were streamed (nothing after: no finish, no usage; a non-streamed
  request gets no answer at all); ``[stop:N]`` ends the answer naturally after N tokens (when that is
  below the limit; finish ``stop``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

WORD = "tok "
BYTES_PER_TOKEN = 4
CHUNK_TOKENS = 16
DEFAULT_MAX_TOKENS = 16_384
PER_MESSAGE_TOKENS = 3
IMAGE_TOKENS = 1_105
FILE_TOKENS = 25_000
STORED_CONTEXT_TOKENS = 50_000
SEARCH_TOKENS = 8_000
IMAGE_PARTS = frozenset({"image_url", "input_image", "image"})
FILE_PARTS = frozenset({"file", "input_file", "document"})
SEARCH_TOOLS = ("web_search", "web_search_preview")  # Responses built-ins (and their dated variants)
ANTHROPIC_SEARCH_PREFIX = "web_search_"  # e.g. web_search_20250305
SEARCH_RESULT = {"url": "https://example.com/fake-result", "title": "A fake search result"}
_DIRECTIVE = re.compile(rb"\[(slow|cut|stop):([0-9]+(?:\.[0-9]+)?)\]")


def tokens_of(text: str) -> int:
    """ceil(UTF-8 bytes / 4)."""
    return (len(text.encode("utf-8")) + BYTES_PER_TOKEN - 1) // BYTES_PER_TOKEN


def json_tokens(value: Any) -> int:
    return tokens_of(orjson.dumps(value).decode())


def words(n: int) -> str:
    """Output text of exactly ``n`` tokens (``4 * n`` bytes)."""
    return WORD * n


def arguments(n: int) -> str:
    """Tool-call arguments: a JSON object of exactly ``4 * n`` bytes (n >= 1)."""
    if n < 2:
        return "{}  "[: 4 * max(n, 0)]
    return '{"q":"' + WORD * (n - 2) + '"}'


def pieces(text: str, chunk_tokens: int = CHUNK_TOKENS) -> list[str]:
    """The streamed pieces of an output text (ASCII): ``chunk_tokens`` tokens each, the last maybe fewer."""
    size = chunk_tokens * BYTES_PER_TOKEN
    return [text[i : i + size] for i in range(0, len(text), size)]


@dataclass(frozen=True, slots=True)
class Directives:
    slow: float = 0.0  # seconds before each output event of a stream
    cut: int | None = None  # close the connection after this many output tokens
    stop: int | None = None  # end the answer after this many tokens


def directives(raw: bytes) -> Directives:
    found: dict[str, float] = {}
    for name, value in _DIRECTIVE.findall(raw):
        found.setdefault(name.decode(), float(value))
    cut, stop = found.get("cut"), found.get("stop")
    return Directives(
        slow=found.get("slow", 0.0),
        cut=None if cut is None else int(cut),
        stop=None if stop is None else int(stop),
    )


def int_field(body: dict[str, Any], *names: str) -> int | None:
    for name in names:
        v = body.get(name)
        if isinstance(v, int) and not isinstance(v, bool):
            return v
    return None


def output_length(limit: int | None, d: Directives) -> tuple[int, bool]:
    """(tokens written per answer, whether the limit cut it)."""
    n = limit if limit is not None and limit > 0 else DEFAULT_MAX_TOKENS
    if d.stop is not None and d.stop < n:
        return max(d.stop, 1), False
    return n, True


# -- prompt tokens ------------------------------------------------------------------------------------


def content_tokens(content: Any) -> int:
    """A content value of any dialect: a string, or a list of text/image/file/tool parts."""
    if isinstance(content, str):
        return tokens_of(content)
    n = 0
    for part in content if isinstance(content, list) else ():
        if isinstance(part, str):
            n += tokens_of(part)
            continue
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind in IMAGE_PARTS:
            n += IMAGE_TOKENS
        elif kind in FILE_PARTS:
            n += FILE_TOKENS
        elif isinstance(part.get("text"), str):
            n += tokens_of(part["text"])
        elif kind == "tool_use":
            n += json_tokens(part.get("input"))
        elif kind == "tool_result":
            n += content_tokens(part.get("content"))
    return n


def tools_tokens(body: dict[str, Any]) -> int:
    tools = body.get("tools")
    return json_tokens(tools) if isinstance(tools, list) and tools else 0


def function_tool(body: dict[str, Any]) -> str | None:
    """The name of the first tool the model may call (chat ``function``, Responses ``function``, Anthropic
    custom tools), or None."""
    for tool in body.get("tools") or ():
        if not isinstance(tool, dict):
            continue
        fn = tool.get("function")
        if tool.get("type") == "function" and isinstance(fn, dict) and isinstance(fn.get("name"), str):
            return str(fn["name"])  # chat completions
        if tool.get("type") == "function" and isinstance(tool.get("name"), str):
            return str(tool["name"])  # Responses
        if tool.get("type") in (None, "custom") and isinstance(tool.get("name"), str):
            return str(tool["name"])  # Anthropic
    return None


def searches(body: dict[str, Any]) -> int:
    """Web searches the provider runs (and bills) for this request."""
    n = 1 if isinstance(body.get("web_search_options"), dict) else 0
    for tool in body.get("tools") or ():
        kind = tool.get("type") if isinstance(tool, dict) else None
        if isinstance(kind, str) and (
            kind.startswith(SEARCH_TOOLS) or kind.startswith(ANTHROPIC_SEARCH_PREFIX)
        ):
            n += 1
    return n


def _message_tokens(m: Any) -> int:
    if not isinstance(m, dict):
        return 0
    n = PER_MESSAGE_TOKENS + content_tokens(m.get("content"))
    for call in m.get("tool_calls") or ():
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict):
            n += tokens_of(str(fn.get("name", ""))) + tokens_of(str(fn.get("arguments", "")))
    return n


def chat_prompt_tokens(body: dict[str, Any]) -> int:
    msgs = body.get("messages")
    n = sum(_message_tokens(m) for m in msgs) if isinstance(msgs, list) else 0
    return n + tools_tokens(body) + SEARCH_TOKENS * searches(body)


def completion_prompts(prompt: Any) -> list[int]:
    """Prompt tokens of each prompt of a legacy completion (a string, strings, token ids or lists of them)."""
    if isinstance(prompt, str):
        return [tokens_of(prompt)]
    if not isinstance(prompt, list) or not prompt:
        return [0]
    if all(isinstance(p, int) for p in prompt):
        return [len(prompt)]
    return [tokens_of(p) if isinstance(p, str) else len(p) if isinstance(p, list) else 0 for p in prompt]


def responses_prompt_tokens(body: dict[str, Any]) -> int:
    n = 0
    if isinstance(body.get("instructions"), str):
        n += tokens_of(body["instructions"])
    given = body.get("input")
    if isinstance(given, str):
        n += tokens_of(given)
    for item in given if isinstance(given, list) else ():
        if not isinstance(item, dict):
            continue
        n += content_tokens(item.get("content"))
        for field in ("arguments", "output"):
            if isinstance(item.get(field), str):
                n += tokens_of(item[field])
    if body.get("previous_response_id") or body.get("conversation") or body.get("prompt"):
        n += STORED_CONTEXT_TOKENS
    return n + tools_tokens(body) + SEARCH_TOKENS * searches(body)


def anthropic_prompt_tokens(body: dict[str, Any]) -> int:
    n = content_tokens(body.get("system"))
    msgs = body.get("messages")
    n += (
        sum(PER_MESSAGE_TOKENS + content_tokens(m.get("content")) for m in msgs if isinstance(m, dict))
        if isinstance(msgs, list)
        else 0
    )
    return n + tools_tokens(body) + SEARCH_TOKENS * searches(body)


def surcharges(body: dict[str, Any]) -> dict[str, Any]:
    """What a real provider bills on top of tokens for this request (shown in the answer as a marker)."""
    out: dict[str, Any] = {}
    if body.get("service_tier") == "priority":
        out["service_tier"] = "priority"
        out["token_price_multiplier"] = 2
    if n := searches(body):
        out["web_search_calls"] = n
    return out
