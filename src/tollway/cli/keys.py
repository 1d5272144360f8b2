"""``tollway keys create|list|revoke|update``."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import click

from tollway.cli.common import config_option, open_ledger, settings_or_exit
from tollway.ledger import keys as key_store
from tollway.metering import nano_to_decimal, usd_to_nano

RESETS = ("daily", "weekly", "monthly")
INT32_MAX = 2**31 - 1  # the rpm/tpm columns are 32-bit integers


def _usd(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise click.BadParameter(f"{value!r} is not an amount in USD (e.g. 10 or 2.50)") from None
    if amount < 0:
        raise click.BadParameter("the limit must be >= 0")
    return usd_to_nano(amount)


def _country(value: str | None) -> str | None:
    if value is not None and (len(value) != 2 or not value.isalpha()):
        raise click.BadParameter(f"{value!r} is not an ISO 3166 alpha-2 country code (e.g. US, CN, DE)")
    return value.upper() if value else None


# -- routing policy options (see tollway.routing.policy) ------------------------------------
_POLICY_OPTIONS = (
    ("--policy-allowed-hosting-countries", "allowed_hosting_countries",
     "Only route to providers hosted in these countries (comma-separated ISO codes, or EU/EEA)."),
    ("--policy-denied-hosting-countries", "denied_hosting_countries",
     "Never route to providers hosted in these countries."),
    ("--policy-allowed-origin-countries", "allowed_origin_countries",
     "Only run models whose makers are from these countries."),
    ("--policy-denied-origin-countries", "denied_origin_countries",
     "Never run models whose makers are from these countries."),
    ("--policy-max-prompt-price", "max_price.prompt", "Price ceiling, USD per million prompt tokens."),
    ("--policy-max-completion-price", "max_price.completion",
     "Price ceiling, USD per million completion tokens."),
)


def policy_options(command: Callable[..., None]) -> Callable[..., None]:
    """The ``--policy-*`` options; 'none' removes a restriction (on update)."""
    for flag, _, help_text in reversed(_POLICY_OPTIONS):
        command = click.option(flag, default=None, help=help_text + " 'none' removes it.")(command)
    return click.option("--policy-no-data-retention/--policy-allow-data-retention", "no_data_retention",
                        default=None, help="Only route to providers that retain no data.")(command)


def _policy(base: dict[str, Any], options: dict[str, Any]) -> dict[str, Any] | None:
    """``base`` with the given ``--policy-*`` options applied, validated; None if unchanged."""
    from tollway.routing.policy import PolicyError, parse_policy

    policy = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    changed = False
    for flag, field, _ in _POLICY_OPTIONS:
        value = options.get(flag[2:].replace("-", "_"))
        if value is None:
            continue
        changed = True
        parent, _, child = field.rpartition(".")
        target = policy.setdefault(parent, {}) if parent else policy
        if value.lower() == "none":
            target.pop(child, None)
        else:
            target[child] = value if parent else [v.strip() for v in value.split(",") if v.strip()]
    if options.get("no_data_retention") is not None:
        changed = True
        policy["no_data_retention"] = bool(options["no_data_retention"])
    if not changed:
        return None
    try:
        return parse_policy({k: v for k, v in policy.items() if v != {}}).to_json()
    except PolicyError as exc:
        raise click.BadParameter(str(exc)) from None


@click.group()
def keys() -> None:
    """Create, list and revoke API keys (only a hash of each key is stored)."""


@keys.command("create")
@config_option
@click.option("--name", required=True, help="A name for the key (its owner or app).")
@click.option("--label", default=None, help="A free-form label.")
@click.option("--limit", default=None, help="Credit limit in USD.")
@click.option("--limit-reset", type=click.Choice(RESETS), default=None,
              help="Reset the limit every day, week (Monday-Sunday UTC) or month.")
@click.option("--rpm", type=click.IntRange(min=1, max=INT32_MAX), default=None, help="Requests per minute.")
@click.option("--tpm", type=click.IntRange(min=1, max=INT32_MAX), default=None, help="Tokens per minute.")
@click.option("--models", "allowed_models", default=None,
              help="Comma-separated model ids this key may use (default: all).")
@click.option("--expires", default=None, help="Expiry, ISO date or datetime (UTC).")
@click.option("--country", default=None, help="The owner's billing country (ISO 3166 alpha-2).")
@click.option("--admin", is_flag=True, help="Make an admin key (manages keys over HTTP).")
@policy_options
def create(config: str | None, name: str, label: str | None, limit: str | None, limit_reset: str | None,
           rpm: int | None, tpm: int | None, allowed_models: str | None, expires: str | None,
           country: str | None, admin: bool, **policy: Any) -> None:
    """Create a key.  The plain key is printed once, on the last line."""
    settings = settings_or_exit(config)
    expires_at = None
    if expires:
        try:
            expires_at = datetime.fromisoformat(expires).replace(tzinfo=None)
        except ValueError:
            raise click.BadParameter(f"{expires!r} is not an ISO date (e.g. 2027-01-31)") from None
    engine = open_ledger(settings)
    with engine.begin() as conn:
        info, plain = key_store.create_key(
            conn, name=name, label=label, limit_nanousd=_usd(limit), limit_reset=limit_reset, rpm=rpm,
            tpm=tpm, allowed_models=[m.strip() for m in allowed_models.split(",") if m.strip()]
            if allowed_models else None, country=_country(country), expires_at=expires_at, is_admin=admin,
            policy=_policy({}, policy))
    engine.dispose()
    click.echo(f"created key {info.id} ({info.name}); store it now, it is not shown again:", err=True)
    click.echo(plain)


@keys.command("list")
@config_option
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked keys.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_(config: str | None, include_revoked: bool, as_json: bool) -> None:
    """List keys (never the keys themselves, only their prefixes)."""
    engine = open_ledger(settings_or_exit(config))
    with engine.connect() as conn:
        infos = key_store.list_keys(conn, include_revoked=include_revoked)
    engine.dispose()
    if as_json:
        click.echo(json.dumps([i.to_public() for i in infos]))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "name", "prefix", "usage USD", "limit USD", "rpm", "country", "created", "status")
    for i in infos:
        table.add_row(i.id, i.name, i.key_prefix + "...", str(nano_to_decimal(i.usage_nanousd)),
                      str(nano_to_decimal(i.limit_nanousd)) if i.limit_nanousd is not None else "-",
                      str(i.rpm or "-"), i.country or "-", i.created_at.strftime("%Y-%m-%d %H:%M"),
                      "revoked" if i.revoked_at else ("active" if i.active else "expired"))
    Console().print(table)


@keys.command("revoke")
@config_option
@click.argument("key")
def revoke(config: str | None, key: str) -> None:
    """Revoke KEY (its id, its unique name, or the key itself)."""
    engine = open_ledger(settings_or_exit(config))
    with engine.begin() as conn:
        info = key_store.find_key(conn, key)
        if info is None:
            raise click.ClickException(f"no key matches {key!r}; 'tollway keys list' shows them")
        if not key_store.revoke_key(conn, info.id):
            raise click.ClickException(f"key {info.id} is already revoked")
    engine.dispose()
    click.echo(f"revoked {info.id} ({info.name})")


@keys.command("update")
@config_option
@click.argument("key")
@click.option("--label", default=None, help="A new free-form label.")
@click.option("--limit", default=None, help="Credit limit in USD ('none' removes it).")
@click.option("--limit-reset", type=click.Choice([*RESETS, "none"]), default=None,
              help="Reset the limit every day, week (Monday-Sunday UTC) or month; 'none' never resets.")
@click.option("--rpm", type=click.IntRange(min=0, max=INT32_MAX), default=None, help="Requests per minute (0 removes).")
@click.option("--tpm", type=click.IntRange(min=0, max=INT32_MAX), default=None, help="Tokens per minute (0 removes).")
@click.option("--country", default=None, help="The owner's billing country (ISO 3166 alpha-2).")
@policy_options
def update(config: str | None, key: str, label: str | None, limit: str | None, limit_reset: str | None,
           rpm: int | None, tpm: int | None, country: str | None, **policy: Any) -> None:
    """Change a key's label, limits, country or routing policy."""
    values: dict[str, object] = {}
    if label is not None:
        values["label"] = label
    if limit is not None:
        values["limit_nanousd"] = None if limit == "none" else _usd(limit)
    if limit_reset is not None:
        values["limit_reset"] = None if limit_reset == "none" else limit_reset
    if rpm is not None:
        values["rpm"] = rpm or None
    if tpm is not None:
        values["tpm"] = tpm or None
    if country is not None:
        values["country"] = _country(country)
    engine = open_ledger(settings_or_exit(config))
    with engine.begin() as conn:
        info = key_store.find_key(conn, key)
        if info is None:
            raise click.ClickException(f"no key matches {key!r}; 'tollway keys list' shows them")
        new_policy = _policy(info.policy, policy)
        if new_policy is not None:
            values["policy"] = new_policy
        updated = key_store.update_key(conn, info.id, **values)
    engine.dispose()
    assert updated is not None
    click.echo(json.dumps(updated.to_public()))


