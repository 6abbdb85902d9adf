"""Triage rules and matchers in words, for people: what an item counted and what its
matcher selects, and a `validation` text without the machine-readable rule JSON.

An item's rule travels as JSON after RULE_TAG at the end of its `validation` (so `check`
can recount it from a plain saved Finding); text renderings show `readable_validation`.
"""

from __future__ import annotations

from halo_mcp.store.models import SpanFilter
from halo_mcp.text import clip
from halo_mcp.triage.models import RULE_TAG, TriageRule, who
from halo_mcp.triage.outliers import fmt_ms

#: Signatures quoted in rule descriptions are cut here (with a marker).
SIGNATURE_CHARS = 160


def split_validation(text: str | None) -> tuple[str, TriageRule | None]:
    """(the human part, the rule) of a validation text; the rule is None when absent or
    unreadable (then the text is returned whole)."""
    text = text or ""
    head, tag, tail = text.partition(RULE_TAG)
    if not tag:
        return text, None
    try:
        rule = TriageRule.model_validate_json(tail.strip())
    except ValueError:
        return text, None
    return head.rstrip(), rule


def readable_validation(text: str | None) -> str:
    """The validation text with the rule JSON replaced by a sentence saying what is counted."""
    human, rule = split_validation(text)
    if rule is None:
        return human
    return f"{human} Counted by the triage rule: {describe_rule(rule)}.".strip()


def describe_rule(rule: TriageRule) -> str:
    """What a rule counts, in one clause."""
    n = rule.min_count
    source = who(rule.span_kind or "other", rule.tool_name)
    signature = repr(clip(rule.signature or "", SIGNATURE_CHARS)[0])
    if rule.kind == "error_cluster":
        return f"{source} failing with the signature {signature}"
    if rule.kind == "retry_storm":
        return f"traces with at least {n} errors of {source} with the signature {signature}"
    if rule.kind == "repeated_call":
        return f"traces where {rule.tool_name} is called at least {n} times with identical input"
    if rule.kind == "outlier":
        value = rule.threshold or 0
        amount = (
            f"lasting at least {fmt_ms(value / 1e6)}"
            if rule.metric == "duration"
            else f"with at least {value:,} tokens"
        )
        of = "to" if rule.span_kind == "llm" else "of"
        return f"{_noun([rule.span_kind or 'other'])}s {of} {rule.group} {amount}"
    if rule.kind == "no_final_answer":
        return "traces whose root span ends with no output"
    if rule.kind == "step_cap":
        names = ", ".join(rule.names or ()) or "?"
        return f"traces where {names} made at least {n} LLM calls"
    return "the spans its matcher selects"


def describe_scope(matcher: SpanFilter | None) -> str:
    """What a matcher selects, in one clause ('every failing call of tool read_file')."""
    if matcher is None:
        return "no spans (this item has no matcher)"
    kinds = [str(getattr(k, "value", k)) for k in matcher.kind or ()]
    noun = "call" if matcher.tool_name and kinds in ([], ["tool"]) else _noun(kinds)
    text = f"every {'failing ' if matcher.errors_only else ''}{noun}"
    if matcher.tool_name:
        text += f" of tool {matcher.tool_name}"
    if matcher.agent:
        text += f" of agent {matcher.agent}"
    if matcher.model:
        text += f" to model {matcher.model}"
    if matcher.text:
        text += f" whose content matches /{matcher.text}/"
    if matcher.trace_rule is not None:
        text += f" in the traces where {matcher.trace_rule.describe()}"
    return text


def _noun(kinds: list[str]) -> str:
    if len(kinds) != 1:
        return "span"
    return {"tool": "tool call", "llm": "LLM call"}.get(kinds[0], f"{kinds[0]} span")
