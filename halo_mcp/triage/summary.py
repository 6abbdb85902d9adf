"""The triage as a compact text, for an agent's first prompt (bounded, ~SUMMARY_CHARS)."""

from __future__ import annotations

from halo_mcp.text import clip
from halo_mcp.triage.models import TriageReport

SUMMARY_CHARS = 4000


def triage_summary(report: TriageReport, max_chars: int = SUMMARY_CHARS) -> str:
    """A compact text of the triage for an agent's first prompt (at most ~max_chars)."""
    lines = [
        f"Triage of {report.traces} traces ({report.spans} spans, {report.error_spans} error "
        "spans): deterministic counts from the trace index, no LLM. Rates are exact; causes "
        "are NOT analysed. Items are ranked by trace rate x severity; several items can "
        "describe the same traces.",
    ]
    if not report.items:
        lines.append("No symptom found (no errors, loops, outliers or runs without answer).")
    for n, item in enumerate(report.items, 1):
        prev = item.prevalence
        rate = (
            f"{prev.traces_matched}/{prev.traces_in_scope} traces ({prev.rate:.1%})"
            if prev
            else "?"
        )
        ev = item.evidence[0] if item.evidence else None
        example = (
            f"; e.g. trace {ev.trace_id}" + (f" span {ev.span_id}" if ev and ev.span_id else "")
            if ev
            else ""
        )
        lines.append(
            f"{n}. [{item.severity.value}] {item.category}: {item.title}: {rate}{example} "
            f"(id {item.id})"
        )
    failing = [t for t in report.tools if t.errors]
    if failing:
        lines.append(
            "Tools by failure rate: "
            + "; ".join(
                f"{t.name} {t.failure_rate:.1%} ({t.errors}/{t.calls} calls, "
                f"{t.traces_with_errors} traces)"
                for t in failing[:8]
            )
        )
    lines += [f"Note: {n}" for n in report.notes]
    if report.truncated:
        lines.append("More items exist than shown (max_items reached).")
    text, _ = clip("\n".join(lines), max_chars)
    return text
