"""One module per wire format.  Vendors are catalog rows that name a ``kind``."""

from __future__ import annotations

from tollway.adapters.base import Adapter
from tollway.adapters.openai import OpenAIAdapter


def adapter_registry() -> dict[str, Adapter]:
    """Wire kind -> adapter instance.  Adapters are stateless; one of each serves all providers."""
    registry: dict[str, Adapter] = {"openai": OpenAIAdapter()}
    try:  # the Anthropic and Gemini adapters register here once present
        from tollway.adapters.anthropic import AnthropicAdapter

        registry["anthropic"] = AnthropicAdapter()
    except ImportError:
        pass
    try:
        from tollway.adapters.gemini import GeminiAdapter

        registry["gemini"] = GeminiAdapter()
    except ImportError:
        pass
    return registry
