"""Models and providers: the shipped catalog with the user's config merged over it."""

from tollway.catalog.index import Catalog, build_catalog

__all__ = ["Catalog", "build_catalog"]
