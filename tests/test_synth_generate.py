"""The synthetic trace generator: deterministic files whose manifest tells the truth.

Every check reads the written file back line by line with its own small reader (no
store involved), so the manifest is verified against the bytes on disk.
"""

from __future__ import annotations

import base64
import gzip
import itertools
import math
import re
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from halo_mcp.store.models import SpanFilter
from halo_mcp.synth import (
    FAILURE_MODES,
    MODE_NAMES,
    NO_FAILURES,
    Manifest,
    generate,
    load_manifest,
    manifest_path,
)
from halo_mcp.synth.__main__ import main as synth_main

# -- a minimal reader of the three formats, for checking the files independently -------

_OI_KINDS = {"AGENT": "agent", "LLM": "llm", "TOOL": "tool", "GUARDRAIL": "guardrail"}
_GENAI_KINDS = {"invoke_agent": "agent", "chat": "llm", "execute_tool": "tool"}
_SDK_KINDS = {"agent": "agent", "generation": "llm", "function": "tool", "guardrail": "guardrail"}


def _flat(attributes: list[dict[str, Any]]) -> dict[str, Any]:
    out = {}
    for item in attributes:
        ((_, value),) = item["value"].items()
        out[item["key"]] = value
    return out


def _hex_id(value: str) -> str:
    """OTLP ids are hex, or base64 in sloppy (protobuf JSON) exports."""
    if re.fullmatch(r"[0-9a-f]{16}|[0-9a-f]{32}", value):
        return value
    return base64.b64decode(value).hex()


def _kind(attrs: dict[str, Any]) -> str:
    if "openinference.span.kind" in attrs:
        return _OI_KINDS.get(attrs["openinference.span.kind"], "chain")
    return _GENAI_KINDS.get(attrs.get("gen_ai.operation.name", ""), "other")


def read_spans(path: Path) -> list[dict[str, Any]]:
    """Every span in a generated file as {trace, span, parent, kind, tool, error, text}."""
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    data = data.removeprefix(b"\xef\xbb\xbf")
    spans = []
    for line in data.split(b"\n"):
        if not line:
            continue
        obj = orjson.loads(line)
        text = line.decode()
        if "resourceSpans" in obj:
            for resource in obj["resourceSpans"]:
                for scope in resource["scopeSpans"]:
                    for raw in scope["spans"]:
                        attrs = _flat(raw["attributes"])
                        spans.append(
                            {
                                "trace": _hex_id(raw["traceId"]),
                                "span": _hex_id(raw["spanId"]),
                                "parent": raw.get("parentSpanId"),
                                "kind": _kind(attrs),
                                "tool": attrs.get("tool.name") or attrs.get("gen_ai.tool.name"),
                                "error": raw["status"].get("message")
                                if raw["status"].get("code") in (2, "STATUS_CODE_ERROR")
                                else None,
                                "text": orjson.dumps(raw).decode(),
                            }
                        )
        elif obj.get("object") == "trace.span":
            data_ = obj["span_data"]
            spans.append(
                {
                    "trace": obj["trace_id"],
                    "span": obj["id"],
                    "parent": obj["parent_id"],
                    "kind": _SDK_KINDS.get(data_["type"], "other"),
                    "tool": data_.get("name") if data_["type"] == "function" else None,
                    "error": (obj["error"] or {}).get("message"),
                    "text": text,
                }
            )
        elif obj.get("object") == "trace":
            continue
        else:
            attrs = obj["attributes"]
            spans.append(
                {
                    "trace": obj["trace_id"],
                    "span": obj["span_id"],
                    "parent": obj["parent_span_id"],
                    "kind": _kind(attrs),
                    "tool": attrs.get("tool.name") or attrs.get("gen_ai.tool.name"),
                    "error": obj["status"]["message"]
                    if obj["status"]["code"] == "STATUS_CODE_ERROR"
                    else None,
                    "text": text,
                }
            )
    return spans


