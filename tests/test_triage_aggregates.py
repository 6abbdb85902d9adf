"""Triage's fast aggregates (one scan for many groups, tallies instead of scans, counts
from indexes) give exactly what a plain per-group query over every span gives, on a
serial index and on a sharded one (spans spread over several files)."""

from __future__ import annotations

from collections import Counter

import pytest

from halo_mcp.store import aggregates, open_store
from halo_mcp.store import index as index_module
from halo_mcp.synth import generate
from halo_mcp.triage import answers as answers_module
from halo_mcp.triage import run_triage
from halo_mcp.triage.bursts import TIME_BINS, _bin_width, all_start_bins
from halo_mcp.triage.outliers import _PLAN, outlier_threshold

GROUP = aggregates.GROUP_COLUMN
METRIC = aggregates.METRIC_COLUMN


@pytest.fixture(scope="module", params=["serial", "sharded"])
def store(request, tmp_path_factory):
    """A planted tiny-profile set, indexed serially or by two shard workers."""
    root = tmp_path_factory.mktemp(f"triage_aggregates_{request.param}")
    generate(root / "traces.jsonl", traces=300, seed=11, profile="tiny")
    with pytest.MonkeyPatch.context() as patch:
        if request.param == "sharded":
            patch.setattr(index_module, "PARALLEL_MIN_BYTES", 0)
            patch.setattr(index_module, "WORKERS", 2)
        opened = open_store([root / "traces.jsonl"], cache_dir=root / "cache")
    if request.param == "sharded":
        assert list((root / "cache" / "indexes").glob("*.s2")), "expected a sharded index"
    yield opened
    opened.close()


def test_tallies_match_counting_every_span(store):
    with aggregates.reader(store) as conn:
        spans, errors = conn.execute("SELECT COUNT(*), SUM(status = 'error') FROM spans").fetchone()
        assert aggregates.span_totals(conn) == (spans, errors)
        models = conn.execute("SELECT DISTINCT model FROM spans WHERE model IS NOT NULL")
        assert aggregates.model_names(conn) == sorted(r[0] for r in models)
        tools = conn.execute(
            "SELECT tool_name, COUNT(*), SUM(status = 'error') FROM spans "
            "WHERE tool_name IS NOT NULL GROUP BY tool_name"
        ).fetchall()
        assert sorted(aggregates.tool_calls(conn)) == sorted(tools)
        low, high = conn.execute("SELECT MIN(start_ns), MAX(start_ns) FROM spans").fetchone()
        assert aggregates.time_range(conn) == (low, high)


def test_time_windows_count_each_span_once(store):
    with aggregates.reader(store) as conn:
        t0, t1 = aggregates.time_range(conn)
        width = _bin_width(t0, t1)
        expected = [0] * TIME_BINS
        for (start,) in conn.execute("SELECT start_ns FROM spans WHERE start_ns IS NOT NULL"):
            expected[(start - t0) // width] += 1
        assert all_start_bins(conn, t0, t1) == expected
        assert sum(expected) > 0


def test_one_outlier_scan_finds_what_one_query_per_group_finds(store):
    with aggregates.reader(store) as conn:
        kinds = [kind for kind, _ in _PLAN]
        samples = aggregates.metric_samples_many(conn, kinds, 1_000_000)
        plan = {}
        for kind, metrics in _PLAN:
            sample, step = samples[kind]
            assert step == 1
            for metric in metrics:
                rows = conn.execute(
                    f"SELECT {GROUP[kind]}, {METRIC[metric]} FROM spans "
                    f"WHERE kind = ? AND {GROUP[kind]} IS NOT NULL",
                    (kind,),
                ).fetchall()
                expected: dict[str, list[int]] = {}
                for name, value in rows:
                    if metric == "duration" or value:
                        expected.setdefault(name, []).append(int(value or 0))
                assert {g: sorted(v) for g, v in sample[metric].items()} == {
                    g: sorted(v) for g, v in expected.items()
                }
                thresholds = {g: t for g, v in expected.items() if (t := outlier_threshold(v))}
                # Low thresholds too, so the test sees many hits and not only outliers.
                thresholds |= {g: max(1, sorted(v)[len(v) // 2]) for g, v in expected.items()}
                plan[(kind, metric)] = thresholds
        found = aggregates.over_thresholds_many(conn, plan)
        hits = 0
        for (kind, metric), thresholds in plan.items():
            for group, threshold in thresholds.items():
                rows = conn.execute(
                    f"SELECT trace_id, span_id, {METRIC[metric]} FROM spans "
                    f"WHERE kind = ? AND {GROUP[kind]} = ? AND {METRIC[metric]} >= ?",
                    (kind, group, threshold),
                ).fetchall()
                assert sorted(found[(kind, metric)].get(group, [])) == sorted(rows)
                hits += len(rows)
        assert hits > 0


def test_step_limit_histograms_match_the_per_trace_llm_calls(store):
    with aggregates.reader(store) as conn:
        rows = list(aggregates.llm_calls_per_agent(conn))
        histograms, top = aggregates.llm_call_histograms(conn)
    expected: dict[str, Counter[int]] = {}
    for _, agent, calls in rows:
        expected.setdefault(agent, Counter())[calls] += 1
    assert histograms == {agent: dict(hist) for agent, hist in expected.items()}
    most = {agent: max(hist) for agent, hist in expected.items()}
    assert top == [r for r in rows if r[2] == most[r[1]]]
    assert top


def test_roots_read_in_the_sample_are_not_read_again(store, monkeypatch):
    monkeypatch.setattr(answers_module, "ROOT_SAMPLE", 40)
    reads = Counter()
    original = aggregates._read_line

    def counting(conn, files, handles, file_id, offset, length):
        reads[(file_id, offset)] += 1
        return original(conn, files, handles, file_id, offset, length)

    monkeypatch.setattr(aggregates, "_read_line", counting)
    report = run_triage(store)
    assert any("without a final answer" in i.description for i in report.items)
    assert reads and max(reads.values()) == 1
    with aggregates.reader(store) as conn:
        roots = conn.execute("SELECT COUNT(*) FROM spans WHERE parent_span_id IS NULL").fetchone()
    assert sum(reads.values()) == roots[0]
