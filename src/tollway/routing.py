"""Request -> ordered list of attempts (model, endpoint, provider).

This is the gateway core's router: the requested model (and any ``models`` fallbacks) in
order, each model's active endpoints in catalog order.  Provider preferences, health and
price-weighted load balancing build on this same contract: ``plan()`` returns every
candidate, best first, and the caller tries them in order, keeping every failure.
"""

from __future__ import annotations

from typing import Any

from tollway.adapters.base import Target
from tollway.auth import Principal
from tollway.catalog import Catalog
from tollway.errors import BadRequest, ModelNotFound, NoEndpointAvailable, PermissionDenied


class Router:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def requested_models(self, body: dict[str, Any]) -> list[str]:
        """``model`` first, then ``models`` (OpenRouter's fallback list), without repeats."""
        names: list[str] = []
        model = body.get("model")
        if isinstance(model, str) and model:
            names.append(model)
        extra = body.get("models")
        if extra is not None:
            if not isinstance(extra, list) or not all(isinstance(m, str) for m in extra):
                raise BadRequest("'models' must be a list of model ids, e.g. [\"deepseek/deepseek-v3.2\"]",
                                 code=400)
            names.extend(m for m in extra if m not in names)
        if not names:
            raise BadRequest("'model' is required: name a model id such as 'openai/gpt-5' "
                             "(GET /v1/models lists them)", code=400)
        return names

    def plan(self, body: dict[str, Any], principal: Principal) -> list[Target]:
        targets: list[Target] = []
        unknown: list[str] = []
        inactive: list[str] = []
        denied: list[str] = []
        allowed = principal.key.allowed_models if principal.key is not None else None
        for name in self.requested_models(body):
            model = self.catalog.models.get(name)
            if model is None or model.disabled:
                unknown.append(name)
                continue
            if allowed is not None and name not in allowed:
                denied.append(name)
                continue
            endpoints = self.catalog.active_endpoints(model)
            if not endpoints:
                inactive.append(name)
            for endpoint, provider in endpoints:
                targets.append(Target(model=model, endpoint=endpoint, provider=provider))
        if targets:
            return targets
        if denied and not unknown and not inactive:
            raise PermissionDenied(f"this key may not use model(s) {', '.join(denied)}", code=403)
        if inactive:
            raise NoEndpointAvailable(
                f"model(s) {', '.join(inactive)} have no active provider: set the provider's API key "
                "(see 'tollway models show ID') or add an endpoint in the config", code=503)
        raise ModelNotFound(
            f"model {', '.join(repr(u) for u in unknown)} does not exist; GET /v1/models lists the "
            "available ids", code=404)
