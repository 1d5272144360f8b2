"""Derived dimensions: what a rollup's model, provider or key stands for in a report.

The rollups store only what a generation carries (model id, provider, app, key).  Author,
origin, open weights and hosting country come from the catalog at report time, so fixing
a catalog fact corrects every past report; the key owner's country comes from ``keys``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from sqlalchemy import Connection, select

from tollway.analytics.origins import UNKNOWN, author_of, country_of_author, find_model
from tollway.catalog.index import Catalog
from tollway.config import ModelConfig, ProviderConfig
from tollway.ledger import schema

# Report dimension -> the rollup column it is derived from.
MODEL_DIMENSIONS = ("model", "author", "origin", "weights", "provider", "provider-country")
AUDIENCE_DIMENSIONS = ("app", "key", "user-country")
DIMENSIONS = MODEL_DIMENSIONS + AUDIENCE_DIMENSIONS
USER_DIMENSIONS = ("key", "user-country")  # reports count distinct users (keys) for these
SOURCE_COLUMN: Mapping[str, str] = MappingProxyType({
    "model": "model", "author": "model", "origin": "model", "weights": "model",
    "provider": "provider", "provider-country": "provider",
    "app": "app", "key": "key_id", "user-country": "key_id",
})
NONE_LABEL = "(none)"


@dataclass(frozen=True, slots=True)
class Attribution:
    """Maps raw rollup values to report keys; built once per report."""

    models: Mapping[str, ModelConfig] = field(default_factory=dict)
    providers: Mapping[str, ProviderConfig] = field(default_factory=dict)
    key_countries: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, conn: Connection | None, catalog: Catalog | None, *, with_keys: bool) -> Attribution:
        """Read the catalog and (when the report needs it) the small ``keys`` table."""
        countries: dict[str, str] = {}
        if with_keys and conn is not None:
            for key_id, country in conn.execute(select(schema.keys.c.id, schema.keys.c.country)):
                countries[str(key_id)] = (country or UNKNOWN).upper()
        if catalog is None:
            return cls(key_countries=countries)
        return cls(models=catalog.models, providers=catalog.providers, key_countries=countries)

    def author(self, model_id: str) -> str:
        found = find_model(self.models, model_id)
        if found is not None and found.author:
            return found.author
        return author_of(model_id)

    def origin(self, model_id: str) -> str:
        """The maker's country: the catalog's ``author_country``, else the author-prefix table."""
        found = find_model(self.models, model_id)
        if found is not None and found.author_country:
            return found.author_country.upper()
        return country_of_author(self.author(model_id))

    def weights(self, model_id: str) -> str:
        found = find_model(self.models, model_id)
        if found is None or found.open_weights is None:
            return "unknown"
        return "open" if found.open_weights else "closed"

    def provider_country(self, provider: str) -> str:
        found = self.providers.get(provider)
        return (found.hosting_country or UNKNOWN).upper() if found is not None else UNKNOWN

    def user_country(self, key_id: str) -> str:
        return self.key_countries.get(key_id, UNKNOWN) if key_id else UNKNOWN

    def resolver(self, by: str) -> Callable[[str], str]:
        """The function from the raw column value to the report key for dimension ``by``."""
        resolvers: dict[str, Callable[[str], str]] = {
            "model": _plain, "provider": _plain, "app": _plain, "key": _plain,
            "author": self.author, "origin": self.origin, "weights": self.weights,
            "provider-country": self.provider_country, "user-country": self.user_country,
        }
        return resolvers[by]


def _plain(value: str) -> str:
    return value or NONE_LABEL
