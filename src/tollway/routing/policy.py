"""Where data may go and whose models may run: a key's policy, narrowed by a request.

A key's ``policy`` (JSON in the ledger) is validated by :class:`KeyPolicy`.  A request may
add the same restrictions in its ``provider`` object (tollway extension fields); the two
are combined by :meth:`KeyPolicy.narrow`, which can only ever make the result stricter:
allowed sets intersect, denied sets add up, ``no_data_retention`` is sticky, price
ceilings take the lower value.  A company that must keep data in the EU sets it once on
the key and no request can route around it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

# Country groups accepted wherever a country code is: compliance rules are usually
# written for a bloc, not a list of 27 codes.
COUNTRY_GROUPS: dict[str, frozenset[str]] = {
    "EU": frozenset({"AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE",
                     "IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE"}),
    "EEA": frozenset({"AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE",
                      "IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE",
                      "IS", "LI", "NO"}),
}


class PolicyError(ValueError):
    """A policy is malformed; the message names the field and the fix."""


def expand_countries(values: Any, field: str) -> frozenset[str]:
    """ISO 3166 alpha-2 codes (any case) and group names (EU, EEA) -> a set of codes."""
    if isinstance(values, str):
        values = [v for v in values.split(",") if v.strip()]
    if not isinstance(values, list | tuple | set | frozenset):
        raise PolicyError(f"{field} must be a list of ISO 3166 alpha-2 country codes, e.g. [\"DE\", \"FR\"]")
    out: set[str] = set()
    for value in values:
        code = value.strip().upper() if isinstance(value, str) else ""
        if code in COUNTRY_GROUPS:
            out |= COUNTRY_GROUPS[code]
        elif len(code) == 2 and code.isalpha():
            out.add(code)
        else:
            raise PolicyError(f"{field}: {value!r} is not an ISO 3166 alpha-2 country code "
                              f"(e.g. US, CN, DE) nor one of {sorted(COUNTRY_GROUPS)}")
    return frozenset(out)


class MaxPrice(BaseModel):
    """Price ceiling in USD per million tokens (OpenRouter's ``max_price`` units)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    prompt: Decimal | None = Field(default=None, ge=0)
    completion: Decimal | None = Field(default=None, ge=0)
    request: Decimal | None = Field(default=None, ge=0)  # flat USD per request


class KeyPolicy(BaseModel):
    """The routing restrictions a key (or a request, within its key) imposes.

    Unknown hosting or origin countries never pass an ``allowed_*`` list: an endpoint
    whose country is not known cannot be shown to be inside it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    allowed_hosting_countries: frozenset[str] | None = None
    denied_hosting_countries: frozenset[str] = frozenset()
    allowed_origin_countries: frozenset[str] | None = None
    denied_origin_countries: frozenset[str] = frozenset()
    no_data_retention: bool = False
    max_price: MaxPrice = Field(default_factory=MaxPrice)

    @field_validator("allowed_hosting_countries", "allowed_origin_countries", mode="before")
    @classmethod
    def _allowed(cls, value: Any, info: Any) -> frozenset[str] | None:
        return None if value is None else expand_countries(value, info.field_name)

    @field_validator("denied_hosting_countries", "denied_origin_countries", mode="before")
    @classmethod
    def _denied(cls, value: Any, info: Any) -> frozenset[str]:
        return frozenset() if value is None else expand_countries(value, info.field_name)

    @property
    def is_empty(self) -> bool:
        return self is _EMPTY or self == _EMPTY

    def narrow(self, other: KeyPolicy) -> KeyPolicy:
        """The stricter combination of two policies (never wider than either)."""
        if other.is_empty:
            return self
        if self.is_empty:
            return other
        return KeyPolicy(
            allowed_hosting_countries=_intersect(self.allowed_hosting_countries,
                                                 other.allowed_hosting_countries),
            denied_hosting_countries=self.denied_hosting_countries | other.denied_hosting_countries,
            allowed_origin_countries=_intersect(self.allowed_origin_countries,
                                                other.allowed_origin_countries),
            denied_origin_countries=self.denied_origin_countries | other.denied_origin_countries,
            no_data_retention=self.no_data_retention or other.no_data_retention,
            max_price=MaxPrice(prompt=_lower(self.max_price.prompt, other.max_price.prompt),
                               completion=_lower(self.max_price.completion, other.max_price.completion),
                               request=_lower(self.max_price.request, other.max_price.request)),
        )

    def to_json(self) -> dict[str, Any]:
        """The policy as stored on a key: only the fields that restrict something."""
        out: dict[str, Any] = {}
        for name in ("allowed_hosting_countries", "allowed_origin_countries"):
            value = getattr(self, name)
            if value is not None:
                out[name] = sorted(value)
        for name in ("denied_hosting_countries", "denied_origin_countries"):
            if getattr(self, name):
                out[name] = sorted(getattr(self, name))
        if self.no_data_retention:
            out["no_data_retention"] = True
        prices = {k: str(v) for k, v in self.max_price.model_dump().items() if v is not None}
        if prices:
            out["max_price"] = prices
        return out


_EMPTY = KeyPolicy()


def _intersect(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    if a is None:
        return b
    if b is None:
        return a
    return a & b


def _lower(a: Decimal | None, b: Decimal | None) -> Decimal | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def parse_policy(raw: Any, where: str = "policy") -> KeyPolicy:
    """Validate a policy mapping; :class:`PolicyError` names the bad field."""
    if raw is None or raw == {}:
        return _EMPTY
    if not isinstance(raw, dict):
        raise PolicyError(f"{where} must be a JSON object")
    try:
        return KeyPolicy.model_validate(raw)
    except PolicyError as exc:
        raise PolicyError(f"{where}: {exc}") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        msg = "unknown field; known: " + ", ".join(KeyPolicy.model_fields) \
            if err["type"] == "extra_forbidden" else err["msg"]
        raise PolicyError(f"{where}.{loc}: {msg}") from None


def empty_policy() -> KeyPolicy:
    return _EMPTY
