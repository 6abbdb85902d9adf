"""Re-checking findings on new traces: the verdict rule on its own, then the loop a user
runs after a fix (one failure mode removed from a regenerated set), for triage items and
for a run's findings read back from the run store."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import pytest

from halo_mcp.check.recount import check_findings, recount_prevalence
from halo_mcp.check.verdicts import decide, fisher_exact_p, two_proportion_p, z_test_p
from halo_mcp.engine.models import RunStatus
from halo_mcp.engine.runstore import RunStore
from halo_mcp.findings.models import Finding, Prevalence, Severity
from halo_mcp.store import open_store
from halo_mcp.synth import generate
from halo_mcp.triage import run_triage


def prev(matched: int, total: int) -> Prevalence:
    return Prevalence(traces_matched=matched, traces_in_scope=total, spans_matched=matched)


# -- the verdict rule -------------------------------------------------------------------


def test_a_failure_that_no_longer_matches_is_resolved():
    decision = decide(prev(30, 300), prev(0, 300))
    assert decision.verdict == "resolved" and decision.p_value < 0.001
    assert "30/300" in decision.reason


def test_zero_matches_after_too_few_before_is_inconclusive_not_resolved():
    decision = decide(prev(2, 300), prev(0, 300))
    assert decision.verdict == "inconclusive" and "too few" in decision.reason


def test_a_significant_large_drop_is_improved_and_a_rise_is_worse():
    assert decide(prev(60, 300), prev(20, 300)).verdict == "improved"
    assert decide(prev(20, 300), prev(60, 300)).verdict == "worse"
    assert decide(prev(0, 300), prev(30, 300)).verdict == "worse"


def test_noise_and_tiny_changes_on_huge_samples_are_unchanged():
    assert decide(prev(29, 300), prev(38, 300)).verdict == "unchanged"  # not significant
    tiny = decide(prev(100_000, 1_000_000), prev(95_000, 1_000_000))  # significant, only 5%
    assert tiny.p_value < 0.05 and tiny.verdict == "unchanged"


def test_a_matcher_that_matched_nothing_before_is_unknown_not_unchanged():
    decision = decide(prev(0, 260), prev(0, 50))
    assert decision.verdict == "unknown" and decision.p_value is None
    assert "matched nothing in the baseline (0/260 traces)" in decision.reason
    assert "nothing to compare" in decision.reason


def test_a_few_matches_appearing_from_nothing_are_inconclusive_many_are_worse():
    few = decide(prev(0, 300), prev(1, 300))
    assert few.verdict == "inconclusive" and "matched nothing in the baseline" in few.reason
    assert decide(prev(0, 300), prev(30, 300)).verdict == "worse"


def test_no_baseline_or_no_new_traces_is_unknown():
    assert decide(None, prev(3, 100)).verdict == "unknown"
    assert decide(prev(3, 100), prev(0, 0)).verdict == "unknown"


def test_fisher_matches_the_textbook_value_and_z_takes_over_for_large_counts():
    # The tea-tasting table [[3, 1], [1, 3]]: two-sided p = 34/70.
    assert math.isclose(fisher_exact_p(3, 4, 1, 4), 34 / 70, rel_tol=1e-9)
    assert fisher_exact_p(0, 10, 0, 10) == 1.0
    assert math.isclose(
        two_proportion_p(3000, 10_000, 2800, 10_000), z_test_p(3000, 10_000, 2800, 10_000)
    )


# -- the loop on generated data ---------------------------------------------------------


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    """The same seed twice: as shipped, and after a fix that removed the retry loop."""
    root = tmp_path_factory.mktemp("check_releases")
    old = generate(root / "old.jsonl", traces=400, seed=33, profile="tiny")
    new = generate(
        root / "new.jsonl", traces=400, seed=33, profile="tiny", failure_rates={"retry_loop": 0.0}
    )
    old_store = open_store([root / "old.jsonl"], cache_dir=root / "cache")
    new_store = open_store([root / "new.jsonl"], cache_dir=root / "cache")
    yield old, new, old_store, new_store, root
    old_store.close()
    new_store.close()


def test_the_removed_mode_is_resolved_and_every_other_item_unchanged(releases):
    old, new, old_store, new_store, _ = releases
    assert new.mode("retry_loop").planted_traces == 0
    loop_traces = set(old.mode("retry_loop").trace_ids)
    items = run_triage(old_store).items
    report = check_findings(items, new_store)
    assert report.traces_in_scope == 400 and len(report.results) == len(items)
    for item, result in zip(items, report.results, strict=True):
        from_loop = {e.trace_id for e in item.evidence} <= loop_traces
        if item.category == "loop":
            assert result.verdict == "resolved", result.reason
            assert result.after.traces_matched == 0 and result.still_matching == []
        elif from_loop:
            assert result.verdict in ("resolved", "inconclusive"), result.title
        else:
            assert result.verdict == "unchanged", (result.title, result.reason)
            assert result.still_matching, result.title
            if item.category in ("tool-error", "turn-limit", "rate-limit", "context-overflow"):
                # same per-trace draws, so the same traces fail
                assert result.after.traces_matched == result.before.traces_matched
    assert report.verdicts["resolved"] >= 1 and report.ms_per_finding > 0


def test_a_baseline_recount_gives_the_same_verdicts_as_recorded_figures(releases):
    _, _, old_store, new_store, _ = releases
    items = run_triage(old_store).items
    recorded = check_findings(items, new_store)
    recounted = check_findings(items, new_store, baseline_store=old_store)
    assert [r.verdict for r in recounted.results] == [r.verdict for r in recorded.results]
    assert [r.before for r in recounted.results] == [i.prevalence for i in items]
    assert "baseline traces" in recounted.baseline
    again = recount_prevalence(items, old_store)
    assert [f.prevalence for f in again] == [i.prevalence for i in items]


def _engine_finding(run_id: str, name: str, matcher: dict | None, prevalence: Prevalence):
    return Finding(
        id=f"f_{name}",
        run_id=run_id,
        title=name,
        category="tool-error",
        severity=Severity.high,
        description="d",
        root_cause="r",
        suggested_change="s",
        validation="count the matcher again",
        matcher=matcher,
        prevalence=prevalence,
    )


def test_findings_of_a_stored_run_are_checked_by_their_matchers(releases, tmp_path):
    old, _, old_store, new_store, _ = releases
    runs = RunStore(tmp_path / "data")
    run = runs.create("why do runs fail?", [str(p) for p in old_store.paths], {})
    loop, arg = old.mode("retry_loop"), old.mode("tool_arg_error")
    triage_item = next(i for i in run_triage(old_store).items if i.category == "turn-limit")
    run.findings = [
        _engine_finding(run.id, "loop", loop.matcher, prev(loop.planted_traces, 400)),
        _engine_finding(run.id, "bad-path", arg.matcher, prev(arg.planted_traces, 400)),
        _engine_finding(run.id, "no-matcher", None, prev(5, 400)),
        # unverified: its matcher selected nothing when the run verified it
        _engine_finding(run.id, "matches-nothing", {"tool_name": "no_such_tool"}, prev(0, 400)),
        triage_item.model_copy(update={"run_id": run.id}),  # a triage item saved as a Finding
    ]
    run.status, run.finished_at = RunStatus.finished, datetime.now(timezone.utc)
    runs.save(run)

    findings = RunStore(tmp_path / "data").get(run.id).findings
    report = check_findings(findings, new_store, run_id=run.id)
    verdicts = {r.finding_id: r for r in report.results}
    assert verdicts["f_loop"].verdict == "resolved" and verdicts["f_loop"].method == "matcher"
    assert verdicts["f_bad-path"].verdict == "unchanged"
    assert verdicts["f_bad-path"].still_matching[0].span_id
    assert verdicts["f_no-matcher"].verdict == "unknown"
    assert "no matcher" in verdicts["f_no-matcher"].reason
    nothing = verdicts["f_matches-nothing"]
    assert nothing.verdict == "unknown" and "matched nothing in the baseline" in nothing.reason
    turn = verdicts[triage_item.id]
    assert turn.method == "error_cluster" and turn.verdict == "unchanged"
    assert report.run_id == run.id


def test_a_lower_rate_is_improved_and_a_higher_one_worse(releases):
    _, _, old_store, _, root = releases
    items = [i for i in run_triage(old_store).items if i.category == "tool-error"]
    assert items
    verdicts = {}
    for name, rate in (("fewer", 0.03), ("more", 0.35)):
        path = root / f"{name}.jsonl"
        generate(path, traces=400, seed=33, profile="tiny", failure_rates={"tool_arg_error": rate})
        with open_store([path], cache_dir=root / "cache") as store:
            verdicts[name] = check_findings(items, store).results[0]
    assert verdicts["fewer"].verdict == "improved", verdicts["fewer"].reason
    assert verdicts["fewer"].relative_change < -0.25
    assert verdicts["more"].verdict == "worse", verdicts["more"].reason
