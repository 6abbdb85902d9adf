"""get_finding and the findings resource: one failure mode, whole, with its evidence.

The tool result is bounded (long texts clipped, evidence capped) and says what it left out;
the resource `halo://findings/{id}` holds the finding unabridged.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

import anyio
import orjson
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult

from halo_mcp.engine.errors import UnknownFindingError, UnknownRunError
from halo_mcp.engine.report import prevalence_text
from halo_mcp.findings.models import Finding
from halo_mcp.text import clip
from halo_mcp.tools.models import (
    EvidenceOut,
    FindingId,
    FindingOut,
    FindingSummary,
    PrevalenceOut,
    tool_annotations,
)
from halo_mcp.tools.results import (
    RESULT_BUDGET_CHARS,
    dump,
    finding_uri,
    link,
    report_uri,
    tool_result,
)
from halo_mcp.tools.state import ServerState, caller_owner, for_resource, server_state, visible

TEXT_CHARS = 4000
EXCERPT_CHARS = 400
MAX_EVIDENCE = 25
MAX_CODE_REFS = 10
MAX_NOTES = 10
NOTE_CHARS = 300

_SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3}


def summarize(finding: Finding) -> FindingSummary:
    return FindingSummary(
        id=finding.id,
        title=clip(finding.title, 200)[0],
        severity=finding.severity.value,
        category=clip(finding.category, 100)[0],
        prevalence=prevalence_text(finding) if finding.prevalence else None,
        verified=finding.verified,
        status=finding.status.value,
        uri=finding_uri(finding.id),
    )


def by_severity(findings: Iterable[Finding]) -> list[Finding]:
    """Most severe first, then most prevalent (stable for equal keys)."""

    def key(f: Finding) -> tuple[int, int]:
        matched = f.prevalence.traces_matched if f.prevalence else 0
        return _SEVERITY_ORDER.get(f.severity.value, 9), -matched

    return sorted(findings, key=key)


def full_finding(finding: Finding) -> FindingOut:
    """The finding as a bounded tool result."""
    text = {
        name: clip(getattr(finding, name) or "", TEXT_CHARS)[0]
        for name in ("description", "root_cause", "suggested_change", "validation")
    }
    evidence = [
        EvidenceOut(
            trace_id=e.trace_id,
            span_id=e.span_id,
            excerpt=clip(e.excerpt, EXCERPT_CHARS)[0] if e.excerpt else None,
            verified=e.verified,
        )
        for e in finding.evidence[:MAX_EVIDENCE]
    ]
    p = finding.prevalence
    prevalence = None
    if p is not None:
        rate = p.traces_matched / p.traces_in_scope if p.traces_in_scope else 0.0
        prevalence = PrevalenceOut(
            traces_matched=p.traces_matched,
            traces_in_scope=p.traces_in_scope,
            spans_matched=p.spans_matched,
            rate=round(rate, 4),
        )
    out = FindingOut(
        id=finding.id,
        run_id=finding.run_id,
        source=finding.source,
        title=clip(finding.title, 300)[0],
        category=clip(finding.category, 100)[0],
        severity=finding.severity.value,
        evidence=evidence,
        evidence_omitted=max(0, len(finding.evidence) - MAX_EVIDENCE),
        matcher=finding.matcher,
        prevalence=prevalence,
        verified=finding.verified,
        status=finding.status.value,
        status_reasons=[
            r.model_copy(update={"detail": clip(r.detail, NOTE_CHARS)[0], "ids": r.ids[:20]})
            for r in finding.status_reasons[:MAX_NOTES]
        ],
        verification_notes=[clip(n, NOTE_CHARS)[0] for n in finding.verification_notes][:MAX_NOTES],
        code_refs=list(getattr(finding, "code_refs", []))[:MAX_CODE_REFS],
        suspect_commits=list(getattr(finding, "suspect_commits", []))[:MAX_CODE_REFS],
        first_seen=getattr(finding, "first_seen", None),
        last_seen=getattr(finding, "last_seen", None),
        uri=finding_uri(finding.id),
        report_uri=report_uri(finding.run_id),
        **text,
    )
    return _within_budget(out)


def _within_budget(out: FindingOut) -> FindingOut:
    """Last guard (huge ids or matcher lists): drop evidence, then the matcher, and say so."""
    while len(dump(out)) > RESULT_BUDGET_CHARS and out.evidence:
        out.evidence.pop()
        out.evidence_omitted += 1
    if len(dump(out)) > RESULT_BUDGET_CHARS and out.matcher is not None:
        out.matcher = None
        out.verification_notes.append(f"Matcher too large to show here; read {out.uri}.")
    return out


async def load_finding(state: ServerState, finding_id: str, caller: str | None) -> Finding:
    """The engine Finding, from a live run or the run store; ToolError when not visible."""
    for run in state.manager.runs():  # findings of runs still going
        for finding in run.findings:
            if finding.id == finding_id and visible(run.owner, caller):
                return finding
    store = await state.manager.open_store()

    def lookup() -> Finding:
        finding = store.get_finding(finding_id)
        if caller is not None and store.get(finding.run_id).owner != caller:
            raise UnknownFindingError(finding_id)
        return finding

    try:
        return await anyio.to_thread.run_sync(lookup)
    except (UnknownFindingError, UnknownRunError):
        raise ToolError(
            f"No finding with id {finding_id!r}. Finding ids ('f_...') are listed in a finished "
            "run's findings: call list_runs, then get_run(run_id) to see them."
        ) from None


def register(server: MCPServer) -> None:
    @server.tool(
        title="Get one finding",
        annotations=tool_annotations("Get one finding"),
    )
    async def get_finding(
        finding_id: FindingId, ctx: Context
    ) -> Annotated[CallToolResult, FindingOut]:
        """The whole finding: what fails, the root cause, the suggested harness change, how to
        validate the fix, evidence (trace and span ids with excerpts), its matcher and its
        prevalence. Next: pass `matcher` as query_spans' `filter` to see concrete cases, then
        edit the harness. Long texts are clipped; the resource at `uri` is unabridged."""
        state = server_state(ctx)
        finding = await load_finding(state, finding_id, caller_owner(ctx))
        out = full_finding(finding)
        return tool_result(
            out,
            [
                link(out.uri, f"finding {finding.id}", "This finding as JSON", "application/json"),
                link(
                    out.report_uri, f"report {finding.run_id}", "The run's report", "text/markdown"
                ),
            ],
        )

    @server.resource(
        "halo://findings/{finding_id}",
        name="finding",
        title="A finding (JSON)",
        description="One finding from an analysis run, unabridged, as JSON.",
        mime_type="application/json",
    )
    async def finding_resource(finding_id: str, ctx: Context) -> str:
        finding = await for_resource(load_finding(server_state(ctx), finding_id, caller_owner(ctx)))
        data = finding.model_dump(mode="json")
        return orjson.dumps(data, option=orjson.OPT_INDENT_2).decode()
