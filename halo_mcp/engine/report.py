"""The markdown report of a run: summary, a findings table, then each finding in full.

Bounded: long fields are clipped and the whole report is capped, with visible markers.
"""

from __future__ import annotations

from collections.abc import Sequence

from halo_mcp.check.verdicts import fmt_prevalence
from halo_mcp.engine.models import RunRecord
from halo_mcp.findings.models import Finding
from halo_mcp.harness.render import code_ref_bullets, commit_bullets, seen_line
from halo_mcp.text import clip

MAX_REPORT_CHARS = 200_000
FIELD_CHARS = 4_000
NOTES_CHARS = 20_000


def prevalence_text(finding: Finding, *, spans: bool = False, missing: str = "n/a") -> str:
    """e.g. '37/300 traces (12.3%)' (with ', 52 spans' when `spans`); `missing` when the
    finding has no prevalence (no usable matcher). The one rendering of a prevalence: the
    report, the CLI and the MCP tools show it the same way."""
    p = finding.prevalence
    if p is None:
        return missing
    text = fmt_prevalence(p)
    if spans:
        text += f", {p.spans_matched} span{'s' if p.spans_matched != 1 else ''}"
    return text


def render_report(
    run: RunRecord,
    *,
    summary: str = "",
    traces_in_scope: int | None = None,
    turns: int | None = None,
    notes: Sequence[tuple[str, str]] = (),
) -> str:
    """The report for `run` (findings already verified and sorted).

    `notes` are extra titled sections, e.g. sub-agent reports kept from a failed run or
    the root's unstructured final answer.
    """
    lines = [f"# HALO analysis — run {run.id}", ""]
    if run.warning:
        lines += [f"> **Warning ({_outcome(run)}):** {_field(run.warning, 1000)}", ""]
    lines += _summary_lines(run, traces_in_scope, turns)
    if summary:
        lines += ["", "## Summary", "", _field(summary)]
    lines += ["", "## Findings", ""]
    if run.findings:
        lines += [
            "| # | id | severity | title | prevalence | status |",
            "|---|----|----------|-------|------------|--------|",
        ]
        for i, f in enumerate(run.findings, 1):
            title = _cell(f.title)
            lines.append(
                f"| {i} | `{f.id}` | {f.severity.value} | {title} | {prevalence_text(f)} |"
                f" {f.status.value} |"
            )
        for i, f in enumerate(run.findings, 1):
            lines += ["", *_finding_lines(i, f)]
    else:
        lines.append("No findings were recorded.")
    for title, text in notes:
        lines += ["", f"## {title}", "", clip(text.strip(), NOTES_CHARS)[0]]
    lines += _usage_lines(run)
    text = "\n".join(lines) + "\n"
    return clip(text, MAX_REPORT_CHARS)[0]


def _summary_lines(run: RunRecord, traces: int | None, turns: int | None) -> list[str]:
    u = run.usage
    duration = (
        f"{(run.finished_at - run.started_at).total_seconds():.1f} s"
        if run.finished_at and run.started_at
        else "n/a"
    )
    lines = [
        f"- **Status:** {run.status.value}"
        + (f" (outcome: {_outcome(run)})" if run.outcome else ""),
        f"- **Prompt:** {_field(run.prompt, 1000)}",
        f"- **Traces:** {', '.join(run.trace_paths)}"
        + (f" ({traces} traces in scope)" if traces is not None else ""),
        f"- **Model:** {run.config.get('model', 'n/a')}",
    ]
    if turns is not None:
        lines.append(f"- **Root turns:** {turns} of {run.config.get('max_turns', '?')}")
    lines += [
        f"- **Tokens:** {u.input_tokens:,} in ({u.cached_input_tokens:,} cached), "
        f"{u.output_tokens:,} out ({u.reasoning_tokens:,} reasoning); "
        f"{u.calls} calls, {u.retries} retries",
        f"- **Duration:** {duration}",
    ]
    if run.error:
        lines.append(f"- **Error:** {_field(run.error, 2000)}")
    return lines


def _finding_lines(i: int, f: Finding) -> list[str]:
    lines = [
        f"### {i}. {_field(f.title, 300)}",
        "",
        f"- **id:** `{f.id}` · **severity:** {f.severity.value} · **category:** "
        f"{_field(f.category, 80)} · **prevalence:** {prevalence_text(f, spans=True)} · "
        f"**status:** {f.status.value}",
        "",
        f"**What happens.** {_field(f.description)}",
        "",
        f"**Root cause.** {_field(f.root_cause)}",
        "",
        f"**Suggested change.** {_field(f.suggested_change)}",
        "",
        f"**How to validate.** {_field(f.validation)}",
    ]
    if f.matcher is not None:
        matcher = f.matcher.model_dump_json(exclude_defaults=True)
        lines += ["", f"**Matcher:** `{clip(matcher, 1000)[0]}`"]
    if f.evidence:
        lines += ["", "**Evidence:**"]
        for e in f.evidence[:20]:
            where = f"trace `{e.trace_id}`" + (f", span `{e.span_id}`" if e.span_id else "")
            quote = f" — “{_field(e.excerpt, 300)}”" if e.excerpt else ""
            lines.append(f"- {where}{quote}")
    if seen := seen_line(f):
        lines += ["", f"**Seen:** {seen}"]
    if f.code_refs:
        lines += ["", "**Code:**", *code_ref_bullets(f)]
    if f.suspect_commits:
        lines += ["", "**Suspect commits:**", *commit_bullets(f)]
    if f.status_reasons:
        lines += ["", f"**Why {f.status.value}:**"]
        lines += [f"- `{r.code}`: {_field(r.detail, 500)}" for r in f.status_reasons[:20]]
    reasons = {r.detail for r in f.status_reasons}
    other = [n for n in f.verification_notes if n not in reasons]
    if other:
        lines += ["", "**Verification notes:**"]
        lines += [f"- {_field(n, 500)}" for n in other[:20]]
    return lines


def _outcome(run: RunRecord) -> str:
    return str(getattr(run.outcome, "value", run.outcome))


def _usage_lines(run: RunRecord) -> list[str]:
    """Tokens per agent (root, root.1, ...), when the run recorded them."""
    if not run.usage_by_agent:
        return []
    lines = [
        "",
        "## Usage per agent",
        "",
        "| agent | calls | input tokens | cached | output tokens |",
        "|-------|-------|--------------|--------|---------------|",
    ]
    for agent, u in sorted(run.usage_by_agent.items())[:50]:
        lines.append(
            f"| {_cell(agent)} | {u.calls} | {u.input_tokens:,} | {u.cached_input_tokens:,} |"
            f" {u.output_tokens:,} |"
        )
    if len(run.usage_by_agent) > 50:
        lines.append(f"| … {len(run.usage_by_agent) - 50} more agents | | | | |")
    return lines


def _field(text: str | None, limit: int = FIELD_CHARS) -> str:
    return clip((text or "").strip(), limit)[0]


def _cell(text: str) -> str:
    return _field(text, 120).replace("|", "\\|").replace("\n", " ")
