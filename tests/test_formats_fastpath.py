"""The HALO fast path is only a shortcut: every line gives the same rows with or without it.

`fastpath.halo_row` (inlined HALO flat spans) and `compiled.compiled_semantics`
(attribute conventions compiled per key set) must agree exactly with the general
`spans.span_row` and `conventions.semantics`, on the shipped examples, the format test
files, and hand-written odd spans that sit just off the common shape.
"""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from halo_mcp.store.formats import lines as lines_module
from halo_mcp.store.formats import parse_line_report
from halo_mcp.store.formats.attributes import attribute_map
from halo_mcp.store.formats.compiled import compiled_semantics
from halo_mcp.store.formats.conventions import semantics
from halo_mcp.store.formats.fastpath import halo_row
from halo_mcp.store.formats.spans import span_row

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_FILES = [
    ROOT / "examples" / "traces.jsonl",
    ROOT / "examples" / "otlp" / "traces.otlp.jsonl",
    *sorted((ROOT / "tests" / "data" / "formats").glob("*.jsonl")),
]

BASE_SPAN: dict[str, Any] = {
    "trace_id": "cd613e30d8f16adf91b7584a2265b1f5",
    "span_id": "076f3787b9d179e0",
    "parent_span_id": "7ce42c8218072e8c",
    "name": "ChatCompletion",
    "kind": "SPAN_KIND_CLIENT",
    "start_time": "2026-11-16T00:00:00.002368517Z",
    "end_time": "2026-11-16T00:00:01.542607997Z",
    "status": {"code": "STATUS_CODE_OK", "message": ""},
    "resource": {"attributes": {"service.name": "research-service"}},
    "scope": {"name": "openinference.instrumentation.openai_agents", "version": "1.2.0"},
    "attributes": {
        "openinference.span.kind": "LLM",
        "session.id": "sess_1e2feb89414c343c",
        "inference.agent_name": "research-agent",
        "llm.model_name": "gpt-5.4",
        "llm.token_count.prompt": 40,
        "llm.token_count.completion": 43,
    },
}

# Top-level changes that keep a span near the common shape: (key, value); None deletes.
TOP_CHANGES: list[tuple[str, Any]] = [
    ("trace_id", "CD613E30D8F16ADF91B7584A2265B1F5"),
    ("trace_id", "00000000000000000000000000000000"),
    ("trace_id", ""),
    ("trace_id", 12345),
    ("trace_id", None),
    ("span_id", "0000000000000000"),
    ("span_id", "ABCDEF0123456789"),
    ("span_id", ["x"]),
    ("span_id", None),
    ("parent_span_id", None),
    ("parent_span_id", ""),
    ("parent_span_id", "0000000000000000"),
    ("parent_span_id", "7CE42C8218072E8C"),
    ("parent_span_id", 7),
    ("parent_span_id", {"id": "x"}),
    ("parentSpanId", "aaaaaaaaaaaaaaaa"),
    ("parent_id", "span_parent"),
    ("traceId", "ffffffffffffffffffffffffffffffff"),
    ("start_time", "2026-11-16T00:00:00.002368517+02:00"),
    ("start_time", "2026-11-16T00:00:00.002368Z"),
    ("start_time", "2026-11-16T00:00:00Z"),
    ("start_time", "2026-11-16 00:00:00.002368517Z"),
    ("start_time", "2026-11-16T00:00:60.002368517Z"),
    ("start_time", "2026-11-16T24:00:00.002368517Z"),
    ("start_time", "2026-11-16T00:61:00.002368517Z"),
    ("start_time", "2026-11-16T00:00:00,002368517Z"),
    ("start_time", "2026-11-16T00:00:00.+02368517Z"),
    ("start_time", "2026-11-16T00:00:00.0023685\u00b27Z"),
    ("start_time", "2026-11-16T00:00:00.0023685\u06f17Z"),
    ("start_time", "2026-11-16T00:00:00.002368517z"),
    ("start_time", "2026-11-16T00:00:00.002368517ZZ"),
    ("start_time", "1794787200002368517"),
    ("start_time", 1794787200.5),
    ("start_time", "0001-01-01T00:00:00.000000000Z"),
    ("start_time", "9999-12-31T23:59:59.999999999Z"),
    ("start_time", "garbage-but-thirty-characters!"),
    ("start_time", ""),
    ("start_time", None),
    ("start_time", ["2026-11-16T00:00:00.002368517Z"]),
    ("end_time", "2026-11-16T01:00:00.000000001Z"),
    ("end_time", "2026-11-15T23:59:59.999999999Z"),
    ("end_time", "2026-11-16T00:00:01.5Z"),
    ("end_time", "not a time"),
    ("end_time", None),
    ("end_time", 17),
    ("endTime", "2026-11-16T00:00:02.000000000Z"),
    ("name", ""),
    ("name", 42),
    ("name", None),
    ("name", "agent workflow"),
    ("status", {"code": "STATUS_CODE_ERROR", "message": "boom"}),
    ("status", {"code": "STATUS_CODE_ERROR", "message": ""}),
    ("status", {"code": "STATUS_CODE_ERROR"}),
    ("status", {"code": "STATUS_CODE_ERROR", "description": "described"}),
    ("status", {"code": "STATUS_CODE_OK", "message": 5}),
    ("status", {"code": "STATUS_CODE_OK", "message": "all good"}),
    ("status", {"code": "STATUS_CODE_UNSET", "message": "unset but said"}),
    ("status", {"code": 2, "message": "int code"}),
    ("status", {"code": "Failed", "message": "fuzzy"}),
    ("status", {"code": ["x"]}),
    ("status", {"message": "no code"}),
    ("status", "STATUS_CODE_ERROR"),
    ("status", 1),
    ("status", None),
    ("status", ["error"]),
    (
        "events",
        [{"name": "exception", "attributes": {"exception.type": "E", "exception.message": "m"}}],
    ),
    ("events", [{"name": "log", "attributes": {}}]),
    ("events", []),
    ("events", "junk"),
    ("resource", {"attributes": {"service.name": ""}}),
    ("resource", {"attributes": {"service": {"name": "nested-svc"}}}),
    ("resource", {"attributes": [{"key": "service.name", "value": {"stringValue": "l"}}]}),
    ("resource", {"service.name": "bare"}),
    ("resource", {"attributes": {"service.name": 3}}),
    ("resource", "junk"),
    ("resource", None),
    ("span_data", {"type": "function"}),
    ("attributes", None),
    ("attributes", []),
    ("attributes", [{"key": "tool.name", "value": {"stringValue": "t"}}]),
    ("attributes", "junk"),
    ("attributes", {}),
]

