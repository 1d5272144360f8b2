"""Choosing an endpoint to quote a model at, and pricing a workload across models.

Shared by ``tollway models list/compare`` and the OpenRouter-shaped ``/api/v1/models``
(its ``pricing`` and ``top_provider`` describe the endpoint chosen here).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from tollway.catalog.index import Catalog
from tollway.config import EndpointConfig, ModelConfig, ProviderConfig

MAKER = "maker"  # --provider maker: the model author's own API


@dataclass(frozen=True, slots=True)
class Workload:
    """A token mix: ``input`` parts of prompt tokens per ``output`` parts of completion tokens."""

    input: Decimal = Decimal(1)
    output: Decimal = Decimal(1)

    @classmethod
    def parse(cls, ratio: str) -> Workload:
        """``"3:1"`` -> 3 input tokens per output token."""
        left, sep, right = ratio.partition(":")
        try:
            parts = Decimal(left), Decimal(right if sep else "1")
        except ArithmeticError:
            raise ValueError(f"input ratio {ratio!r} must look like 3:1") from None
        if parts[0] < 0 or parts[1] < 0 or parts[0] + parts[1] == 0:
            raise ValueError(f"input ratio {ratio!r} needs non-negative parts, not both zero")
        return cls(*parts)

    def blended(self, endpoint: EndpointConfig) -> Decimal:
        """USD per million tokens of this mix at the endpoint's list prices."""
        p = endpoint.pricing
        return (self.input * p.prompt + self.output * p.completion) / (self.input + self.output)


@dataclass(frozen=True, slots=True)
class Choice:
    endpoint: EndpointConfig
    provider: ProviderConfig | None
    active: bool


def pick_endpoint(
    catalog: Catalog, model: ModelConfig, *, provider: str | None = None, workload: Workload | None = None
) -> Choice | None:
    """The endpoint to quote ``model`` at.

    With ``provider``: that provider's endpoint (``"maker"``: the author's own API).  Otherwise
    the cheapest active endpoint for the workload, else the cheapest listed one.  Local servers
    only count when active: their price of 0 is not a price anyone lists.
    """
    mix = workload or Workload()
    options = []
    for endpoint in model.endpoints:
        if endpoint.disabled:
            continue
        prov = catalog.providers.get(endpoint.provider)
        active = prov is not None and prov.active
        if _eligible(model, endpoint, prov, active, provider):
            options.append(Choice(endpoint, prov, active))
    if not options:
        return None
    pool = [c for c in options if c.active] or options
    return min(pool, key=lambda c: (mix.blended(c.endpoint), c.endpoint.provider))


def _eligible(
    model: ModelConfig,
    endpoint: EndpointConfig,
    prov: ProviderConfig | None,
    active: bool,
    wanted: str | None,
) -> bool:
    if wanted == MAKER:
        return prov is not None and model.author_name in prov.first_party_for
    if wanted is not None:
        return endpoint.provider == wanted
    return not (prov is not None and prov.local and not active)


@dataclass(frozen=True, slots=True)
class CompareRow:
    model: ModelConfig
    choice: Choice | None
    blended: Decimal | None
    # this model's price / the cheapest model's price (None when either is unknown or zero)
    input_ratio: Decimal | None = None
    output_ratio: Decimal | None = None
    blended_ratio: Decimal | None = None


def _ratio(value: Decimal, base: Decimal) -> Decimal | None:
    return value / base if base > 0 else None


def compare(
    catalog: Catalog, models: Sequence[ModelConfig], workload: Workload, provider: str | None = None
) -> list[CompareRow]:
    """Price the same workload on each model; ratios are relative to the cheapest of them."""
    picked = [(m, pick_endpoint(catalog, m, provider=provider, workload=workload)) for m in models]
    priced = [(m, c, workload.blended(c.endpoint)) for m, c in picked if c is not None]
    if not priced:
        return [CompareRow(m, None, None) for m in models]
    _, base_choice, base_blended = min(priced, key=lambda row: row[2])
    base = base_choice.endpoint.pricing
    rows = []
    for model, choice in picked:
        if choice is None:
            rows.append(CompareRow(model, None, None))
            continue
        p = choice.endpoint.pricing
        rows.append(
            CompareRow(
                model,
                choice,
                workload.blended(choice.endpoint),
                input_ratio=_ratio(p.prompt, base.prompt),
                output_ratio=_ratio(p.completion, base.completion),
                blended_ratio=_ratio(workload.blended(choice.endpoint), base_blended),
            )
        )
    return rows
