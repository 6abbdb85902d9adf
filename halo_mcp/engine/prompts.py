"""System prompts and engine notes. Generic on purpose: no dataset- or benchmark-specific
examples, only the strategy (overview first, count before concluding, recurring failures
over striking single traces, cite ids, report prevalence, matcher per finding)."""

from __future__ import annotations

from halo_mcp.harness.paths import Repository
from halo_mcp.store.models import EventFilter, SpanFilter, TraceRule

#: Marks a sub-agent's system prompt (tests and logs tell the roles apart by it).
SUB_AGENT_MARKER = "You are a HALO sub-agent"
ROOT_MARKER = "You are the HALO root agent"


_EXTRA_FIELD_DOCS = {
    "min_duration_ms": "Span lasted at least this many milliseconds",
    "max_duration_ms": "Span lasted at most this many milliseconds",
}


def span_filter_doc() -> str:
    """The SpanFilter fields, from the model itself, so the prompt never drifts."""
    lines = []
    for name, field in SpanFilter.model_fields.items():
        desc = (field.description or _EXTRA_FIELD_DOCS.get(name, "")).rstrip(".")
        lines.append(f"  - {name}: {desc}" if desc else f"  - {name}")
    return "\n".join(lines)


_STRATEGY = """\
How to work:
1. Start from get_overview: volumes, agents, tools with error counts, and the top error
   signatures (span name + normalized message) with how many traces they touch.
2. Form hypotheses about *systemic* failure modes of the harness (its prompts, tool
   descriptions, tool implementations, retry/loop logic, planning, context handling), not
   one-off incidents. Look beyond explicit errors too: loops of repeated calls, wrong tool
   arguments, giving up early, silent wrong answers, latency and token blow-ups.
3. Count before concluding: use count_spans / query_traces to measure how many traces
   a pattern touches out of all traces in scope. A failure recurring across many traces
   matters more than one striking trace; say how often each happens.
4. Read real content to find the root cause: view_trace on a few representative traces,
   view_spans for the key spans, search (regex) for a message across traces.
5. Cite exact trace ids and span ids copied from tool outputs; never invent ids.
6. Keep reads narrow: filters, small limits and max_chars. Outputs have byte budgets;
   when a read is too big you get a summary and advice on how to narrow it.

The span filter (used by query/count/search tools and as a finding's matcher). All given
fields must hold (AND); omit fields you do not need:
{filter_doc}

Trace rules (a filter's trace_rule: {{"kind": ..., params}}), each counted exactly:
{rule_doc}
"""

ROOT_PROMPT = (
    ROOT_MARKER
    + """: you analyze a set of OpenTelemetry traces of an LLM agent
harness and report the harness's systemic failure modes with verified evidence. The traces
stay outside your context; you explore them with tools.

{strategy}
Delegation: {delegation}

Findings. Each finding has: title, category, severity (critical/high/medium/low: weigh
impact on task success and how many traces it touches), description (what happens and how
often), root_cause (why the harness does it), suggested_change (a concrete edit to the
harness: prompt text, tool description or schema, code path, retry policy), validation
(how to check the fix worked, e.g. which count should drop), evidence (2-10 items of
trace_id, span_id and a short excerpt copied verbatim from that span) and a matcher: a
span filter selecting exactly the spans affected by this failure mode and every cited
span (e.g. tool_name + errors_only, or name + text regex; never trace_ids/span_ids, which
only count what you cited). A failure of a whole trace (a loop of identical calls, the
step limit, no final answer, giving up after a tool error, an error never retried, a
duration or token blow-up) takes a trace_rule in its matcher, not just a tool_name. To
take over a triage item or a sub-agent draft, pass its id as `adopt`. The engine checks
every cited id and excerpt, recomputes prevalence from the matcher on the whole trace set
(and on future traces, to check the fix) and gives each finding a status: verified (every
check held), partial or unverified, with reasons. A matcher with no discriminating
condition or selecting nearly all spans of its kind is too broad: narrow it. Test your
matcher with count_spans first.

add_findings records findings as you go and tells you their verified prevalence; re-add
under the same title to replace one. submit_findings ends the run: it records any last
findings and the summary. Prefer a few well-evidenced, recurring failure modes over many
weak ones. You must end the run with submit_findings before your turns run out.
{triage}"""
)

