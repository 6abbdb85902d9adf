"""Micro-benchmark of the ingestion hot path: orjson.loads alone vs parse_line, per line.

Run: python bench/bench_formats.py [--lines N] [--file PATH ...]
Prints ns/line for each format and the normalization cost on top of JSON parsing, for
generated lines and for the first --lines lines of each sample file that exists
(bench/data/tiny-100mb.jsonl, bench/data/realistic-100mb.jsonl, the OTLP example), plus
the cost per span ("extra/span"), which is what the index build pays.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from halo_mcp.store.formats import parse_line


def _iso(ns: int) -> str:
    seconds, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{frac:09d}Z"


def halo_tiny(rng: random.Random, i: int) -> bytes:
    start = 1_735_732_800_000_000_000 + i * 1_000_003
    return orjson.dumps(
        {
            "trace_id": f"{rng.getrandbits(128):032x}",
            "span_id": f"{rng.getrandbits(64):016x}",
            "parent_span_id": f"{rng.getrandbits(64):016x}",
            "name": "lookup_order",
            "kind": "SPAN_KIND_INTERNAL",
            "start_time": _iso(start),
            "end_time": _iso(start + 1_234_567),
            "status": {"code": "STATUS_CODE_OK", "message": ""},
            "resource": {"attributes": {"service.name": "support-bot"}},
            "scope": {"name": "halo.tracing", "version": "0.3.0"},
            "attributes": {"openinference.span.kind": "TOOL", "tool.name": "lookup_order"},
        }
    )


def halo_llm(rng: random.Random, i: int) -> bytes:
    start = 1_735_732_800_000_000_000 + i * 1_000_003
    return orjson.dumps(
        {
            "trace_id": f"{rng.getrandbits(128):032x}",
            "span_id": f"{rng.getrandbits(64):016x}",
            "parent_span_id": f"{rng.getrandbits(64):016x}",
            "name": "ChatCompletion",
            "kind": "SPAN_KIND_CLIENT",
            "start_time": _iso(start),
            "end_time": _iso(start + 812_000_000),
            "status": {"code": "STATUS_CODE_UNSET", "message": ""},
            "resource": {"attributes": {"service.name": "support-bot"}},
            "scope": {"name": "openinference.instrumentation.openai", "version": "0.1"},
            "attributes": {
                "openinference.span.kind": "LLM",
                "llm.model_name": "gpt-4o-mini",
                "llm.token_count.prompt": 812,
                "llm.token_count.completion": 57,
                "llm.input_messages.0.message.role": "system",
                "llm.input_messages.0.message.content": "You are a support agent.",
                "llm.input_messages.1.message.role": "user",
                "llm.input_messages.1.message.content": "Where is my order?",
                "llm.output_messages.0.message.role": "assistant",
                "llm.output_messages.0.message.content": "Let me look that up.",
                "inference.agent_name": "support-agent",
            },
        }
    )


def otlp_envelope(rng: random.Random, i: int) -> bytes:
    trace = f"{rng.getrandbits(128):032x}"
    spans = []
    for n in range(10):
        start = 1_735_732_800_000_000_000 + i * 1_000_003 + n
        spans.append(
            {
                "traceId": trace,
                "spanId": f"{rng.getrandbits(64):016x}",
                "parentSpanId": "",
                "name": "chat gpt-4o",
                "kind": 3,
                "startTimeUnixNano": str(start),
                "endTimeUnixNano": str(start + 5_000_000),
                "attributes": [
                    {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                    {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
                    {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "120"}},
                    {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "8"}},
                ],
                "status": {"code": 1},
            }
        )
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]}
    return orjson.dumps(
        {"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": spans}]}]}
    )


def agents_sdk(rng: random.Random, i: int) -> bytes:
    return orjson.dumps(
        {
            "object": "trace.span",
            "id": f"span_{rng.getrandbits(96):024x}",
            "trace_id": f"trace_{rng.getrandbits(128):032x}",
            "parent_id": f"span_{rng.getrandbits(96):024x}",
            "started_at": "2025-04-02T10:00:00.100000+00:00",
            "ended_at": "2025-04-02T10:00:02.100000+00:00",
            "span_data": {
                "type": "generation",
                "model": "gpt-4o",
                "usage": {"input_tokens": 345, "output_tokens": 12},
            },
            "error": None,
        }
    )


def _best_ns(func: Callable[[bytes], object], lines: list[bytes], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        began = time.process_time_ns()
        for line in lines:
            func(line)
        best = min(best, (time.process_time_ns() - began) / len(lines))
    return best


ROOT = Path(__file__).resolve().parent.parent
SAMPLE_FILES = (
    ROOT / "bench" / "data" / "tiny-100mb.jsonl",
    ROOT / "bench" / "data" / "realistic-100mb.jsonl",
    ROOT / "examples" / "otlp" / "traces.otlp.jsonl",
)


def _head_lines(path: Path, count: int) -> list[bytes]:
    """The first `count` non-blank lines of a file (repeated when the file is shorter)."""
    lines: list[bytes] = []
    with path.open("rb") as handle:
        for line in handle:
            if line.strip():
                lines.append(line)
            if len(lines) >= count:
                break
    if lines and len(lines) < count:
        lines = (lines * (count // len(lines) + 1))[:count]
    return lines


def _measure(name: str, lines: list[bytes], rounds: int) -> None:
    spans = sum(len(parse_line(line)) for line in lines) / len(lines)
    loads = _best_ns(orjson.loads, lines, rounds)
    parse = _best_ns(parse_line, lines, rounds)
    size = sum(map(len, lines)) // len(lines)
    extra = parse - loads
    print(
        f"{name[:26]:<26}{size:>8}{loads:>10.0f}{parse:>10.0f}{extra:>10.0f}"
        f"{spans:>7.1f}{extra / spans:>12.0f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--file", type=Path, action="append", help="sample file(s) to time")
    args = parser.parse_args()
    rng = random.Random(7)
    header = ("format", "bytes", "loads ns", "parse ns", "extra ns", "spans", "extra/span")
    print("{:<26}{:>8}{:>10}{:>10}{:>10}{:>7}{:>12}".format(*header))
    for name, make in (
        ("halo tiny span", halo_tiny),
        ("halo llm span", halo_llm),
        ("otlp envelope x10", otlp_envelope),
        ("agents sdk span", agents_sdk),
    ):
        _measure(name, [make(rng, i) for i in range(args.lines)], args.rounds)
    for path in args.file or SAMPLE_FILES:
        if path.is_file():
            _measure(path.name, _head_lines(path, args.lines), args.rounds)


if __name__ == "__main__":
    main()
