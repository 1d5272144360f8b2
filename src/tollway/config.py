"""Settings: YAML + environment, parsed once at start into frozen objects.

Everything downstream receives a :class:`Settings` explicitly; nothing reads the
environment or the file again mid-request.  Unknown keys are errors, and every error
names the offending key and how to fix it.

The provider/model/endpoint shapes here are shared with the shipped catalog
(``tollway.catalog``): the catalog's data files use the same fields, and a user's config
is merged over it (see :func:`tollway.catalog.merge.merge_catalog`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from tollway.process_tuning import MALLOC_KEEP_MAX

DEFAULT_CONFIG_FILE = "tollway.yaml"
DEFAULT_DATABASE = "sqlite:///./tollway.db"

WireKind = Literal["openai", "anthropic", "gemini"]


class ConfigError(Exception):
    """The configuration is invalid; the message names the key and the fix."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class Pricing(_Frozen):
    """USD per million tokens.  Decimal, so costs are exact."""

    prompt: Decimal = Decimal(0)
    completion: Decimal = Decimal(0)
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    reasoning: Decimal | None = None  # defaults to the completion price
    request: Decimal = Decimal(0)  # flat USD per request

    @field_validator("prompt", "completion", "cache_read", "cache_write", "reasoning", "request")
    @classmethod
    def _non_negative(cls, value: Decimal | None) -> Decimal | None:
        if value is not None and value < 0:
            raise ValueError("prices must be >= 0 (USD per million tokens)")
        return value


class EndpointConfig(_Frozen):
    """One model at one provider."""

    provider: str
    model: str  # the upstream's own model name
    pricing: Pricing = Field(default_factory=Pricing)
    context_length: int | None = None
    max_output_tokens: int | None = None
    quantization: str | None = None
    supports_tools: bool = True
    supported_parameters: tuple[str, ...] | None = None
    hosting_country: str | None = None  # ISO 3166 alpha-2; defaults to the provider's
    data_retention: bool | None = None  # None: inherit from the provider
    trains_on_data: bool | None = None
    price_source: str | None = None
    price_date: date | None = None
    disabled: bool = False


class ArchitectureInfo(_Frozen):
    kind: Literal["dense", "moe", "unknown"] = "unknown"
    total_params_b: Decimal | None = None
    active_params_b: Decimal | None = None
    source: str | None = None


class ModelConfig(_Frozen):
    """A model as clients name it (``author/slug``) and where it can be served."""

    id: str
    name: str | None = None
    author: str | None = None
    author_country: str | None = None  # ISO 3166 alpha-2 of the model's maker
    open_weights: bool | None = None
    architecture: ArchitectureInfo = Field(default_factory=ArchitectureInfo)
    context_length: int | None = None
    input_modalities: tuple[str, ...] = ("text",)
    output_modalities: tuple[str, ...] = ("text",)
    tokenizer: str | None = None
    release_date: date | None = None
    description: str | None = None
    hugging_face_id: str | None = None
    endpoints: tuple[EndpointConfig, ...] = ()
    disabled: bool = False

    @field_validator("id")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9._~-]+/[A-Za-z0-9._~:-]+", value):
            raise ValueError(f"model id {value!r} must look like 'author/slug' (OpenRouter's naming)")
        return value

    @property
    def author_name(self) -> str:
        return self.author or self.id.split("/", 1)[0]


class ProviderConfig(_Frozen):
    """An upstream API.  ``kind`` is the wire format, not the vendor."""

    name: str
    kind: WireKind = "openai"
    base_url: str
    api_key: SecretStr | None = None
    api_key_env: str | None = None  # catalog providers: the env var that holds the key
    headers: Mapping[str, str] = Field(default_factory=dict)
    display_name: str | None = None
    hosting_country: str | None = None
    data_retention: bool = False
    trains_on_data: bool = False
    local: bool = False  # a local server (vLLM, Ollama...) needs no key
    disabled: bool = False
    first_party_for: tuple[str, ...] = ()  # model authors whose own API this is (catalog)
    notes: str | None = None  # e.g. where the data policy / hosting country comes from
    # /v1/responses: "translate" to this wire format, or "native" (it speaks Responses itself)
    responses: Literal["translate", "native"] = "translate"

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^https?://", value):
            raise ValueError(f"base_url {value!r} must start with http:// or https://")
        return value.rstrip("/")

    @property
    def active(self) -> bool:
        """A provider is usable when enabled and it has a key (or needs none)."""
        return not self.disabled and (self.local or self.api_key is not None)


class TimeoutSettings(_Frozen):
    """Seconds.  Per attempt: connect, first byte, idle gap between stream chunks."""

    connect: float = Field(default=10.0, gt=0)
    first_byte: float = Field(default=120.0, gt=0)
    idle: float = Field(default=120.0, gt=0)
    total: float = Field(default=600.0, gt=0)