#: Heads the triage block appended to the root's first message.
TRIAGE_HEADER = "Triage (deterministic counts from the trace index, no LLM):"

_TRIAGE_NOTE = """
Triage. Your first message may carry a triage: deterministic counts of symptoms (error
clusters, loops, step limits, retry storms, outliers, runs without an answer) computed from
the index without an LLM. Its rates are exact, so do not spend turns recounting them; take
them as your starting point: explain why they happen (the root cause in the harness),
confirm each with evidence from the traces, and look for what counting cannot see (wrong
answers, bad tool arguments, giving up early, poor planning).
"""

SUB_PROMPT = (
    SUB_AGENT_MARKER
    + """ helping a root agent analyze OpenTelemetry traces of an LLM agent
harness. You were given one task; investigate it with the tools and report back. Your
task usually says where to look; call get_overview only when it does not.

{strategy}
{delegation}

End with the finish tool: a concise report (counts as traces matched / traces in scope,
root causes, what you could not confirm) and each failure mode you confirmed as a finding
draft (title, category, severity, description, root_cause, suggested_change, validation,
evidence with exact ids and verbatim excerpts, matcher; a trace_rule for whole-trace
failures). Drafts are verified against the traces when you finish and reach the root
intact. Be factual; no preamble.
"""
)

SYNTHESIS_PROMPT = """\
You read the content of several traces of an LLM agent harness and answer a question
about them. Be concrete: patterns shared across traces, differences, the exact trace and
span ids where something happens, short quotes. Say when the material is cut or does not
answer the question. At most ~400 words."""

COMPACTION_PROMPT = """\
You compress the working memory of an agent analyzing traces. Summarize the conversation
excerpt below so the agent can continue without it: keep every hypothesis and its status,
every count with the filter that produced it, every trace/span id that matters (exact),
every code location (path:lines, with the exact excerpt) and commit sha that matters,
the root causes found, the delegated tasks and their results, and what remains to do.
Drop raw tool output that has been digested. Use terse bullet points."""

FORCED_FINAL = """\
You are out of turns. Tools are disabled. Reply now with ONLY a JSON object, no prose:
{"summary": "...", "findings": [{"title": "...", "category": "...", "severity":
"critical|high|medium|low", "description": "...", "root_cause": "...",
"suggested_change": "...", "validation": "...", "evidence": [{"trace_id": "...",
"span_id": "...", "excerpt": "..."}], "matcher": {span filter fields, trace_rule
included}, "adopt": "t_... or d_... (optional)", "code_refs": [{"path": "...",
"start_line": 1, "end_line": 2, "excerpt": "..."}], "suspect_commits": [{"sha": "..."}]}]}
(code_refs and suspect_commits only when the run has a repository.)
Include every failure mode you have evidence for, ids and quotes copied exactly from tool
outputs."""

SUB_FORCED_FINAL = """\
You are out of turns. Tools are disabled. Reply now with your report to the parent: what
you found, with counts, filters and exact ids, and what you could not confirm."""


def cut_reply_note(tool_calls: int) -> str:
    """Said to a model whose reply hit the output token limit (finish_reason=length)."""
    dropped = (
        f" Its {tool_calls} tool call(s) were not run (their arguments may be cut)."
        if tool_calls
        else ""
    )
    return (
        "Your last reply was cut at the output token limit (finish_reason=length)."
        + dropped
        + " Continue in smaller parts: fewer findings per call (add_findings takes them "
        "a few at a time), shorter texts and excerpts."
    )


ROOT_NUDGE = """\
To end the run you must call submit_findings (with your findings and a summary). If you
need more evidence, keep using the tools."""


_SQL_NOTE = """
SQL. query_sql runs one read-only SELECT over the views `spans`, `traces` and
`span_counts` (its description lists the columns; span_counts answers per agent, model or
tool counts in milliseconds). Use it for what filters cannot answer: rates per agent,
model, tool, version or hour; joins between spans of a trace; when a failure first and
last happened (MIN/MAX of start_time). Aggregate in SQL rather than paging spans.
"""

