"""Property tests (Hypothesis) over the request bodies, query strings and headers of every endpoint.

Properties: no response is >= 500 (bad input is the client's 4xx, good input is served),
a key the admin API changed in any accepted way still gets answers below 500, and metering
never stops: after all the fuzzing, a normal request is recorded in the ledger table.

Examples per property: ``TOLLWAY_FUZZ_EXAMPLES`` (default 20, a few seconds each in CI).  The
longer campaign is the same file with a larger number, e.g. ``TOLLWAY_FUZZ_EXAMPLES=1000``
(see benchmarks/README.md for its figures).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.fuzz_gateway import ADMIN_KEY, MODEL, FuzzTarget, fuzz_target

EXAMPLES = int(os.environ.get("TOLLWAY_FUZZ_EXAMPLES", "20"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def target() -> Iterator[FuzzTarget]:
    with fuzz_target() as running:
        yield running


@pytest.fixture(scope="module")
def client(target: FuzzTarget) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=target.url, timeout=30) as http:
        yield http


# -- strategies ---------------------------------------------------------------------------

# Strings a careless or hostile client sends: NUL, control characters, very long, non-ASCII.
hostile_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=190, max_size=600),
    st.sampled_from(["", "\x00", "a\x00b", "²", "NaN", "-1", "1e20", "9999-12-31T23:59:59-05:00",
                     "0001-01-01", MODEL, MODEL + ":nitro", "../../etc/passwd", "' OR 1=1 --"]),
)
huge_int = st.one_of(st.integers(-(2**70), 2**70), st.sampled_from([0, -1, 2**31, 2**63, 2**64, 10**30]))
scalar = st.one_of(st.none(), st.booleans(), huge_int, st.floats(allow_nan=False), hostile_text)
json_value = st.recursive(scalar, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                          st.dictionaries(hostile_text, inner, max_size=4)),
                          max_leaves=12)


def near_valid(base: dict[str, Any], fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """A valid body with some fields replaced or added (each with its own strategy)."""
    return st.fixed_dictionaries({}, optional=fields).map(lambda changed: {**base, **changed})


def body_for(base: dict[str, Any], fields: list[str], typed: dict[str, st.SearchStrategy[Any]] | None = None,
             ) -> st.SearchStrategy[Any]:
    per_field: dict[str, st.SearchStrategy[Any]] = {name: json_value for name in fields}
    for name, strategy in (typed or {}).items():
        per_field[name] = st.one_of(strategy, json_value)
    return st.one_of(near_valid(base, per_field), json_value)


# Header values as bytes (latin-1 and obs-text, as a raw client can send them).
header_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
                      max_size=700).map(lambda value: value.strip(" \t").encode("latin-1"))
hostile_headers = st.fixed_dictionaries({}, optional={
    name: header_text for name in ("X-Title", "X-OpenRouter-Title", "HTTP-Referer", "Referer", "x-session-id",
                                   "anthropic-beta", "anthropic-version", "Content-Type", "Accept",
                                   "User-Agent", "X-Forwarded-For")})
roles = st.sampled_from(["plain", "limited", "admin", "none", "garbage"])

HI = [{"role": "user", "content": "hi"}]
small_tokens = st.integers(1, 16)
chat_messages = st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system", "tool"]),
                                                "content": st.one_of(hostile_text, json_value)}),
                         min_size=1, max_size=3)
CHAT = body_for({"model": MODEL, "messages": HI, "max_tokens": 4},
                ["model", "messages", "max_tokens", "max_completion_tokens", "n", "stream", "stream_options",
                 "tools", "tool_choice", "provider", "models", "session_id", "user", "stop", "response_format",
                 "reasoning", "temperature", "usage", "seed"],
                {"stream": st.booleans(), "max_tokens": small_tokens, "messages": chat_messages,
                 "session_id": hostile_text})
anthropic_blocks = st.lists(st.fixed_dictionaries({"type": st.sampled_from(["text", "image", "tool_use",
                                                                            "tool_result", "thinking", "?"])},
                                                  optional={"text": json_value, "content": json_value,
                                                            "source": json_value, "input": json_value,
                                                            "id": json_value, "tool_use_id": json_value}),
                            max_size=3)
MESSAGES = body_for({"model": MODEL, "max_tokens": 4, "messages": HI},
                    ["model", "max_tokens", "messages", "system", "tools", "tool_choice", "thinking", "metadata",
                     "stop_sequences", "stream", "output_config", "provider", "session_id", "temperature"],
                    {"stream": st.booleans(), "max_tokens": small_tokens, "system": anthropic_blocks,
                     "messages": st.lists(st.fixed_dictionaries({
                         "role": st.sampled_from(["user", "assistant"]),
                         "content": st.one_of(hostile_text, anthropic_blocks)}), min_size=1, max_size=3)})
EMBEDDINGS = body_for({"model": MODEL, "input": "hello"}, ["model", "input", "dimensions", "encoding_format",
                                                           "user", "provider"])
RESPONSES = body_for({"model": MODEL, "input": "hi", "max_output_tokens": 4},
                     ["model", "input", "instructions", "max_output_tokens", "stream", "store", "previous_response_id",
                      "tools", "tool_choice", "reasoning", "text", "metadata", "provider", "models", "user"],
                     {"stream": st.booleans(), "max_output_tokens": small_tokens,
                      "input": st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant"]),
                                                               "content": st.one_of(hostile_text, json_value)},
                                                              optional={"type": st.sampled_from(
                                                                  ["message", "function_call_output", "?"])}),
                                        min_size=1, max_size=3)})
COUNT_TOKENS = body_for({"model": MODEL, "messages": HI}, ["model", "messages", "system", "tools", "thinking"])
ANALYTICS_QUERY = body_for({"metrics": ["requests"], "dimensions": ["model"]},
                           ["metrics", "dimensions", "filters", "time_range", "granularity", "order_by", "limit",
                            "classifier_dimensions", "classifier_filters"],
                           {"time_range": st.fixed_dictionaries({"start": hostile_text, "end": hostile_text})})
KEY_FIELDS = ["name", "label", "limit", "limit_reset", "rpm", "tpm", "allowed_models", "expires_at", "country",
              "policy", "is_admin", "disabled"]
KEY_CREATE = body_for({"name": "fuzzed"}, KEY_FIELDS)
KEY_UPDATE = body_for({}, [f for f in KEY_FIELDS if f != "disabled"])
TOP_UP = body_for({"amount": 1}, ["amount", "note"])


def _headers(extra: dict[str, Any], role: str, target: FuzzTarget, *, anthropic: bool = False) -> dict[str, Any]:
    token = {"admin": ADMIN_KEY, "none": None, "garbage": "sk-tw-garbage"}.get(role, target.keys.get(role))
    headers = dict(extra)
    if token is not None:
        headers["x-api-key" if anthropic else "Authorization"] = token if anthropic else f"Bearer {token}"
    return headers


def _send(client: httpx.Client, method: str, path: str, body: Any, headers: dict[str, Any]) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", **headers}
    return client.request(method, path, content=raw, headers=headers)


def _assert_handled(resp: httpx.Response) -> None:
    assert resp.status_code < 500, (f"{resp.request.method} {resp.request.url} -> {resp.status_code}: "
                                    f"{resp.text[:300]}; request body {resp.request.content[:600]!r}")
    if resp.status_code >= 400 and resp.headers.get("content-type", "").startswith("application/json"):
        doc = resp.json()
        assert isinstance(doc.get("error"), dict) and doc["error"].get("message"), doc


# -- properties ---------------------------------------------------------------------------

GENERATE = {"/v1/chat/completions": CHAT, "/api/v1/chat/completions": CHAT, "/v1/messages": MESSAGES,
            "/api/v1/messages": MESSAGES, "/v1/embeddings": EMBEDDINGS, "/api/v1/embeddings": EMBEDDINGS,
            "/v1/responses": RESPONSES, "/api/v1/responses": RESPONSES, "/v1/messages/count_tokens": COUNT_TOKENS,
            "/api/v1/analytics/query": ANALYTICS_QUERY}


@pytest.mark.parametrize("path", list(GENERATE))
def test_body_endpoints_never_answer_5xx(path: str, target: FuzzTarget, client: httpx.Client) -> None:
    @FUZZ
    @given(body=st.one_of(GENERATE[path], st.binary(max_size=64)), headers=hostile_headers, role=roles)
    def check(body: Any, headers: dict[str, Any], role: str) -> None:
        _assert_handled(_send(client, "POST", path, body,
                              _headers(headers, role, target, anthropic="/messages" in path)))

    check()


@FUZZ
@given(create=KEY_CREATE, update=KEY_UPDATE, top_up=TOP_UP, headers=hostile_headers)
def test_admin_key_api_never_answers_5xx_and_keys_it_accepts_still_work(
        create: Any, update: Any, top_up: Any, headers: dict[str, Any], target: FuzzTarget,
        client: httpx.Client) -> None:
    admin = _headers(headers, "admin", target)
    key_id = target.key_ids["target"]
    _assert_handled(_send(client, "POST", "/api/v1/keys", create, admin))
    patched = _send(client, "PATCH", f"/api/v1/keys/{key_id}", update, admin)
    _assert_handled(patched)
    _assert_handled(_send(client, "POST", f"/api/v1/keys/{key_id}/credits", top_up, admin))
    # Whatever the admin API accepted, the key's own requests are answered below 500.
    as_key = _headers({}, "target", target)
    _assert_handled(_send(client, "POST", "/v1/chat/completions", {"model": MODEL, "messages": HI, "max_tokens": 2},
                          as_key))
    _assert_handled(client.get("/api/v1/key", headers=as_key))
    if patched.status_code == 200:  # undo what would stop the next example's key from working
        _send(client, "PATCH", f"/api/v1/keys/{key_id}", {"allowed_models": None, "policy": None, "rpm": None,
                                                           "tpm": None, "expires_at": None}, admin)


query_value = st.one_of(hostile_text, huge_int.map(str), st.dates().map(str))
query = st.dictionaries(st.sampled_from([
    "by", "period", "from", "to", "top", "app", "key", "model", "provider", "what_if", "id", "all", "include_disabled",
    "api_key_hash", "date", "group_by", "start_date", "end_date", "modality", "context_bucket", "category",
    "subcategory", "language_type", "sort", "limit", "offset", "app_slug", "turn_range", "task", "before", "order",
    "after"]), query_value, max_size=5)
# Every GET of the API that takes no path parameter (those are fuzzed below).
READS = ["/api/v1/analytics/rankings", "/api/v1/analytics/cost", "/api/v1/analytics/tasks",
         "/api/v1/analytics/requests", "/api/v1/generation", "/api/v1/keys", "/api/v1/key", "/api/v1/credits",
         "/api/v1/models", "/v1/models", "/health", "/metrics", "/openapi.json", "/api/v1/analytics/meta",
         "/api/v1/activity", "/api/v1/datasets/rankings-daily", "/api/v1/datasets/app-rankings",
         "/api/v1/datasets/session-cost", "/api/v1/console/activity", "/api/v1/console/generations",
         "/api/v1/console/tasks", "/api/v1/console/providers", "/api/v1/console/rankings"]


@FUZZ
@given(path=st.sampled_from(READS), params=query, headers=hostile_headers, role=roles)
def test_read_endpoints_never_answer_5xx(path: str, params: dict[str, str], headers: dict[str, Any], role: str,
                                         target: FuzzTarget, client: httpx.Client) -> None:
    _assert_handled(client.get(path, params=params, headers=_headers(headers, role, target)))


@FUZZ
@given(segment=hostile_text, suffix=st.sampled_from(["", "/usage", "/credits"]),
       method=st.sampled_from(["GET", "PATCH", "DELETE", "POST"]), role=roles)
def test_path_parameters_never_answer_5xx(segment: str, suffix: str, method: str, role: str, target: FuzzTarget,
                                          client: httpx.Client) -> None:
    escaped = quote(segment, safe="")
    if escaped in (".", ".."):
        return
    headers = _headers({}, role, target)
    _assert_handled(client.request(method, f"/api/v1/keys/{escaped}{suffix}", json={}, headers=headers))
    _assert_handled(client.get(f"/api/v1/models/{escaped}/{escaped}/endpoints", headers=headers))
    _assert_handled(client.get(f"/v1/responses/{escaped}{suffix and '/input_items'}", headers=headers))
    _assert_handled(client.delete(f"/v1/responses/{escaped}", headers=headers))


def test_metering_never_stopped(target: FuzzTarget) -> None:
    """Runs after the fuzzing above (file order): a normal request is still answered and recorded."""
    resp = target.normal_chat()
    assert resp.status_code == 200, resp.text
    assert target.recorded(resp.json()["id"])