def matches(span: dict[str, Any], matcher: dict[str, Any]) -> bool:
    """The subset of SpanFilter semantics the generator's matchers use."""
    flt = SpanFilter.model_validate(matcher)
    if flt.errors_only and span["error"] is None:
        return False
    if flt.tool_name is not None and span["tool"] != flt.tool_name:
        return False
    if flt.kind is not None and span["kind"] not in {k.value for k in flt.kind}:
        return False
    return flt.text is None or re.search(flt.text, span["text"], re.IGNORECASE) is not None


# -- the user stories --------------------------------------------------------------------


def test_the_same_seed_writes_the_same_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    for fmt in ("halo", "otlp", "agents-sdk"):
        a, b, c = (tmp_path / f"{fmt}-{name}.jsonl.gz" for name in "abc")
        generate(a, traces=40, seed=7, format=fmt, convention="mixed", bad_lines=3)
        generate(b, traces=40, seed=7, format=fmt, convention="mixed", bad_lines=3)
        generate(c, traces=40, seed=8, format=fmt, convention="mixed", bad_lines=3)
        assert a.read_bytes() == b.read_bytes(), fmt
        assert a.read_bytes() != c.read_bytes(), fmt
        assert manifest_path(a).read_bytes() != manifest_path(c).read_bytes()


@pytest.mark.parametrize(
    ("fmt", "convention", "profile"),
    [
        ("halo", "openinference", "realistic"),
        ("halo", "genai", "tiny"),
        ("halo", "mixed", "realistic"),
        ("otlp", "genai", "realistic"),
        ("otlp", "mixed", "tiny"),
        ("agents-sdk", "openinference", "realistic"),
    ],
)
def test_every_format_is_one_json_object_per_line_with_the_fields_its_readers_need(
    tmp_path: Path, fmt: str, convention: str, profile: str
) -> None:
    path = tmp_path / "traces.jsonl"
    manifest = generate(path, traces=30, seed=1, format=fmt, convention=convention, profile=profile)
    lines = path.read_bytes().splitlines()
    assert len(lines) == manifest.lines
    for line in lines:
        obj = orjson.loads(line)
        if fmt == "halo":
            assert {
                "trace_id",
                "span_id",
                "parent_span_id",
                "name",
                "kind",
                "start_time",
                "end_time",
                "status",
                "resource",
                "scope",
                "attributes",
            } == set(obj)
            assert obj["kind"].startswith("SPAN_KIND_")
            assert obj["status"]["code"].startswith("STATUS_CODE_")
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", obj["start_time"])
            assert obj["start_time"] <= obj["end_time"]
            assert obj["resource"]["attributes"]["service.name"]
        elif fmt == "otlp":
            (resource,) = obj["resourceSpans"]
            assert resource["resource"]["attributes"][0]["key"] == "service.name"
            for span in resource["scopeSpans"][0]["spans"]:
                assert re.fullmatch(r"[0-9a-f]{32}", span["traceId"])
                assert re.fullmatch(r"[0-9a-f]{16}", span["spanId"])
                assert int(span["startTimeUnixNano"]) <= int(span["endTimeUnixNano"])
                assert span["kind"] in (1, 3)
                for attr in span["attributes"]:
                    assert set(attr["value"]) <= {
                        "stringValue",
                        "intValue",
                        "doubleValue",
                        "boolValue",
                        "arrayValue",
                    }
        else:
            assert obj["object"] in ("trace", "trace.span")
            assert obj["id"].startswith("trace_" if obj["object"] == "trace" else "span_")
            if obj["object"] == "trace.span":
                assert obj["trace_id"].startswith("trace_")
                assert obj["span_data"]["type"] in {
                    "agent",
                    "generation",
                    "function",
                    "handoff",
                    "guardrail",
                }
                assert obj["started_at"] <= obj["ended_at"]


