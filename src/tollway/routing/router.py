"""Request -> an ordered plan of attempts (model, endpoint), with OpenRouter's semantics.

For each requested model (``model``, then the ``models`` fallbacks) the router keeps the
endpoints that every constraint allows (the request's ``provider`` preferences, the
key's policy narrowed by the request's, tools / max_tokens support) and orders them:

* by default, among endpoints without a significant outage in the last 30 s, one is
  picked at random weighted by the inverse square of its price (a $1 endpoint is 9x as
  likely as a $3 one); the others follow cheapest first, unstable ones last;
* ``sort`` (or ``:nitro`` / ``:floor``) orders by price, throughput or latency instead,
  ``order`` puts the named providers first; either turns the randomness off;
* an endpoint whose circuit is open is left out; a half-open one goes first as the probe.

Every exclusion is remembered, so when nothing qualifies the error says which
constraint excluded which provider.
"""

from __future__ import annotations

import hashlib
import random
from collections import OrderedDict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson

from tollway.adapters.base import Target
from tollway.auth import Principal
from tollway.catalog import Catalog
from tollway.config import ModelConfig, RoutingSettings
from tollway.errors import BadRequest, ModelNotFound, NoEndpointAvailable, PermissionDenied
from tollway.routing.health import HEALTHY, OPEN, PROBE, EndpointKey, HealthTracker
from tollway.routing.policy import KeyPolicy, PolicyError, empty_policy, parse_policy
from tollway.routing.preferences import DEFAULT, SUFFIX_SORTS, Preferences, parse_preferences

# Request parameters that ``require_parameters`` checks against an endpoint's list.
CHECKED_PARAMETERS = frozenset({
    "temperature", "top_p", "top_k", "min_p", "top_a", "frequency_penalty", "presence_penalty",
    "repetition_penalty", "seed", "max_tokens", "max_completion_tokens", "logit_bias", "logprobs",
    "top_logprobs", "response_format", "structured_outputs", "stop", "tools", "tool_choice",
    "parallel_tool_calls", "include_reasoning", "reasoning", "reasoning_effort", "verbosity",
    "web_search_options",
})
_FREE_PRICE = 1e-6
_NONE: frozenset[EndpointKey] = frozenset()  # a $0 endpoint still gets a finite (very large) weight


class NoEndpointMatches(NoEndpointAvailable):
    """Every endpoint of the requested model(s) was excluded by a constraint (404)."""

    status = 404
    type = "not_found_error"


class ModelInactive(NoEndpointAvailable):
    """The model exists but none of its providers is active (no key configured): 404."""

    status = 404
    type = "not_found_error"


@dataclass(frozen=True, slots=True)
class Candidate:
    """One endpoint with what routing compares, computed once per catalog."""

    target: Target
    key: EndpointKey
    slugs: frozenset[str]  # names the caller may use for the provider (lower case)
    prompt: Decimal
    completion: Decimal
    request: Decimal
    blend: float  # prompt + completion, USD per million tokens: what price ordering uses
    hosting_country: str | None
    origin_country: str | None
    retains: bool
    trains: bool
    quantization: str


class Plan(list[Target]):
    """The attempts, best first, plus what sticky routing needs to know about them."""

    def __init__(self, targets: list[Target], *, sticky_allowed: bool,
                 unstable: frozenset[EndpointKey]) -> None:
        super().__init__(targets)
        self.sticky_allowed = sticky_allowed
        self.unstable = unstable


