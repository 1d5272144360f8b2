"""The Rankings page's reports in one answer (``GET /api/v1/console/rankings``).

The page shows five rankings (tokens by model, author, author country and open/closed
weights, plus top apps) and, for a logged-in viewer, tokens by app category.  Four of the
five rank the same rows: author, country and weights are functions of the model, so one
grouped read of the model rollup (:func:`tollway.analytics.rankings.fetch_grouped`) feeds
all four :func:`~tollway.analytics.rankings.build_report` calls, instead of four reads of
the same rows by four requests.  Each report carries the fields the page draws of the
document ``/api/v1/analytics/rankings`` answers for that query (:func:`slim`: a third of
the bytes); the categories are the ``/api/v1/analytics/query`` document.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Connection

from tollway.analytics import periods
from tollway.analytics.attribution import Attribution
from tollway.analytics.query import Viewer, run_query
from tollway.analytics.query_spec import parse_query
from tollway.analytics.rankings import GroupedRow, RankingQuery, build_report, fetch_grouped
from tollway.console import queries
from tollway.ledger.schema import utcnow

AUTHOR_TOP = 10
APP_TOP = 10
CATEGORY_DAYS = 28  # the categories chart covers the last four weeks of the range
CATEGORY_LIMIT = 12
DAY_RANGE_DAYS = 60  # period=day without ``from``: the last 60 days (a year of days weighs ~1 MB)
# What the page draws of each report (the rankings API's documents carry more per row).
ROW_FIELDS = ("period_start", "key", "rank", "total_tokens", "share", "change", "rank_change")
PERIOD_FIELDS = ("period_start", "total_tokens")


@dataclass(frozen=True, slots=True)
class PageQuery:
    """The page's form: period of the time charts, range (inclusive dates), top N models."""

    period: str = "week"
    start: date | None = None
    end: date | None = None
    top: int = 8
    key_id: str | None = None  # None: every key's traffic

    def ranking(self, by: str, period: str, top: int | None) -> RankingQuery:
        return RankingQuery(by=by, period=period, start=self.start, end=self.end, top=top, key_id=self.key_id)

    def with_default_range(self, latest: date | None) -> PageQuery:
        """Days without ``from`` start :data:`DAY_RANGE_DAYS` before ``to`` (else the latest
        traffic, ``latest``); weeks and months cover the whole history."""
        anchor = self.end or latest
        if self.period != "day" or self.start is not None or anchor is None:
            return self
        return replace(self, start=anchor - timedelta(days=DAY_RANGE_DAYS - 1))


def slim(report: dict[str, Any]) -> dict[str, Any]:
    """A rankings report with only what the page draws: each row's rank, tokens, share and
    change, each period's total."""
    return {"period": report["period"], "by": report["by"], "from": report["from"], "to": report["to"],
            "rows": [{name: row[name] for name in ROW_FIELDS} for row in report["rows"]],
            "periods": [{name: p[name] for name in PERIOD_FIELDS} for p in report["periods"]]}


def model_reports(conn: Connection, page: PageQuery, attribution: Attribution) -> dict[str, dict[str, Any]]:
    """Tokens by model, author (whole range), author country and weights, from one read."""
    models = page.ranking("model", page.period, page.top)
    rows = fetch_grouped(conn, models)
    out = {"model": build_report(rows, models, attribution.resolver("model"))}
    # Author, country and weights rank a handful of labels: fold the (period, model) rows into
    # (period, label) rows in one pass, then rank those (the same report: build_report sums
    # rows by their resolved label, and here a label resolves to itself).
    folded = _fold(rows, {by: attribution.resolver(by) for by in ("origin", "weights", "author")})
    folded["author"] = _as_total(conn, folded["author"], page)  # (period, author) rows: a few thousand
    for by, top in (("origin", None), ("weights", None), ("author", AUTHOR_TOP)):
        query = page.ranking(by, "total", top) if by == "author" else replace(models, by=by, top=top)
        out[by] = build_report(folded[by], query, _itself)
    return out


def _itself(label: str) -> str:
    return label


def _fold(rows: list[GroupedRow], resolvers: dict[str, Callable[[str], str]]) -> dict[str, list[GroupedRow]]:
    """Rows summed by (period start, resolved label), one list per resolver.

    Each group's measure lists are gathered first and summed column by column at the end
    (``sum`` over ``zip``: the additions run in C, not one Python step per measure).
    """
    names = list(resolvers)
    labels_of: dict[str, tuple[str, ...]] = {}
    groups: list[dict[tuple[date, str], list[Sequence[int]]]] = [{} for _ in names]
    for start, raw, _, measures in rows:
        labels = labels_of.get(raw)
        if labels is None:
            labels = labels_of[raw] = tuple(resolvers[name](raw) for name in names)
        for target, label in zip(groups, labels, strict=True):
            found = target.get((start, label))
            if found is None:
                target[(start, label)] = [measures]
            else:
                found.append(measures)
    return {name: [(start, label, "", [sum(column) for column in zip(*lists, strict=True)])
                   for (start, label), lists in target.items()]
            for name, target in zip(names, groups, strict=True)}


def _as_total(conn: Connection, rows: list[GroupedRow], page: PageQuery) -> list[GroupedRow]:
    """The range's rows as one period, as ``period=total`` reads them: the rows of the period
    before the range (read for rank change) left out, dated at ``from`` or else at the first
    day of traffic (not the start of its week or month)."""
    if page.start is not None:
        first = periods.floor(page.start, page.period)
        rows = [r for r in rows if r[0] >= first]
    if not rows:
        return []
    first_day = page.start or queries.first_day(conn, key_id=page.key_id) or min(r[0] for r in rows)
    return [(first_day, raw, key, measures) for _, raw, key, measures in rows]


def app_report(conn: Connection, page: PageQuery, attribution: Attribution) -> dict[str, Any]:
    query = page.ranking("app", "total", APP_TOP)
    return build_report(fetch_grouped(conn, query), query, attribution.resolver("app"))


def category_range(page: PageQuery, last_period: date | None) -> tuple[datetime, datetime] | None:
    """The four weeks the categories chart covers: up to ``to``, else to the end of the week
    that starts at the last period of the model chart (as the page always showed it)."""
    if page.end is not None:
        end = datetime.combine(page.end + timedelta(days=1), time())
    elif last_period is not None:
        end = datetime.combine(last_period + timedelta(days=7), time())
    else:
        return None
    return end - timedelta(days=CATEGORY_DAYS), end


def category_report(conn: Connection, span: tuple[datetime, datetime], viewer: Viewer,
                    attribution: Attribution) -> dict[str, Any]:
    """Tokens by app category over ``span``: the ``/api/v1/analytics/query`` document."""
    start, end = span
    body = {"metrics": ["tokens_total"], "dimensions": ["category"],
            "time_range": {"start": start.isoformat() + "Z", "end": end.isoformat() + "Z"},
            "order_by": {"field": "tokens_total", "direction": "desc"}, "limit": CATEGORY_LIMIT}
    return run_query(conn, parse_query(body, utcnow()), viewer, attribution)
