"""Validation of Responses objects and stream events against OpenAI's OpenAPI spec."""

from __future__ import annotations

from typing import Any

from tests.api.test_openapi_conformance import _errors

SPEC = "openai-openapi.yaml"

# Event type -> its schema in the spec (components/schemas).
EVENT_SCHEMAS = {
    "response.created": "ResponseCreatedEvent",
    "response.in_progress": "ResponseInProgressEvent",
    "response.completed": "ResponseCompletedEvent",
    "response.incomplete": "ResponseIncompleteEvent",
    "response.failed": "ResponseFailedEvent",
    "error": "ResponseErrorEvent",
    "response.output_item.added": "ResponseOutputItemAddedEvent",
    "response.output_item.done": "ResponseOutputItemDoneEvent",
    "response.content_part.added": "ResponseContentPartAddedEvent",
    "response.content_part.done": "ResponseContentPartDoneEvent",
    "response.output_text.delta": "ResponseTextDeltaEvent",
    "response.output_text.done": "ResponseTextDoneEvent",
    "response.function_call_arguments.delta": "ResponseFunctionCallArgumentsDeltaEvent",
    "response.function_call_arguments.done": "ResponseFunctionCallArgumentsDoneEvent",
    "response.reasoning_summary_part.added": "ResponseReasoningSummaryPartAddedEvent",
    "response.reasoning_summary_part.done": "ResponseReasoningSummaryPartDoneEvent",
    "response.reasoning_summary_text.delta": "ResponseReasoningSummaryTextDeltaEvent",
    "response.reasoning_summary_text.done": "ResponseReasoningSummaryTextDoneEvent",
}


def response_errors(doc: dict[str, Any]) -> list[str]:
    return _errors(SPEC, "Response", doc)


def event_errors(event: dict[str, Any]) -> list[str]:
    schema = EVENT_SCHEMAS.get(event.get("type", ""))
    if schema is None:
        return [f"no schema for event type {event.get('type')!r}"]
    return _errors(SPEC, schema, event) + _errors(SPEC, "ResponseStreamEvent", event)