class Router:
    """Plans attempts from the catalog, the request, the key's policy and endpoint health."""

    def __init__(self, catalog: Catalog, settings: RoutingSettings | None = None,
                 health: HealthTracker | None = None) -> None:
        self.catalog = catalog
        self.settings = settings or RoutingSettings()
        self.health = health or HealthTracker(self.settings)
        self.rng = random.Random(self.settings.seed)
        self._candidates: dict[str, tuple[Candidate, ...]] = {}
        self._cum_weights: dict[str, list[float]] = {}
        self._policies: dict[str, tuple[dict[str, Any], KeyPolicy]] = {}
        self._sticky: OrderedDict[bytes, tuple[EndpointKey, float]] = OrderedDict()

    # -- inputs ------------------------------------------------------------------------------

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

    def _resolve(self, name: str) -> tuple[ModelConfig | None, str | None]:
        """The model a name means, and the sort its ``:nitro`` / ``:floor`` suffix asks for."""
        model = self.catalog.models.get(name)
        if model is None and ":" in name:
            base, _, suffix = name.rpartition(":")
            if suffix in SUFFIX_SORTS:
                return self.catalog.models.get(base), SUFFIX_SORTS[suffix]
        return model, None

    def key_policy(self, principal: Principal) -> KeyPolicy:
        """The key's validated policy, parsed once per cached KeyInfo."""
        key = principal.key
        if key is None or not key.policy:
            return empty_policy()
        cached = self._policies.get(key.id)
        if cached is not None and cached[0] is key.policy:
            return cached[1]
        try:
            policy = parse_policy(key.policy, f"key {key.id} policy")
        except PolicyError as exc:
            # Fail closed: a key whose restrictions can't be read must not be routed anywhere.
            raise PermissionDenied(f"{exc}; fix it with 'tollway keys update'", code=403) from None
        if len(self._policies) > 10_000:
            self._policies.clear()
        self._policies[key.id] = (key.policy, policy)
        return policy

    def _key_hint(self, model: ModelConfig) -> str:
        """Which environment variables would activate one of the model's providers."""
        envs = sorted({p.api_key_env for e in model.endpoints if not e.disabled
                       and (p := self.catalog.providers.get(e.provider)) is not None
                       and not p.disabled and p.api_key_env})
        return f" (export {' or '.join(envs)})" if envs else ""

    def candidates(self, model: ModelConfig) -> tuple[Candidate, ...]:
        """The model's active endpoints with their routing facts (cached: the catalog is frozen)."""
        cached = self._candidates.get(model.id)
        if cached is not None:
            return cached
        out = []
        for endpoint, provider in self.catalog.active_endpoints(model):
            p = endpoint.pricing
            slugs = {provider.name.lower()}
            if provider.display_name:
                slugs.add(provider.display_name.lower())
            retains = endpoint.data_retention if endpoint.data_retention is not None \
                else provider.data_retention
            trains = endpoint.trains_on_data if endpoint.trains_on_data is not None \
                else provider.trains_on_data
            country = endpoint.hosting_country or provider.hosting_country
            out.append(Candidate(
                target=Target(model=model, endpoint=endpoint, provider=provider),
                key=(model.id, provider.name), slugs=frozenset(slugs), prompt=p.prompt,
                completion=p.completion, request=p.request, blend=float(p.prompt + p.completion),
                hosting_country=country.upper() if country else None,
                origin_country=model.author_country.upper() if model.author_country else None,
                retains=bool(retains), trains=bool(trains),
                quantization=(endpoint.quantization or "unknown").lower()))
        # Cheapest first (catalog order among equals): the fallback order of price ordering,
        # and the draw weights of load balancing, computed once.
        result = tuple(sorted(out, key=lambda c: c.blend))
        self._candidates[model.id] = result
        total, cumulative = 0.0, []
        for c in result:
            total += 1.0 / max(c.blend, _FREE_PRICE) ** 2
            cumulative.append(total)
        self._cum_weights[model.id] = cumulative
        return result

    # -- the plan ------------------------------------------------------------------------------

    def plan(self, body: dict[str, Any], principal: Principal) -> Plan:
        """Every attempt for this request, best first; raises when none qualifies."""
        names = self.requested_models(body)
        resolved = [self._resolve(n) for n in names]
        prefs = parse_preferences(body, resolved[0][1])
        key_policy = self.key_policy(principal)
        allowed = principal.key.allowed_models if principal.key is not None else None
        needs = _Needs.of(body, prefs.require_parameters)
        filtering = prefs is not DEFAULT or needs.active or not key_policy.is_empty
        now = self.health.clock()
        unknown: list[str] = []
        inactive: list[str] = []
        denied: list[str] = []
        excluded: list[str] = []
        circuit_open: list[str] = []
        groups: list[tuple[str, list[tuple[Candidate, int]]]] = []
        for name, (model, _) in zip(names, resolved, strict=True):
            if model is None or model.disabled:
                unknown.append(name)
                continue
            if allowed is not None and model.id not in allowed and name not in allowed:
                denied.append(name)
                continue
            candidates = self.candidates(model)
            if not candidates:
                inactive.append(name + self._key_hint(model))
                continue
            group: list[tuple[Candidate, int]] = []
            for c in candidates:
                if filtering:
                    reason = (_preference_reason(c, prefs) or needs.reason(c)
                              or _policy_reason(c, key_policy, "key policy")
                              or _policy_reason(c, prefs.policy, "provider"))
                    if reason is not None:
                        excluded.append(f"{model.id}@{c.target.provider.name}: {reason}")
                        continue
                verdict = self.health.verdict(c.key, now)
                if verdict == OPEN:
                    circuit_open.append(f"{model.id}@{c.target.provider.name}")
                    continue
                group.append((c, verdict))
            if group:
                groups.append((model.id, group))
        ordered = self._order(groups, prefs, now)
        if ordered:
            unstable = frozenset(c.key for c, v in ordered if v > PROBE) \
                if any(v > PROBE for _, v in ordered) else _NONE
            return Plan([c.target for c, _ in ordered], sticky_allowed=not prefs.order,
                        unstable=unstable)
        raise _nothing_qualifies(unknown, inactive, denied, excluded, circuit_open,
                                 self.settings.breaker_cooldown_s)

    def _order(self, groups: list[tuple[str, list[tuple[Candidate, int]]]], prefs: Preferences,
               now: float) -> list[tuple[Candidate, int]]:
        if prefs.sort is not None and prefs.partition == "none":
            flat = [item for _, group in groups for item in group]
            return self._sorted(flat, prefs, now)
        out: list[tuple[Candidate, int]] = []
        for model_id, group in groups:
            if prefs.order:
                out.extend(self._by_order(group, prefs, now))
            elif prefs.sort is not None:
                ranked = self._sorted(group, prefs, now)
                out.extend(ranked if prefs.allow_fallbacks else ranked[:1])
            else:
                ranked = self._balanced(model_id, group, prefs, now)
                out.extend(ranked if prefs.allow_fallbacks else ranked[:1])
        return out

    def _by_order(self, group: list[tuple[Candidate, int]], prefs: Preferences,
                  now: float) -> list[tuple[Candidate, int]]:
        """The providers named in ``order`` in that order, then (with fallbacks) the rest by price."""
        first: list[tuple[Candidate, int]] = []
        taken: set[int] = set()
        for slug in prefs.order:
            for item in group:
                if slug in item[0].slugs and id(item) not in taken:
                    taken.add(id(item))
                    first.append(item)
        if not prefs.allow_fallbacks:
            return first
        rest = [item for item in group if id(item) not in taken]
        return first + self._sorted(rest, Preferences(sort="price"), now)

    def _sorted(self, items: list[tuple[Candidate, int]], prefs: Preferences,
                now: float) -> list[tuple[Candidate, int]]:
        """Probes first, then stable endpoints by the sort key (unmeasured after measured), then
        endpoints missing a preferred threshold, unstable ones last."""

        measured = prefs.sort in ("throughput", "latency")

        def key(item: tuple[Candidate, int]) -> tuple[int, int, int, float, float]:
            c, verdict = item
            tier = 0 if verdict == PROBE else (1 if verdict == HEALTHY else 2)
            metric: float | None = c.blend
            if measured:
                latency, throughput = self.health.p50(c.key, now)
                metric = latency if prefs.sort == "latency" else \
                    (-throughput if throughput is not None else None)
            return (tier, self._misses_preferred(c, prefs, now), int(metric is None),
                    metric if metric is not None else 0.0, c.blend)

        return sorted(items, key=key)

    def _balanced(self, model_id: str, group: list[tuple[Candidate, int]], prefs: Preferences,
                  now: float) -> list[tuple[Candidate, int]]:
        """One stable endpoint drawn with weight 1/price^2, then the others cheapest first."""
        if len(group) == 1:
            return group
        thresholds = prefs.min_throughput is not None or prefs.max_latency is not None
        if len(group) > 1 and not thresholds and len(group) == len(self._candidates[model_id]) \
                and all(v == HEALTHY for _, v in group):
            # The common case: nothing excluded, all healthy, group already cheapest first.
            chosen = self.rng.choices(group, cum_weights=self._cum_weights[model_id])[0]
            return [chosen, *(item for item in group if item is not chosen)]
        ranked = self._sorted(group, prefs, now)
        if ranked and ranked[0][1] == PROBE:
            return ranked  # a half-open endpoint must be tried to recover
        pool = [item for item in ranked if item[1] == HEALTHY
                and not self._misses_preferred(item[0], prefs, now)]
        if len(pool) < 2:
            return ranked
        weights = [1.0 / max(c.blend, _FREE_PRICE) ** 2 for c, _ in pool]
        chosen = self.rng.choices(pool, weights)[0]
        return [chosen, *(item for item in ranked if item is not chosen)]

    def _misses_preferred(self, c: Candidate, prefs: Preferences, now: float) -> int:
        """1 when the endpoint is measured and misses preferred_min_throughput / max_latency."""
        if prefs.min_throughput is None and prefs.max_latency is None:
            return 0
        latency, throughput = self.health.cached_percentiles(c.key, now)
        for name, floor in (prefs.min_throughput or {}).items():
            if name in throughput and throughput[name] < floor:
                return 1
        for name, ceiling in (prefs.max_latency or {}).items():
            if name in latency and latency[name] > ceiling:
                return 1
        return 0

    # -- sticky sessions ---------------------------------------------------------------------

    def session_key(self, body: dict[str, Any], session_id: str | None, key_id: str | None) -> bytes | None:
        """The conversation's identity: its session id, else a hash of its first messages."""
        if self.settings.sticky_ttl_s <= 0:
            return None
        h = hashlib.blake2b(digest_size=16)
        h.update((key_id or "").encode())
        if session_id:
            h.update(b"s\0" + session_id.encode("utf-8", "replace"))
        else:
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                return None
            for message in messages[:2]:
                h.update(b"m\0" + _fingerprint(message))
        return h.digest()

    def stick(self, plan: list[Target], session: bytes | None) -> list[Target]:
        """Move the endpoint that served this conversation last to the front (if still stable)."""
        if session is None or not isinstance(plan, Plan) or not plan.sticky_allowed or len(plan) < 2:
            return plan
        entry = self._sticky.get(session)
        if entry is None:
            return plan
        stuck, expires = entry
        if expires < self.health.clock():
            del self._sticky[session]
            return plan
        if stuck in plan.unstable or plan[0].model.id != stuck[0]:
            return plan
        for i, target in enumerate(plan):
            if target.provider.name == stuck[1] and target.model.id == stuck[0]:
                if i == 0:
                    return plan
                reordered = Plan([target, *plan[:i], *plan[i + 1:]], sticky_allowed=True,
                                 unstable=plan.unstable)
                return reordered
        return plan

    def remember(self, plan: list[Target], target: Target, session: bytes | None) -> None:
        """Record who served this conversation, for its next turn (idle TTL refreshed)."""
        if session is None or (isinstance(plan, Plan) and not plan.sticky_allowed):
            return
        self._sticky[session] = ((target.model.id, target.provider.name),
                                 self.health.clock() + self.settings.sticky_ttl_s)
        self._sticky.move_to_end(session)
        while len(self._sticky) > self.settings.sticky_max_sessions:
            self._sticky.popitem(last=False)