# -- credit: top-ups and usage (see tollway.limits.credits) -----------------------------------


@keys.command("topup")
@config_option
@click.argument("key")
@click.option("--amount", required=True, help="USD to add to the key's spendable credit (raises its limit).")
@click.option("--note", default=None, help="Why (kept with the top-up).")
def topup(config: str | None, key: str, amount: str, note: str | None) -> None:
    """Add credit to KEY: its limit rises by AMOUNT (an unlimited key becomes limited at its
    current-period spend plus AMOUNT)."""
    from tollway.ledger.schema import utcnow
    from tollway.limits.credits import key_view, render_key, top_up

    amount_nano = _usd(amount)
    assert amount_nano is not None
    engine = open_ledger(settings_or_exit(config))
    with engine.begin() as conn:
        info = key_store.find_key(conn, key)
        if info is None:
            raise click.ClickException(f"no key matches {key!r}; 'tollway keys list' shows them")
        now = utcnow()
        top_up(conn, info, amount_nano, now=now, note=note)
        found = key_view(conn, info.id, now)
    engine.dispose()
    assert found is not None
    data = render_key(*found)
    click.echo(f"{info.id}: limit {data['limit']} USD, remaining {data['limit_remaining']} USD", err=True)
    click.echo(json.dumps(data))


@keys.command("usage")
@config_option
@click.argument("key")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def usage_(config: str | None, key: str, as_json: bool) -> None:
    """KEY's spend today, this week, this month and in total (from the ledger), and its limit."""
    from tollway.ledger.schema import utcnow
    from tollway.limits.credits import key_view, render_key

    engine = open_ledger(settings_or_exit(config))
    with engine.connect() as conn:
        info = key_store.find_key(conn, key)
        if info is None:
            raise click.ClickException(f"no key matches {key!r}; 'tollway keys list' shows them")
        found = key_view(conn, info.id, utcnow())
    engine.dispose()
    assert found is not None
    data = render_key(*found)
    if as_json:
        click.echo(json.dumps(data))
        return
    for label, field in (("today", "usage_daily"), ("this week", "usage_weekly"),
                         ("this month", "usage_monthly"), ("total", "usage")):
        click.echo(f"{label:>10}: {data[field]:.6f} USD")
    limit = "none" if data["limit"] is None else f"{data['limit']:.6f} USD ({data['limit_reset'] or 'no reset'})"
    click.echo(f"{'limit':>10}: {limit}")
    if data["limit_remaining"] is not None:
        click.echo(f"{'remaining':>10}: {data['limit_remaining']:.6f} USD")
