"""Apps and their categories (migration ``m008_app_categories``).

An app is what the rollups call ``app``: the request's ``HTTP-Referer``, else its title.
Apps declare their categories with OpenRouter's ``X-OpenRouter-Categories`` header; the
gateway passes them on the generation record (``extra.categories``) and the ledger
writer's :func:`record_app_categories` hook keeps the latest per app.  An operator can set
one with ``tollway apps set-category``, which the header never overrides afterwards.
Known agents (``catalog/data/agents.json``, when present) get their default category.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from importlib import resources
from types import MappingProxyType

from sqlalchemy import Column, Connection, DateTime, String, Table, select

from tollway.ledger import schema
from tollway.ledger.records import GenerationRecord
from tollway.ledger.schema import utcnow

# OpenRouter's app categories (spec: getAppRankings ``subcategory``), by marketplace group.
CATEGORY_GROUPS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "coding": ("cli-agent", "ide-extension", "cloud-agent", "programming-app", "native-app-builder"),
    "creative": ("creative-writing", "video-gen", "image-gen", "audio-gen"),
    "entertainment": ("roleplay", "game"),
    "productivity": ("writing-assistant", "general-chat", "personal-agent", "legal"),
})
CATEGORIES = tuple(c for group in CATEGORY_GROUPS.values() for c in group)

apps = Table(
    "apps",
    schema.metadata,
    Column("app", String(500), primary_key=True),
    Column("title", String(500), nullable=True),
    Column("category", String(40), nullable=True),  # the primary (first declared or set) category
    Column("categories", String(500), nullable=True),  # as declared: comma-separated
    Column("set_by", String(16), nullable=False, server_default="header"),  # header | cli
    Column("updated_at", DateTime, nullable=False),
)


def m008_app_categories(conn: Connection) -> None:
    """Migration ``m008_app_categories``: the ``apps`` table."""
    apps.create(conn, checkfirst=True)


class CategoryError(ValueError):
    """A category outside OpenRouter's list."""


def parse_categories(header: str | None) -> list[str]:
    """The known categories in an ``X-OpenRouter-Categories`` value, in order (unknown ones dropped)."""
    if not header:
        return []
    seen: list[str] = []
    for part in header.split(","):
        name = part.strip().lower()
        if name in CATEGORIES and name not in seen:
            seen.append(name)
    return seen


def record_app_categories(conn: Connection, records: Iterable[GenerationRecord]) -> None:
    """``LedgerWriter`` batch hook: keep each app's title and latest declared categories."""
    latest: dict[str, tuple[str | None, list[str]]] = {}
    for r in records:
        app = r.app or r.app_title
        declared = (r.extra or {}).get("categories")
        if app and (declared or (r.app_title and r.app)):
            title, before = latest.get(app, (None, []))
            latest[app] = (r.app_title or title, list(declared) if declared else before)
    for app, (title, declared) in sorted(latest.items()):
        row = conn.execute(select(apps.c.set_by, apps.c.categories, apps.c.title).where(apps.c.app == app)).first()
        joined = ",".join(declared) or None
        if row is None:
            conn.execute(apps.insert().values(app=app, title=title, category=declared[0] if declared else None,
                                              categories=joined, set_by="header", updated_at=utcnow()))
            continue
        values: dict[str, object] = {}
        if joined and row.categories != joined:
            values["categories"] = joined
            if row.set_by != "cli":
                values["category"] = declared[0]
        if title and row.title != title:
            values["title"] = title
        if values:
            conn.execute(apps.update().where(apps.c.app == app).values(**values, updated_at=utcnow()))


def set_category(conn: Connection, app: str, category: str) -> None:
    """Set an app's category by hand (``tollway apps set-category``); the header no longer overrides it."""
    if category not in CATEGORIES:
        raise CategoryError(f"unknown category {category!r}; use one of: {', '.join(CATEGORIES)}")
    if conn.execute(select(apps.c.app).where(apps.c.app == app)).first() is None:
        conn.execute(apps.insert().values(app=app, category=category, set_by="cli", updated_at=utcnow()))
    else:
        conn.execute(apps.update().where(apps.c.app == app).values(category=category, set_by="cli",
                                                                   updated_at=utcnow()))


def known_agent_categories() -> dict[str, str]:
    """Lower-cased agent name -> default category, from ``catalog/data/agents.json`` if shipped."""
    try:
        text = resources.files("tollway.catalog").joinpath("data/agents.json").read_text()
    except (FileNotFoundError, ModuleNotFoundError, OSError):
        return {}
    doc = json.loads(text)
    entries = doc.get("agents", doc) if isinstance(doc, dict) else doc
    out: dict[str, str] = {}
    items = entries.values() if isinstance(entries, dict) else entries
    for entry in items:
        if isinstance(entry, dict) and entry.get("name") and entry.get("category") in CATEGORIES:
            out[str(entry["name"]).lower()] = str(entry["category"])
    return out


def app_categories(conn: Connection) -> dict[str, str]:
    """Every app with a category (set, declared, or a known agent's default): app -> category."""
    defaults = known_agent_categories()
    out: dict[str, str] = {}
    for app, title, category in conn.execute(select(apps.c.app, apps.c.title, apps.c.category)):
        chosen = category or defaults.get((title or "").lower()) or defaults.get(app.lower())
        if chosen:
            out[app] = chosen
    return out


def category_of(app: str, known: Mapping[str, str], defaults: Mapping[str, str]) -> str:
    """An app's category: recorded, else its known agent's default, else ``''``."""
    return known.get(app) or defaults.get(app.lower()) or ""


def app_titles(conn: Connection) -> dict[str, str]:
    """App -> its display title, where one was seen."""
    return {app: title for app, title in conn.execute(select(apps.c.app, apps.c.title)) if title}