@dataclass(frozen=True, slots=True)
class _Needs:
    """What the request needs from an endpoint regardless of preferences."""

    tools: bool
    max_tokens: int | None
    parameters: frozenset[str]

    @property
    def active(self) -> bool:
        return self.tools or self.max_tokens is not None or bool(self.parameters)

    @classmethod
    def of(cls, body: dict[str, Any], require_parameters: bool) -> _Needs:
        max_tokens = body.get("max_tokens") or body.get("max_completion_tokens")
        if max_tokens is None and not require_parameters and not body.get("tools"):
            return _NO_NEEDS
        return cls(tools=bool(body.get("tools")),
                   max_tokens=max_tokens if isinstance(max_tokens, int) else None,
                   parameters=CHECKED_PARAMETERS.intersection(body) if require_parameters
                   else frozenset())

    def reason(self, c: Candidate) -> str | None:
        endpoint = c.target.endpoint
        if self.tools and not endpoint.supports_tools:
            return "does not support tools"
        if self.max_tokens is not None and endpoint.max_output_tokens is not None \
                and self.max_tokens > endpoint.max_output_tokens:
            return f"max_tokens {self.max_tokens} exceeds its limit of {endpoint.max_output_tokens}"
        if self.parameters and endpoint.supported_parameters is not None:
            missing = self.parameters.difference(endpoint.supported_parameters)
            if self.tools and endpoint.supports_tools:
                missing -= {"tools", "tool_choice"}
            if missing:
                return f"provider.require_parameters: does not support {', '.join(sorted(missing))}"
        return None