# Attribute changes: (key, value); None deletes the key.
ATTRIBUTE_CHANGES: list[tuple[str, Any]] = [
    ("openinference.span.kind", "tool"),
    ("openinference.span.kind", "Chain"),
    ("openinference.span.kind", "NOT_A_KIND"),
    ("openinference.span.kind", 3),
    ("openinference.span.kind", None),
    ("openinference.span.kind", ["LLM"]),
    ("gen_ai.operation.name", "execute_tool"),
    ("gen_ai.operation.name", "unknown_op"),
    ("openai.agents.span_type", "handoff"),
    ("inference.span_kind", "guardrail"),
    ("inference.agent_name", ""),
    ("inference.agent_name", 7),
    ("inference.agent_name", None),
    ("gen_ai.agent.name", None),
    ("gen_ai.agent.name", "genai-agent"),
    ("agent.name", ""),
    ("llm.model_name", None),
    ("llm.model_name", 4.5),
    ("gen_ai.request.model", "req-model"),
    ("gen_ai.response.model", None),
    ("tool.name", "lookup"),
    ("tool.name", ""),
    ("gen_ai.tool.name", None),
    ("llm.token_count.prompt", "12"),
    ("llm.token_count.prompt", "1.5e3"),
    ("llm.token_count.prompt", -4),
    ("llm.token_count.prompt", 1 << 63),
    ("llm.token_count.prompt", True),
    ("llm.token_count.prompt", 3.9),
    ("llm.token_count.prompt", None),
    ("llm.token_count.completion", "x"),
    ("gen_ai.usage.input_tokens", None),
    ("gen_ai.usage.output_tokens", 9),
    ("inference.llm.input_tokens", 11),
    ("inference.custom_token_count", 5),
    ("inference.model", "late-model"),
    ("session.id", None),
    ("session.id", ""),
    ("thread_id", "thread-1"),
    ("error.type", "Timeout"),
    ("error.type", ""),
    ("error.type", 0),
    ("nested", {"inner": 1}),
    ("llm", {"model_name": "from-nested"}),
    ("list.value", [1, 2]),
    ("inference", {"agent_name": "from-nested-inference"}),
    ("error", {"type": "NestedError"}),
    ("gen_ai.tool.name", {"x": 1}),
    ("tool.name", {"deep": {"er": 2}}),
    # Dicts the fast path checks (they flatten into keys semantics reads) and dicts it
    # lets through (they only add keys nothing reads).
    ("", {"session.id": "from-empty-key"}),
    ("gen_ai", {"usage": {"input_tokens": 7}}),
    ("llm.token_count", {"prompt": 3}),
    ("inference.llm", {"model_name": "from-inference-llm"}),
    ("inference.misc", {"agent_name": "from-inference-misc"}),
    ("llm.model_name", {"x": 1}),
    ("session.id", {}),
    ("error.type", {"code": 1}),
    ("llm.model_name.extra", {"a": 1}),
    ("unrelated", {}),
    ("unrelated.deep", {"a": {"b": 1}}),
]


def general_rows(span: Any) -> Any:
    """span_row's outcome: the row, or the exception type and message it raised."""
    try:
        return span_row(span, None, False)
    except Exception as exc:
        return (type(exc).__name__, str(exc))


def fast_rows(span: Any) -> Any:
    """What parse_line does: the fast path, then the general path when it declines."""
    try:
        row = halo_row(span)
    except Exception as exc:
        return (type(exc).__name__, str(exc))
    return row if row is not None else general_rows(span)


