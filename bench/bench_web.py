"""Benchmark of the web views: the HTML report of a run with 20 findings, and the viewer's
trace list on a big file.

    python bench/bench_web.py                          # report + trace list on ~1 GB
    python bench/bench_web.py --size-mb 100 --reps 50  # a quicker trace-list run

Report: 20 findings (one per matcher built from the data's own tool, span and error names),
each with 3 evidence spans, as `halo-mcp report --html` builds it. Prints the file size,
the Python build time split into gathering (store queries) and writing the page, and, when
Chromium and Playwright are installed, the browser's time to draw the page and to open
every finding (waterfalls included).

Trace list: the viewer served by uvicorn on 127.0.0.1, `GET /api/traces` timed from a
client over HTTP with the filters a person uses (none, errors only, a tool, a span name
glob, slow traces, a content regex), and the next page by cursor; p50/p95 per filter.
The baseline in the same run is `GET /api/status` (the cheapest request: HTTP + JSON).
The data is generated once by halo_mcp.synth under bench/data/ (gitignored).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def generate(size_mb: float, data_dir: Path, profile: str = "tiny") -> Path:
    path = data_dir / f"{profile}-{int(size_mb)}mb.jsonl"
    if not path.exists():
        from halo_mcp.synth import generate as synth

        data_dir.mkdir(parents=True, exist_ok=True)
        print(f"generating {path} ...", file=sys.stderr)
        synth(str(path), size_mb=size_mb, seed=1, profile=profile)
    return path


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# ----------------------------------------------------------------------------- report


def twenty_findings(store, run_id: str) -> list:
    """20 findings with real matchers, prevalence and evidence, from the data's names."""
    from halo_mcp.findings.models import Evidence, Finding, Prevalence, Severity
    from halo_mcp.store import SpanFilter

    overview = store.overview()
    matchers: list[tuple[str, SpanFilter]] = []
    for tool in overview.tools:
        matchers.append(
            (f"tool {tool.name} fails", SpanFilter(tool_name=tool.name, errors_only=True))
        )
        matchers.append(
            (f"tool {tool.name} is slow", SpanFilter(tool_name=tool.name, min_duration_ms=500))
        )
    for sig in overview.error_signatures:
        matchers.append(
            (
                f"{sig.span_name}: {sig.message[:60]}",
                SpanFilter(name=sig.span_name, errors_only=True),
            )
        )
    for model in overview.models:
        matchers.append(
            (f"slow calls to {model.name}", SpanFilter(model=model.name, min_duration_ms=2000))
        )
    severities = list(Severity)
    findings = []
    for i, (title, matcher) in enumerate(matchers[:20]):
        count = store.count(matcher)
        page = store.query_spans(matcher, limit=3, fields=["trace_id", "span_id", "name"])
        findings.append(
            Finding(
                id=f"f_bench{i:02d}",
                run_id=run_id,
                title=title,
                category="bench",
                severity=severities[i % len(severities)],
                description=f"{count.spans} spans in {count.traces} traces.",
                root_cause="(benchmark)",
                suggested_change="(benchmark)",
                validation="(benchmark)",
                evidence=[
                    Evidence(trace_id=s.trace_id or "", span_id=s.span_id, excerpt=s.name)
                    for s in page.spans
                ],
                matcher=matcher,
                prevalence=Prevalence(
                    traces_matched=count.traces,
                    traces_in_scope=count.traces_in_scope,
                    spans_matched=count.spans,
                ),
            )
        )
    return findings


def bench_report(path: Path, cache_dir: Path, browser: bool) -> list[str]:
    from halo_mcp.engine.models import RunRecord, RunStatus
    from halo_mcp.store import open_store
    from halo_mcp.web.report import render_html
    from halo_mcp.web.report_data import build_report

    with open_store([path], cache_dir=cache_dir) as store:
        findings = twenty_findings(store, "run_bench")
        run = RunRecord(
            id="run_bench",
            status=RunStatus.finished,
            prompt="benchmark",
            trace_paths=[str(path)],
            created_at=datetime.now(timezone.utc),
            findings=findings,
        )
        began = time.perf_counter()
        data = build_report(run, store)
        gathered = time.perf_counter() - began
        began = time.perf_counter()
        page = render_html(data)
        written = time.perf_counter() - began
    size = len(page.encode())
    lines = [
        f"report: {len(findings)} findings, {len(data.traces)} evidence traces drawn, "
        f"{sum(len(t.nodes) for t in data.traces.values())} spans",
        f"report: size {size / 1024:.0f} KB ({size / len(findings) / 1024:.1f} KB per finding)",
        f"report: build {gathered * 1000:.0f} ms gathering from the store "
        f"({gathered * 1000 / len(findings):.0f} ms per finding) + {written * 1000:.0f} ms "
        "writing the page",
    ]
    if browser:
        lines += browser_render(page)
    return lines