def _fingerprint(message: Any) -> bytes:
    """Enough of a message to tell conversations apart without hashing a 50 KB system prompt:
    its role, its length, and its first and last 1,000 characters."""
    content = message.get("content") if isinstance(message, dict) else message
    text = content if isinstance(content, str) else orjson.dumps(content).decode()
    if len(text) > 2000:
        text = f"{text[:1000]}\0{len(text)}\0{text[-1000:]}"
    role = message.get("role") if isinstance(message, dict) else None
    return f"{role}\0{text}".encode("utf-8", "surrogatepass")


_NO_NEEDS = _Needs(tools=False, max_tokens=None, parameters=frozenset())


def _preference_reason(c: Candidate, prefs: Preferences) -> str | None:
    if prefs.only is not None and not c.slugs & prefs.only:
        return "not in provider.only"
    if c.slugs & prefs.ignore:
        return "in provider.ignore"
    if prefs.order and not prefs.allow_fallbacks and not any(s in c.slugs for s in prefs.order):
        return "not in provider.order and allow_fallbacks is false"
    if prefs.quantizations is not None and c.quantization not in prefs.quantizations:
        return f"quantization {c.quantization} not in provider.quantizations"
    if prefs.deny_data_collection and (c.retains or c.trains):
        return "provider.data_collection is deny and it retains or trains on data"
    if prefs.zdr and (c.retains or c.trains):
        return "provider.zdr is true and it retains data"
    for name, ceiling, price in (("prompt", prefs.max_prompt, c.prompt),
                                 ("completion", prefs.max_completion, c.completion),
                                 ("request", prefs.max_request, c.request)):
        if ceiling is not None and price > ceiling:
            return f"provider.max_price.{name} {ceiling} (charges {price})"
    return None


