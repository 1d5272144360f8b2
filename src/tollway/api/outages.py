"""Dependency outages as 503s: the one place a driver's connection error becomes an answer.

Handlers and the gateway translate the failures they expect; this catches the rest at the
edge, so a database or Redis that is down or restarting is reported as what it is (503,
naming the dependency, with ``Retry-After``) rather than as a 500 internal error.
"""

from __future__ import annotations

import sys

from sqlalchemy import exc as sa_errors

from tollway.errors import ServiceUnavailable

_RETRY = {"Retry-After": "1"}


def as_outage(exc: BaseException) -> ServiceUnavailable | None:
    """The 503 for ``exc`` when it means a dependency is unreachable, else None."""
    if isinstance(exc, sa_errors.OperationalError | sa_errors.InterfaceError | sa_errors.DisconnectionError
                  | sa_errors.TimeoutError) or (isinstance(exc, sa_errors.DBAPIError) and exc.connection_invalidated):
        return ServiceUnavailable("the ledger database is unreachable; the request was not completed, retry shortly",
                                  code=503, headers=dict(_RETRY))
    # Only a gateway that loaded redis (a Redis store) can meet its errors; one without never imports it.
    redis_errors = sys.modules.get("redis.exceptions")
    if redis_errors is not None and isinstance(
            exc, redis_errors.ConnectionError | redis_errors.TimeoutError | redis_errors.BusyLoadingError):
        return ServiceUnavailable("Redis (shared limits) is unreachable; the request was not completed, "
                                  "retry shortly", code=503, headers=dict(_RETRY))
    return None
