"""The adapter contract: ``complete()`` and ``stream()``, both speaking OpenAI chat outward.

Every adapter takes an OpenAI chat-completions request body (already parsed, already
validated at the edge) and a :class:`Target` (which provider, which upstream model), and
returns OpenAI-shaped output, whatever its own wire format:

* ``complete()`` returns a :class:`Completion`: the ``chat.completion`` object (with
  tollway's id, model and provider already set) and the usage read from the upstream.
* ``stream()`` is an async iterator of bytes, each a run of complete OpenAI SSE events
  (``data: {chat.completion.chunk}\\n\\n``) with tollway's id, model and provider set.  It
  does *not* emit the final usage chunk nor ``[DONE]``: it records usage, finish reason
  and upstream id on the :class:`StreamState` it was given, and the caller
  (``tollway.streaming``) ends the stream, so billing can't be skipped.

Errors before the first byte raise :class:`tollway.errors.UpstreamError` (with
``retryable`` set); a failure after it raises :class:`MidStreamError`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import aiohttp

from tollway.adapters.http import ClientTimeouts, error_from_exception
from tollway.config import EndpointConfig, ModelConfig, ProviderConfig
from tollway.errors import UpstreamError
from tollway.ledger.bounds import bound_text
from tollway.metering import Usage


def upstream_text(column: str, value: Any) -> str | None:
    """A string the upstream sent (an id, a finish reason), bounded to its ledger column;
    None when it sent something else."""
    return bound_text(column, value) if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class Target:
    """One attempt's destination: a model at one provider's endpoint."""

    model: ModelConfig
    endpoint: EndpointConfig
    provider: ProviderConfig

    @property
    def label(self) -> str:
        return f"{self.model.id}@{self.provider.name}"


@dataclass(slots=True)
class CallContext:
    """What an adapter needs besides the body: ids to stamp and where/how to call."""

    generation_id: str
    model_id: str  # tollway's id, as the client named it
    created: int  # unix seconds
    session: aiohttp.ClientSession
    timeouts: ClientTimeouts
    extra_headers: dict[str, str] = field(default_factory=dict)
    # The stream's chunks are turned into another API's events (Anthropic's, Responses'),
    # which carry ids of their own: the chunks' ids and model need not be rewritten.
    translated: bool = False


@dataclass(slots=True)
class Completion:
    payload: dict[str, Any]
    usage: Usage | None
    finish_reason: str | None
    native_finish_reason: str | None
    upstream_id: str | None


@dataclass(slots=True)
class StreamState:
    """Filled in by ``stream()`` as the stream goes; read by the caller in its ``finally``."""

    usage: Usage | None = None
    # The usage so far counts the prompt but not yet the output (Anthropic's message_start
    # placeholder, Gemini's counts before the last chunk): a stream cut now is billed for
    # the text it sent (tollway.streaming.stream_usage).
    usage_partial: bool = False
    finish_reason: str | None = None
    native_finish_reason: str | None = None
    upstream_id: str | None = None
    first_byte_at: float | None = None
    # Relayed event bytes, kept so tokens can be counted locally when the upstream
    # reports no usage (or the client hangs up first).  Parsed only in that case.
    relayed: list[bytes] = field(default_factory=list)
    text_bytes: int = 0  # content bytes already counted by adapters that parse every chunk
    # Events relayed unparsed whose text an adapter counts only if the stream has to be billed
    # by estimate (the Anthropic pass-through's content deltas): bytes -> UTF-8 text bytes.
    uncounted: list[bytes] = field(default_factory=list)
    count_uncounted: Callable[[list[bytes]], int] | None = None

    def sent_text_bytes(self) -> int:
        """UTF-8 bytes of the text relayed so far, as far as the adapter counted it."""
        if self.uncounted and self.count_uncounted is not None:
            self.text_bytes += self.count_uncounted(self.uncounted)
            self.uncounted.clear()
        return self.text_bytes

    def mark_first_byte(self) -> None:
        if self.first_byte_at is None:
            self.first_byte_at = time.monotonic()


class MidStreamError(Exception):
    """The upstream failed after the first byte reached the client: no failover possible."""

    def __init__(self, message: str, *, provider: str, upstream_status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.upstream_status = upstream_status


def stream_broke(exc: BaseException, provider: str, started: bool) -> Exception:
    """The error for a transport failure while streaming: mid-stream once bytes reached the
    client (no failover), else an ordinary upstream error, eligible for failover."""
    if started:
        return MidStreamError(f"provider {provider} stream broke: {type(exc).__name__}", provider=provider)
    return error_from_exception(exc, provider)


def stream_truncated(provider: str, started: bool) -> Exception:
    """The error for an upstream that closed its stream before finishing it."""
    if started:
        return MidStreamError(f"provider {provider} closed the stream early", provider=provider)
    return UpstreamError(f"provider {provider} closed the stream without sending anything",
                         provider=provider, retryable=True)


@dataclass(slots=True)
class EmbeddingResult:
    """An OpenAI ``list`` of embeddings (tollway's model and provider set) and its usage."""

    payload: dict[str, Any]
    usage: Usage | None


@runtime_checkable
class Embedder(Protocol):
    """Optional: adapters whose wire format offers embeddings also implement ``embed()``."""

    async def embed(self, target: Target, body: dict[str, Any], ctx: CallContext) -> EmbeddingResult: ...


class Adapter(Protocol):
    kind: str

    async def complete(self, target: Target, body: dict[str, Any], ctx: CallContext) -> Completion: ...

    def stream(self, target: Target, body: dict[str, Any], ctx: CallContext,
               state: StreamState) -> AsyncIterator[bytes]: ...
