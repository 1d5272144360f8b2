"""Usage + price -> cost, and the local token estimate used when an upstream reports none.

Cost is integer arithmetic end to end: prices (USD per million tokens, Decimal) are
turned once into integer femto-dollars per token (1e-15 USD), multiplied by integer
token counts, and rounded once per generation to nano-dollars (1e-9 USD), the ledger's
unit.  Any price with up to nine decimals per million tokens is therefore exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from tollway.config import Pricing
from tollway.ledger.bounds import token_count

NANO_PER_USD = 1_000_000_000
_FEMTO_PER_NANO = 1_000_000


@dataclass(slots=True)
class Usage:
    """Token counts of one generation, in OpenAI's convention.

    ``prompt_tokens`` includes ``cached_tokens`` and ``cache_write_tokens``;
    ``completion_tokens`` includes ``reasoning_tokens``.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def from_openai(cls, usage: dict[str, Any] | None) -> Usage | None:
        """Read an OpenAI ``usage`` object (also DeepSeek's and Moonshot's cache fields)."""
        if not isinstance(usage, dict):
            return None
        prompt = _int(usage.get("prompt_tokens"))
        completion = _int(usage.get("completion_tokens"))
        details = usage.get("prompt_tokens_details") or {}
        cached = _int(details.get("cached_tokens")) if isinstance(details, dict) else 0
        cache_write = _int(details.get("cache_write_tokens")) if isinstance(details, dict) else 0
        if not cached:
            # DeepSeek reports prompt_cache_hit_tokens; Moonshot cached_tokens at top level.
            cached = _int(usage.get("prompt_cache_hit_tokens")) or _int(usage.get("cached_tokens"))
        cdetails = usage.get("completion_tokens_details") or {}
        reasoning = _int(cdetails.get("reasoning_tokens")) if isinstance(cdetails, dict) else 0
        return cls(prompt, completion, min(cached, prompt), cache_write, min(reasoning, completion))


def _int(value: Any) -> int:
    return token_count(value)  # bounded where it enters: see tollway.ledger.bounds


def _femto_per_token(usd_per_mtok: Decimal) -> int:
    # USD per 1e6 tokens -> 1e-15 USD per token: multiply by 1e9.
    return int((usd_per_mtok * 1_000_000_000).to_integral_value(rounding=ROUND_HALF_EVEN))


@dataclass(frozen=True, slots=True)
class PriceTable:
    """An endpoint's prices, pre-scaled to integer femto-dollars per token."""

    prompt: int
    completion: int
    cache_read: int
    cache_write: int
    reasoning: int
    request_nano: int

    @classmethod
    def from_pricing(cls, pricing: Pricing) -> PriceTable:
        prompt = _femto_per_token(pricing.prompt)
        completion = _femto_per_token(pricing.completion)
        return cls(
            prompt=prompt,
            completion=completion,
            cache_read=prompt if pricing.cache_read is None else _femto_per_token(pricing.cache_read),
            cache_write=prompt if pricing.cache_write is None else _femto_per_token(pricing.cache_write),
            reasoning=completion if pricing.reasoning is None else _femto_per_token(pricing.reasoning),
            request_nano=int((pricing.request * NANO_PER_USD).to_integral_value(rounding=ROUND_HALF_EVEN)),
        )

    def split_nano(self, usage: Usage) -> tuple[int, int]:
        """``cost_nano`` split into (prompt side incl. any request fee, completion side).

        The two parts always add up to ``cost_nano(usage)`` exactly; only the prompt part
        is rounded on its own, the completion part is the remainder.
        """
        total = self.cost_nano(usage)
        cached = min(usage.cached_tokens, usage.prompt_tokens)
        writes = min(usage.cache_write_tokens, usage.prompt_tokens - cached)
        fresh = usage.prompt_tokens - cached - writes
        femto = fresh * self.prompt + cached * self.cache_read + writes * self.cache_write
        prompt = _round_femto(femto) + self.request_nano
        return prompt, total - prompt

    def cost_nano(self, usage: Usage) -> int:
        """Exact cost in nano-dollars: cached reads and cache writes at their own prices."""
        cached = min(usage.cached_tokens, usage.prompt_tokens)
        writes = min(usage.cache_write_tokens, usage.prompt_tokens - cached)
        fresh = usage.prompt_tokens - cached - writes
        reasoning = min(usage.reasoning_tokens, usage.completion_tokens)
        femto = (
            fresh * self.prompt
            + cached * self.cache_read
            + writes * self.cache_write
            + (usage.completion_tokens - reasoning) * self.completion
            + reasoning * self.reasoning
        )
        return _round_femto(femto) + self.request_nano


def _round_femto(femto: int) -> int:
    """Femto-dollars to nano-dollars, rounding half to even, once."""
    nano, rest = divmod(femto, _FEMTO_PER_NANO)
    if rest * 2 > _FEMTO_PER_NANO or (rest * 2 == _FEMTO_PER_NANO and nano % 2):
        nano += 1
    return nano


def nano_to_usd(nano: int) -> float:
    """For JSON output only (OpenRouter's ``usage.cost`` is a number); sums stay integer."""
    return nano / NANO_PER_USD


def nano_to_decimal(nano: int) -> Decimal:
    return Decimal(nano) / NANO_PER_USD


def usd_to_nano(usd: Decimal | str | int) -> int:
    return int((Decimal(usd) * NANO_PER_USD).to_integral_value(rounding=ROUND_HALF_EVEN))


def estimate_tokens_from_bytes(n_bytes: int) -> int:
    """~4 bytes per token for English and code (no tokenizer files are downloaded)."""
    return (n_bytes + 3) // 4 if n_bytes > 0 else 0


def _utf8_len(text: str) -> int:
    """UTF-8 bytes of ``text`` (ASCII, most prompts, counted without encoding a copy)."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "replace"))


def estimate_prompt_tokens(body: dict[str, Any]) -> int:
    """A local estimate of a chat request's prompt tokens, from its message text."""
    total = 0
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if not isinstance(message, dict):
                continue
            total += 4  # role and framing
            content = message.get("content")
            if isinstance(content, str):
                total += estimate_tokens_from_bytes(_utf8_len(content))
            elif isinstance(content, list):
                for part in content:
                    if isinstance(part, dict) and isinstance(part.get("text"), str):
                        total += estimate_tokens_from_bytes(_utf8_len(part["text"]))
                    elif isinstance(part, dict):
                        total += 85  # an image or other media part, at its smallest
            for call in message.get("tool_calls") or ():
                if isinstance(call, dict):
                    fn = call.get("function") or {}
                    total += estimate_tokens_from_bytes(len(str(fn.get("arguments", ""))))
    tools = body.get("tools")
    if isinstance(tools, list):
        total += estimate_tokens_from_bytes(len(str(tools)))
    return total
