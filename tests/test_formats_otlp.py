"""OTLP JSON as the OpenTelemetry Collector's file exporter writes it (and its variants)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from halo_mcp.store.formats import ROW_FIELDS, detect_format, parse_line, parse_line_report

DATA = Path(__file__).parent / "data" / "formats"


def rows_by_span(name: str) -> dict[str, dict]:
    rows = {}
    for line in (DATA / name).read_bytes().splitlines():
        for row in parse_line(line):
            rows[row[1]] = dict(zip(ROW_FIELDS, row, strict=True))
    return rows


def test_one_collector_line_holds_many_spans_from_several_resources():
    first = (DATA / "otlp_collector.jsonl").read_bytes().splitlines()[0]
    assert detect_format(first) == "otlp-json"
    rows = [dict(zip(ROW_FIELDS, row, strict=True)) for row in parse_line(first)]
    assert [row["span_id"] for row in rows] == [
        "eee19b7ec3c1b174",
        "eee19b7ec3c1b175",
        "eee19b7ec3c1b176",
    ]
    assert [row["service"] for row in rows] == [
        "checkout-agent",
        "checkout-agent",
        "coupon-service",
    ]


def test_ns_strings_int64_strings_and_int_enums_are_decoded():
    rows = rows_by_span("otlp_collector.jsonl")
    root, chat = rows["eee19b7ec3c1b174"], rows["eee19b7ec3c1b175"]
    assert root["parent_span_id"] is None  # "" means root
    assert root["start_ns"] == 1_735_732_800_000_000_000
    assert root["end_ns"] == 1_735_732_810_000_000_000
    assert root["status"] == "unset"  # empty status object
    assert root["agent"] == "checkout"
    assert root["session_id"] == "cart-77"
    assert chat["status"] == "ok"  # code 1
    assert (chat["input_tokens"], chat["output_tokens"]) == (1200, 80)
    assert chat["model"] == "gpt-4o"
    assert chat["kind"] == "llm"


def test_an_exception_event_gives_the_error_and_its_type_and_message():
    tool = rows_by_span("otlp_collector.jsonl")["eee19b7ec3c1b176"]
    assert tool["status"] == "error"
    assert tool["error_message"] == "KeyError: coupon SAVE10 expired"
    assert tool["tool_name"] == "apply_coupon"
    assert tool["start_ns"] == 1_735_732_804_000_000_000  # given as a JSON int


def test_status_code_2_keeps_its_message():
    span = rows_by_span("otlp_collector.jsonl")["eee19b7ec3c1b177"]
    assert (span["status"], span["error_message"]) == ("error", "SMTP 550 mailbox unavailable")


def test_base64_ids_are_converted_to_lowercase_hex():
    rows = rows_by_span("otlp_base64_snake.jsonl")
    assert set(rows) == {"1122334455667788", "99aabbccddeeff00", "0102030405060708"}
    chat = rows["99aabbccddeeff00"]
    assert chat["trace_id"] == "a3c1f0e2d4b6987012345678abcdef01"
    assert chat["parent_span_id"] == "1122334455667788"
    assert rows["1122334455667788"]["agent"] == "base64-agent"


def test_snake_case_protobuf_json_is_read_too():
    tool = rows_by_span("otlp_base64_snake.jsonl")["0102030405060708"]
    assert tool["trace_id"] == "a3c1f0e2d4b6987012345678abcdef01"  # uppercase hex lowered
    assert tool["service"] == "snake-app"
    assert tool["tool_name"] == "grep"
    assert tool["kind"] == "tool"
    assert tool["start_ns"] == 1_735_732_803_000_000_000


def test_unpadded_base64_ids_are_accepted():
    trace = base64.b64encode(bytes(range(16))).decode().rstrip("=")
    span = base64.urlsafe_b64encode(bytes(range(8, 16))).decode().rstrip("=")
    span_object = {"traceId": trace, "spanId": span, "name": "x", "startTimeUnixNano": "1"}
    line = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span_object]}]}]}).encode()
    row = parse_line(line)[0]
    assert row[0] == bytes(range(16)).hex()
    assert row[1] == bytes(range(8, 16)).hex()


def test_a_lone_otlp_span_object_per_line_is_accepted():
    line = (
        b'{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",'
        b'"name":"solo","kind":"SPAN_KIND_SERVER","startTimeUnixNano":"1735732800000000000",'
        b'"status":{"code":"STATUS_CODE_ERROR","message":"bad gateway"},'
        b'"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"lone"}}]}}'
    )
    assert detect_format(line) == "otlp-json"
    row = dict(zip(ROW_FIELDS, parse_line(line)[0], strict=True))
    assert (row["status"], row["error_message"], row["service"]) == ("error", "bad gateway", "lone")


def test_an_envelope_with_no_spans_is_empty_not_bad():
    assert parse_line_report(b'{"resourceSpans":[]}') == ([], 0, None)
    assert parse_line_report(b'{"resourceLogs":[{"scopeLogs":[]}]}') == ([], 0, None)
