"""Benchmark of the ClickHouse store: read tools and triage at up to 10M spans, beside the
file (SQLite) store on the same data, and the halo-mcp process's memory as the table grows.

    python bench/bench_clickhouse.py                       # 10M spans, 5 reps per tool
    python bench/bench_clickhouse.py --spans 2000000 --reps 3

How the data is made: halo_mcp.synth writes BASE_TRACES traces (tiny profile, planted
failures) to a file, `load_files` writes them into `otel.base` (the same path as
`halo-mcp load`), and `otel.otel_traces` then grows by INSERT ... SELECT inside ClickHouse:
each copy of the base gets new trace and span ids (hashes of the old ids and the copy
number, so parent links hold) and a time shift that keeps the whole table inside the default
7-day window. Writing 10M spans through files would take most of an hour here.

ClickHouse runs behind the loopback HTTP endpoint (tests/fakes/clickhouse_http.py: chDB in
its own process) and the store uses the real clickhouse-connect client, so this process's
RSS is halo-mcp's own, as with a ClickHouse server. The file store is measured on the base
file only (its index at 10M spans would take long to build here): the same data as
`otel.base`, which the ClickHouse store also reads, for a same-size comparison.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from halo_mcp.store import (  # noqa: E402
    DEFAULT_QUERY_TIME_LIMIT,
    QueryTimeoutError,
    SpanFilter,
    open_store,
)
from halo_mcp.store.api import TraceReader  # noqa: E402
from halo_mcp.store.clickhouse.client import connect  # noqa: E402
from halo_mcp.store.clickhouse.load import load_files  # noqa: E402
from halo_mcp.store.clickhouse.location import parse_location  # noqa: E402
from halo_mcp.store.clickhouse.materialize import build_index  # noqa: E402
from halo_mcp.store.clickhouse.schema import create_tables  # noqa: E402
from halo_mcp.store.clickhouse.store import ClickHouseTraceStore, open_clickhouse  # noqa: E402
from halo_mcp.synth import generate  # noqa: E402
from halo_mcp.triage.run import run_triage  # noqa: E402
from tests.fakes import clickhouse_http  # noqa: E402

BASE_TRACES = 5000
PASSWORD = "bench-only"
#: How far the copies are spread in time: the base covers ~3 days, so all fits 7 days.
SPREAD = timedelta(days=3, hours=12)

COPY_SQL = """
INSERT INTO otel.otel_traces
SELECT
    Timestamp + toIntervalNanosecond({shift:Int64} * n) AS Timestamp,
    lower(hex(MD5(concat(TraceId, toString(n))))) AS TraceId,
    substring(lower(hex(MD5(concat(TraceId, SpanId, toString(n))))), 1, 16) AS SpanId,
    if(ParentSpanId = '', '',
       substring(lower(hex(MD5(concat(TraceId, ParentSpanId, toString(n))))), 1, 16)),
    TraceState, SpanName, SpanKind, ServiceName, ResourceAttributes, ScopeName, ScopeVersion,
    SpanAttributes, Duration, StatusCode, StatusMessage,
    `Events.Timestamp`, `Events.Name`, `Events.Attributes`,
    `Links.TraceId`, `Links.SpanId`, `Links.TraceState`, `Links.Attributes`
FROM otel.base, (SELECT number + {first:UInt64} AS n FROM numbers({count:UInt64})) AS copies
"""


def rss_mb() -> float:
    """This process's resident memory now (VmRSS), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def timed(fn: Callable[[], Any], reps: int, warm: bool = True) -> list[float] | str:
    """Wall times (ms) of `reps` calls, or what stopped them (the store's time limit)."""
    out = []
    try:
        if warm:
            fn()  # caches, first connection
        for _ in range(reps):
            began = time.perf_counter()
            fn()
            out.append((time.perf_counter() - began) * 1000)
    except QueryTimeoutError:
        return f"stopped by the store's time limit ({DEFAULT_QUERY_TIME_LIMIT:g} s)"
    return out


