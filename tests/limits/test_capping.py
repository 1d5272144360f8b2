"""The capping rule and the prompt bound, for every body shape that reaches them."""

from __future__ import annotations

import pytest

from tollway.errors import BadRequest
from tollway.limits.capping import (
    CHAT_OUTPUT_FIELDS,
    IMAGE_BOUND,
    MESSAGE_OVERHEAD,
    REQUEST_OVERHEAD,
    RESPONSES_OUTPUT_FIELDS,
    UNSEEN_PART,
    cap_output,
    choices,
    input_bound,
    prompt_bound,
    requested_output,
)


def test_the_larger_output_field_is_what_the_client_may_get() -> None:
    assert requested_output({"max_completion_tokens": 1, "max_tokens": 2000}) == 2000
    assert requested_output({"max_completion_tokens": 300}) == 300
    assert requested_output({}) is None
    assert requested_output({"max_output_tokens": 70}, RESPONSES_OUTPUT_FIELDS) == 70


def test_cap_output_lowers_every_field_used_or_sets_the_first() -> None:
    body = {"max_completion_tokens": 1, "max_tokens": 2000}
    cap_output(body, 500, CHAT_OUTPUT_FIELDS)
    assert body == {"max_completion_tokens": 1, "max_tokens": 500}
    bare: dict[str, object] = {}
    cap_output(bare, 123, CHAT_OUTPUT_FIELDS)
    assert bare == {"max_tokens": 123}
    responses: dict[str, object] = {"max_output_tokens": 10_000}
    cap_output(responses, 64, RESPONSES_OUTPUT_FIELDS)
    assert responses == {"max_output_tokens": 64}


@pytest.mark.parametrize("n", ["50", 0, -1, 2.5, True])
def test_n_must_be_a_positive_integer(n: object) -> None:
    with pytest.raises(BadRequest, match="'n'"):
        choices({"n": n})
    assert choices({"n": 50}) == 50 and choices({}) == 1


def test_the_prompt_bound_counts_bytes_and_overheads() -> None:
    text = "naïve 日本"  # 6 + 1 + 6 bytes: more bytes than characters
    assert prompt_bound({"messages": [{"role": "user", "content": text}]}) == \
        REQUEST_OVERHEAD + MESSAGE_OVERHEAD + len(b"user") + len(text.encode())
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 100}}
    with_image = prompt_bound({"messages": [{"role": "user", "content": [image]}]})
    assert with_image == REQUEST_OVERHEAD + MESSAGE_OVERHEAD + len(b"user") + IMAGE_BOUND
    by_reference = {"type": "file", "file": {"file_id": "file-abc"}}
    assert prompt_bound({"messages": [{"role": "user", "content": [by_reference]}]}) > UNSEEN_PART
    audio = {"type": "input_audio", "input_audio": {"data": "B" * 50_000, "format": "wav"}}
    assert prompt_bound({"messages": [{"role": "user", "content": [audio]}]}) > 50_000


def test_the_prompt_bound_reads_responses_bodies() -> None:
    body = {"instructions": "be brief", "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "x" * 1000},
                                     {"type": "input_image", "image_url": "https://e.com/a.png"}]}]}
    assert prompt_bound(body) > 1000 + IMAGE_BOUND + len(b"be brief")
    assert prompt_bound({"input": "y" * 500}) >= 500


def test_the_input_bound_of_embeddings() -> None:
    assert input_bound({"input": ["é" * 10, [1, 2, 3]]}) == 20 + 2 + 3


def test_the_prompt_bound_covers_upstreams_that_bill_a_quarter_of_the_body() -> None:
    """Fields no template renders (a long session_id, unknown options) still reach an
    upstream that bills len(body) // 4, as the benchmark's does: the bound covers them."""
    import orjson

    from tollway.limits.capping import prompt_bound

    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "session_id": "s" * 900,
            "vendor_option": {"x": "y" * 2000}}
    sent = orjson.dumps({**body, "stream": True, "stream_options": {"include_usage": True}})
    assert prompt_bound(body) >= len(sent) // 4
