"""Engine benchmarks against an instant scripted fake provider. Not a test: it prints figures.

    python bench/bench_engine.py                 # ~100 MB generated trace file, both parts
    python bench/bench_engine.py --part tokens   # only the token part
    python bench/bench_engine.py --size-mb 1000  # ~1 GB

Part `overhead`: a scripted 30-turn root. Prints, per turn: the engine's own overhead
(wall time minus time inside provider calls; it includes running the tools over the
store), the bytes of context sent to the provider, and the bytes of raw span data the
tools looked at. Asserts no tool output exceeded its byte budget. Goal: under 20 ms/turn.

Part `tokens`: a scripted 20-turn root that delegates to 3 sub-agents (identical tool calls
every time). Prints the input tokens (request size / 4: messages plus tool schemas) per
run and per agent, *before* and *after* the trust/cost changes, and the share of the
submitted findings that end verified, partial and unverified. "Before" is the commit the
changes started from (`--baseline`, extracted with `git archive` into a temp directory and
run in a subprocess with the same script); "after, savings off" is this tree with the
new savings disabled (trace views as before, old reads kept whole). Goal: at least 30%
fewer input tokens.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from halo_mcp.engine.agent_tools import ToolBudgets
from halo_mcp.engine.models import RunStatus, Usage
from halo_mcp.engine.prompts import ROOT_MARKER, SUB_AGENT_MARKER
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


# ------------------------------------------------------------------ token part

SUB_TASKS = {
    "SUB-A": "SUB-A: investigate the most common error signature; report counts and ids.",
    "SUB-B": "SUB-B: investigate the slowest traces; report counts and ids.",
    "SUB-C": "SUB-C: investigate repeated tool calls (loops); report counts and ids.",
}


class AgentsProvider:
    """Scripts a root and named sub-agents (by the task word in their first message);
    counts each request's input tokens (chars / 4 of messages plus tool schemas)."""

    def __init__(self, scripts: dict[str, list[tuple[str, dict] | list[tuple[str, dict]]]]):
        self.scripts = {k: list(v) for k, v in scripts.items()}
        self.usage = Usage()
        self.tokens: dict[str, int] = {}
        self.calls: dict[str, int] = {}
        self._n = 0

    def _agent(self, messages: list[dict]) -> str:
        system = str(messages[0].get("content", "")) if messages else ""
        if system.startswith(ROOT_MARKER):
            return "root"
        if system.startswith(SUB_AGENT_MARKER) and len(messages) > 1:
            task = str(messages[1].get("content", ""))
            for name in SUB_TASKS:
                if task.startswith(name):
                    return name
        return "other"

    async def complete(self, messages, *, tools=None, tool_choice=None, model=None, **_: Any):
        agent = self._agent(messages)
        sent = len(json.dumps(messages)) + (len(json.dumps(tools)) if tools else 0)
        self.tokens[agent] = self.tokens.get(agent, 0) + sent // 4
        self.calls[agent] = self.calls.get(agent, 0) + 1
        used = Usage(calls=1, input_tokens=sent // 4)
        self.usage.add(used)
        script = self.scripts.get(agent, [])
        if script and tool_choice != "none":
            step = script.pop(0)
            steps = step if isinstance(step, list) else [step]
            calls = []
            for name, args in steps:
                self._n += 1
                calls.append(ToolCall(id=f"call_{self._n}", name=name, arguments=json.dumps(args)))
            return Completion(None, calls, "tool_calls", None, used, "fake")
        return Completion("done: see the tool results above.", [], "stop", None, used, "fake")

    async def aclose(self) -> None:
        pass


def _first_loop(store: Any) -> Any:
    """(trace_id, tool_name, span_id) of one repeated identical tool call, or None; read
    with whatever API the running tree has (the baseline is an older tree)."""
    from types import SimpleNamespace

    if hasattr(store, "aggregates"):
        with store.aggregates() as reader:
            for call in reader.repeated_calls(3):
                return SimpleNamespace(
                    trace_id=call.trace_id, tool_name=call.tool_name, span_id=call.span_ids[0]
                )
        return None
    found = store.repeated_tool_calls(min_repeats=3, limit=1)
    if not found:
        return None
    call = found[0]
    return SimpleNamespace(
        trace_id=call.trace_id, tool_name=call.tool_name, span_id=call.example_span_ids[0]
    )


def token_scripts(path: Path, cache_dir: Path) -> dict[str, Any]:
    """The scripted run: ids from the data; findings of deliberately varied quality."""
    with open_store([path], cache_dir=cache_dir) as store:
        ov = store.overview()
        sig = ov.error_signatures[0]
        errors = store.query_spans(
            SpanFilter(name=sig.span_name, errors_only=True),
            limit=3,
            fields=("trace_id", "span_id", "error_message"),
        ).spans
        slow = [t.trace_id for t in store.query_traces(sort="-duration", limit=8).traces]
        worst = [t.trace_id for t in store.query_traces(sort="-errors", limit=8).traces]
        llm = store.query_spans(SpanFilter(kind=["llm"]), limit=1).spans[0]
        other = store.query_spans(SpanFilter(errors_only=False, kind=["tool"]), limit=1).spans[0]
        loops = _first_loop(store)
    sig_filter = {"name": sig.span_name, "errors_only": True}
    e0, e1, e2 = errors[0], errors[1 % len(errors)], errors[2 % len(errors)]
    quote = " ".join((e0.error_message or "").split()[:4]) or None

    def ev(span: Any, excerpt: str | None = None) -> dict:
        return {"trace_id": span.trace_id, "span_id": span.span_id, "excerpt": excerpt}

    def finding(title: str, matcher: dict, evidence: list[dict]) -> dict:
        return {
            "title": title,
            "category": "tool-error",
            "severity": "high",
            "description": "d",
            "root_cause": "r",
            "suggested_change": "s",
            "validation": "v",
            "evidence": evidence,
            "matcher": matcher,
        }

    findings = [
        finding("Top error signature", sig_filter, [ev(e0, quote), ev(e1)]),
        finding("Invented quote", sig_filter, [ev(e1, "I made this up")]),
        finding("Matcher misses a cited span", sig_filter, [ev(e2), ev(other)]),
        finding("Every LLM call", {"kind": ["llm"]}, [ev(llm)]),
        finding("Made-up ids", sig_filter, [{"trace_id": "no-such-trace", "span_id": "x"}]),
    ]
    from halo_mcp.store import models as store_models

    # A trace-rule matcher only where the code has trace rules (the baseline would reject
    # the whole submit_findings call over it): the same calls otherwise.
    if loops is not None and hasattr(store_models, "TraceRule"):
        loop = loops
        findings.append(
            finding(
                "Identical calls repeated",
                {
                    "tool_name": loop.tool_name,
                    "trace_rule": {
                        "kind": "repeated_call",
                        "tool_name": loop.tool_name,
                        "min_count": 3,
                    },
                },
                [{"trace_id": loop.trace_id, "span_id": loop.span_id}],
            )
        )
    root: list[Any] = [("get_overview", {})]
    root.append([("delegate", {"task": task}) for task in SUB_TASKS.values()])
    rotation: list[tuple[str, dict]] = [
        ("view_trace", {"trace_id": worst[0]}),
        ("count_spans", {"filter": sig_filter}),
        ("view_trace", {"trace_id": slow[0]}),
        ("query_spans", {"filter": sig_filter, "limit": 20, "fields": ["span_id", "name"]}),
        ("view_spans", {"span_ids": [e.span_id for e in errors]}),
        ("view_trace", {"trace_id": worst[1]}),
        ("search", {"pattern": "error|timeout", "trace_id": worst[2], "limit": 10}),
        ("view_trace", {"trace_id": slow[1]}),
    ]
    i = 0
    while len(root) < 19:
        root.append(rotation[i % len(rotation)])
        i += 1
    root.append(("submit_findings", {"findings": findings, "summary": "bench"}))

    def sub(traces: list[str]) -> list[Any]:
        return [
            ("view_trace", {"trace_id": traces[0]}),
            ("count_spans", {"filter": sig_filter}),
            ("view_trace", {"trace_id": traces[1]}),
            ("query_spans", {"filter": {"trace_ids": traces[2:4]}, "limit": 20}),
            ("view_trace", {"trace_id": traces[2]}),
            ("finish", {"report": "found: see counts and ids in my tool results"}),
        ]

    return {
        "root": root,
        "SUB-A": sub(worst[3:]),
        "SUB-B": sub(slow[2:]),
        "SUB-C": sub(worst[5:] + slow[5:]),
    }


async def token_run(path: Path, work: Path, savings: bool) -> dict[str, Any]:
    """One scripted 20-turn run with 3 sub-agents: input tokens per agent, statuses."""
    cache_dir, data_dir = work / "cache", work / "data"
    scripts = token_scripts(path, cache_dir)
    provider = AgentsProvider(scripts)
    settings = EngineSettings(
        model="fake",
        base_url="http://127.0.0.1:9",
        max_turns=20,
        data_dir=data_dir,
        cache_dir=cache_dir,
    )
    budgets = ToolBudgets()
    if not savings and hasattr(budgets, "dedupe_repeats"):
        # The tool outputs and context handling as before: whole values, the old view
        # budget, old reads kept whole.
        budgets.dedupe_repeats = False
        budgets.view_trace = 150_000
        settings.fold_reads_after_turns = None
    run = await execute_run([path], "benchmark", settings, provider=provider, budgets=budgets)
    statuses: dict[str, int] = {}
    for f in run.findings:
        status = str(getattr(f, "status", "n/a"))
        statuses[status] = statuses.get(status, 0) + 1
    return {
        "status": str(run.status),
        "tokens": provider.tokens,
        "calls": provider.calls,
        "findings": len(run.findings),
        "statuses": statuses,
        "verified_flag": sum(1 for f in run.findings if f.verified),
        "left": {k: len(v) for k, v in provider.scripts.items() if v},
    }


def baseline_run(path: Path, work: Path, commit: str) -> dict[str, Any] | None:
    """The same scripted run on `commit` (git archive into a temp dir, run there)."""
    import shutil
    import subprocess

    repo = Path(__file__).resolve().parent.parent
    tree = work / f"baseline-{commit[:10]}"
    if not (tree / "halo_mcp").exists():
        tree.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(repo), "archive", commit], capture_output=True, check=False
        )
        if archive.returncode != 0:
            print(f"baseline {commit}: git archive failed: {archive.stderr.decode()[:300]}")
            shutil.rmtree(tree, ignore_errors=True)
            return None
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--part", "tokens-json",
         "--traces", str(path), "--out", str(work / "before")],
        cwd=tree, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        print(f"baseline {commit} failed:\n{done.stderr[-2000:]}")
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


