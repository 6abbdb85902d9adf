"""A span's content, read on demand: what a span view shows and what a text filter searches."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from halo_mcp.store.formats import (
    BadLineError,
    SpanNotOnLineError,
    parse_line,
    span_payload,
    span_payloads,
    span_text,
)

DATA = Path(__file__).parent / "data" / "formats"


def line_of(name: str, index: int) -> bytes:
    return (DATA / name).read_bytes().splitlines()[index]


def test_halo_llm_messages_are_rendered_as_input_and_output():
    payload = span_payload(line_of("halo_flat.jsonl", 1), "1a2b3c4d5e6f7081")
    assert payload.input == "system: You are a support agent.\nuser: Where is my order #1234?"
    assert payload.output == "assistant: Let me look that up."
    assert payload.attributes["llm.model_name"] == "gpt-4o-mini"
    assert payload.resource == {"service.name": "support-bot"}
    assert payload.raw["span_id"] == "1a2b3c4d5e6f7081"


def test_halo_tool_error_payload_has_status_message_and_exception_event():
    payload = span_payload(line_of("halo_flat.jsonl", 2), "2b3c4d5e6f708192")
    assert payload.input == '{"order_id": 1234}'
    assert payload.status_message == "order service timed out after 30s"
    assert payload.events == [
        {
            "name": "exception",
            "time": "2025-01-01T12:00:04.000000000Z",
            "attributes": {"exception.type": "TimeoutError", "exception.message": "read timed out"},
        }
    ]
    text = span_text(payload)
    assert re.search("timed out after", text, re.I)
    assert re.search("TimeoutError", text)


def test_otlp_attributes_are_decoded_and_kvlists_flattened():
    payload = span_payload(line_of("otlp_collector.jsonl", 0), "eee19b7ec3c1b175")
    assert payload.attributes["gen_ai.usage.input_tokens"] == 1200
    assert payload.attributes["gen_ai.request.temperature"] == 0.2
    assert payload.attributes["gen_ai.response.finish_reasons"] == ["tool_calls"]
    assert payload.attributes["llm.invocation.stream"] is True
    assert payload.attributes["llm.invocation.max_tokens"] == 512
    assert payload.resource["deployment.environment"] == "prod"
    # Older GenAI semconv keeps messages in events.
    assert payload.input == "user: Apply coupon SAVE10"
    assert payload.output == "assistant: Calling apply_coupon"


def test_otlp_exception_event_gives_the_status_message_when_the_status_has_none():
    payload = span_payload(line_of("otlp_collector.jsonl", 0), "eee19b7ec3c1b176")
    assert payload.status_message == "KeyError: coupon SAVE10 expired"
    assert payload.input == '{"code":"SAVE10"}'
    assert payload.events[0]["attributes"]["exception.stacktrace"].startswith("Traceback")


def test_genai_tool_arguments_and_result_are_input_and_output():
    payload = span_payload(line_of("genai_semconv.jsonl", 2), "d7ad6b7169203333")
    assert (payload.input, payload.output) == ('{"to": "LIS"}', "no flights found")
    assert payload.status_message == "NoResultsError"
    legacy = span_payload(line_of("genai_semconv.jsonl", 3), "e7ad6b7169203334")
    assert (legacy.input, legacy.output) == (
        "Summarize the itinerary",
        "Flight to Lisbon on Monday",
    )


def test_agents_sdk_generation_input_and_output_become_json_text():
    payload = span_payload(line_of("openai_agents_sdk.jsonl", 2), "span_b1b2c3d4e5f6a7b8c9d0e1f2")
    assert '"I was charged twice"' in payload.input
    assert "Transferring to billing." in payload.output
    assert payload.attributes["model"] == "gpt-4o"
    assert payload.attributes["usage.input_tokens"] == 345
    assert "input" not in payload.attributes


def test_agents_sdk_error_data_is_searchable():
    payload = span_payload(line_of("openai_agents_sdk.jsonl", 3), "span_c1b2c3d4e5f6a7b8c9d0e1f2")
    assert payload.status_message == "Error running tool: account service returned 503"
    assert "account service returned 503" in payload.attributes["error.data"]
    assert re.search(r"returned 5\d\d", span_text(payload))


def test_span_text_holds_content_and_attribute_values_once():
    payload = span_payload(line_of("openinference.jsonl", 2), "c1d2e3f4a5b60718")
    text = span_text(payload)
    assert "Plan a literature search on RLMs" in text
    assert "web_search" in text  # a tool call in the output messages
    assert "llm.model_name: claude-3-5-sonnet" in text
    assert text.count("Plan a literature search") == 1


def test_base64_otlp_spans_are_found_by_their_hex_id():
    payload = span_payload(line_of("otlp_base64_snake.jsonl", 0), "99aabbccddeeff00")
    assert payload.attributes["llm.model_name"] == "gpt-4o"


def test_all_payloads_of_a_line_in_one_parse():
    ids = [span_id for span_id, _ in span_payloads(line_of("otlp_collector.jsonl", 0))]
    assert ids == ["eee19b7ec3c1b174", "eee19b7ec3c1b175", "eee19b7ec3c1b176"]


def test_asking_for_a_span_that_is_not_on_the_line_says_to_rebuild_the_index():
    with pytest.raises(SpanNotOnLineError, match="rebuild the index"):
        span_payload(line_of("halo_flat.jsonl", 0), "ffffffffffffffff")


def test_a_line_that_is_not_json_cannot_give_a_payload():
    with pytest.raises(BadLineError):
        span_payload(b'{"trace_id": "x", "span_', "x")


def test_a_reused_buffer_is_never_served_from_the_last_parse():
    first = line_of("halo_flat.jsonl", 0)
    second = line_of("halo_flat.jsonl", 1)
    buffer = bytearray(first)
    assert parse_line(buffer)[0][1] == "00f067aa0ba902b7"
    buffer[:] = second
    assert parse_line(buffer)[0][1] == "1a2b3c4d5e6f7081"
    assert span_payload(buffer, "1a2b3c4d5e6f7081").attributes["llm.model_name"] == "gpt-4o-mini"


def test_payloads_of_the_line_just_parsed_match_a_fresh_parse():
    line = line_of("otlp_collector.jsonl", 0)
    rows = parse_line(line)
    fresh = b" " + line  # same JSON, another object
    for row in rows:
        assert span_payload(line, row[1]) == span_payload(fresh, row[1])