def odd_spans() -> list[dict]:
    spans = []
    for key, value in TOP_CHANGES:
        span = copy.deepcopy(BASE_SPAN)
        span[key] = value  # None: the key is there with a null value
        spans.append(span)
        deleted = copy.deepcopy(BASE_SPAN)
        deleted.pop(key, None)
        spans.append(deleted)
    for key, value in ATTRIBUTE_CHANGES:
        span = copy.deepcopy(BASE_SPAN)
        span["attributes"][key] = value  # None: the key is there with a null value
        spans.append(span)
        deleted = copy.deepcopy(BASE_SPAN)
        deleted["attributes"].pop(key, None)
        spans.append(deleted)
    rng = random.Random(11)
    for _ in range(1500):  # several changes at once
        span = copy.deepcopy(BASE_SPAN)
        for key, value in rng.sample(TOP_CHANGES, rng.randint(0, 2)):
            span[key] = value
        if type(span.get("attributes")) is dict:
            for key, value in rng.sample(ATTRIBUTE_CHANGES, rng.randint(1, 4)):
                span["attributes"][key] = value
            if rng.random() < 0.3:
                items = list(span["attributes"].items())
                rng.shuffle(items)
                span["attributes"] = dict(items)
        spans.append(span)
    return spans


def sample_objects() -> list[Any]:
    objects = []
    for path in SAMPLE_FILES:
        for line in path.read_bytes().splitlines():
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            objects.append(obj)
            if type(obj) is dict:
                for block in obj.get("resourceSpans") or []:
                    for scope in block.get("scopeSpans") or []:
                        objects.extend(scope.get("spans") or [])
    return objects


def test_the_fast_path_gives_the_general_rows_for_every_sample_span():
    objects = [obj for obj in sample_objects() if type(obj) is dict]
    assert len(objects) > 4000
    taken = 0
    for obj in objects:
        assert fast_rows(obj) == general_rows(obj), obj
        taken += halo_row(obj) is not None
    assert taken > 3000  # the shipped HALO examples do take the fast path


def test_odd_spans_near_the_common_shape_give_the_general_rows():
    spans = odd_spans()
    taken = 0
    for span in spans:
        assert fast_rows(span) == general_rows(span), span
        taken += halo_row(span) is not None
    assert 0 < taken < len(spans)  # both paths were exercised


def test_a_typical_halo_span_takes_the_fast_path_with_the_expected_row():
    row = halo_row(copy.deepcopy(BASE_SPAN))
    assert row == span_row(copy.deepcopy(BASE_SPAN), None, False)
    assert row is not None
    assert row[4:6] == ("llm", "ok")
    assert row[7] == 1_794_787_200_002_368_517
    assert row[9:16] == (
        "research-service",
        "research-agent",
        "gpt-5.4",
        None,
        40,
        43,
        "sess_1e2feb89414c343c",
    )


def test_only_dicts_that_would_change_the_row_send_a_span_to_the_general_path():
    harmless = copy.deepcopy(BASE_SPAN)
    harmless["attributes"]["llm.invocation_parameters"] = {"temperature": 0.2}
    assert halo_row(harmless) == span_row(copy.deepcopy(harmless), None, False)
    assert halo_row(harmless) is not None
    meaningful = copy.deepcopy(BASE_SPAN)
    meaningful["attributes"]["llm"] = {"model_name": "nested-model"}
    assert halo_row(meaningful) is None
    assert span_row(meaningful, None, False)[11] == "nested-model"


def test_a_span_with_hundreds_of_competing_keys_gives_the_general_row():
    span = copy.deepcopy(BASE_SPAN)
    del span["attributes"]["llm.model_name"]
    for number in range(300):
        span["attributes"][f"inference.model_{number:03d}_model"] = None if number < 299 else "m"
    assert fast_rows(span) == general_rows(span)
    assert general_rows(span)[11] == "m"


def test_compiled_semantics_match_the_interpreted_conventions():
    attribute_sets = [obj.get("attributes") for obj in sample_objects() if type(obj) is dict]
    attribute_sets += [span.get("attributes") for span in odd_spans()]
    checked = 0
    for attrs in attribute_sets:
        if type(attrs) is list:  # OTLP spans: the flat map the row is built from
            attrs = attribute_map(attrs)
        if type(attrs) is not dict:
            continue
        run = compiled_semantics(tuple(attrs))
        assert run is not None
        for name in ("ChatCompletion", "lookup tool", "x"):
            found, error_type = run(attrs, name)
            assert found == semantics(attrs, name), attrs
            assert error_type == attrs.get("error.type")
        checked += 1
    assert checked > 1000


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda path: path.name)
def test_parse_line_reports_the_same_with_the_fast_path_switched_off(path, monkeypatch):
    lines = path.read_bytes().splitlines()
    lines += [orjson.dumps(span) for span in odd_spans()[:400]]
    with_fast = [parse_line_report(line) for line in lines]
    monkeypatch.setattr(lines_module, "halo_row", lambda span: None)
    without_fast = [parse_line_report(line) for line in lines]
    assert with_fast == without_fast
