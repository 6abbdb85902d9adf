"""The HTML report of a run, checked through its data and its page (the browser test draws
it): figures recomputed another way, bounded and escaped content, a report without its
traces, the CLI command and the MCP resource."""

from __future__ import annotations

import json
import re
import shutil
from collections import defaultdict
from datetime import timezone

import pytest
from mcp import Client

from halo_mcp.cli import main
from halo_mcp.engine.models import RunStatus
from halo_mcp.engine.runstore import RunStore
from halo_mcp.findings.models import Evidence
from halo_mcp.server import create_server
from halo_mcp.store import SpanFilter, open_store
from halo_mcp.synth import generate
from halo_mcp.web.report import render_html, run_report_html
from halo_mcp.web.report_data import build_report, fit_trace, wilson
from tests.mcp_support import settings
from tests.web_support import WebEnv, make_web_env


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> WebEnv:
    return make_web_env(tmp_path_factory.mktemp("web"))


def embedded(page: str) -> dict:
    found = re.search(r'<script id="halo-data" type="application/json">(.*?)</script>', page, re.S)
    assert found, "the page embeds its data"
    return json.loads(found.group(1))


def test_wilson_intervals_match_the_textbook_values():
    assert wilson(5, 10).low == pytest.approx(0.2366, abs=1e-4)
    assert wilson(5, 10).high == pytest.approx(0.7634, abs=1e-4)
    zero = wilson(0, 10)
    assert (zero.rate, zero.low) == (0.0, 0.0) and zero.high == pytest.approx(0.2775, abs=1e-4)
    assert wilson(10, 10).high == 1.0 and wilson(10, 10).low == pytest.approx(0.7225, abs=1e-4)


def test_findings_are_ranked_with_intervals_seen_range_and_daily_rates(web: WebEnv):
    with open_store([web.traces], cache_dir=web.cache_dir) as store:
        data = build_report(web.run, store)
        assert [v.rank for v in data.findings] == list(range(1, len(web.run.findings) + 1))
        severities = [v.finding.severity for v in data.findings]
        order = ["critical", "high", "medium", "low"]
        assert [order.index(s) for s in severities] == sorted(order.index(s) for s in severities)
        for view in data.findings:
            prev, matcher = view.finding.prevalence, view.finding.matcher
            assert prev is not None and matcher is not None and view.interval is not None
            assert view.interval.low <= prev.rate <= view.interval.high
            # Recount another way: page through every matching span.
            starts, per_day = [], defaultdict(set)
            cursor = None
            while True:
                page = store.query_spans(
                    matcher, limit=500, cursor=cursor, fields=["trace_id", "start_time"]
                )
                for span in page.spans:
                    starts.append(span.start_time)
                    per_day[span.start_time.astimezone(timezone.utc).date()].add(span.trace_id)
                cursor = page.next_cursor
                if cursor is None:
                    break
            assert view.first_seen == min(starts) and view.last_seen == max(starts)
            by_day = {b.start: b.matched for b in view.rates}
            assert by_day == {day: len(per_day.get(day, ())) for day in by_day}
            assert {d for d, ids in per_day.items() if ids} <= set(by_day)
            assert all(b.matched <= b.traces for b in view.rates)
            assert sum(b.traces for b in view.rates) >= data.traces_in_scope


def test_each_finding_draws_its_evidence_traces_with_the_evidence_span(web: WebEnv):
    with open_store([web.traces], cache_dir=web.cache_dir) as store:
        data = build_report(web.run, store)
    for view in data.findings:
        assert view.trace_ids, f"{view.finding.title} draws an evidence trace"
        for trace_id in view.trace_ids:
            tree = data.traces[trace_id]
            ids = {n.span.span_id for n in tree.nodes}
            cited = [e.span_id for e in view.finding.evidence if e.trace_id == trace_id]
            assert set(cited) <= ids
            assert any(n.span.attributes for n in tree.nodes), "attributes ride along for clicks"


def test_the_page_is_self_contained_and_span_text_cannot_close_its_script(web: WebEnv):
    hostile = "</script><script>alert('x')</script><!--"
    first = web.run.findings[0].model_copy(
        update={
            "title": hostile,
            "evidence": [Evidence(trace_id="t_missing", span_id="s1", excerpt=hostile)],
        }
    )
    run = web.run.model_copy(update={"findings": [first, *web.run.findings[1:]]})
    page = run_report_html(run, cache_dir=web.cache_dir)
    assert "<script>alert" not in page
    assert re.search(r"""(src|href)=["']?https?:""", page) is None
    assert "<link" not in page and "@import" not in page
    assert "default-src 'none'" in page  # the page may not fetch anything
    data = embedded(page)
    titles = [v["finding"]["title"] for v in data["findings"]]
    assert hostile in titles
    mine = next(v for v in data["findings"] if v["finding"]["title"] == hostile)
    assert any("t_missing" in note for note in mine["notes"])


