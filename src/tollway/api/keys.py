"""The key's own view (``GET /api/v1/key``, ``GET /api/v1/credits``) and the admin API
over keys (OpenRouter's management paths under ``/api/v1/keys``).

Responses follow OpenRouter's shapes, checked against the ``openrouter`` SDK's models;
tollway's exact nano-dollar figures sit under a ``tollway`` object.  Admin endpoints need
the configured ``admin_key`` or a key created with ``--admin``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from tollway.api import inputs
from tollway.api.common import gateway_of, json_response, read_json_object
from tollway.auth import Principal, require_admin
from tollway.errors import BadRequest, NotFound
from tollway.ledger import keys as key_store
from tollway.ledger.keys import KeyInfo
from tollway.ledger.queries import usage_summary
from tollway.limits.credits import key_view, period_usage, render_key, top_up
from tollway.limits.periods import RESETS
from tollway.metering import nano_to_usd

_BODY_LIMIT = 64 * 1024
_NAME_CHARS = 200  # keys.name and keys.label columns
_MAX_MODELS = 1000


def _admin_view() -> dict[str, Any]:
    """The configured admin key has no row: describe it as an unlimited management key."""
    return {"label": "admin (config admin_key)", "limit": None, "limit_remaining": None, "limit_reset": None,
            "usage": 0.0, "usage_daily": 0.0, "usage_weekly": 0.0, "usage_monthly": 0.0,
            "is_management_key": True, "expires_at": None}


def _current_key(key: KeyInfo, windows: dict[str, int]) -> dict[str, Any]:
    """OpenRouter's ``GET /key`` data object (every field its SDK requires)."""
    full = render_key(key, windows)
    budget = None
    if key.limit_nanousd is not None:
        spent = period_usage(key, windows)
        budget = {"budget_id": None, "guardrail_id": None, "include_byok": False,
                  "limit_usd": full["limit"], "remaining_usd": nano_to_usd(key.limit_nanousd - spent),
                  "reset_interval": key.limit_reset, "resets_at": _resets_at(key),
                  "scope": "key_limit", "spend_usd": nano_to_usd(spent)}
    return {
        "label": full["label"], "limit": full["limit"], "limit_remaining": full["limit_remaining"],
        "limit_reset": key.limit_reset, "include_byok_in_limit": False,
        "usage": full["usage"], "usage_daily": full["usage_daily"], "usage_weekly": full["usage_weekly"],
        "usage_monthly": full["usage_monthly"], "byok_usage": 0.0, "byok_usage_daily": 0.0,
        "byok_usage_weekly": 0.0, "byok_usage_monthly": 0.0, "is_free_tier": False,
        "is_management_key": key.is_admin, "is_provisioning_key": key.is_admin,
        "creator_user_id": None, "organization_id": None, "workspace_id": "default",
        "expires_at": full["expires_at"],
        # Legacy field; OpenRouter always returns -1.  tollway's own limits are below.
        "rate_limit": {"requests": -1, "interval": "10s", "note": "see tollway.rpm / tollway.tpm"},
        "free_model_daily_requests": {"limit": -1, "remaining": -1, "used": 0},
        "budgets": [budget] if budget else [], "effective_budget": budget,
        "allowed_data_regions": ["global"],
        "tollway": full["tollway"],
    }


def _resets_at(key: KeyInfo) -> str | None:
    from tollway.ledger.schema import utcnow
    from tollway.limits.periods import period_of

    end = period_of(key.limit_reset, utcnow()).end
    return end.isoformat() + "Z" if end is not None else None


def _view(engine: Engine, key_id: str, now: datetime) -> tuple[KeyInfo, dict[str, int]]:
    with engine.connect() as conn:
        found = key_view(conn, key_id, now)
    if found is None:
        raise _key_not_found(key_id)
    return found


def _key_not_found(key_id: str) -> NotFound:
    return NotFound(f"key {key_id} not found; GET /api/v1/keys lists them", code=404)


def _path_key_id(request: Request) -> str:
    """The ``{id}`` of an admin path; one no stored key could have is the usual 404."""
    raw: str = request.path_params["id"]
    key_id = inputs.lookup_id(raw)
    if key_id is None:
        raise _key_not_found(repr(raw[:40]))
    return key_id


def _existing_key(conn: Connection, key_id: str) -> key_store.KeyInfo:
    """The key, or the admin API's 404."""
    key = key_store.get_key(conn, key_id)
    if key is None:
        raise _key_not_found(key_id)
    return key


