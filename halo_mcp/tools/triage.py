"""triage_traces and check_findings: the deterministic half of the loop (no LLM, no key).

triage_traces counts a trace set's failure symptoms in seconds; check_findings recounts a
finished run's findings (or triage items) on new traces and gives a verdict per finding.
Both results stay under RESULT_BUDGET_CHARS: items and evidence are trimmed, and the
result says so.

Register with the server: `from halo_mcp.tools import triage` and add `triage` to the
modules whose `register(server)` the server calls.
"""

from __future__ import annotations

import functools
from typing import Annotated

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult
from pydantic import Field

from halo_mcp.check.recount import CheckReport
from halo_mcp.check.workflow import (
    CheckError,
    CheckSource,
    FromBaselineTriage,
    FromRun,
    NothingToCheck,
    RunFindings,
    run_check,
)
from halo_mcp.tools.models import READ_ONLY, RunId, TracePaths
from halo_mcp.tools.paths import resolve_paths
from halo_mcp.tools.results import RESULT_BUDGET_CHARS, dump, tool_result
from halo_mcp.tools.runs import load_record
from halo_mcp.tools.state import caller_owner, server_state
from halo_mcp.tools.window import Since, Until, window_arg
from halo_mcp.triage import TriageReport, run_triage, triage_summary

MAX_FINDINGS = 100


class TriageResult(TriageReport):
    summary: str = Field(description="The same triage as short text, ranked.")
    items_trimmed: bool = Field(
        False, description="True when items or evidence were cut to keep the result small."
    )


class CheckResult(CheckReport):
    results_trimmed: bool = Field(
        False, description="True when examples were cut to keep the result small."
    )
    findings_omitted: int = Field(
        0, description=f"Findings not checked: at most {MAX_FINDINGS} are checked per call."
    )


MaxItems = Annotated[
    int, Field(ge=1, le=50, description="Most triage items to return, best ranked first.")
]
BaselinePaths = Annotated[
    list[str] | None,
    Field(
        description=(
            "Optional: the OLD traces. 'Before' is then recounted on them (same counting "
            "as 'after'); without it the prevalence recorded with each finding is used. "
            "Required when run_id is omitted: the baseline is then triaged first."
        ),
        max_length=64,
    ),
]
FindingIds = Annotated[
    list[str] | None,
    Field(description="Optional: check only these finding ids of the run.", max_length=100),
]


