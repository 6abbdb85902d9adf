"""Benchmark of query_sql: p50 latency of three typical aggregations, beside the same
answers obtained through the filter tools (count_spans calls, as an agent without SQL
would have to make), on one big file of tiny spans.

    python bench/bench_sql.py                      # bench/data/tiny-1000mb.jsonl (1 GB)
    python bench/bench_sql.py --size-mb 100 --reps 5

The file is generated once by halo_mcp.synth under bench/data/ (gitignored) and indexed
once (not timed here: bench_store.py measures builds). Each aggregation runs `--reps`
times through TraceStore.query_sql (the MCP tool's and the agents' path: a fresh
read-only connection, authorizer, views, progress handler); the filter-tool answer is
the sum of the count calls it needs, each timed once per rep. Both answers are compared.
The per-tool count is also asked of the pre-counted `span_counts` view, which reads the
same tally the filter tools use.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from halo_mcp.store import SpanFilter, TraceStore, open_store  # noqa: E402


class CountingStore:
    """The store as the filter path sees it, counting the count calls it makes."""

    def __init__(self, store: TraceStore) -> None:
        self.store = store
        self.calls = 0

    def count(self, flt: SpanFilter | None = None) -> Any:
        self.calls += 1
        return self.store.count(flt)

    def overview(self) -> Any:
        return self.store.overview()


def p50(fn: Callable[[], Any], reps: int) -> tuple[float, float, Any]:
    """(first call, median of the calls, answer): the store caches per-filter trace sets,
    so a filter path's first call can cost far more than its repeats."""
    times, answer = [], None
    for _ in range(reps):
        began = time.perf_counter()
        answer = fn()
        times.append(time.perf_counter() - began)
    return times[0], statistics.median(times), answer


def errors_per_tool_sql(store: TraceStore) -> dict[str, tuple[int, int]]:
    rows = store.query_sql(
        "SELECT tool_name, COUNT(*), SUM(is_error) FROM spans "
        "WHERE tool_name IS NOT NULL GROUP BY tool_name",
        limit=1000,
        time_limit_s=600,
    ).rows
    return {r[0]: (r[1], r[2]) for r in rows}


def errors_per_tool_filters(store: CountingStore) -> dict[str, tuple[int, int]]:
    tools = [t.name for t in store.overview().tools]
    return {
        name: (
            store.count(SpanFilter(tool_name=name)).spans,
            store.count(SpanFilter(tool_name=name, errors_only=True)).spans,
        )
        for name in tools
    }


def errors_per_tool_tally_sql(store: TraceStore) -> dict[str, tuple[int, int]]:
    rows = store.query_sql(
        "SELECT tool_name, SUM(spans), TOTAL(spans) FILTER (WHERE is_error) FROM span_counts "
        "WHERE tool_name IS NOT NULL GROUP BY tool_name",
        limit=1000,
    ).rows
    return {r[0]: (r[1], int(r[2])) for r in rows}


def errors_per_hour_sql(store: TraceStore) -> dict[str, int]:
    rows = store.query_sql(
        "SELECT substr(start_time, 1, 13) AS hour, COUNT(*) FROM spans "
        "WHERE is_error GROUP BY hour",
        limit=1000,
        time_limit_s=600,
    ).rows
    return {r[0]: r[1] for r in rows}


def errors_per_hour_filters(store: CountingStore) -> dict[str, int]:
    ov = store.overview()
    assert ov.start_time and ov.end_time
    hour = ov.start_time.replace(minute=0, second=0, microsecond=0)
    out = {}
    while hour <= ov.end_time:
        nxt = hour + timedelta(hours=1)
        n = store.count(SpanFilter(errors_only=True, start_after=hour, start_before=nxt)).spans
        if n:
            out[hour.strftime("%Y-%m-%dT%H")] = n
        hour = nxt
    return out


def error_traces_per_agent_sql(store: TraceStore) -> dict[str, int]:
    rows = store.query_sql(
        "SELECT agent, COUNT(DISTINCT trace_id) FROM spans "
        "WHERE is_error AND agent IS NOT NULL GROUP BY agent",
        limit=1000,
        time_limit_s=600,
    ).rows
    return {r[0]: r[1] for r in rows}


def error_traces_per_agent_filters(store: CountingStore) -> dict[str, int]:
    out = {}
    for agent in store.overview().agents:
        n = store.count(SpanFilter(agent=agent.name, errors_only=True)).traces
        if n:
            out[agent.name] = n
    return out


CASES = (
    ("errors per tool", errors_per_tool_sql, errors_per_tool_filters),
    ("  same, span_counts view", errors_per_tool_tally_sql, errors_per_tool_filters),
    ("error spans per hour", errors_per_hour_sql, errors_per_hour_filters),
    ("error traces per agent", error_traces_per_agent_sql, error_traces_per_agent_filters),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=float, default=1000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--path", type=Path, help="Use this trace file instead.")
    args = parser.parse_args()
    data = ROOT / "bench" / "data"
    path = args.path or data / f"tiny-{int(args.size_mb)}mb.jsonl"
    if not path.exists():
        from halo_mcp.synth import generate

        data.mkdir(parents=True, exist_ok=True)
        print(f"generating {path} ...", file=sys.stderr)
        generate(str(path), size_mb=args.size_mb, seed=1, profile="tiny")
    began = time.perf_counter()
    store = open_store([path], cache_dir=data / f"cache-{path.stem}")
    opened = time.perf_counter() - began
    c = store.count()
    size = path.stat().st_size / 1e6
    print(f"file: {path.name}, {size:,.0f} MB, {c.spans:,} spans, {c.traces_in_scope:,} traces")
    print(f"open (index built or reused): {opened:.1f} s; {args.reps} reps, p50 per answer\n")
    print(f"{'aggregation':<26} {'query_sql p50':>14} {'filters p50':>12} "
          f"{'filters 1st':>12} {'calls':>6} {'p50 ratio':>10}  same answer")  # fmt: skip
    for label, via_sql, via_filters in CASES:
        _, sql_s, sql_answer = p50(lambda f=via_sql: f(store), args.reps)
        counter = CountingStore(store)
        first_s, filter_s, filter_answer = p50(lambda f=via_filters, cs=counter: f(cs), args.reps)
        same = "yes" if sql_answer == filter_answer else "NO"
        print(
            f"{label:<26} {sql_s * 1000:>11.1f} ms {filter_s * 1000:>9.1f} ms "
            f"{first_s * 1000:>9.1f} ms {counter.calls // args.reps:>6} "
            f"{filter_s / sql_s:>9.2f}x  {same}"
        )
    print("\nratio = filter tools p50 / query_sql p50 (above 1: SQL is faster)")
    store.close()


if __name__ == "__main__":
    main()