async def current_key(request: Request) -> Response:
    """GET /api/v1/key: the calling key's limits and usage."""
    gateway = gateway_of(request)
    principal = await gateway.keys.authenticate(request)
    if principal.key is None:
        return json_response({"data": _admin_view()})
    key, windows = await run_in_threadpool(_view, gateway.engine, principal.key.id, gateway.clock())
    return json_response({"data": _current_key(key, windows)})


async def credits(request: Request) -> Response:
    """GET /api/v1/credits: the key's credit (its limit; 0 when unlimited) and usage against it."""
    gateway = gateway_of(request)
    principal = await gateway.keys.authenticate(request)
    if principal.key is None:
        return json_response({"data": {"total_credits": 0.0, "total_usage": 0.0}})
    key, windows = await run_in_threadpool(_view, gateway.engine, principal.key.id, gateway.clock())
    total = nano_to_usd(key.limit_nanousd) if key.limit_nanousd is not None else 0.0
    return json_response({"data": {"total_credits": total,
                                   "total_usage": nano_to_usd(period_usage(key, windows))}})


# -- admin --------------------------------------------------------------------------------


async def _admin(request: Request) -> Principal:
    principal = await gateway_of(request).keys.authenticate(request)
    require_admin(principal)
    return principal


def _usd_field(body: dict[str, Any], name: str, *, allow_none: bool = True) -> int | None:
    value = body.get(name)
    if value is None:
        if allow_none:
            return None
        raise BadRequest(f"'{name}' is required: an amount in USD, e.g. 10 or 2.5", code=400)
    return inputs.usd(value, name)


def _key_values(body: dict[str, Any]) -> dict[str, Any]:
    """Validated column values from a create/update body (only the fields present)."""
    values: dict[str, Any] = {}
    if "name" in body:
        name = inputs.text(body["name"], "name", max_chars=_NAME_CHARS, required=True)
        if name is None or not name.strip():
            raise BadRequest("'name' must be a non-empty string", code=400)
        values["name"] = name.strip()
    if "label" in body:
        values["label"] = inputs.text(body["label"], "label", max_chars=_NAME_CHARS)
    if "limit" in body:
        values["limit_nanousd"] = _usd_field(body, "limit")
    if "limit_reset" in body:
        reset = body["limit_reset"]
        if reset is not None and reset not in RESETS:
            raise BadRequest(f"'limit_reset' must be one of {', '.join(RESETS)} or null", code=400)
        values["limit_reset"] = reset
    for name in ("rpm", "tpm"):
        if name in body:
            values[name] = inputs.rate(body[name], name)
    if "allowed_models" in body:
        models = body["allowed_models"]
        if models is not None and (not isinstance(models, list) or len(models) > _MAX_MODELS):
            raise BadRequest(f"'allowed_models' must be a list of at most {_MAX_MODELS} model ids, or null",
                             code=400)
        for i, model in enumerate(models or ()):
            inputs.text(model, f"allowed_models[{i}]", max_chars=_NAME_CHARS, required=True)
        values["allowed_models"] = models
    if "expires_at" in body:
        values["expires_at"] = inputs.timestamp(body["expires_at"], "expires_at")
    if "country" in body:
        country = body["country"]
        if country is not None and (not isinstance(country, str) or len(country) != 2
                                    or not (country.isascii() and country.isalpha())):
            raise BadRequest("'country' must be an ISO 3166 alpha-2 code such as US or DE", code=400)
        values["country"] = country
    if "policy" in body:
        if body["policy"] is not None and not isinstance(body["policy"], dict):
            raise BadRequest("'policy' must be an object", code=400)
        values["policy"] = body["policy"]
    return values


async def create_key(request: Request) -> Response:
    """POST /api/v1/keys: create a key; the plain key is in ``key``, shown only here."""
    await _admin(request)
    gateway = gateway_of(request)
    body = await read_json_object(request, _BODY_LIMIT)
    values = _key_values(body)
    if "name" not in values:
        raise BadRequest("'name' is required: a name for the key (its owner or app)", code=400)
    is_admin = body.get("is_admin") is True

    def create() -> tuple[dict[str, Any], str]:
        with gateway.engine.begin() as conn:
            info, plain = key_store.create_key(conn, is_admin=is_admin, **values)
            found = key_view(conn, info.id, gateway.clock())
        assert found is not None
        return render_key(*found), plain

    data, plain = await run_in_threadpool(create)
    return json_response({"data": data, "key": plain}, status=201)