@pytest.mark.parametrize("fmt", ["halo", "otlp", "agents-sdk"])
def test_the_manifest_counts_match_what_is_in_the_file(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "traces.jsonl"
    rates = dict.fromkeys(MODE_NAMES, 0.3)  # high rates so every mode shows up in 60 runs
    manifest = generate(
        path, traces=60, seed=3, format=fmt, convention="mixed", failure_rates=rates
    )
    spans = read_spans(path)
    assert manifest.spans == len(spans)
    assert manifest.traces == len({s["trace"] for s in spans})
    assert manifest.error_spans == sum(s["error"] is not None for s in spans)
    assert manifest.error_traces == len({s["trace"] for s in spans if s["error"]})
    assert manifest.lines == len(path.read_bytes().splitlines())
    assert manifest.bytes == path.stat().st_size
    for mode in manifest.failure_modes:
        hit = [s for s in spans if matches(s, mode.matcher)]
        assert mode.planted_traces > 0, mode.name
        assert mode.planted_spans == len(hit), mode.name
        assert mode.planted_traces == len({s["trace"] for s in hit}), mode.name
        assert mode.trace_ids_complete
        assert sorted(mode.trace_ids) == sorted({s["trace"] for s in hit}), mode.name
    # each error span belongs to exactly one planted mode
    errors = [s for s in spans if s["error"]]
    for span in errors:
        owners = [m.name for m in manifest.failure_modes if matches(span, m.matcher)]
        assert len(owners) == 1, (span["error"], owners)
    assert load_manifest(path) == manifest


def test_planted_rates_are_the_requested_rates_within_sampling_error(tmp_path: Path) -> None:
    n = 2500
    manifest = generate(tmp_path / "t.jsonl", traces=n, seed=11, profile="tiny")
    for mode in FAILURE_MODES:
        planted = manifest.mode(mode.name)
        rate = mode.default_rate
        assert planted.rate == rate
        sd = math.sqrt(n * rate * (1 - rate))
        # rate-limit bursts are drawn inside windows (a smaller sample), so allow more
        allowed = 5 * sd if mode.name == "rate_limit_burst" else 4 * sd
        assert abs(planted.planted_traces - n * rate) <= allowed, (mode.name, planted)


def test_rate_limit_errors_cluster_in_a_few_time_windows(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    manifest = generate(path, traces=900, seed=5, profile="tiny")
    starts = {}
    for line in path.read_bytes().splitlines():
        obj = orjson.loads(line)
        if obj["parent_span_id"] is None:
            starts[obj["trace_id"]] = obj["start_time"]
    ordered = sorted(starts, key=starts.__getitem__)
    positions = sorted(ordered.index(t) for t in manifest.mode("rate_limit_burst").trace_ids)
    assert len(positions) > 10
    gaps = [b - a for a, b in itertools.pairwise(positions)]
    assert sum(gap > 150 for gap in gaps) == 2  # three bursts, two long quiet stretches


def test_a_clean_set_has_no_error_span_at_all(tmp_path: Path) -> None:
    for fmt in ("halo", "otlp", "agents-sdk"):
        path = tmp_path / f"clean-{fmt}.jsonl"
        manifest = generate(
            path, traces=150, seed=2, format=fmt, convention="mixed", failure_rates=NO_FAILURES
        )
        spans = read_spans(path)
        assert [s for s in spans if s["error"]] == []
        assert manifest.error_spans == 0 and manifest.error_traces == 0
        assert all(m.planted_traces == 0 and m.trace_ids == [] for m in manifest.failure_modes)


def test_a_clean_set_has_no_repeated_identical_tool_call_within_a_trace(tmp_path: Path) -> None:
    path = tmp_path / "clean.jsonl"
    generate(path, traces=300, seed=4, failure_rates={**NO_FAILURES, "tool_arg_error": 0.5})
    calls = Counter()
    for line in path.read_bytes().splitlines():
        obj = orjson.loads(line)
        if "tool.name" in obj["attributes"]:
            calls[obj["trace_id"], obj["attributes"]["input.value"]] += 1
    assert max(calls.values()) == 1


def test_a_retry_loop_repeats_the_same_call_four_to_eight_times(tmp_path: Path) -> None:
    path = tmp_path / "loop.jsonl"
    manifest = generate(path, traces=100, seed=6, failure_rates={"retry_loop": 0.3})
    calls = Counter()
    for line in path.read_bytes().splitlines():
        obj = orjson.loads(line)
        if obj["attributes"].get("tool.name") == "http_get":
            calls[obj["trace_id"], obj["attributes"]["input.value"]] += 1
    repeated = {trace: n for (trace, _), n in calls.items() if n > 1}
    assert set(repeated) == set(manifest.mode("retry_loop").trace_ids)
    assert all(4 <= n <= 8 for n in repeated.values())


def test_max_turns_runs_have_twenty_turns_and_no_final_answer(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    manifest = generate(path, traces=80, seed=9, failure_rates={"max_turns_giveup": 0.4})
    llm_calls: Counter[str] = Counter()
    roots = {}
    for line in path.read_bytes().splitlines():
        obj = orjson.loads(line)
        attrs = obj["attributes"]
        if attrs["openinference.span.kind"] == "LLM" and attrs["inference.agent_name"] in (
            "support-agent",
            "coder-agent",
            "research-agent",
        ):
            llm_calls[obj["trace_id"]] += obj["status"]["code"] != "STATUS_CODE_ERROR"
        if obj["parent_span_id"] is None:
            roots[obj["trace_id"]] = obj
    gave_up = set(manifest.mode("max_turns_giveup").trace_ids)
    assert gave_up
    for trace_id, root in roots.items():
        if trace_id in gave_up:
            assert llm_calls[trace_id] == 20
            assert "output.value" not in root["attributes"]
            assert root["status"]["message"] == "MaxTurnsExceeded: agent stopped after 20 turns"
        else:
            assert llm_calls[trace_id] < 20
            assert root["attributes"]["output.value"]


@pytest.mark.parametrize("fmt", ["halo", "otlp", "agents-sdk"])
def test_bad_lines_are_at_the_recorded_line_numbers(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "messy.jsonl.gz"
    manifest = generate(path, traces=50, seed=12, format=fmt, bad_lines=6)
    data = gzip.decompress(path.read_bytes())
    assert manifest.bom and data.startswith(b"\xef\xbb\xbf")
    assert not data.endswith(b"\n")  # the last line is cut short, as a crashed writer leaves it
    lines = data.removeprefix(b"\xef\xbb\xbf").split(b"\n")
    assert len(lines) == manifest.lines
    bad_numbers = {bad.line for bad in manifest.bad_lines}
    assert len(bad_numbers) == 6
    assert {bad.kind for bad in manifest.bad_lines} == {
        "truncated_json",
        "random_bytes",
        "null_fields",
        "not_an_object",
    }
    for number, line in enumerate(lines, start=1):
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            assert number in bad_numbers
            continue
        if number in bad_numbers:  # parses, but is not a usable record
            assert not isinstance(obj, dict) or None in (
                obj.get("trace_id"),
                obj.get("span_id"),
                (obj.get("resourceSpans") or [{}])[0].get("resource", {}),
            )
    good = [line for n, line in enumerate(lines, start=1) if n not in bad_numbers]
    path2 = tmp_path / "good.jsonl"
    path2.write_bytes(b"\n".join(good))
    assert len(read_spans(path2)) == manifest.spans


def test_a_messy_file_also_holds_sloppy_but_valid_runs(tmp_path: Path) -> None:
    path = tmp_path / "messy.jsonl"
    manifest = generate(path, traces=120, seed=13, bad_lines=1)
    assert manifest.messy_traces > 0
    lines = path.read_bytes().removeprefix(b"\xef\xbb\xbf").split(b"\n")[:-1]
    records = [orjson.loads(line) for line in lines]
    assert len(records) == manifest.spans
    sloppy = [r for r in records if r["status"]["message"] is None]
    assert sloppy
    assert any(r["parent_span_id"] == "" for r in sloppy)  # a root with "" instead of null
    tokens = [r["attributes"].get("llm.token_count.prompt") for r in sloppy]
    assert any(isinstance(t, str) and t.isdigit() for t in tokens)


def test_size_mb_generates_until_the_file_reaches_the_size(tmp_path: Path) -> None:
    path = tmp_path / "sized.jsonl"
    manifest = generate(path, size_mb=2, seed=1, profile="tiny")
    assert 2_000_000 <= path.stat().st_size < 2_100_000
    assert manifest.bytes == path.stat().st_size
    assert manifest.traces == len({s["trace"] for s in read_spans(path)})


def test_wrong_arguments_are_refused_with_the_valid_choices(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="tool_arg_error"):
        generate(tmp_path / "x.jsonl", traces=5, failure_rates={"typo_mode": 0.1})
    with pytest.raises(ValueError, match="halo, otlp, agents-sdk"):
        generate(tmp_path / "x.jsonl", traces=5, format="csv")
    with pytest.raises(ValueError, match="exactly one"):
        generate(tmp_path / "x.jsonl")


def test_the_cli_writes_the_file_and_manifest_and_prints_a_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli.otlp.jsonl"
    code = synth_main(
        [
            str(out),
            "--traces",
            "25",
            "--seed",
            "4",
            "--format",
            "otlp",
            "--convention",
            "genai",
            "--rate",
            "retry_loop=0.5",
            "--rate",
            "context_overflow=0",
            "--bad-lines",
            "2",
        ]
    )
    assert code == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "25 traces" in captured.err and "retry_loop=" in captured.err
    manifest = Manifest.model_validate_json(manifest_path(out).read_bytes())
    assert manifest.format == "otlp" and manifest.convention == "genai"
    assert manifest.mode("retry_loop").rate == 0.5
    assert manifest.mode("context_overflow").planted_traces == 0
    assert len(manifest.bad_lines) == 2
    assert synth_main([str(out), "--traces", "3", "--rate", "nope=0.1"]) == 2
    assert "choose from" in capsys.readouterr().err


def test_turning_one_mode_off_leaves_the_other_modes_planted_as_before(tmp_path: Path) -> None:
    """The "after the fix" set of a release check: same seed, one mode's rate set to 0."""
    before = generate(tmp_path / "before.jsonl", traces=400, seed=31, profile="tiny")
    after = generate(
        tmp_path / "after.jsonl",
        traces=400,
        seed=31,
        profile="tiny",
        failure_rates={"retry_loop": 0},
    )
    assert after.mode("retry_loop").planted_traces == 0
    assert before.mode("retry_loop").planted_traces > 0
    for name in MODE_NAMES:
        if name != "retry_loop":
            assert after.mode(name).planted_traces == before.mode(name).planted_traces, name


def test_sloppy_otlp_runs_use_base64_ids_and_enum_names_like_protobuf_json(
    tmp_path: Path,
) -> None:
    path = tmp_path / "messy.otlp.jsonl"
    manifest = generate(path, traces=120, seed=13, format="otlp", bad_lines=1)
    assert manifest.messy_traces > 0
    lines = path.read_bytes().removeprefix(b"\xef\xbb\xbf").split(b"\n")[:-1]
    sloppy = []
    for line in lines:
        (resource,) = orjson.loads(line)["resourceSpans"]
        spans = resource["scopeSpans"][0]["spans"]
        if spans[0]["kind"] in ("SPAN_KIND_CLIENT", "SPAN_KIND_INTERNAL"):
            sloppy.extend(spans)
    assert sloppy
    assert all(len(base64.b64decode(span["traceId"])) == 16 for span in sloppy)
    assert len({_hex_id(span["traceId"]) for span in sloppy}) == manifest.messy_traces
