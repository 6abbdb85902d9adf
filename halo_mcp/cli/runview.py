"""Runs and findings as text for a terminal: the report, one finding, the list of runs.

The engine writes the report itself (`RunRecord.report_markdown`); the fallback here
covers runs that ended before it did (failed, cancelled, interrupted) so their findings
are still readable.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

from halo_mcp.cli.output import table
from halo_mcp.cli.progress import format_elapsed, format_tokens
from halo_mcp.engine.models import RunRecord
from halo_mcp.engine.report import prevalence_text
from halo_mcp.findings.models import Finding
from halo_mcp.harness.render import code_ref_bullets, commit_bullets, seen_line
from halo_mcp.text import clip
from halo_mcp.triage.describe import readable_validation

#: Longest excerpt shown per evidence item in `show FINDING_ID`.
EXCERPT_CHARS = 500


def elapsed(run: RunRecord) -> str:
    start = run.started_at or run.created_at
    end = run.finished_at or datetime.now(timezone.utc)
    return format_elapsed((end - start).total_seconds())


def render_report(run: RunRecord) -> str:
    """The run's markdown report; a plain list of its findings when it has none."""
    if run.report_markdown:
        return run.report_markdown.rstrip("\n") + "\n"
    lines = [
        f"# HALO analysis {run.id} ({run.status.value})",
        "",
        f"- Prompt: {run.prompt}",
        f"- Traces: {', '.join(run.trace_paths)}",
    ]
    if run.error:
        lines.append(f"- Error: {run.error}")
    if run.warning:
        lines.append(f"- Warning: {run.warning}")
    lines += ["", f"## Findings ({len(run.findings)})", ""]
    if not run.findings:
        lines.append("No findings were recorded.")
    for number, finding in enumerate(run.findings, start=1):
        lines += [
            f"### {number}. {finding.title}",
            "",
            f"- Id: `{finding.id}` (details: `halo-mcp show {finding.id}`)",
            f"- Severity: {finding.severity.value}; category: {finding.category}",
            f"- Prevalence: {prevalence_text(finding, spans=True, missing='not measured')}; "
            f"status: {finding.status.value}",
            f"- Root cause: {finding.root_cause}",
            f"- Suggested change: {finding.suggested_change}",
            "",
        ]
    return "\n".join(lines).rstrip("\n") + "\n"


def render_finding(finding: Finding) -> str:
    """One finding in full, as markdown: what `get_finding` returns, for a terminal."""
    lines = [
        f"# {finding.title}",
        "",
        f"- Id: `{finding.id}` (run `{finding.run_id}`, source: {finding.source})",
        f"- Severity: {finding.severity.value}; category: {finding.category}",
        f"- Prevalence: {prevalence_text(finding, spans=True, missing='not measured')}",
        f"- Status: {finding.status.value}",
        *[f"  - `{r.code}`: {r.detail}" for r in finding.status_reasons],
        "",
        "## Description",
        "",
        finding.description,
        "",
        "## Root cause",
        "",
        finding.root_cause,
        "",
        "## Suggested change",
        "",
        finding.suggested_change,
        "",
        "## How to validate",
        "",
        readable_validation(finding.validation),
    ]
    if finding.matcher is not None:
        matcher = finding.matcher.model_dump_json(exclude_none=True, exclude_defaults=True)
        lines += ["", "## Matcher (span filter)", "", f"`{matcher}`"]
    if finding.evidence:
        lines += ["", f"## Evidence ({len(finding.evidence)})", ""]
        for item in finding.evidence:
            where = f"trace `{item.trace_id}`"
            if item.span_id:
                where += f", span `{item.span_id}`"
            check = "verified" if item.verified else "not verified"
            lines.append(f"- {where} ({check})")
            if item.excerpt:
                excerpt, _ = clip(" ".join(item.excerpt.split()), EXCERPT_CHARS)
                lines.append(f"  > {excerpt}")
    if seen := seen_line(finding):
        lines += ["", "## Seen", "", seen[0].upper() + seen[1:]]
    if finding.code_refs:
        lines += ["", f"## Code ({len(finding.code_refs)})", "", *code_ref_bullets(finding)]
    if finding.suspect_commits:
        lines += ["", "## Suspect commits", "", *commit_bullets(finding)]
    reasons = {r.detail for r in finding.status_reasons}
    notes = [note for note in finding.verification_notes if note not in reasons]
    if notes:
        lines += ["", "## Verification notes", ""]
        lines += [f"- {note}" for note in notes]
    return "\n".join(lines).rstrip("\n") + "\n"


def runs_table(runs: Sequence[RunRecord]) -> str:
    """Recent runs, newest first, one line each."""
    rows = [
        (
            run.id,
            run.status.value,
            run.created_at.astimezone().strftime("%Y-%m-%d %H:%M"),
            elapsed(run),
            len(run.findings),
            format_tokens(run.usage.input_tokens + run.usage.output_tokens),
            run.prompt,
        )
        for run in runs
    ]
    headers = ("RUN", "STATUS", "CREATED", "TIME", "FINDINGS", "TOKENS", "PROMPT")
    return table(headers, rows, max_width=60)


def summary_line(run: RunRecord) -> str:
    """'run r_x finished in 1:23: 3 findings, 45.2k tokens'."""
    count = len(run.findings)
    tokens = format_tokens(run.usage.input_tokens + run.usage.output_tokens)
    return (
        f"run {run.id} {run.status.value} in {elapsed(run)}:"
        f" {count} finding{'s' if count != 1 else ''}, {tokens} tokens"
    )
