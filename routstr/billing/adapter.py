"""Which dialects talk for one request: the client's side, the upstream's side and, when they differ,
the translation between them, chosen by (client dialect, provider kind) from one table.

The pipeline does the money; the two sides know their dialects (``routstr.dialects``): how big a
request can get and how to cap it, where the usage is, how a stream ends, and how to show the user
what the request cost. A client dialect with no entry for a provider's kind cannot be served there
(e.g. chat completions on an Anthropic provider).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from routstr.core.usage import Usage
from routstr.dialects import anthropic, openai_chat, openai_media, openai_responses
from routstr.dialects.anthropic_chat import TO_CHAT
from routstr.dialects.sides import ClientSide, StreamTranslator, Translation, UpstreamSide


@dataclass(frozen=True, slots=True)
class Adapter:
    """The dialects of one request on one provider."""

    client: ClientSide
    upstream: UpstreamSide
    translation: Translation | None = None  # None: the upstream's answers go to the client as they are

    def to_upstream(self, body: dict[str, Any]) -> dict[str, Any]:
        """The request in the upstream's dialect (the same dict when no translation is needed)."""
        return body if self.translation is None else self.translation.to_upstream(body)

    def from_upstream(self, obj: dict[str, Any], usage: Usage | None) -> dict[str, Any]:
        """A complete answer in the client's dialect."""
        return obj if self.translation is None else self.translation.from_upstream(obj, usage)

    def stream_translator(self, model: str) -> StreamTranslator | None:
        """None when the upstream's events go to the client as they are."""
        return None if self.translation is None else self.translation.stream(model)


# (client side, provider kind, upstream side, translation): the one place that says which dialects
# serve which endpoint on which kind of provider
_SERVED_BY: tuple[tuple[ClientSide, str, UpstreamSide, Translation | None], ...] = (
    (openai_chat.CHAT_CLIENT, "openai", openai_chat.CHAT_UPSTREAM, None),
    (openai_chat.COMPLETIONS_CLIENT, "openai", openai_chat.COMPLETIONS_UPSTREAM, None),
    (openai_responses.CLIENT, "openai", openai_responses.UPSTREAM, None),
    (openai_media.EMBEDDINGS_CLIENT, "openai", openai_media.EMBEDDINGS_UPSTREAM, None),
    (openai_media.IMAGES_CLIENT, "openai", openai_media.IMAGES_UPSTREAM, None),
    (openai_media.TRANSCRIPTIONS_CLIENT, "openai", openai_media.TRANSCRIPTIONS_UPSTREAM, None),
    # Anthropic clients (Claude Code): forwarded as they are to Anthropic providers, translated to
    # chat completions for OpenAI-type ones
    (anthropic.CLIENT, "anthropic", anthropic.UPSTREAM, None),
    (anthropic.CLIENT, "openai", openai_chat.CHAT_UPSTREAM, TO_CHAT),
)
TABLE: dict[tuple[str, str], Adapter] = {(c.name, kind): Adapter(c, u, t) for c, kind, u, t in _SERVED_BY}


def adapter_for(client: ClientSide, kind: str) -> Adapter | None:
    """The adapter for a request in ``client``'s dialect on a provider of this kind, or None if such a
    provider cannot serve it."""
    return TABLE.get((client.name, kind))
