"""The outcome of a finished run: what it produced, and a warning when that should not be
taken at face value (a model that refused every turn, no structured finding, only
unverified ones, or a run ended by its token budget)."""

from __future__ import annotations

from collections.abc import Sequence

from halo_mcp.engine.models import RunOutcome
from halo_mcp.engine.state import RunState
from halo_mcp.findings.models import Finding, FindingStatus


def judge_outcome(state: RunState, findings: Sequence[Finding]) -> tuple[RunOutcome, str | None]:
    """(outcome, warning) of a run that ended normally."""
    if state.replies and state.refusals == state.replies:
        return RunOutcome.refused, (
            f"The model refused every one of its {state.replies} replies: this run found "
            "nothing, which says nothing about the traces. Try another model or prompt."
        )
    budget = state.settings.max_run_tokens
    if state.budget_reached:
        kept = f"{len(findings)} finding(s) kept" if findings else "no finding recorded"
        return RunOutcome.budget_reached, (
            f"The run's token budget ({budget:,} tokens) was reached and the run was ended "
            f"early ({kept}): the analysis may be incomplete. Raise --max-run-tokens "
            "(MCP: max_run_tokens) to go further."
        )
    if not findings:
        rejected = (
            f" ({state.rejected_drafts} submitted finding(s) could not be read)"
            if state.rejected_drafts
            else ""
        )
        return RunOutcome.no_findings, (
            f"The model produced no structured finding{rejected}; only its prose answer "
            "(if any) is in the report. Do not read this as 'no failure modes'."
        )
    if all(f.status == FindingStatus.unverified for f in findings):
        return RunOutcome.only_unverified, (
            f"All {len(findings)} finding(s) are unverified: none has a cited id, excerpt "
            "and matcher that held against the traces. Check each before acting on it."
        )
    return RunOutcome.findings, None