async def bench_tokens(path: Path, work: Path, baseline: str | None) -> int:
    print(f"token benchmark: 20-turn root, 3 sub-agents, identical tool calls; {path}")
    after = await token_run(path, work / "after", savings=True)
    off = await token_run(path, work / "after-off", savings=False)
    before = baseline_run(path, work, baseline) if baseline else None
    agents = sorted(set(after["tokens"]) | set((before or {}).get("tokens", {})))
    header = f"{'agent':<8} {'calls':>5} {'after':>10} {'savings off':>12}"
    if before:
        header += f" {'before (' + baseline[:7] + ')':>18} {'after/before':>12}"
    print(header)
    rows = [(a, a) for a in agents] + [("run", None)]
    for label, agent in rows:

        def total(result: dict | None, agent: str | None = agent) -> int:
            if not result:
                return 0
            t = result["tokens"]
            return sum(t.values()) if agent is None else t.get(agent, 0)

        calls = sum(after["calls"].values()) if agent is None else after["calls"].get(agent, 0)
        line = f"{label:<8} {calls:>5} {total(after):>10,} {total(off):>12,}"
        if before:
            b = total(before)
            line += f" {b:>18,} {total(after) / b if b else 0:>12.2f}"
        print(line)
    if before:
        saved = 1 - sum(after["tokens"].values()) / max(1, sum(before["tokens"].values()))
        print(f"input tokens per run: {saved:.1%} fewer than before (goal: at least 30%)")
    saved_off = 1 - sum(after["tokens"].values()) / max(1, sum(off["tokens"].values()))
    print(f"with the new savings on vs off (same tree): {saved_off:.1%} fewer")
    n = after["findings"]
    shares = ", ".join(
        f"{s} {after['statuses'].get(s, 0)}/{n} ({after['statuses'].get(s, 0) / max(1, n):.0%})"
        for s in ("verified", "partial", "unverified")
    )
    print(f"submitted findings after verification: {shares}")
    if before:
        print(
            f"before: {before['findings']} findings, {before['verified_flag']} of them with "
            f"verified=true (after: {after['verified_flag']})"
        )
    for name, result in (("after", after), ("savings off", off), ("before", before)):
        if result and result.get("left"):
            print(f"warning: {name}: unused script steps {result['left']}")
    return 0


def _p95(values: list[float]) -> float:
    return sorted(values)[int(0.95 * (len(values) - 1))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "halo-bench")
    parser.add_argument(
        "--part", choices=("all", "overhead", "tokens", "tokens-json"), default="all"
    )
    parser.add_argument(
        "--baseline",
        default="47aedd3",
        help="Commit measured as 'before' in the token part ('' to skip).",
    )
    parser.add_argument("--traces", type=Path, help="Use this trace file (no generation).")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.traces or ensure_traces(args.out, args.size_mb)
    if args.part == "tokens-json":  # one token run, as JSON (how the baseline is measured)
        result = anyio.run(token_run, path, args.out, True)
        print(json.dumps(result))
        return 0
    code = 0
    if args.part in ("all", "overhead"):
        code = anyio.run(bench, path, args.out)
        print()
    if args.part in ("all", "tokens"):
        code = code or anyio.run(bench_tokens, path, args.out / "tokens", args.baseline or None)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