def test_a_run_whose_traces_are_gone_still_reports_its_findings(web: WebEnv, tmp_path):
    moved = tmp_path / "moved.jsonl"
    shutil.copy(web.traces, moved)
    run = web.run.model_copy(update={"trace_paths": [str(tmp_path / "gone.jsonl")]})
    data = embedded(run_report_html(run, cache_dir=web.cache_dir))
    assert len(data["findings"]) == len(web.run.findings)
    assert data["traces"] == {} and "could not be opened" in data["notes"][0]
    assert all(v["interval"] for v in data["findings"])


def test_report_command_writes_the_html_file_with_a_check(web: WebEnv, tmp_path, capsys):
    newer = tmp_path / "newer.jsonl"
    generate(str(newer), traces=80, seed=11, profile="tiny")
    out = tmp_path / "report.html"
    args = ["--data-dir", str(web.data_dir), "--cache-dir", str(web.cache_dir)]
    code = main(["report", web.run.id, "--html", "-o", str(out), "--check", str(newer), *args])
    assert code == 0, capsys.readouterr().err
    data = embedded(out.read_text())
    assert data["run"]["id"] == web.run.id
    assert data["check"]["traces_in_scope"] == 80
    assert all(v["check"]["verdict"] for v in data["findings"])
    assert main(["report", web.run.id, "-o", str(out), *args]) == 2
    assert "pass --html" in capsys.readouterr().err
    assert main(["report", "run_nope", "--html", *args]) == 2
    assert "halo-mcp runs" in capsys.readouterr().err


async def test_the_mcp_server_serves_the_html_report_as_a_resource(web: WebEnv, monkeypatch):
    monkeypatch.setenv("HALO_DATA_DIR", str(web.data_dir))
    monkeypatch.setenv("HALO_CACHE_DIR", str(web.cache_dir))
    async with Client(create_server(settings())) as client:
        result = await client.read_resource(f"halo://runs/{web.run.id}/report.html")
        page = result.contents[0]
        assert page.mime_type == "text/html"
        assert embedded(page.text)["run"]["id"] == web.run.id
        markdown = await client.read_resource(f"halo://runs/{web.run.id}/report")
        assert markdown.contents[0].mime_type == "text/markdown"
        with pytest.raises(Exception, match="list_runs"):
            await client.read_resource("halo://runs/run_missing/report.html")
        # A run whose trace files are gone still gets a page, saying so.
        runs = RunStore(web.data_dir)
        gone = runs.create("gone", [str(web.root / "gone.jsonl")], {}, status=RunStatus.running)
        runs.save(gone.model_copy(update={"status": RunStatus.finished}))
        result = await client.read_resource(f"halo://runs/{gone.id}/report.html")
        assert "could not be opened" in embedded(result.contents[0].text)["notes"][0]


def test_a_drawn_trace_is_cut_at_its_span_limit(web: WebEnv):
    with open_store([web.traces], cache_dir=web.cache_dir) as store:
        data = build_report(web.run, store)
        biggest = max(data.traces.values(), key=lambda t: t.summary.span_count)
        assert len(biggest.nodes) == min(biggest.summary.span_count, 300)
        assert store.count(SpanFilter(trace_ids=[biggest.trace_id])).spans >= len(biggest.nodes)
    assert len(render_html(data)) < 5_000_000


def test_a_large_trace_keeps_content_only_for_the_cited_spans(web: WebEnv):
    with open_store([web.traces], cache_dir=web.cache_dir) as store:
        data = build_report(web.run, store)
    tree = next(iter(data.traces.values()))
    cited = {tree.nodes[1].span.span_id}
    assert fit_trace(tree.model_copy(deep=True), cited, 10**9) is False
    small = tree.model_copy(deep=True)
    assert fit_trace(small, cited, 1000) is True
    kept = [n.span.span_id for n in small.nodes if n.span.attributes]
    assert kept == [tree.nodes[1].span.span_id]
    assert len(small.nodes) == len(tree.nodes)


def test_a_run_with_a_warning_outcome_carries_it_into_the_page(web: WebEnv):
    from halo_mcp.engine.models import RunOutcome

    run = web.run.model_copy(
        update={
            "outcome": RunOutcome.only_unverified,
            "warning": "All 2 finding(s) are unverified.",
        }
    )
    data = embedded(run_report_html(run, cache_dir=web.cache_dir))
    assert data["run"]["outcome"] == "only_unverified"
    assert data["run"]["warning"] == "All 2 finding(s) are unverified."
