"""Usage analytics: read-only queries over the rollups, what-if pricing, imports, charts."""
