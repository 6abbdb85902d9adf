"""Benchmark: triage time as a ratio to the index build time, and check time per finding.

    python bench/bench_triage.py                  # ~100 MB realistic spans
    python bench/bench_triage.py --size-mb 1000   # the 1 GB file
    python bench/bench_triage.py --profile tiny   # many tiny spans
    python bench/bench_triage.py --path big.jsonl # an existing file
    python bench/bench_triage.py --path bench/data/tiny-1000mb.jsonl \
        --cache bench/data/cache-tiny-1000mb --no-check   # reuse a built index

Goal: triage < 0.5x the index build time once the index exists. Prints figures; not a test.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _timed(fn):  # type: ignore[no-untyped-def]
    began = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - began


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=100.0)
    parser.add_argument("--profile", choices=("realistic", "tiny"), default="realistic")
    parser.add_argument("--path", help="Use this trace file instead of generating one.")
    parser.add_argument(
        "--new",
        help="Check the findings against this file (default: a "
        "regenerated set with the retry loop fixed, 1/5 of the size).",
    )
    parser.add_argument("--repeat", type=int, default=3, help="Triage runs (median reported).")
    parser.add_argument("--keep", action="store_true", help="Keep the work directory.")
    parser.add_argument(
        "--cache",
        help="Reuse this cache dir (its index is opened, built only if missing or stale; "
        "the ratio then compares with that open, not a cold build).",
    )
    parser.add_argument("--no-check", action="store_true", help="Skip the check timings.")
    args = parser.parse_args(argv)

    from halo_mcp.check.recount import check_findings
    from halo_mcp.store import open_store
    from halo_mcp.synth import generate
    from halo_mcp.triage import run_triage, triage_summary

    work = Path(tempfile.mkdtemp(prefix="halo-bench-triage-"))
    try:
        if args.path:
            path = Path(args.path)
        else:
            path = work / "traces.jsonl"
            _, secs = _timed(
                lambda: generate(path, size_mb=args.size_mb, seed=1, profile=args.profile)
            )
            print(f"generated {path.stat().st_size / 1e6:.0f} MB ({args.profile}) in {secs:.1f} s")
        cache = Path(args.cache) if args.cache else work / "cache"
        store, build_s = _timed(lambda: open_store([path], cache_dir=cache))
        spans, traces = store.report.spans, store.count().traces_in_scope
        print(f"file: {path.stat().st_size / 1e6:.0f} MB, {spans} spans, {traces} traces")
        print(f"index {'open (reused cache)' if args.cache else 'build (cold)'}: {build_s:.2f} s")
        store.close()
        store, reopen_s = _timed(lambda: open_store([path], cache_dir=cache))
        print(f"index re-open: {reopen_s:.3f} s")

        times = []
        report = None
        for _ in range(max(1, args.repeat)):
            report, secs = _timed(lambda: run_triage(store))
            times.append(secs)
        triage_s = statistics.median(times)
        print(
            f"triage: {triage_s:.2f} s median of {len(times)} (min {min(times):.2f} s), "
            f"{len(report.items)} items"
        )
        if not args.cache:
            print(f"ratio triage / build: {triage_s / build_s:.2f}x (goal < 0.5x)")
        print(f"summary: {len(triage_summary(report))} chars")
        if args.no_check:
            store.close()
            return 0

        if args.new:
            new_path = Path(args.new)
        else:
            new_path = work / "fixed.jsonl"
            generate(
                new_path,
                size_mb=max(1.0, args.size_mb / 5),
                seed=2,
                profile=args.profile,
                failure_rates={"retry_loop": 0.0},
            )
        new_store, new_build = _timed(lambda: open_store([new_path], cache_dir=cache))
        print(f"new set: {new_path.stat().st_size / 1e6:.0f} MB indexed in {new_build:.2f} s")
        checked, check_s = _timed(lambda: check_findings(report.items, new_store))
        n = max(1, len(checked.results))
        print(
            f"check: {len(checked.results)} findings in {check_s:.2f} s = "
            f"{check_s / n * 1000:.0f} ms per finding; verdicts {checked.verdicts}"
        )
        _, recount_s = _timed(lambda: check_findings(report.items, new_store, baseline_store=store))
        print(f"check with a baseline recount: {recount_s / n * 1000:.0f} ms per finding")
        for result in checked.results:
            print(f"  {result.verdict:<12} {result.method:<14} {result.title[:70]}")
        new_store.close()
        store.close()
    finally:
        if args.keep:
            print(f"work directory kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