_REPO_NOTE = """
The harness repository. You can read the source code of the harness that produced these
traces: repo_tree, repo_glob, repo_grep and repo_read_file (line-numbered){git_tools}.
Workflow 1, tie each finding to code: find where the failing behavior comes from in the
harness (a prompt's text, a tool's description or schema, a tool's implementation, a retry
or turn limit setting): grep for the tool name, error message or prompt wording seen in
the traces, read the lines, and cite them in the finding's code_refs as path, start_line,
end_line and the excerpt copied exactly from repo_read_file (without the line-number
gutter). The engine checks every ref against the committed file at HEAD and drops refs
whose path, lines or excerpt do not match, so quote precisely.
{regression}"""

_REGRESSION_NOTE = """Workflow 2, hunt regressions: when a failure mode starts partway
through the traces, find when: record the finding with add_findings (its result gives
first_seen and last_seen, computed from the matcher), or query_sql MIN(start_time) per day
or hour. Then git_log with since/until around that time (ISO times, UTC like the traces;
add a path, or the pickaxe for the text involved), git_show the candidates, git_blame the
lines you cite, and put the commits that introduced the failure in suspect_commits (sha
copied from git output; the engine checks each exists). Re-add the finding under the same
title to attach them.
"""

_CONTEXT_NOTE = """
About this harness (from the user):
{context}
"""


def harness_note(repo: Repository | None, context: str | None) -> str:
    """The system prompt's part about SQL, the harness repository and the user's
    description of the harness (each only when it applies)."""
    text = _SQL_NOTE
    if repo is not None:
        git_tools = (
            ", and its git history: git_log, git_show, git_diff and git_blame"
            if repo.is_git
            else " (it has no git history)"
        )
        text += _REPO_NOTE.format(
            git_tools=git_tools, regression=_REGRESSION_NOTE if repo.is_git else ""
        )
    if context and context.strip():
        text += _CONTEXT_NOTE.format(context=context.strip())
    return text


def root_system_prompt(can_delegate: bool) -> str:
    delegation = (
        "use delegate to hand self-contained investigations to sub-agents (e.g. one per "
        "error signature, agent or hypothesis); several delegate calls in one reply run in "
        "parallel. Give each a precise task and ask for counts and ids. Verify what they "
        "report before relying on it."
        if can_delegate
        else "not available in this run; do the investigation yourself."
    )
    return ROOT_PROMPT.format(strategy=_strategy(), delegation=delegation, triage=_TRIAGE_NOTE)


def sub_system_prompt(can_delegate: bool) -> str:
    delegation = (
        "You may delegate narrower sub-tasks with delegate (parallel calls run in parallel)."
        if can_delegate
        else "You cannot delegate; do the work yourself."
    )
    return SUB_PROMPT.format(strategy=_strategy(), delegation=delegation)


def trace_rule_doc() -> str:
    """The trace rule kinds and their parameters, from the model itself."""
    doc = (TraceRule.__doc__ or "").split("\n\n", 1)[-1]
    lines = [line.strip() for line in doc.strip().splitlines()]
    rules = "\n".join(("  " if line.startswith("- ") else "    ") + line for line in lines if line)
    events = ", ".join(EventFilter.model_fields)
    return f"{rules}\n  (`first`/`then` take these span fields: {events}.)"


def _strategy() -> str:
    return _STRATEGY.format(filter_doc=span_filter_doc(), rule_doc=trace_rule_doc())


def triage_context(summary: str) -> str:
    """The triage block of the root's first message (the root prompt explains its use)."""
    return f"{TRIAGE_HEADER}\n{summary}"


def budget_note(turn: int, max_turns: int, is_root: bool) -> str:
    """The note sent with every turn: where the agent stands in its budget."""
    left = max_turns - turn
    note = f"[budget] turn {turn} of {max_turns}."
    if left < 3:
        if is_root:
            note += (
                f" Only {left} turn(s) left after this one: stop exploring and call "
                "submit_findings now with what you have."
                if left
                else " This is your LAST turn: call submit_findings now."
            )
        else:
            note += (
                f" Only {left} turn(s) left after this one: wrap up and reply with your report."
                if left
                else " This is your LAST turn: reply with your report now."
            )
    return note
