"""schemathesis against the gateway's own ``GET /openapi.json``: every documented operation, with
requests that fit the document (positive) and requests that break it (negative).

Every response is below 500; responses to positive requests also match the document
(status code listed, body valid against the documented schema).  Examples per operation and
mode: ``TOLLWAY_FUZZ_EXAMPLES`` (default 6: generating chat and messages bodies from their
schemas is slow), as in test_properties.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from tests.support.fuzz_gateway import ADMIN_KEY, FuzzTarget, fuzz_target

EXAMPLES = int(os.environ.get("TOLLWAY_FUZZ_EXAMPLES", "6"))
# Same handlers as their /v1 twins; fuzzed only in a campaign (TOLLWAY_FUZZ_EXAMPLES set).
ALIASES = () if "TOLLWAY_FUZZ_EXAMPLES" in os.environ else (
    "/api/v1/chat/completions", "/api/v1/messages", "/api/v1/embeddings")


@pytest.fixture(scope="module")
def target() -> Iterator[FuzzTarget]:
    with fuzz_target() as running:
        yield running


def _operations(target: FuzzTarget) -> list[Any]:
    schema = schemathesis.openapi.from_url(target.url + "/openapi.json")
    schema.validate()  # raises unless the document is valid OpenAPI 3.1
    return [result.ok() for result in schema.get_all_operations()]


def test_the_document_is_valid_and_describes_every_route(target: FuzzTarget) -> None:
    from tollway.api.openapi import document, served_operations

    assert _operations(target)
    paths = httpx.get(target.url + "/openapi.json", timeout=10).json()["paths"]
    in_document = {(method.upper(), path) for path, item in paths.items() for method in item if method != "parameters"}
    served = served_operations(target.app.app.routes)
    assert in_document == served
    every = document()["paths"]  # every operation tollway documents, served here or not
    assert served <= {(m.upper(), p) for p, item in every.items() for m in item if m != "parameters"}


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_operation_answers_5xx(mode: GenerationMode, target: FuzzTarget) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    checks = [not_a_server_error]
    if mode is GenerationMode.POSITIVE:
        checks += [status_code_conformance, response_schema_conformance]
    failures: list[str] = []
    for operation in _operations(target):
        if operation.path in ALIASES:
            continue

        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode))
        def check(case: Any) -> None:
            response = case.call(base_url=target.url, headers=headers, timeout=30, allow_redirects=False)
            case.validate_response(response, checks=checks)

        try:
            check()
        except Unsatisfiable:
            # Nothing can break a document with no parameters and no body (/health, /metrics).
            assert mode is GenerationMode.NEGATIVE
        except Exception as exc:  # collected, so one run reports every failing operation
            failures.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:1500]}")
    assert failures == [], "\n\n".join(failures)
    resp = target.normal_chat()
    assert resp.status_code == 200 and target.recorded(resp.json()["id"])
    assert httpx.get(target.url + "/health", timeout=10).status_code == 200