def fit_triage(
    report: TriageReport, summary: str, budget: int = RESULT_BUDGET_CHARS
) -> TriageResult:
    """The report as a tool result under `budget`: fewer evidence, then fewer items."""
    result = TriageResult(**report.model_dump(), summary=summary)
    evidence = 5
    while len(dump(result)) > budget and (evidence > 1 or len(result.items) > 1):
        result.items_trimmed = True
        if evidence > 1:
            evidence -= 2
            for item in result.items:
                item.evidence = item.evidence[: max(1, evidence)]
        else:
            result.items = result.items[: max(1, len(result.items) * 2 // 3)]
            result.truncated = True
    return result


def fit_check(
    report: CheckReport, findings_omitted: int = 0, budget: int = RESULT_BUDGET_CHARS
) -> CheckResult:
    result = CheckResult(**report.model_dump(), findings_omitted=findings_omitted)
    while len(dump(result)) > budget and any(r.still_matching for r in result.results):
        result.results_trimmed = True
        for r in result.results:
            r.still_matching = r.still_matching[: max(0, len(r.still_matching) - 1)]
    return result


def _nothing_to_check(run_id: str | None) -> str:
    if run_id is not None:
        return (
            f"Nothing to check: run {run_id} has no findings (its analysis reported no failure "
            "mode). Pick a run with findings (list_runs, then get_run), or omit run_id and pass "
            "baseline_paths (the old traces) to compare their triage with trace_paths."
        )
    return (
        "Nothing to check: triage found no failure symptom in baseline_paths. Check that they "
        "are the traces from before the fix (trace_overview shows what they hold), or run "
        "analyze_traces on them to get findings, then check_findings with its run_id."
    )


def register(server: MCPServer) -> None:
    @server.tool(title="Triage traces (no LLM)", annotations=READ_ONLY)
    async def triage_traces(
        trace_paths: TracePaths,
        ctx: Context,
        max_items: MaxItems = 15,
        since: Since = None,
        until: Until = None,
    ) -> Annotated[CallToolResult, TriageResult]:
        """Count the failure symptoms of a trace set in seconds, with no LLM and no API key:
        error clusters, loops (identical tool calls repeated in a trace), retry storms, runs
        stopped at a turn limit, runs without a final answer, latency and token outliers, and
        tools by failure rate. Each item has the shape of a finding (source 'triage'):
        matcher (pass it to query_spans as `filter`), prevalence (traces affected / traces),
        evidence ids. It counts symptoms, not causes: use analyze_traces for why. Save item
        ids to recheck them later with check_findings. since/until triage only the traces
        that started in that window (e.g. since "24h" on a growing collection)."""
        state = server_state(ctx)
        paths = await resolve_paths(trace_paths, state.roots)
        window = window_arg(since, until)
        await ctx.report_progress(0, 1, "triaging (indexing first if the files are new)")
        report = await state.stores.call(
            paths, lambda s: run_triage(s, max_items=max_items), window
        )
        await ctx.report_progress(1, 1, "triage done")
        return tool_result(fit_triage(report, triage_summary(report)))

    @server.tool(title="Check findings against new traces", annotations=READ_ONLY)
    async def check_findings(
        trace_paths: TracePaths,
        ctx: Context,
        run_id: Annotated[
            RunId | None,
            Field(description="The run whose findings to check; omit to triage baseline_paths."),
        ] = None,
        baseline_paths: BaselinePaths = None,
        finding_ids: FindingIds = None,
        since: Since = None,
        until: Until = None,
        baseline_since: Since = None,
        baseline_until: Until = None,
    ) -> Annotated[CallToolResult, CheckResult]:
        """After a fix: recount each finding of a finished run on NEW traces (trace_paths)
        with its matcher and report before vs after (traces affected / in scope) and a
        verdict: resolved, improved, unchanged, worse, inconclusive (too few cases to tell),
        unknown (no matcher or no baseline). Verdicts use a two-proportion test (alpha 0.05)
        and a change of at least 25%. Without run_id, the baseline_paths are triaged first
        and the triage items are checked. Each result lists spans that still match.
        since/until window the new traces, baseline_since/baseline_until the baseline (one
        growing collection: baseline_until = the deploy time, since = the deploy time)."""
        state = server_state(ctx)
        window = window_arg(since, until)
        baseline_window = window_arg(baseline_since, baseline_until)
        new_paths = await resolve_paths(trace_paths, state.roots)
        old_paths = await resolve_paths(baseline_paths, state.roots) if baseline_paths else None
        if run_id is None and old_paths is None:
            raise ToolError(
                "Pass run_id (a finished run whose findings to check; see list_runs) or "
                "baseline_paths (old traces to triage and compare with trace_paths)."
            )
        source: CheckSource = FromRun(run_id) if run_id is not None else FromBaselineTriage()
        caller = caller_owner(ctx)

        def run_findings(wanted: str) -> RunFindings:
            # In the worker thread: the run store lookup (with who may see it) is async.
            record = anyio.from_thread.run(load_record, state, wanted, caller)
            return RunFindings(
                run_id=record.id,
                status=record.status.value,
                ended=record.status.done,
                findings=record.findings,
            )

        steps = 0

        def on_step(message: str) -> None:
            nonlocal steps  # progress must rise with each notification
            steps += 1
            anyio.from_thread.run(ctx.report_progress, steps - 1, None, message)

        check = functools.partial(
            run_check,
            source,
            new_paths,
            with_store=functools.partial(state.stores.use, window=window),
            with_baseline_store=functools.partial(state.stores.use, window=baseline_window),
            run_findings=run_findings,
            baseline_paths=old_paths,
            finding_ids=finding_ids,
            max_findings=MAX_FINDINGS,
            on_step=on_step,
        )
        try:
            outcome = await anyio.to_thread.run_sync(check)
        except NothingToCheck as exc:
            raise ToolError(_nothing_to_check(exc.run_id)) from None
        except CheckError as exc:
            raise ToolError(str(exc)) from None
        await ctx.report_progress(steps, steps, "check done")
        return tool_result(fit_check(outcome.report, outcome.findings_omitted))


__all__ = ["CheckResult", "TriageResult", "fit_check", "fit_triage", "register"]
