"""``MessagesRequest.parse`` over hostile bodies: a request, or a 400 naming the fix; never
another exception (a 500), and never a request that the translation then chokes on."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st

from tollway.errors import BadRequest
from tollway.messages import MessagesRequest

_TEXT = st.text(max_size=12)
_INT = st.integers(min_value=-(2**53), max_value=2**53)
JSON_VALUE = st.recursive(st.none() | st.booleans() | _INT | _TEXT,
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
                     max_leaves=6)
# Bodies the one-pass reading should take: every block typed, no unknown field.
_GOOD_BLOCK = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": _TEXT},
                          optional={"cache_control": st.just({"type": "ephemeral"})}),
    st.fixed_dictionaries({"type": st.just("tool_use"), "id": _TEXT, "name": _TEXT, "input": JSON_VALUE}),
    st.fixed_dictionaries({"type": st.just("tool_result"), "tool_use_id": _TEXT},
                          optional={"content": st.one_of(_TEXT, st.lists(st.fixed_dictionaries(
                              {"type": st.just("text"), "text": _TEXT}), max_size=2)),
                                    "is_error": st.booleans()}),
    st.fixed_dictionaries({"type": st.just("thinking"), "thinking": _TEXT, "signature": _TEXT}),
    st.fixed_dictionaries({"type": st.just("image"), "source": st.fixed_dictionaries(
        {"type": st.just("base64"), "media_type": st.just("image/png"), "data": _TEXT})}))
GOOD_BODY = st.fixed_dictionaries(
    {"model": st.just("test/claude"), "max_tokens": st.integers(min_value=1, max_value=9),
     "messages": st.lists(st.fixed_dictionaries(
         {"role": st.sampled_from(["user", "assistant", "system"]),
          "content": st.one_of(_TEXT, st.lists(_GOOD_BLOCK, max_size=3))}), min_size=1, max_size=5)},
    optional={"system": st.one_of(_TEXT, st.lists(_GOOD_BLOCK, max_size=2)), "stream": st.booleans(),
              "metadata": st.fixed_dictionaries({"user_id": _TEXT}), "context_management": JSON_VALUE})


def _message(body: dict[str, Any], where: int) -> dict[str, Any]:
    message: dict[str, Any] = body["messages"][where % len(body["messages"])]
    return message


def _block(body: dict[str, Any], where: int) -> dict[str, Any]:
    message = _message(body, where)
    if not isinstance(message["content"], list) or not message["content"]:
        message["content"] = [{"type": "text", "text": "x"}]
    block: dict[str, Any] = message["content"][where % len(message["content"])]
    return block


def role(body: dict[str, Any], where: int, value: Any) -> None:
    _message(body, where)["role"] = value if where % 2 else "tool"


def content(body: dict[str, Any], where: int, value: Any) -> None:
    _message(body, where)["content"] = value


def message_field(body: dict[str, Any], where: int, value: Any) -> None:
    _message(body, where)["name"] = value


def block(body: dict[str, Any], where: int, value: Any) -> None:
    message = _message(body, where)
    message["content"] = [*message["content"], value] if isinstance(message["content"], list) else [value]


def block_type(body: dict[str, Any], where: int, value: Any) -> None:
    target = _block(body, where)
    if where % 2:
        target.pop("type")
    else:
        target["type"] = value


def block_field(body: dict[str, Any], where: int, value: Any) -> None:
    _block(body, where)["unknown_field" if where % 2 else "content"] = value


def tool_result(body: dict[str, Any], where: int, value: Any) -> None:
    inner: Any = [{"type": "tool_result", "tool_use_id": "t", "content": value}] if where % 2 else value
    _message(body, where)["content"] = [{"type": "tool_result", "tool_use_id": "t", "content": inner}]


def top_level(body: dict[str, Any], where: int, value: Any) -> None:
    names = ["model", "max_tokens", "messages", "system", "tools", "tool_choice", "thinking", "metadata",
             "output_config", "stop_sequences", "stream", "unknown_top_level"]
    body[names[where % len(names)]] = value


def empty(body: dict[str, Any], where: int, value: Any) -> None:
    body["messages"] = []


FLAWS = [role, content, message_field, block, block_type, block_field, tool_result, top_level, empty]


@settings(max_examples=500, deadline=None)
@given(body=GOOD_BODY, flaw=st.one_of(st.none(), st.sampled_from(FLAWS)), where=st.integers(0, 99),
       value=JSON_VALUE)
def test_a_body_is_a_request_or_a_400(body: dict[str, Any], flaw: Any, where: int, value: Any) -> None:
    """A valid body, or one with one flaw put into it (a role that is a list once raised
    TypeError here: a 500)."""
    if flaw is not None:
        flaw(body, where, value)
    try:
        request = MessagesRequest.parse(body)
    except BadRequest as exc:
        event("400")
        assert exc.code == 400 and exc.message
        return
    event("accepted")
    assert request.openai["messages"][:len(request.route["messages"])] == request.route["messages"]
    assert request.translation_notes is None or request.translation_notes["dropped"]


@settings(max_examples=500, deadline=None)
@given(body=GOOD_BODY, flaw=st.one_of(st.none(), st.sampled_from(FLAWS)), where=st.integers(0, 99),
       value=JSON_VALUE)
def test_translating_while_checking_says_what_the_two_passes_say(body: dict[str, Any], flaw: Any, where: int,
                                                                 value: Any) -> None:
    """``parse(to_chat=True)`` (a model served only in chat format: the check and the chat
    translation in one pass) accepts and rejects exactly what ``parse`` does, with the same
    400, and builds the same routing view and chat body."""
    if flaw is not None:
        flaw(body, where, value)
        event(f"flaw: {flaw.__name__}")
    outcomes = []
    for to_chat in (False, True):
        try:
            request = MessagesRequest.parse(copy.deepcopy(body), to_chat=to_chat)
            outcomes.append(("accepted", request.route, request.openai, request.anthropic))
        except BadRequest as exc:
            outcomes.append(("400", exc.message))
    event(outcomes[0][0])
    assert outcomes[0] == outcomes[1]
