"""Image generation: ``POST /v1/images/generations``, priced per image by the model's per-request
price in the pricing file (a model without one is refused rather than given away)."""

from __future__ import annotations

from typing import Any

from routstr.billing.adapter import RequestFacts
from routstr.billing.adapters.common import require_model
from routstr.billing.adapters.unstreamed import Unstreamed, per_request
from routstr.core.errors import InvalidRequest
from routstr.core.usage import Usage

MAX_IMAGES = 10


class ImageGenerations(Unstreamed):
    upstream_path = "/images/generations"

    def inspect(self, body: dict[str, Any], raw_len: int) -> RequestFacts:
        model = require_model(body)
        if not isinstance(body.get("prompt"), str) or not body["prompt"]:
            raise InvalidRequest("'prompt' is required and must be a string", details={"param": "prompt"})
        n = body.get("n", 1)
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_IMAGES:
            raise InvalidRequest(f"'n' must be between 1 and {MAX_IMAGES}", details={"param": "n"})
        if body.get("stream"):
            raise InvalidRequest("image generation is not streamed by this node", details={"param": "stream"})
        return per_request(model, n)

    def usage(self, response: dict[str, Any]) -> Usage | None:
        data = response.get("data")
        return Usage(0, 0, requests=len(data)) if isinstance(data, list) else None  # the images delivered
