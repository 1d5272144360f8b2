"""What ``POST /v1/embeddings`` checks and estimates before any upstream is called."""

from __future__ import annotations

from typing import Any

from tollway.errors import BadRequest
from tollway.metering import estimate_tokens_from_bytes


def validate_embeddings_body(body: dict[str, Any]) -> None:
    """``model`` and ``input`` (a string, a list of strings, or token-id lists), else a 400."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise BadRequest("'model' is required: name an embedding model id such as "
                         "'openai/text-embedding-3-small'", code=400)
    value = body.get("input")
    if isinstance(value, str) and value:
        return
    if isinstance(value, list) and value and all(
            isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool))
            or (isinstance(v, list) and all(isinstance(t, int) for t in v)) for v in value):
        return
    raise BadRequest("'input' must be a non-empty string or list of strings", code=400)


def estimate_input_tokens(body: dict[str, Any]) -> int:
    """A local count for upstreams that report no usage (~4 bytes a token; token ids count 1)."""
    value = body.get("input")
    items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    total = 0
    for item in items:
        if isinstance(item, str):
            total += estimate_tokens_from_bytes(len(item.encode("utf-8", "replace")))
        elif isinstance(item, list):
            total += len(item)
        else:
            total += 1
    return total
