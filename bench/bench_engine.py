"""Engine overhead benchmark: a scripted 30-turn run against an instant fake provider.

    python bench/bench_engine.py                 # ~100 MB generated trace file
    python bench/bench_engine.py --size-mb 1000  # ~1 GB

Prints, per turn: the engine's own overhead (wall time minus time inside provider calls;
it includes running the tools over the store), the bytes of context sent to the provider,
and the bytes of raw span data the tools looked at. Asserts no tool output exceeded its
byte budget. Goal: overhead under 20 ms per turn. Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from halo_mcp.engine.agent_tools import ToolBudgets
from halo_mcp.engine.models import RunStatus, Usage
from halo_mcp.engine.prompts import ROOT_MARKER
from halo_mcp.engine.provider import Completion, ToolCall
from halo_mcp.engine.runner import execute_run
from halo_mcp.engine.runstore import RunStore
from halo_mcp.engine.settings import EngineSettings
from halo_mcp.store import SpanFilter, open_store

TURNS = 30


class FakeProvider:
    """Answers instantly from a script; records time spent inside and bytes received."""

    def __init__(self, script: list[tuple[str, dict]]) -> None:
        self.script = list(script)
        self.usage = Usage()
        self.calls: list[dict[str, Any]] = []
        self.states: list[Any] = []  # the run's shared state, to read the tool counters
        self._n = 0

    async def complete(self, messages, *, tools=None, tool_choice=None, model=None, **_: Any):
        started = time.perf_counter()
        sent = len(json.dumps(messages)) + (len(json.dumps(tools)) if tools else 0)
        is_root = str(messages[0].get("content", "")).startswith(ROOT_MARKER)
        tools_ctx = self.states[0].tools if self.states else None
        self.usage.add(Usage(calls=1, input_tokens=sent // 4))
        if is_root and self.script and tool_choice != "none":
            name, args = self.script.pop(0)
            self._n += 1
            reply = Completion(
                content=None,
                tool_calls=[ToolCall(id=f"call_{self._n}", name=name, arguments=json.dumps(args))],
                finish_reason="tool_calls",
                refusal=None,
                usage=Usage(calls=1),
                model="fake",
            )
        else:
            reply = Completion("ok", [], "stop", None, Usage(calls=1), "fake")
        self.calls.append(
            {
                "root": is_root,
                "start": started,
                "end": time.perf_counter(),
                "sent_bytes": sent,
                "raw_seen": tools_ctx.raw_bytes_seen if tools_ctx else 0,
                "tool": reply.tool_calls[0].name if reply.tool_calls else None,
            }
        )
        return reply

    async def aclose(self) -> None:
        pass


def ensure_traces(out_dir: Path, size_mb: int) -> Path:
    from halo_mcp.synth import generate

    path = out_dir / f"bench-{size_mb}mb.jsonl"
    if path.exists() and path.stat().st_size > size_mb * 0.9 * 1e6:
        return path
    print(f"generating ~{size_mb} MB of traces into {path} ...", file=sys.stderr)
    started = time.perf_counter()
    generate(str(path), size_mb=size_mb, seed=3)
    print(f"  generated in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return path


def build_script(path: Path, cache_dir: Path) -> tuple[list[tuple[str, dict]], float]:
    """30 turns of realistic exploration, with ids taken from the data itself."""
    started = time.perf_counter()
    with open_store([path], cache_dir=cache_dir) as store:
        index_s = time.perf_counter() - started
        ov = store.overview()
        worst = [t.trace_id for t in store.query_traces(sort="-errors", limit=6).traces]
        sig = ov.error_signatures[0] if ov.error_signatures else None
        errors = store.query_spans(SpanFilter(errors_only=True), limit=6).spans
        tool = ov.tools[0].name if ov.tools else None
    flt = {"errors_only": True}
    sig_filter = {"name": sig.span_name, "errors_only": True} if sig else flt
    steps: list[tuple[str, dict]] = [("get_overview", {})]
    rotation = [
        ("count_spans", {"filter": sig_filter}),
        ("query_traces", {"filter": sig_filter, "sort": "-errors", "limit": 20}),
        (
            "query_spans",
            {"filter": flt, "limit": 30, "fields": ["span_id", "name", "error_message"]},
        ),
        ("view_trace", {"trace_id": worst[0]}),
        ("view_spans", {"span_ids": [s.span_id for s in errors[:4]]}),
        ("search", {"pattern": "error|timeout", "trace_id": worst[1 % len(worst)], "limit": 10}),
        ("count_spans", {"filter": {"tool_name": tool} if tool else {}}),
        ("query_spans", {"filter": {"kind": ["llm"]}, "sort": "-tokens", "limit": 20}),
        ("view_trace", {"trace_id": worst[2 % len(worst)]}),
        ("search", {"pattern": "retry", "filter": {"kind": ["tool"]}, "limit": 20}),
    ]
    while len(steps) < TURNS - 1:
        steps.append(rotation[(len(steps) - 1) % len(rotation)])
    evidence = [{"trace_id": s.trace_id, "span_id": s.span_id} for s in errors[:3]]
    finding = {
        "title": "Errors recur",
        "category": "tool-error",
        "severity": "high",
        "description": "d",
        "root_cause": "r",
        "suggested_change": "s",
        "validation": "v",
        "evidence": evidence,
        "matcher": sig_filter,
    }
    steps.append(("submit_findings", {"findings": [finding], "summary": "bench"}))
    return steps, index_s


async def bench(path: Path, work: Path) -> int:
    cache_dir, data_dir = work / "cache", work / "data"
    script, index_s = build_script(path, cache_dir)
    provider = FakeProvider(script)
    settings = EngineSettings(
        model="fake",
        base_url="http://127.0.0.1:9",
        max_turns=TURNS,
        data_dir=data_dir,
        cache_dir=cache_dir,
    )
    budgets = ToolBudgets()
    tool_marks: list[float] = []

    def on_event(event: Any) -> None:
        if event.type in ("tool_called", "tool_result") and event.agent_id == "root":
            tool_marks.append(time.perf_counter())

    started = time.perf_counter()
    run = await execute_run(
        [path],
        "benchmark",
        settings,
        provider=provider,
        budgets=budgets,
        on_event=on_event,
        on_state=provider.states.append,
    )
    wall = time.perf_counter() - started
    ctx = provider.states[0].tools

    calls = [c for c in provider.calls if c["root"]]
    # One tool call per turn here: tool time = tool_called .. tool_result.
    tool_ms = [(b - a) * 1000 for a, b in zip(tool_marks[0::2], tool_marks[1::2], strict=False)]
    rows = []
    for i, call in enumerate(calls):
        nxt = calls[i + 1] if i + 1 < len(calls) else None
        overhead = (nxt["start"] - call["end"]) * 1000 if nxt else None
        raw = nxt["raw_seen"] - call["raw_seen"] if nxt else 0
        tools = tool_ms[i] if i < len(tool_ms) else 0.0
        rows.append((i + 1, call["tool"], overhead, tools, call["sent_bytes"], raw))

    size = path.stat().st_size
    print(f"trace file: {path} ({size / 1e6:.0f} MB)")
    print(f"index open/build before the run: {index_s:.2f} s; run wall time {wall:.2f} s")
    print(f"run status: {run.status.value}; findings: {len(run.findings)}")
    print()
    print(
        f"{'turn':>4}  {'tool':<16} {'overhead ms':>11} {'tool ms':>8} {'engine ms':>9} "
        f"{'context sent B':>15} {'raw seen B':>11}"
    )
    for turn, tool, overhead, tools, sent, raw in rows:
        o = f"{overhead:.1f}" if overhead is not None else "-"
        e = f"{overhead - tools:.1f}" if overhead is not None else "-"
        print(
            f"{turn:>4}  {tool or '(text)':<16} {o:>11} {tools:>8.1f} {e:>9} {sent:>15,} {raw:>11,}"
        )
    overheads = [r[2] for r in rows if r[2] is not None]
    engine_only = [r[2] - r[3] for r in rows if r[2] is not None]
    provider_s = sum(c["end"] - c["start"] for c in provider.calls)
    print()
    print(
        f"overhead per turn (wall minus provider, incl. tools): median "
        f"{statistics.median(overheads):.1f} ms, p95 {_p95(overheads):.1f} ms, "
        f"max {max(overheads):.1f} ms, mean {statistics.mean(overheads):.1f} ms"
    )
    print(
        f"engine alone (minus tool/store time): median {statistics.median(engine_only):.1f} "
        f"ms, p95 {_p95(engine_only):.1f} ms, max {max(engine_only):.1f} ms"
    )
    print(
        f"whole run: (wall - provider) / turns = {(wall - provider_s) / len(calls) * 1000:.1f}"
        " ms (includes opening the store, verification and the report)"
    )
    sent = [r[4] for r in rows]
    print(
        f"context sent per turn: first {sent[0]:,} B, max {max(sent):,} B, last {sent[-1]:,} B,"
        f" total {sum(sent):,} B; raw span bytes the tools read: {ctx.raw_bytes_seen:,} B"
        f" of {size:,} B in the file; compaction calls: "
        f"{sum(1 for c in provider.calls if not c['root'])}"
    )
    print(
        f"largest tool output: {ctx.largest_output:,} B (budgets: default {budgets.default:,}"
        f" B, view_trace {budgets.view_trace:,} B, view_spans {budgets.view_spans:,} B)"
    )
    over = ctx.over_budget
    print(f"tool outputs over budget: {len(over)}" + (f" {over}" if over else ""))
    stored = RunStore(data_dir).get(run.id)
    assert stored.status == RunStatus.finished, stored.error
    assert not over, f"tool outputs over budget: {over}"
    return 0


def _p95(values: list[float]) -> float:
    return sorted(values)[int(0.95 * (len(values) - 1))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "halo-bench")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    path = ensure_traces(args.out, args.size_mb)
    return anyio.run(bench, path, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
