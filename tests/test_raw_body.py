"""``tollway.raw_body``: when a body is read raw, and when the ordinary parse reads it."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from tollway.raw_body import RawBodyReader, may_be_worth_reading_raw, worth_reading_raw

_READER = RawBodyReader("messages", ("model", "max_tokens"))
_MESSAGE = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant"]),
                                  "content": st.text(alphabet="ab{}\"\\ ", max_size=300)})


@given(messages=st.lists(_MESSAGE, max_size=6))
def test_the_brace_count_never_declines_a_body_worth_reading_raw(messages: list[dict[str, str]]) -> None:
    """The memchr pre-check only ever declines what the full reading would decline too."""
    raw = orjson.dumps({"model": "m", "max_tokens": 1, "messages": messages})
    read = _READER.read(raw)
    if not may_be_worth_reading_raw(raw):
        assert read is None
        spans = [orjson.dumps(m) for m in messages]
        assert not worth_reading_raw(spans)  # type: ignore[arg-type]  # bytes stand in for Raw spans


def test_one_long_message_is_left_to_the_ordinary_parse_before_any_scan() -> None:
    """../shared/bench/load.py's body: one 200 KB user message."""
    one = orjson.dumps({"model": "m", "max_tokens": 1, "messages": [{"role": "user", "content": "x" * 200_000}]})
    assert not may_be_worth_reading_raw(one)
    assert _READER.read(one) is None
    three = orjson.dumps({"model": "m", "max_tokens": 1, "messages": [
        {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
        {"role": "user", "content": "x" * 999}]})
    assert may_be_worth_reading_raw(three)
    assert _READER.read(three) is not None
