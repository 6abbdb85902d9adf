"""Triage's fast aggregates (one scan for many groups, tallies instead of scans, counts
from indexes) give exactly what a plain per-group query over every span gives, on a
serial index and on a sharded one (spans spread over several files)."""

from __future__ import annotations

import contextlib
import sqlite3
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from halo_mcp.store import TraceStore, open_store
from halo_mcp.store import index as index_module
from halo_mcp.store.aggregates import GROUPED_KINDS, METRICS
from halo_mcp.store.shards import attach_shards
from halo_mcp.synth import generate
from halo_mcp.triage import AggregateContext, outlier_threshold, run_triage
from halo_mcp.triage import answers as answers_module
from halo_mcp.triage.answers import final_answer_items, missing_answers
from halo_mcp.triage.bursts import TIME_BINS, all_start_bins, bin_width

#: The plain SQL oracle's names for each grouped kind's group and each metric.
GROUP = {"tool": "tool_name", "llm": "model", "agent": "agent"}
METRIC = {"duration": "duration_ns", "tokens": "tokens"}


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


@contextlib.contextmanager
def plain(store: TraceStore) -> Iterator[sqlite3.Connection]:
    """The test's oracle: plain SQL over every span (shards attached as one `spans`)."""
    path = Path(store.report.index_path)
    conn = sqlite3.connect(path.absolute().as_uri() + "?mode=ro", uri=True)
    try:
        attach_shards(conn, path)
        yield conn
    finally:
        conn.close()


def test_tallies_match_counting_every_span(store):
    with plain(store) as conn, store.aggregates() as reader:
        spans, errors = conn.execute("SELECT COUNT(*), SUM(status = 'error') FROM spans").fetchone()
        assert reader.span_totals() == (spans, errors)
        assert reader.trace_total() == 300
        models = conn.execute("SELECT DISTINCT model FROM spans WHERE model IS NOT NULL")
        assert reader.model_names() == sorted(r[0] for r in models)
        tools = conn.execute(
            "SELECT tool_name, COUNT(*), SUM(status = 'error') FROM spans "
            "WHERE tool_name IS NOT NULL GROUP BY tool_name"
        ).fetchall()
        assert sorted(reader.tool_calls()) == sorted(tools)
        low, high = conn.execute("SELECT MIN(start_ns), MAX(start_ns) FROM spans").fetchone()
        assert reader.time_range() == (low, high)


def test_time_windows_count_each_span_once(store):
    with plain(store) as conn, store.aggregates() as reader:
        t0, t1 = reader.time_range()
        width = bin_width(t0, t1)
        expected = [0] * TIME_BINS
        starts = [s for (s,) in conn.execute("SELECT start_ns FROM spans WHERE start_ns >= 0")]
        for start in starts:
            expected[(start - t0) // width] += 1
        assert all_start_bins(reader, t0, t1) == expected
        assert sum(expected) == len(starts) > 0
        # Any windows: the ones that start later leave the earlier spans out.
        late = reader.starts_per_window(t0 + width, width, 3)
        assert late == [sum(t0 + k * width <= s < t0 + (k + 1) * width for s in starts)
                        for k in (1, 2, 3)]  # fmt: skip


def test_one_outlier_scan_finds_what_one_query_per_group_finds(store):
    with plain(store) as conn, store.aggregates() as reader:
        samples = reader.metric_samples(GROUPED_KINDS, 1_000_000)
        plan = {}
        for kind in GROUPED_KINDS:
            sample, step = samples[kind].values, samples[kind].step
            assert step == 1
            for metric in METRICS:
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
        found = reader.over_thresholds(plan)
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
    with store.aggregates() as reader:
        rows = list(reader.llm_calls_per_agent())
        found = reader.llm_call_histograms()
    histograms, top = found.per_agent, found.at_top
    expected: dict[str, Counter[int]] = {}
    for _, agent, calls in rows:
        expected.setdefault(agent, Counter())[calls] += 1
    assert histograms == {agent: dict(hist) for agent, hist in expected.items()}
    most = {agent: max(hist) for agent, hist in expected.items()}
    assert top == [r for r in rows if r[2] == most[r[1]]]
    assert top


def test_roots_already_known_are_not_read_again(store):
    """A root in `known` comes back with the known answer, whatever its line says; every
    other root is read."""
    with plain(store) as conn, store.aggregates() as reader:
        roots = conn.execute("SELECT COUNT(*) FROM spans WHERE parent_span_id IS NULL")
        read = list(reader.root_answered())
        assert len(read) == roots.fetchone()[0]
        unanswered = [r for r in read if not r.answered]
        assert unanswered, "the planted set holds runs without a final answer"
        # Say the reader already knows they answered: it must believe it, not re-read them.
        known = {(r.trace_id, r.span_id): True for r in unanswered}
        again = list(reader.root_answered(known=known))
        assert len(again) == len(read) and all(r.answered for r in again)
        sampled = list(reader.root_answered(every=7))
        assert 0 < len(sampled) < len(read)
        assert set(sampled) <= set(read)


def test_a_sampled_first_pass_counts_every_missing_answer(store, monkeypatch):
    """With a small root sample, triage still counts every run without an answer: the roots
    read in the sample are reused, the others read once."""
    with store.aggregates() as reader:
        missing, roots = missing_answers(reader)
    monkeypatch.setattr(answers_module, "ROOT_SAMPLE", 40)
    with store.aggregates() as reader:
        notes: list[str] = []
        [item] = final_answer_items(AggregateContext(reader), notes)
    assert item.measure.traces == set(missing) and len(missing) > 0
    assert roots == 300 and not notes
    report = run_triage(store)
    assert any("without a final answer" in i.description for i in report.items)