async def list_keys(request: Request) -> Response:
    """GET /api/v1/keys[?include_disabled=true]."""
    await _admin(request)
    gateway = gateway_of(request)
    include = request.query_params.get("include_disabled", "").lower() in ("1", "true", "yes")
    now = gateway.clock()

    def load() -> list[dict[str, Any]]:
        with gateway.engine.connect() as conn:
            out = []
            for info in key_store.list_keys(conn, include_revoked=include):
                found = key_view(conn, info.id, now)
                if found is not None:
                    out.append(render_key(*found))
            return out

    return json_response({"data": await run_in_threadpool(load)})


async def get_key(request: Request) -> Response:
    """GET /api/v1/keys/{id}."""
    await _admin(request)
    gateway = gateway_of(request)
    found = await run_in_threadpool(_view, gateway.engine, _path_key_id(request), gateway.clock())
    return json_response({"data": render_key(*found)})


async def update_key(request: Request) -> Response:
    """PATCH /api/v1/keys/{id}: change limits, label, models...; ``disabled: true`` revokes."""
    await _admin(request)
    gateway = gateway_of(request)
    key_id = _path_key_id(request)
    body = await read_json_object(request, _BODY_LIMIT)
    values = _key_values(body)
    disabled = body.get("disabled")

    def apply() -> dict[str, Any]:
        with gateway.engine.begin() as conn:
            _existing_key(conn, key_id)
            key_store.update_key(conn, key_id, **values)
            if disabled is True:
                key_store.revoke_key(conn, key_id)
            found = key_view(conn, key_id, gateway.clock())
        assert found is not None
        return render_key(*found)

    data = await run_in_threadpool(apply)
    gateway.keys.invalidate()
    return json_response({"data": data})


async def delete_key(request: Request) -> Response:
    """DELETE /api/v1/keys/{id}: revoke (the key's ledger history stays)."""
    await _admin(request)
    gateway = gateway_of(request)
    key_id = _path_key_id(request)

    def revoke() -> None:
        with gateway.engine.begin() as conn:
            _existing_key(conn, key_id)
            key_store.revoke_key(conn, key_id)

    await run_in_threadpool(revoke)
    gateway.keys.invalidate()
    return json_response({"deleted": True})


async def add_credits(request: Request) -> Response:
    """POST /api/v1/keys/{id}/credits ``{"amount": USD, "note": ...}``: raise the key's limit."""
    await _admin(request)
    gateway = gateway_of(request)
    key_id = _path_key_id(request)
    body = await read_json_object(request, _BODY_LIMIT)
    amount = _usd_field(body, "amount", allow_none=False)
    assert amount is not None
    note = inputs.text(body.get("note"), "note", max_chars=1000)
    now = gateway.clock()

    def apply() -> dict[str, Any]:
        with gateway.engine.begin() as conn:
            key = _existing_key(conn, key_id)
            if (key.limit_nanousd or 0) + amount > inputs.MAX_NANOUSD:
                raise BadRequest(f"a key's limit cannot exceed {inputs.MAX_USD} USD; this top-up would pass it",
                                 code=400)
            top_up(conn, key, amount, now=now, note=note)
            found = key_view(conn, key_id, now)
        assert found is not None
        return render_key(*found)

    data = await run_in_threadpool(apply)
    gateway.keys.invalidate()
    return json_response({"data": data})


async def key_usage(request: Request) -> Response:
    """GET /api/v1/keys/{id}/usage: spend per window and token totals from the ledger."""
    await _admin(request)
    gateway = gateway_of(request)
    key_id = _path_key_id(request)

    def load() -> dict[str, Any]:
        key, windows = _view(gateway.engine, key_id, gateway.clock())
        with gateway.engine.connect() as conn:
            totals = usage_summary(conn, key_id=key_id)
        data = render_key(key, windows)
        return {"hash": key.id, "usage": data["usage"], "usage_daily": data["usage_daily"],
                "usage_weekly": data["usage_weekly"], "usage_monthly": data["usage_monthly"],
                "limit": data["limit"], "limit_remaining": data["limit_remaining"],
                "limit_reset": key.limit_reset, "totals": totals, "tollway": data["tollway"]}

    return json_response({"data": await run_in_threadpool(load)})
