"""Runs that end without a final answer: the root span carries no output.

Root spans are read from the trace files, so a large set is sampled first (about
ROOT_SAMPLE roots) and read in full only when some run does end without an answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from halo_mcp.findings.models import Severity
from halo_mcp.store.api import AggregateReader
from halo_mcp.store.models import SpanFilter, TraceRule
from halo_mcp.triage.models import EXAMPLES, Candidate, Measurement, TriageRule, evidence

if TYPE_CHECKING:
    from halo_mcp.triage.context import AggregateContext

#: Root spans read first to see whether any run ends without an answer; all are read only
#: when one of them does (so a clean large set costs a bounded number of reads).
ROOT_SAMPLE = 2000


def missing_answers(
    reader: AggregateReader,
    every: int = 1,
    known: Mapping[tuple[str, str], bool] | None = None,
    record: dict[tuple[str, str], bool] | None = None,
) -> tuple[dict[str, str], int]:
    """Traces whose root span has no output ({trace: root span}), and the roots read
    (about one in `every`). Roots in `known` ((trace, span) -> has an output) are not read
    again; `record` gets the roots read."""
    missing: dict[str, str] = {}
    roots = 0
    for trace_id, span_id, has_output in reader.root_answered(every, known):
        roots += 1
        if record is not None:
            record[(trace_id, span_id)] = has_output
        if not has_output:
            missing.setdefault(trace_id, span_id)
    return missing, roots


def missing_measure(missing: dict[str, str], total: int) -> Measurement:
    examples = [
        evidence(t, s, "root span ended with no output")
        for t, s in list(missing.items())[:EXAMPLES]
    ]
    return Measurement(set(missing), len(missing), examples, total)


def final_answer_items(ctx: AggregateContext, notes: list[str]) -> list[Candidate]:
    every = max(1, ctx.total // ROOT_SAMPLE)
    sampled: dict[tuple[str, str], bool] = {}
    missing, roots = missing_answers(ctx.reader, every, record=sampled if every > 1 else None)
    if every > 1 and missing and len(missing) <= roots / 2:
        missing, roots = missing_answers(ctx.reader, 1, known=sampled)  # some do: count all
    elif every > 1 and not missing and roots:
        notes.append(
            f"Runs without a final answer: none in a sample of {roots} root spans, so the "
            f"other {ctx.total - roots} were not read (rate under ~{3 / roots:.2%})."
        )
        return []
    if not roots:
        notes.append("No root spans: runs without a final answer were not looked for.")
        return []
    if len(missing) > roots / 2:
        notes.append(
            f"{len(missing)} of {roots} root spans carry no output: this harness does not "
            "record the final answer on the root span, so missing answers were not counted."
        )
        return []
    if not missing:
        return []
    return [
        Candidate(
            category="no-final-answer",
            severity=Severity.high,
            title="Runs that end without a final answer",
            description=(
                f"In {len(missing)} traces the root span ends with no output: the run stopped "
                "without answering the user."
            ),
            rule=TriageRule(kind="no_final_answer"),
            matcher=SpanFilter(trace_rule=TraceRule(kind="no_final_answer")),
            exact=False,
            measure=missing_measure(missing, ctx.total),
        )
    ]
