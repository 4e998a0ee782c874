"""The API dialects the node speaks, one module per API family, each with both sides (``sides.py``):
the client side (read a request, cap it, show the cost) and the upstream side (where the usage is,
how a stream ends, the text it delivered). Pure: dicts and bytes in, dicts and bytes out.

``openai_chat`` (chat and legacy completions), ``openai_responses``, ``anthropic``, ``openai_media``
(embeddings, images, transcriptions); ``anthropic_chat`` translates between an Anthropic client and a
chat upstream. Every dialect reports usage its own way and converts it to the canonical
``routstr.core.usage.Usage`` in its ``to_usage``.
"""