class LedgerSettings(_Frozen):
    batch_size: int = Field(default=500, ge=1)
    # How long the writer gathers records before committing a batch (sooner once batch_size
    # are waiting).  A commit costs the writer's thread ~3.5 ms of CPU plus ~30 us a record
    # (a dozen rollup statements), so at ~1,000 requests/s 250 ms batches cost 7-13 % less gateway
    # CPU per request than 50 ms ones (measured side by side; README, "Eighth round").  A
    # crash loses nothing more with ``write_ahead`` (the default): that log holds every record
    # until it is committed.  Without it, a crash loses up to this long of traffic.
    flush_interval_ms: int = Field(default=250, ge=1)
    # Where records wait while the database is unreachable; default: next to a SQLite
    # ledger, else under ~/.local/state/tollway/journal (see tollway.ledger.journal).
    journal_dir: str | None = None
    # When nothing can be metered (writer dead, or database down and journal unwritable):
    # refuse new requests with 503, or serve them unmetered.
    on_failure: Literal["refuse", "serve"] = "refuse"
    # Append every record to the journal (fsync'd, on a thread of its own) before the
    # writer commits it, so a SIGKILL loses almost nothing (see tollway.ledger.ahead).
    write_ahead: bool = True


class ServerSettings(_Frozen):
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    key_cache_ttl_s: float = Field(default=2.0, ge=0)
    # During a database outage, keys looked up within this many seconds (past their TTL) are
    # still served from the cache; 0 turns it off.  A revocation made just before an outage can
    # take up to this long to apply.
    key_cache_stale_s: float = Field(default=60.0, ge=0, le=3600)
    # Freed memory glibc's malloc keeps for the next request instead of giving it back to
    # the kernel (tollway.process_tuning: no page faults per large request); 0 keeps glibc's
    # defaults.  At most 32 MiB, glibc's limit.
    malloc_keep_bytes: int = Field(default=MALLOC_KEEP_MAX, ge=0, le=MALLOC_KEEP_MAX)


class RoutingSettings(_Frozen):
    """How requests are spread over endpoints and how failing endpoints are avoided.

    See ``tollway.routing``: price-weighted load balancing, the circuit breaker, the
    30-second outage window and sticky sessions for prompt caches.
    """

    seed: int | None = None  # seeds the load-balancing randomness (tests, reproducible runs)
    sticky_ttl_s: float = Field(default=300.0, ge=0)  # 0 turns sticky routing off
    sticky_max_sessions: int = Field(default=100_000, ge=1)
    outage_window_s: float = Field(default=30.0, gt=0)
    outage_min_failures: int = Field(default=3, ge=1)
    outage_error_rate: float = Field(default=0.25, gt=0, le=1)
    breaker_failures: int = Field(default=5, ge=1)  # consecutive failures that open it
    breaker_error_rate: float = Field(default=0.5, gt=0, le=1)  # ...or this rate over the window
    breaker_window: int = Field(default=20, ge=2)  # outcomes the error rate is taken over
    breaker_min_samples: int = Field(default=10, ge=1)
    breaker_cooldown_s: float = Field(default=15.0, gt=0)  # open -> half-open (one probe)
    stats_samples: int = Field(default=512, ge=8)  # latency/throughput samples kept per endpoint
    redis_flush_s: float = Field(default=1.0, gt=0)  # shared health: publish/pull period


class LimitsSettings(_Frozen):
    """Credit reservations and rate limits (see ``tollway.limits``)."""

    # Output tokens reserved when neither the request (max_tokens) nor the endpoint says.
    default_max_output_tokens: int = Field(default=4096, ge=1)
    # Extra headroom on the prompt bound reserved (tollway.limits.capping: it already holds).
    prompt_estimate_margin_pct: int = Field(default=0, ge=0, le=1000)
    # How long a crashed replica's reservations hold credit; default: timeouts.total + 60 s.
    reservation_ttl_s: float | None = Field(default=None, gt=0)
    # Idle time after which Redis forgets a key's period counter (re-seeded from the ledger).
    counter_ttl_s: int = Field(default=8 * 86400, ge=3600)
    redis_timeout_s: float = Field(default=2.0, gt=0)
    redis_max_connections: int = Field(default=64, ge=1)  # per process; requests queue for one
    # Where settlements wait (fsynced) while the spend store is unreachable (tollway.limits.journal).
    settlement_journal_dir: str = ".tollway-journal"


class ResponsesSettings(_Frozen):
    """``/v1/responses`` state (see ``tollway.responses.store``)."""

    store_ttl_s: float = Field(default=30 * 86400, gt=0)  # how long stored responses are kept
    store_default: bool = True  # when a request omits ``store`` (OpenAI's default is true)


class ConsoleSettings(_Frozen):
    """The web console at ``/console`` (see ``tollway.console``)."""

    enabled: bool = True
    public_rankings: bool = False  # the rankings page (model-level data only) without logging in
    session_ttl_s: float = Field(default=12 * 3600, gt=0)  # a session's lifetime since log-in
    max_sessions: int = Field(default=10_000, ge=1)  # per process; the oldest go first
    rankings_cache_s: float = Field(default=30.0, ge=0)  # rankings answers reused per viewer and query; 0: off