def pct(values: list[float] | str) -> str:
    if isinstance(values, str):
        return values
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered):9.1f} ms  p95 {p95:9.1f} ms"


class Probe(NamedTuple):
    """What the read tools ask for: a trace, one of its spans, a failing tool, the end."""

    trace_id: str
    span_id: str
    tool: str
    end: datetime


def probe_of(store: TraceReader) -> Probe:
    """Ids and names taken from the data itself (the overview of the base data)."""
    overview = store.overview()
    trace_id = overview.sample_trace_ids[0]
    tree = store.trace_tree(trace_id, limit=50)
    tool = next(t.name for t in overview.tools if t.errors)
    assert overview.end_time is not None
    return Probe(trace_id, tree.nodes[-1].span.span_id, tool, overview.end_time)


def copied(probe: Probe, store: ClickHouseTraceStore) -> Probe:
    """The same trace and span in copy 0 of the grown table (ids as COPY_SQL makes them)."""
    trace_id = hashlib.md5(f"{probe.trace_id}0".encode()).hexdigest()
    span_id = hashlib.md5(f"{probe.trace_id}{probe.span_id}0".encode()).hexdigest()[:16]
    end = datetime.fromtimestamp(store.window_ns[1] / 1e9, tz=timezone.utc)
    return Probe(trace_id, span_id, probe.tool, end)


def read_tools(store: TraceReader, probe: Probe) -> dict[str, Callable[[], Any]]:
    window = SpanFilter(
        tool_name=probe.tool,
        errors_only=True,
        start_after=probe.end - timedelta(hours=6),
        start_before=probe.end,
    )
    return {
        "trace by id (trace_tree)": lambda: store.trace_tree(probe.trace_id, limit=200),
        "span by id (query_spans)": lambda: store.query_spans(
            SpanFilter(trace_ids=[probe.trace_id], span_ids=[probe.span_id]), limit=1
        ),
        f"{probe.tool} errors, last 6 h": lambda: store.query_spans(window, limit=20),
        "text search 'rate limit'": lambda: store.search("rate limit", limit=10),
    }


def measure(label: str, store: TraceReader, probe: Probe, reps: int, heavy_reps: int = 1) -> None:
    """The read tools (`reps` times after a warm-up call), then overview and triage
    (`heavy_reps` times, no warm-up)."""
    print(f"\n== {label}")
    for name, fn in read_tools(store, probe).items():
        print(f"  {name:32s} {pct(timed(fn, reps))}")
    if heavy_reps:
        print(f"  {'overview':32s} {pct(timed(store.overview, heavy_reps, warm=False))}")
        began = time.perf_counter()
        report = run_triage(store)
        print(
            f"  {'triage':32s} {time.perf_counter() - began:9.2f} s  "
            f"({len(report.items)} items, {report.spans} spans, {report.traces} traces)"
        )
    print(f"  halo-mcp RSS now {rss_mb():.0f} MB")


