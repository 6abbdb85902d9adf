"""Merging, ranking and turning candidates into findings (source="triage").

Items that select the same traces (or, within a category, nearly contained traces) are
merged into the one whose category says most; the rest are ranked by trace rate x
severity. Each finding carries its rule after RULE_TAG in `validation`, so `check` can
recount it on new traces even when it was saved as a plain Finding.
"""

from __future__ import annotations

import hashlib

from halo_mcp.findings.models import Finding, FindingStatus, Severity
from halo_mcp.triage.describe import describe_rule, describe_scope
from halo_mcp.triage.models import EXAMPLES, RULE_TAG, TRIAGE_RUN_ID, Candidate, TriageRule

#: Items whose trace sets overlap this much (Jaccard) are merged.
MERGE_JACCARD = 0.9

_WEIGHT = {Severity.critical: 4, Severity.high: 3, Severity.medium: 2, Severity.low: 1}
#: When items merge, the one whose category comes first here is kept.
_CATEGORY_ORDER = (
    "turn-limit",
    "loop",
    "context-overflow",
    "rate-limit",
    "timeout",
    "tool-error",
    "llm-error",
    "agent-error",
    "error",
    "retries",
    "no-final-answer",
    "latency",
    "cost",
)

_SUGGESTIONS = {
    "turn-limit": "Find what keeps these runs going until the limit (a tool that never "
    "returns what the agent needs, a missing stop condition) and make the agent answer or "
    "stop earlier; raising the limit alone hides the problem.",
    "loop": "Stop the agent from repeating an identical call: return a clearer error or "
    "result for it, cap retries of the same input in the harness, or tell the model in the "
    "tool description what to do when the call fails.",
    "context-overflow": "Trim or summarize large tool results before they enter the "
    "context, and budget the history before each LLM call.",
    "rate-limit": "Smooth the request rate (client-side limiter, jittered backoff, fewer "
    "parallel calls) or raise the provider quota.",
    "timeout": "Find what makes these calls exceed their timeout (a slow provider or "
    "dependency, very large requests): retry them with backoff, or raise the timeout where "
    "the work is legitimately long.",
    "tool-error": "Read the failing calls' arguments: fix the tool, its input validation, or "
    "the tool description that leads the model to pass bad arguments.",
    "llm-error": "Classify these provider errors: retry the transient ones with backoff, "
    "fix the requests that are invalid.",
    "agent-error": "Open the failing agent spans and the spans just before them to see what "
    "ends these runs in error.",
    "error": "Open the evidence spans to see what fails and why.",
    "retries": "Back off between retries and stop after a few: repeated immediate retries "
    "of the same failure waste turns and money.",
    "no-final-answer": "Make sure every run ends with an answer (a final-answer step when "
    "the budget runs out, an answer on error) and look at why these runs stop early.",
    "latency": "Look at what makes these calls slow (timeouts, large inputs, a slow "
    "dependency) and set tighter timeouts or cache the results.",
    "cost": "Look at what makes these calls so large (long histories, big tool results) and "
    "trim the context before the call.",
}


def merge(candidates: list[Candidate]) -> list[Candidate]:
    """Items over (nearly) the same traces collapse into the one whose category comes
    first in _CATEGORY_ORDER; the others are named in its description."""
    ordered = sorted(candidates, key=lambda c: (_category_rank(c.category), -len(c.measure.traces)))
    kept: list[Candidate] = []
    for cand in ordered:
        for keep in kept:
            if _same_traces(keep, cand):
                keep.also.append(f"{cand.category}: {cand.title}")
                break
        else:
            kept.append(cand)
    return kept


def rank(candidates: list[Candidate]) -> list[Candidate]:
    """Worst first: trace rate x severity, then more traces, then title."""
    return sorted(candidates, key=lambda c: (-_score(c), -len(c.measure.traces), c.title))


def _category_rank(category: str) -> int:
    return _CATEGORY_ORDER.index(category) if category in _CATEGORY_ORDER else len(_CATEGORY_ORDER)


def _same_traces(keep: Candidate, cand: Candidate) -> bool:
    """Nearly the same traces; or, within one category, nearly contained in the kept ones."""
    a, b = keep.measure.traces, cand.measure.traces
    if _jaccard(a, b) >= MERGE_JACCARD:
        return True
    smaller = min(len(a), len(b))
    return keep.category == cand.category and smaller > 0 and len(a & b) / smaller >= 0.9


def _jaccard(a: set[str], b: set[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def _score(cand: Candidate) -> float:
    total = cand.measure.traces_in_scope
    rate = len(cand.measure.traces) / total if total else 0.0
    return rate * _WEIGHT[cand.severity]


def _item_id(rule: TriageRule, category: str) -> str:
    digest = hashlib.blake2b(
        (category + rule.model_dump_json(exclude_none=True)).encode(), digest_size=9
    ).hexdigest()
    return "t_" + digest


def to_finding(cand: Candidate) -> Finding:
    description = cand.description
    counted = describe_rule(cand.rule)
    if not cand.exact and cand.matcher is not None:
        description += (
            f" The matcher only selects the scope ({describe_scope(cand.matcher)}); the "
            f"count ({counted}) is computed by the triage rule."
        )
    if cand.also:
        description += " The same traces also show: " + "; ".join(cand.also) + "."
    notes = ["From deterministic triage (no LLM): counted from the trace index."]
    if cand.exact:
        notes.append("The matcher selects exactly the counted spans.")
    else:
        scope = (
            f"The matcher selects the scope only: {describe_scope(cand.matcher)}, which can "
            "hold more than the counted spans."
            if cand.matcher is not None
            else "This item has no matcher."
        )
        notes.append(
            f"{scope} The count ({counted}) is computed by the triage rule carried in "
            "`validation`; `halo-mcp check` (MCP: check_findings) recounts it with that rule."
        )
    return Finding(
        id=_item_id(cand.rule, cand.category),
        run_id=TRIAGE_RUN_ID,
        source="triage",
        title=cand.title,
        category=cand.category,
        severity=cand.severity,
        description=description,
        root_cause="Not analysed: triage counts symptoms without an LLM. Open the evidence "
        "traces, or run the engine (`halo-mcp run`) to find why.",
        suggested_change=_SUGGESTIONS.get(cand.category, _SUGGESTIONS["error"]),
        validation=(
            "After the fix, collect new traces and run `halo-mcp check` (MCP: check_findings): "
            "this item's rate should fall to 0. "
            + RULE_TAG
            + cand.rule.model_dump_json(exclude_none=True)
        ),
        evidence=cand.measure.examples[:EXAMPLES],
        matcher=cand.matcher,
        prevalence=cand.measure.prevalence(),
        verified=bool(cand.measure.examples),
        verification_notes=notes,
        status=FindingStatus.verified if cand.measure.examples else FindingStatus.unverified,
    )