def _policy_reason(c: Candidate, policy: KeyPolicy, source: str) -> str | None:
    if policy.is_empty:
        return None
    host, origin = c.hosting_country, c.origin_country
    if policy.allowed_hosting_countries is not None and host not in policy.allowed_hosting_countries:
        return f"{source} allowed_hosting_countries (hosted in {host or 'unknown'})"
    if host is not None and host in policy.denied_hosting_countries:
        return f"{source} denied_hosting_countries (hosted in {host})"
    if policy.allowed_origin_countries is not None and origin not in policy.allowed_origin_countries:
        return f"{source} allowed_origin_countries (model from {origin or 'unknown'})"
    if origin is not None and origin in policy.denied_origin_countries:
        return f"{source} denied_origin_countries (model from {origin})"
    if policy.no_data_retention and (c.retains or c.trains):
        return f"{source} no_data_retention (it retains data)"
    for name in ("prompt", "completion", "request"):
        ceiling = getattr(policy.max_price, name)
        price = getattr(c, name)
        if ceiling is not None and price > ceiling:
            return f"{source} max_price.{name} {ceiling} (charges {price})"
    return None


def _nothing_qualifies(unknown: list[str], inactive: list[str], denied: list[str], excluded: list[str],
                       circuit_open: list[str], cooldown_s: float) -> Exception:
    # An endpoint whose circuit is open passed every constraint: it would have served, so
    # the answer is "unavailable, retry" even when other endpoints were excluded.
    if circuit_open:
        return NoEndpointAvailable(
            f"every provider that may serve this request is failing (circuit open: {', '.join(circuit_open)}); "
            f"retry in about {cooldown_s:g} s", code=503, headers={"Retry-After": str(max(1, int(cooldown_s)))},
            metadata={"excluded": excluded} if excluded else None)
    if excluded:
        return NoEndpointMatches(
            "no endpoint matches the request's constraints: " + "; ".join(excluded[:20])
            + (f" (and {len(excluded) - 20} more)" if len(excluded) > 20 else ""),
            code=404, metadata={"excluded": excluded})
    if denied and not unknown and not inactive:
        return PermissionDenied(f"this key may not use model(s) {', '.join(denied)}", code=403)
    if inactive:
        # A configuration gap, not an outage: a 404 (as OpenRouter's "No endpoints found")
        # that SDKs do not retry, where a 503 would be retried and billed as three failures.
        return ModelInactive(
            f"no endpoints found for model(s) {', '.join(inactive)}: none of their providers is active; "
            "set a provider's API key (see 'tollway models show ID') or add an endpoint in the config",
            code=404)
    return ModelNotFound(
        f"model {', '.join(repr(u) for u in unknown)} does not exist; GET /v1/models lists the "
        "available ids", code=404)