def browser_render(page_html: str) -> list[str]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return ["report: browser timings skipped (pip install playwright)"]
    chromium = shutil.which("chromium")
    if chromium is None:
        return ["report: browser timings skipped (apt-get install chromium)"]
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.html"
        report.write_text(page_html)
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=chromium, args=["--no-sandbox", "--disable-gpu"]
            )
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            loads, draws, opens = [], [], []
            for _ in range(3):
                began = time.perf_counter()
                page.goto(report.as_uri())
                page.wait_for_selector("body[data-ready='1']")
                loads.append((time.perf_counter() - began) * 1000)
                draws.append(float(page.evaluate("document.body.dataset.renderMs")))
                began = time.perf_counter()
                page.evaluate(
                    "() => document.querySelectorAll('tr.finding-row').forEach(r => r.click())"
                )
                page.wait_for_selector(".wf-row")
                opens.append((time.perf_counter() - began) * 1000)
            browser.close()
    return [
        f"report: Chromium load to first draw {statistics.median(loads):.0f} ms "
        f"(script {statistics.median(draws):.0f} ms), opening all 20 findings with their "
        f"waterfalls {statistics.median(opens):.0f} ms (median of 3)"
    ]


# ------------------------------------------------------------------------- trace list


def bench_trace_list(path: Path, cache_dir: Path, reps: int) -> list[str]:
    import httpx2 as httpx

    sys.path.insert(0, str(ROOT.parent))
    from halo_mcp.store import open_store
    from halo_mcp.web.app import UiSettings
    from tests.mcp_support import free_port
    from tests.web_support import serve_viewer

    began = time.perf_counter()
    with open_store([path], cache_dir=cache_dir) as store:
        report = store.report
        tool = store.overview().tools[0].name
    opened = time.perf_counter() - began
    lines = [
        f"trace list: {path.name} {path.stat().st_size / 1e6:.0f} MB, {report.spans} spans "
        f"(index {'reused' if report.reused else 'built'} in {opened:.1f} s)"
    ]
    filters = {
        "none": None,
        "errors only": {"errors_only": True},
        f"tool {tool}": {"tool_name": tool},
        "name glob": {"name": "Chat*"},
        "slow (>5 s)": {"min_duration_ms": 5000},
        "errors, slowest first": {"errors_only": True},
        "content regex": {"text": "rate limit"},
    }
    settings = UiSettings(paths=[path], port=free_port(), cache_dir=cache_dir, poll_seconds=60)
    with serve_viewer(settings) as base, httpx.Client(base_url=base, timeout=300) as http:
        base_times = []
        for _ in range(reps):
            began = time.perf_counter()
            http.get("/api/status").raise_for_status()
            base_times.append((time.perf_counter() - began) * 1000)
        lines.append(
            f"trace list: baseline GET /api/status p50 {pct(base_times, 0.5):.1f} ms, "
            f"p95 {pct(base_times, 0.95):.1f} ms"
        )
        everything = []
        for label, flt in filters.items():
            params = {"limit": "50", "sort": "-duration" if "slowest" in label else "-start_time"}
            if flt:
                params["filter"] = json.dumps(flt)
            first, nexts = [], []
            n = reps if label != "content regex" else max(3, reps // 10)
            total = 0
            for _ in range(n):
                began = time.perf_counter()
                response = http.get("/api/traces", params=params)
                response.raise_for_status()
                first.append((time.perf_counter() - began) * 1000)
                body = response.json()
                total = body["total"]
                if body["next_cursor"]:
                    began = time.perf_counter()
                    http.get(
                        "/api/traces", params={**params, "cursor": body["next_cursor"]}
                    ).raise_for_status()
                    nexts.append((time.perf_counter() - began) * 1000)
            everything += first
            lines.append(
                f"trace list: {label:<28} {total:>7} traces  first page p50 "
                f"{pct(first, 0.5):7.1f} ms p95 {pct(first, 0.95):7.1f} ms"
                + (f"  next page p95 {pct(nexts, 0.95):7.1f} ms" if nexts else "")
                + f"  (n={n})"
            )
        lines.append(
            f"trace list: all filters first page p95 {pct(everything, 0.95):.1f} ms "
            f"({pct(everything, 0.95) / max(pct(base_times, 0.95), 0.001):.0f}x the baseline)"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=1000, help="trace-list file size")
    parser.add_argument("--report-traces", type=int, default=5000, help="traces for the report")
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data")
    parser.add_argument("--skip-list", action="store_true", help="only the report")
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    cache_dir = args.data_dir / "cache"
    small = args.data_dir / f"report-{args.report_traces}.jsonl"
    if not small.exists():
        from halo_mcp.synth import generate as synth

        args.data_dir.mkdir(parents=True, exist_ok=True)
        synth(str(small), traces=args.report_traces, seed=5, profile="tiny")
    for line in bench_report(small, cache_dir, not args.no_browser):
        print(line, flush=True)
    if not args.skip_list:
        big = generate(args.size_mb, args.data_dir)
        for line in bench_trace_list(big, cache_dir, args.reps):
            print(line, flush=True)


if __name__ == "__main__":
    main()
