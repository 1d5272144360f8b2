"""The request's ``provider`` object (OpenRouter's field names and meaning), parsed once.

OpenRouter fields: ``order``, ``allow_fallbacks``, ``require_parameters``,
``data_collection``, ``zdr``, ``only``, ``ignore``, ``quantizations``, ``sort``
(``price`` | ``throughput`` | ``latency`` or ``{by, partition}``), ``max_price``,
``preferred_min_throughput``, ``preferred_max_latency``.  The model suffixes ``:nitro``
and ``:floor`` set ``sort`` to throughput and price.

tollway extensions (same names as a key's policy, see :mod:`tollway.routing.policy`):
``allowed_hosting_countries`` (alias ``hosting_countries``), ``denied_hosting_countries``,
``allowed_origin_countries`` (alias ``origin_countries``), ``denied_origin_countries``,
``no_data_retention``.  They narrow the key's policy, never widen it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from tollway.errors import BadRequest
from tollway.routing.policy import KeyPolicy, PolicyError, empty_policy, parse_policy

SORTS = ("price", "throughput", "latency")
PARTITIONS = ("model", "none")
PERCENTILES = ("p50", "p75", "p90", "p99")
SUFFIX_SORTS = {"nitro": "throughput", "floor": "price"}

_OPENROUTER_FIELDS = frozenset({
    "order", "allow_fallbacks", "require_parameters", "data_collection", "zdr", "only", "ignore",
    "quantizations", "sort", "max_price", "preferred_min_throughput", "preferred_max_latency",
    "enforce_distillable_text",
})
_POLICY_ALIASES = {"hosting_countries": "allowed_hosting_countries",
                   "origin_countries": "allowed_origin_countries"}
_POLICY_FIELDS = frozenset({"allowed_hosting_countries", "denied_hosting_countries",
                            "allowed_origin_countries", "denied_origin_countries", "no_data_retention"})


@dataclass(frozen=True, slots=True)
class Preferences:
    """What the caller asked of routing.  The default instance asks nothing."""

    order: tuple[str, ...] = ()
    allow_fallbacks: bool = True
    require_parameters: bool = False
    deny_data_collection: bool = False
    zdr: bool = False
    only: frozenset[str] | None = None
    ignore: frozenset[str] = frozenset()
    quantizations: frozenset[str] | None = None
    sort: str | None = None
    partition: str = "model"
    max_prompt: Decimal | None = None
    max_completion: Decimal | None = None
    max_request: Decimal | None = None
    min_throughput: dict[str, float] | None = None  # percentile -> tokens/s
    max_latency: dict[str, float] | None = None  # percentile -> seconds
    policy: KeyPolicy = field(default_factory=empty_policy)

    @property
    def load_balance(self) -> bool:
        """OpenRouter: setting ``sort`` or ``order`` turns price-weighted balancing off."""
        return self.sort is None and not self.order


DEFAULT = Preferences()


def _bad(message: str) -> BadRequest:
    return BadRequest(f"provider.{message}", code=400)


def _slugs(value: Any, field: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _bad(f"{field} must be a list of provider slugs, e.g. [\"deepinfra\", \"together\"]")
    return tuple(v.lower() for v in value)


def _bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise _bad(f"{field} must be true or false")
    return value


def _price(value: Any, field: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _bad(f"max_price.{field} must be a number (USD per million tokens)")
    try:
        price = Decimal(str(value))
    except InvalidOperation:
        raise _bad(f"max_price.{field} must be a number (USD per million tokens)") from None
    if price < 0:
        raise _bad(f"max_price.{field} must be >= 0")
    return price


def _threshold(value: Any, field: str) -> dict[str, float] | None:
    """A number (the p50 cut-off) or ``{p50, p75, p90, p99}``."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {"p50": float(value)}
    if isinstance(value, dict) and value and all(
            k in PERCENTILES and isinstance(v, int | float) and not isinstance(v, bool)
            for k, v in value.items()):
        return {k: float(v) for k, v in value.items()}
    raise _bad(f"{field} must be a number or an object with keys among {list(PERCENTILES)}")


def _sort(value: Any) -> tuple[str | None, str]:
    if value is None:
        return None, "model"
    if isinstance(value, str):
        if value not in SORTS:
            raise _bad(f"sort must be one of {list(SORTS)} or {{by, partition}}, not {value!r}")
        return value, "model"
    if isinstance(value, dict):
        by, partition = value.get("by"), value.get("partition", "model")
        extra = set(value) - {"by", "partition"}
        if by not in SORTS or partition not in PARTITIONS or extra:
            raise _bad(f"sort must be {{\"by\": one of {list(SORTS)}, \"partition\": one of "
                       f"{list(PARTITIONS)}}}")
        return str(by), str(partition)
    raise _bad("sort must be a string or an object {by, partition}")


def parse_preferences(body: dict[str, Any], suffix_sort: str | None = None) -> Preferences:
    """``body["provider"]`` as :class:`Preferences`; a clear 400 naming any bad field."""
    raw = body.get("provider")
    if raw is None:
        return DEFAULT if suffix_sort is None else Preferences(sort=suffix_sort)
    if not isinstance(raw, dict):
        raise BadRequest("'provider' must be an object (OpenRouter's provider preferences)", code=400)
    unknown = set(raw) - _OPENROUTER_FIELDS - _POLICY_FIELDS - set(_POLICY_ALIASES)
    if unknown:
        raise _bad(f"{sorted(unknown)[0]} is not a provider preference; known: "
                   f"{', '.join(sorted(_OPENROUTER_FIELDS | _POLICY_FIELDS | set(_POLICY_ALIASES)))}")
    sort, partition = _sort(raw.get("sort"))
    collection = raw.get("data_collection", "allow")
    if collection not in ("allow", "deny"):
        raise _bad("data_collection must be \"allow\" or \"deny\"")
    max_price = raw.get("max_price") or {}
    if not isinstance(max_price, dict) or set(max_price) - {"prompt", "completion", "request", "image"}:
        raise _bad("max_price must be an object with prompt, completion (USD per million tokens), request")
    quantizations = raw.get("quantizations")
    policy_raw = {_POLICY_ALIASES.get(k, k): v for k, v in raw.items()
                  if k in _POLICY_FIELDS or k in _POLICY_ALIASES}
    try:
        policy = parse_policy(policy_raw, "provider")
    except PolicyError as exc:
        raise BadRequest(str(exc), code=400) from None
    return Preferences(
        order=_slugs(raw["order"], "order") if raw.get("order") is not None else (),
        allow_fallbacks=_bool(raw.get("allow_fallbacks", True), "allow_fallbacks"),
        require_parameters=_bool(raw.get("require_parameters", False), "require_parameters"),
        deny_data_collection=collection == "deny",
        zdr=_bool(raw.get("zdr") or False, "zdr"),
        only=frozenset(_slugs(raw["only"], "only")) if raw.get("only") is not None else None,
        ignore=frozenset(_slugs(raw["ignore"], "ignore")) if raw.get("ignore") is not None else frozenset(),
        quantizations=frozenset(_slugs(quantizations, "quantizations"))
        if quantizations is not None else None,
        sort=sort or suffix_sort, partition=partition,
        max_prompt=_price(max_price.get("prompt"), "prompt"),
        max_completion=_price(max_price.get("completion"), "completion"),
        max_request=_price(max_price.get("request"), "request"),
        min_throughput=_threshold(raw.get("preferred_min_throughput"), "preferred_min_throughput"),
        max_latency=_threshold(raw.get("preferred_max_latency"), "preferred_max_latency"),
        policy=policy,
    )