def grow(client: Any, made: int, target: int, shift: int, base_spans: int) -> int:
    """Copies `made`..`target` of the base into otel.otel_traces; the copies now there."""
    began = time.perf_counter()
    while made < target:
        batch = min(20, target - made)
        client.command(COPY_SQL, {"shift": shift, "first": made, "count": batch})
        made += batch
    print(
        f"\n(otel.otel_traces holds {made * base_spans:,} spans; grown in "
        f"{time.perf_counter() - began:.0f} s, inside ClickHouse)",
        flush=True,
    )
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--spans", type=int, default=10_000_000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--base-traces", type=int, default=BASE_TRACES)
    parser.add_argument("--steps", type=int, default=4, help="growth steps measured")
    parser.add_argument("--heavy-reps", type=int, default=1, help="overview/triage runs")
    parser.add_argument(
        "--data",
        type=Path,
        help="keep the generated data in this folder and reuse what is already there "
        "(default: a new temporary folder)",
    )
    parser.add_argument(
        "--skip-in-place-heavy",
        action="store_true",
        help="skip overview and triage on the table read in place (minutes at 10M spans)",
    )
    parser.add_argument(
        "--prepare-only", action="store_true", help="generate the data (--data), measure nothing"
    )
    args = parser.parse_args()

    work = args.data or Path(tempfile.mkdtemp(prefix="bench-ch-"))
    work.mkdir(parents=True, exist_ok=True)
    base_file = work / "base.jsonl"
    if not base_file.exists():
        began = time.perf_counter()
        generate(str(base_file), traces=args.base_traces, seed=3, profile="tiny")
        print(f"synth: {args.base_traces} traces in {time.perf_counter() - began:.1f} s")
    process, port = clickhouse_http.start(work / "chdb", PASSWORD)
    try:
        url = f"clickhouse://default@127.0.0.1:{port}/otel"
        base = parse_location(url + "?table=base", password=PASSWORD)
        main_table = parse_location(url + "?table=otel_traces", password=PASSWORD)
        client = connect(base)
        began = time.perf_counter()
        create_tables(client, base)
        base_spans = int(client.rows("SELECT count() FROM otel.base")[0][0])
        if not base_spans:
            base_spans = load_files([base_file], client, base).spans
        create_tables(client, main_table)
        print(f"load_files: {base_spans} spans in {time.perf_counter() - began:.1f} s")
        print(f"halo-mcp RSS at start {rss_mb():.0f} MB")
        copies = max(1, args.spans // max(1, base_spans))
        shift = int(SPREAD.total_seconds() * 1e9) // copies
        made = int(client.rows("SELECT count() FROM otel.otel_traces")[0][0]) // base_spans
        if args.prepare_only:
            grow(client, made, copies, shift, base_spans)
            return

        # Same data, both stores.
        with open_store([base_file], cache_dir=work / "cache") as files:
            probe = probe_of(files)
            measure(f"file store (SQLite), {base_spans} spans", files, probe, args.reps, 3)
        with open_clickhouse(base) as small:
            measure(f"ClickHouse in place, the same {base_spans} spans", small, probe, args.reps, 3)
        build_index(client, base)
        with open_clickhouse(base) as small:
            assert small.source.materialized, small.notes
            label = f"ClickHouse materialized, the same {base_spans} spans"
            measure(label, small, probe, args.reps, 3)

        targets = sorted({max(1, copies * (i + 1) // args.steps) for i in range(args.steps)})
        for step, target in enumerate(targets):
            made = grow(client, made, target, shift, base_spans)
            final = target == targets[-1]
            # The reads run under the store's default time limit (text search is bounded
            # by it); overview and triage are whole-window reads, measured without one.
            with open_clickhouse(main_table, companion=False) as store:
                label = f"ClickHouse in place, {store.count().spans:,} spans"
                measure(label, store, copied(probe, store), args.reps, 0)
            began = time.perf_counter()
            built = build_index(client, main_table, rebuild=step == 0)
            print(
                f"  {'rebuilt' if built.rebuilt else 'extended'} {built.table} by "
                f"{built.spans_added:,} spans (now {built.spans:,}) in "
                f"{time.perf_counter() - began:.1f} s, inside ClickHouse"
            )
            with open_clickhouse(main_table) as store:
                assert store.source.materialized, store.notes
                label = f"ClickHouse materialized ({built.table}), {store.count().spans:,} spans"
                measure(label, store, copied(probe, store), args.reps, args.heavy_reps * final)
            if not final or args.skip_in_place_heavy:
                continue  # in place, overview and triage take minutes: at the full size only
            with open_clickhouse(main_table, query_time_limit=None, companion=False) as store:
                overview = pct(timed(store.overview, 1, False))
                print(f"  {'in place: overview (no limit)':32s} {overview}")
                began = time.perf_counter()
                report = run_triage(store)
                print(
                    f"  {'in place: triage':32s} {time.perf_counter() - began:9.2f} s  "
                    f"({len(report.items)} items, {report.spans:,} spans, {report.traces:,} "
                    f"traces)"
                )
                print(f"  halo-mcp RSS now {rss_mb():.0f} MB")
        client.close()
    finally:
        process.kill()
        process.wait()


if __name__ == "__main__":
    main()