class Settings(_Frozen):
    """The whole configuration, validated."""

    database: str = DEFAULT_DATABASE
    redis: str | None = None
    admin_key: SecretStr | None = None
    catalog: bool = True  # merge the shipped catalog under the user's entries
    # price/context updates written by `tollway catalog import`; default: catalog_overrides.yaml
    # next to the config file (see tollway.catalog.overrides)
    catalog_overrides: str | None = None
    providers: tuple[ProviderConfig, ...] = ()
    models: tuple[ModelConfig, ...] = ()
    timeouts: TimeoutSettings = Field(default_factory=TimeoutSettings)
    ledger: LedgerSettings = Field(default_factory=LedgerSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    responses: ResponsesSettings = Field(default_factory=ResponsesSettings)
    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    source_path: str | None = Field(default=None, exclude=True)

    @field_validator("redis")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^(redis|rediss|unix)://", value):
            raise ValueError(f"redis {value!r} must be a URL such as redis://127.0.0.1:6379/0 "
                             "(or rediss://, unix://), or remove the key to run without Redis")
        return value

    @field_validator("database")
    @classmethod
    def _db_url(cls, value: str) -> str:
        if not re.match(r"^(sqlite|postgresql)(\+\w+)?://", value):
            raise ValueError(
                f"database {value!r} must be sqlite:///path/to/file.db or postgresql://user@host:port/db"
            )
        return value


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate_env(value: Any, env: Mapping[str, str], path: str = "") -> Any:
    """Replace ``${VAR}`` (or ``${VAR:-default}``) in every string of a parsed YAML tree."""
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(
                f"{path or 'config'}: environment variable {name} is not set; "
                f"export {name}=... or write the value in the config"
            )

        return _ENV_REF.sub(substitute, value)
    if isinstance(value, list):
        return [interpolate_env(v, env, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: interpolate_env(v, env, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    return value


def _format_validation_error(exc: ValidationError, source: str) -> str:
    lines = [f"invalid configuration in {source}:"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            msg = "unknown key; remove it or check its spelling"
        elif err["type"] == "missing":
            msg = "required key is missing; add it"
        else:
            msg = err["msg"]
        lines.append(f"  {loc}: {msg}")
    return "\n".join(lines)


def parse_settings(raw: Mapping[str, Any] | None, *, source: str = "config",
                   env: Mapping[str, str] | None = None) -> Settings:
    """Validate an already-loaded YAML mapping (after env interpolation)."""
    environ = os.environ if env is None else env
    data = interpolate_env(_defer_unset_provider_keys(dict(raw or {}), environ), environ)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, source)) from None
    _check_references(settings, source)
    return settings.model_copy(update={"source_path": source})


def _defer_unset_provider_keys(raw: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """``api_key: ${VAR}`` with VAR unset leaves that provider inactive instead of failing.

    Commands that never call a provider (``keys``, ``report``, ``usage``) then work without
    its secret, and the provider behaves like a catalog provider whose key is not exported:
    listed as inactive, naming the variable to set (``api_key_env``).
    """
    providers = raw.get("providers")
    if not isinstance(providers, list):
        return raw
    deferred = []
    for entry in providers:
        key = entry.get("api_key") if isinstance(entry, dict) else None
        match = _ENV_REF.fullmatch(key) if isinstance(key, str) else None
        if match is not None and match.group(2) is None and match.group(1) not in env:
            entry = {k: v for k, v in entry.items() if k != "api_key"}
            entry.setdefault("api_key_env", match.group(1))
        deferred.append(entry)
    return {**raw, "providers": deferred}


def _check_references(settings: Settings, source: str) -> None:
    names = [p.name for p in settings.providers]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise ConfigError(f"{source}: providers: duplicate name(s) {sorted(dupes)}; names must be unique")
    ids = [m.id for m in settings.models]
    dupes = {i for i in ids if ids.count(i) > 1}
    if dupes:
        raise ConfigError(f"{source}: models: duplicate id(s) {sorted(dupes)}; ids must be unique")


def resolve_config_path(path: str | os.PathLike[str] | None) -> Path | None:
    """``--config`` if given, else ``./tollway.yaml`` if present, else None (defaults)."""
    if path is not None:
        return Path(path)
    default = Path(DEFAULT_CONFIG_FILE)
    return default if default.exists() else None


def load_settings(path: str | os.PathLike[str] | None = None,
                  env: Mapping[str, str] | None = None) -> Settings:
    """Read the YAML file (or the defaults) and validate it once."""
    resolved = resolve_config_path(path)
    if resolved is None:
        return parse_settings({}, source="(defaults)", env=env)
    try:
        text = resolved.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {resolved} not found; pass --config PATH to an existing file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{resolved}: not UTF-8 text (invalid byte at offset {exc.start}); "
                          "save the file as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"config file {resolved} cannot be read: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{resolved}: not valid YAML: {exc}") from None
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"{resolved}: the top level must be a mapping of keys (database, providers, models...)")
    return parse_settings(raw, source=str(resolved), env=env)
