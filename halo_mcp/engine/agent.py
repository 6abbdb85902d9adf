"""The agent loop: one LLM agent exploring the traces with tools, possibly delegating.

Each turn the agent is told its budget, the provider is called with the tools, and the
tool calls of the reply run concurrently. Whatever goes wrong in a call (bad JSON, unknown
tool, arguments failing the schema, a store error) returns to the model as a tool error it
can fix. The root ends the run with submit_findings; a sub-agent ends by replying with
its report. Out of turns, the agent is asked once more with tools disabled.

Concurrency: at most `max_parallel` sub-agents run at once. A sub-agent takes one of
`state.agent_slots` when it starts and gives it back when it ends; a parent gives its slot
back while it waits on its children and takes it again after, so nesting cannot deadlock
(even with one slot). The root holds no slot. `state.limiter` bounds provider calls in
flight (see RunState); it is never held while waiting on children either.
"""

from __future__ import annotations

import functools
import json
import logging
from typing import Any

import anyio

from halo_mcp.engine import agent_tools as at
from halo_mcp.engine import prompts, telemetry
from halo_mcp.engine.compaction import compact, estimate_tokens
from halo_mcp.engine.errors import EngineError
from halo_mcp.engine.events import AgentFinished, AgentStarted, TextDelta, ToolCalled, ToolResult
from halo_mcp.engine.findings import parse_drafts, parse_final_json, verify
from halo_mcp.engine.harness_tools import engine_tools
from halo_mcp.engine.provider import Completion, ContextLengthError, InvalidRequestError, ToolCall
from halo_mcp.engine.schemas import parse_arguments, tool_schema
from halo_mcp.engine.state import RunState, SubReport
from halo_mcp.excgroups import first_error
from halo_mcp.findings.ids import new_finding_id
from halo_mcp.findings.models import Finding, FindingStatus
from halo_mcp.findings.verify import status_of
from halo_mcp.harness.verify import check_harness_fields
from halo_mcp.store.errors import StoreError
from halo_mcp.text import clip, json_object

log = logging.getLogger(__name__)

EVENT_ARG_CHARS = 500
EVENT_SUMMARY_CHARS = 200
MAX_DELEGATES_PER_TURN = 10
#: A runaway fan-out guard: agents one run may start, root included.
MAX_AGENTS_PER_RUN = 100
#: Sub-agent reports and syntheses shown to the parent are cut here (with a marker).
REPORT_CHARS = 11_000
#: Store reads whose results fold once they are old (see Agent._fold_old_reads): over
#: FOLD_MIN_CHARS, they keep their first FOLD_KEEP_CHARS.
FOLDABLE_TOOLS = frozenset({"view_trace", "view_spans", "query_spans", "query_traces", "search"})
FOLD_MIN_CHARS = 6_000
FOLD_KEEP_CHARS = 1_500
#: Old reads are folded when this many are due, together.
FOLD_BATCH = 3

_AGENT_TOOLS: dict[str, tuple[str, type]] = {
    "synthesize": (
        "A cheaper model reads the actual content of up to 30 traces (within a byte budget) "
        "and answers your question about them. Use it to compare many traces at once.",
        at.SynthesizeArgs,
    ),
    "delegate": (
        "Start a sub-agent on a self-contained task; returns its report. Several delegate "
        "calls in one reply run in parallel.",
        at.DelegateArgs,
    ),
    "add_findings": (
        "Record findings now: each is verified (ids checked, excerpts found in the cited "
        "spans, the matcher must select the evidence without being too broad, prevalence "
        "counted from it) and comes back with its status (verified, partial, unverified) "
        "and reasons. Each finding is accepted or rejected on its own. Re-add a title to "
        "replace.",
        at.AddFindingsArgs,
    ),
    "submit_findings": (
        "End the run: record any last findings and the summary. Call exactly once, at the end.",
        at.SubmitFindingsArgs,
    ),
    "finish": (
        "End your task and send your report to the parent agent, with each failure mode "
        "you confirmed as a finding draft (verified on return: bad ids or quotes come back "
        "to you once to fix).",
        at.FinishArgs,
    ),
}


@functools.lru_cache(maxsize=32)
def tool_schemas(
    is_root: bool, can_delegate: bool, has_repo: bool = False, is_git: bool = False
) -> tuple[dict[str, Any], ...]:
    """The tools offered to an agent in this position (and run: with a repository?)."""
    table = engine_tools(has_repo, is_git)
    schemas = [tool_schema(n, table[n][0], table[n][1]) for n in table]
    extra = ["synthesize"]
    if can_delegate:
        extra.append("delegate")
    extra += ["add_findings", "submit_findings"] if is_root else ["finish"]
    schemas += [tool_schema(n, *_AGENT_TOOLS[n]) for n in extra]
    return tuple(schemas)


class Agent:
    """One agent (root at depth 0). `run()` returns its report / summary text."""

    def __init__(
        self,
        state: RunState,
        task: str,
        *,
        depth: int = 0,
        agent_id: str = "root",
        parent_id: str | None = None,
        context: str | None = None,
    ) -> None:
        """`context` (e.g. the triage summary) joins the first user message but not the
        task shown in events, which stays short."""
        self.state = state
        self.task = task
        self.depth = depth
        self.agent_id = agent_id
        self.parent_id = parent_id
        self.is_root = depth == 0
        self.can_delegate = depth < state.settings.max_depth
        repo = state.tools.repo if state.tools is not None else None
        has_repo, is_git = repo is not None, bool(repo and repo.is_git)
        self.sync_tools = engine_tools(has_repo, is_git)
        self.tools = list(tool_schemas(self.is_root, self.can_delegate, has_repo, is_git))
        self.tool_names = {t["function"]["name"] for t in self.tools}
        system = (
            prompts.root_system_prompt(self.can_delegate)
            if self.is_root
            else prompts.sub_system_prompt(self.can_delegate)
        )
        system += prompts.harness_note(repo, state.settings.context)
        self.messages: list[dict[str, Any]] = [
            {"role": "system", "content": system},
            {"role": "user", "content": f"{task}\n\n{context}" if context else task},
        ]
        self.turns = 0
        self.done = False
        self.report = ""
        self.compactions = 0
        self.holds_slot = False
        self.max_turns = state.settings.max_turns if self.is_root else state.settings.sub_turns
        #: A sub-agent's drafts held back once because some ids or excerpts did not check.
        self.pending_drafts: list[Finding] | None = None
        self.asked_to_narrow = False
        #: Store reads still shown in full: tool call id -> (tool, turn).
        self.read_turns: dict[str, tuple[str, int]] = {}
        self.tools_tokens = estimate_tokens([{"content": json.dumps(self.tools)}])

    # ------------------------------------------------------------------- loop

    async def run(self) -> str:
        """Wait for a slot (sub-agents), run the loop, give the slot back."""
        s = self.state
        s.agents_started += 1
        if not self.is_root:
            s.sub_agents_waiting += 1
            try:
                await self._take_slot()
            finally:
                s.sub_agents_waiting -= 1
        try:
            return await self._run_with_slot()
        finally:
            self._give_slot()

    async def _run_with_slot(self) -> str:
        s = self.state
        s.agents_running += 1
        if not self.is_root:
            s.sub_agents_running += 1
        self._emit_lifecycle(started=True)
        try:
            with telemetry.agent_span(self):  # an invoke_agent span when telemetry is on
                await self._loop()
        finally:
            s.agents_running -= 1
            if not self.is_root:
                s.sub_agents_running -= 1
            self._emit_lifecycle(started=False)
        return self.report

    def _emit_lifecycle(self, *, started: bool) -> None:
        s = self.state
        who = self._who()
        if started:
            s.emit(AgentStarted(**who, depth=self.depth, task=clip(self.task, 1000)[0]))
        else:
            s.emit(AgentFinished(**who, turns=self.turns, summary=clip(self.report, 500)[0]))
        s.report_progress()

    async def _take_slot(self) -> None:
        await self.state.agent_slots.acquire()
        self.holds_slot = True

    def _give_slot(self) -> None:
        if self.holds_slot:
            self.holds_slot = False
            self.state.agent_slots.release()

    async def _loop(self) -> None:
        max_turns = self.max_turns
        while self.turns < max_turns and not self.done:
            if self.state.over_token_budget():
                self._stop_for_budget()
                return
            self.turns += 1
            if self.is_root:
                self.state.root_turn = self.turns
                self.state.report_progress()
            await self._maybe_compact()
            note = prompts.budget_note(self.turns, max_turns, self.is_root)
            completion = await self._complete(note=note, tools=self.tools)
            if completion.finish_reason == "length":
                self._continue_cut_reply(completion)
                continue
            self.messages.append(completion.assistant_message())
            if completion.tool_calls:
                self.messages.extend(await self._run_tools(completion.tool_calls))
                self._fold_old_reads()
                continue
            text = (completion.content or completion.refusal or "").strip()
            if not self.is_root:
                self.report = text or "(the sub-agent ended without a report)"
                self._record_pending_drafts()
                self.done = True
            else:
                self.messages.append({"role": "user", "content": prompts.ROOT_NUDGE})
        if not self.done:
            if self.state.over_token_budget():
                self._stop_for_budget()
                return
            await self._final_answer()

    def _stop_for_budget(self) -> None:
        """The run's token budget is used up: end without another model call. The root's
        findings so far are the run's result; a sub-agent returns its last words."""
        limit = self.state.settings.max_run_tokens
        log.info("%s: the run's token budget (%s) is reached; stopping", self.agent_id, limit)
        if not self.is_root:
            last = clip(self._last_words(), 2000)[0]
            self.report = f"(stopped: the run's token budget of {limit:,} tokens was reached)" + (
                f" Last words: {last}" if last else ""
            )
            self._record_pending_drafts()
        self.done = True

    def _continue_cut_reply(self, completion: Any) -> None:
        """A reply cut at the output token limit: its tool calls may hold cut JSON, so none
        is run; the model is told and asked to continue in smaller parts."""
        calls = len(completion.tool_calls)
        self.messages.append({"role": "assistant", "content": completion.content or ""})
        self.messages.append({"role": "user", "content": prompts.cut_reply_note(calls)})

    async def _final_answer(self) -> None:
        """Out of turns: one more call with tools disabled for the final answer."""
        ask = prompts.FORCED_FINAL if self.is_root else prompts.SUB_FORCED_FINAL
        self.messages.append({"role": "user", "content": ask})
        await self._maybe_compact()
        completion = await self._complete(note=None, tools=self.tools, tool_choice="none")
        text = (completion.content or completion.refusal or "").strip()
        if self.is_root and not text:
            text = _findings_from_calls(completion.tool_calls)  # tools ignored "none"
        self.messages.append({"role": "assistant", "content": text})
        if not self.is_root:
            self.report = text or self._last_words() or "(ran out of turns without a report)"
            self._record_pending_drafts()
            self.done = True
            return
        await self._accept_final(text)
        self.done = True

    async def _accept_final(self, text: str) -> None:
        s = self.state
        items = parse_final_json(text)
        if items is None:
            s.unstructured_final = text or None
            self.report = text
            return
        try:
            data = _loads_obj(text)
            if isinstance(data, dict) and isinstance(data.get("summary"), str):
                s.summary = data["summary"]
        except ValueError:
            pass
        drafts, problems = parse_drafts(items)
        for draft in drafts:
            await self._verify_and_accept(draft)
        if problems:
            s.rejected_drafts += len(problems)
            s.unstructured_final = "\n".join(p.line() for p in problems)
        self.report = s.summary

    def _last_words(self) -> str:
        for m in reversed(self.messages):
            if m.get("role") == "assistant" and m.get("content"):
                return str(m["content"])
        return ""

    # --------------------------------------------------------------- provider

    async def _complete(
        self, *, note: str | None, tools: list[dict[str, Any]], tool_choice: str | None = None
    ) -> Completion:
        s = self.state
        retried = False
        while True:
            sent = self.messages + ([{"role": "user", "content": note}] if note else [])
            try:
                async with s.limiter:
                    completion = await s.provider.complete(
                        sent,
                        tools=tools,
                        tool_choice=tool_choice,
                        on_text=self._on_text,
                    )
                refused = bool(completion.refusal) and not completion.tool_calls
                cut = completion.finish_reason == "length"
                s.record_reply(self.agent_id, completion.usage, refused, cut)
                return completion
            except ContextLengthError:
                if retried:
                    raise
                retried = True
                log.info("%s: context too long for the model; compacting", self.agent_id)
                if not await self._compact(force=True):
                    raise

    def _on_text(self, text: str) -> None:
        self.state.emit(TextDelta(**self._who(), text=text))

    def context_tokens(self) -> int:
        """Estimated tokens of the next request: the messages and the tool schemas, which
        go out with every request too."""
        return estimate_tokens(self.messages) + self.tools_tokens

    async def _maybe_compact(self) -> None:
        if self.context_tokens() > self.state.settings.context_budget_tokens:
            await self._compact(force=False)

    async def _compact(self, *, force: bool) -> bool:
        s = self.state
        model = s.settings.compaction_model or s.settings.model
        target = s.settings.context_budget_tokens // 2
        async with s.limiter:
            compacted = await compact(
                self.messages, s.provider, model, target_tokens=target, force=force
            )
        if compacted is None:
            return False
        self.messages = compacted
        self.compactions += 1
        return True

    # ------------------------------------------------------------------ tools

    async def _run_tools(self, calls: list[ToolCall]) -> list[dict[str, Any]]:
        results: list[str] = [""] * len(calls)
        delegates = 0
        # A parent waiting on its children lends them its slot (no deadlock when nested).
        waits = self.holds_slot and any(call.name == "delegate" for call in calls)
        if waits:
            self._give_slot()
        async with anyio.create_task_group() as tg:
            for i, call in enumerate(calls):
                over = False
                if call.name == "delegate":
                    delegates += 1
                    over = delegates > MAX_DELEGATES_PER_TURN
                tg.start_soon(self._run_one, i, call, results, over)
        if waits:
            await self._take_slot()
        for call in calls:
            if call.name in FOLDABLE_TOOLS:
                self.read_turns[call.id] = (call.name, self.turns)
        return [
            {"role": "tool", "tool_call_id": call.id, "content": results[i]}
            for i, call in enumerate(calls)
        ]

    def _fold_old_reads(self) -> None:
        """Large results of store reads older than `fold_reads_after_turns` turns keep
        only their head in the context, with a note saying how to read them again: the
        agent has digested them, and resending them every turn is most of a run's input
        tokens. Results are folded once, a few at a time, so the context stays a stable
        prefix for prompt caching between folds."""
        after = self.state.settings.fold_reads_after_turns
        if after is None:
            return
        present = {m.get("tool_call_id") for m in self.messages if m.get("role") == "tool"}
        for call_id in [c for c in self.read_turns if c not in present]:
            del self.read_turns[call_id]  # compacted away
        due: list[tuple[dict[str, Any], str]] = []
        for message in self.messages:
            seen = self.read_turns.get(message.get("tool_call_id") or "")
            if message.get("role") != "tool" or seen is None or self.turns - seen[1] < after:
                continue
            content = message.get("content")
            if isinstance(content, str) and len(content) > FOLD_MIN_CHARS:
                due.append((message, seen[0]))
            else:
                del self.read_turns[message["tool_call_id"]]  # small: kept whole
        if len(due) < FOLD_BATCH:
            return  # fold several at once: the prefix then stays stable for a few turns
        for message, tool in due:
            content = message["content"]
            message["content"] = (
                f"{content[:FOLD_KEEP_CHARS]}\n…[older {tool} result folded: {len(content):,} "
                "chars in all; call the tool again if you need the rest]"
            )
            del self.read_turns[message["tool_call_id"]]

    async def _run_one(self, i: int, call: ToolCall, results: list[str], over: bool) -> None:
        s = self.state
        tool = clip(call.name or "", 100)[0]
        arguments = clip(call.arguments or "", EVENT_ARG_CHARS)[0]
        s.emit(ToolCalled(**self._who(), tool=tool, arguments=arguments, turn=self.turns))
        text, is_error = await self._result_of(call, over)
        results[i] = text
        s.emit(
            ToolResult(
                **self._who(),
                tool=tool,
                summary=clip(result_summary(call.name, text), EVENT_SUMMARY_CHARS)[0],
                size_bytes=len(text.encode()),
                is_error=is_error,
            )
        )

    async def _result_of(self, call: ToolCall, over: bool) -> tuple[str, bool]:
        """The tool result as the model sees it: errors prefixed, size within budget."""
        if over:
            refused = (
                f"at most {MAX_DELEGATES_PER_TURN} delegate calls per reply; this one was "
                "not started. Combine tasks or delegate it next turn."
            )
            return self._bounded(call.name, "ERROR: " + refused), True
        with telemetry.tool_span(call.name, call.id, call.arguments) as span:
            text, is_error = await self._dispatch(call.name, call.arguments)
            text = self._bounded(call.name, ("ERROR: " if is_error else "") + text)
            span.result(text, is_error)
        return text, is_error

    def _who(self) -> dict[str, Any]:
        """The fields naming this agent in every event it emits."""
        return {
            "run_id": self.state.run_id,
            "agent_id": self.agent_id,
            "parent_agent_id": self.parent_id,
        }

    def _bounded(self, name: str, text: str) -> str:
        """The last guard on output size: tools keep under budget; anything else is cut
        with a visible marker and recorded (the benchmark asserts this never happens)."""
        ctx = self.state.tools
        budget = ctx.budget_for(name) if ctx and name in at.STORE_TOOLS else at.ToolBudgets.default
        size = len(text.encode())
        if ctx is not None:
            ctx.largest_output = max(ctx.largest_output, size)
        if size <= budget:
            return text
        if ctx is not None:
            ctx.over_budget.append(f"{name}: {size} bytes > {budget}")
        return clip(text, max(0, budget // 2))[0]

    async def _dispatch(self, name: str, raw: str) -> tuple[str, bool]:
        if name not in self.tool_names:
            available = ", ".join(sorted(self.tool_names))
            return f"unknown tool {name!r}. Available tools: {available}.", True
        if name in self.sync_tools:
            _, model, impl = self.sync_tools[name]
        else:
            model, impl = at.LENIENT_INPUTS.get(name, _AGENT_TOOLS[name][1]), None
        args, error = parse_arguments(model, raw)
        if error:
            return f"{name}: {error}", True
        try:
            if impl is not None:
                ctx = self.state.trace_tools
                text = await anyio.to_thread.run_sync(functools.partial(impl, ctx, args))
                return text, False
            return await getattr(self, f"_tool_{name}")(args)
        except (StoreError, ValueError) as exc:
            return f"{name}: {exc}", True
        except Exception as exc:
            leaf = first_error(exc)
            if leaf is None or isinstance(leaf, EngineError):
                raise  # provider down (or cancelled) inside a sub-agent: not the model's fault
            log.error("tool %s failed", name, exc_info=leaf)
            return (
                f"{name} failed with an internal error ({type(leaf).__name__}: "
                f"{clip(str(leaf), 300)[0]}). Try different arguments or another tool.",
                True,
            )

    # ---------------------------------------------------------- agent tools

    async def _tool_synthesize(self, args: at.SynthesizeArgs) -> tuple[str, bool]:
        s = self.state
        material, missing = await anyio.to_thread.run_sync(
            at.synthesis_material, s.trace_tools, args.trace_ids
        )
        if not material:
            return (
                f"none of the trace ids exist: {', '.join(missing)}. Copy ids from "
                "query_traces or the overview.",
                True,
            )
        request = [
            {"role": "system", "content": prompts.SYNTHESIS_PROMPT},
            {"role": "user", "content": f"Question: {args.question}\n\nTraces:\n{material}"},
        ]
        model = s.settings.synthesis_model or s.settings.model
        try:
            async with s.limiter:
                completion = await s.provider.complete(request, model=model)
        except ContextLengthError:
            return (
                f"the {len(args.trace_ids)} traces are too long for the synthesis model "
                f"({model}); pass fewer trace ids.",
                True,
            )
        except InvalidRequestError as exc:
            return f"the synthesis model ({model}) rejected the request: {exc}", True
        answer = (completion.content or completion.refusal or "(no answer)").strip()
        answer = clip(answer, REPORT_CHARS)[0]
        head = f"synthesis over {len(args.trace_ids) - len(missing)} traces"
        if missing:
            head += f" (unknown ids skipped: {', '.join(missing[:10])})"
        return f"{head}:\n{answer}", False

    async def _tool_delegate(self, args: at.DelegateArgs) -> tuple[str, bool]:
        s = self.state
        if s.agents_started >= MAX_AGENTS_PER_RUN:
            return (
                f"this run already started {MAX_AGENTS_PER_RUN} agents, the limit; do the "
                "work yourself or combine tasks.",
                True,
            )
        child_id = s.child_id(self.agent_id)
        child = Agent(
            s, args.task, depth=self.depth + 1, agent_id=child_id, parent_id=self.agent_id
        )
        try:
            report = await child.run()
        except (ContextLengthError, InvalidRequestError) as exc:
            # The request, not the provider, failed: the parent can carry on without it.
            last = clip(child._last_words(), 2000)[0]
            return (
                f"sub-agent {child_id} failed after {child.turns} turns: {exc}. "
                + (f"Its last words: {last}" if last else "Try a narrower task."),
                True,
            )
        s.sub_reports.append(SubReport(agent_id=child_id, task=args.task, report=report))
        shown = clip(report, REPORT_CHARS)[0]
        drafts = [d for d_id, d in s.drafts.items() if s.draft_agents.get(d_id) == child_id]
        text = f"report from sub-agent {child_id} ({child.turns} turns):\n{shown}"
        if drafts:
            text += (
                f"\n\nIts {len(drafts)} finding draft(s), verified against the traces "
                "(adopt one with add_findings {adopt: id, ...}; drafts you neither adopt "
                "nor restate are merged into the run's findings at the end):\n"
                + "\n".join(_finding_line(d) for d in drafts)
            )
        return text, False

    async def _tool_finish(self, args: at.FinishInput) -> tuple[str, bool]:
        s = self.state
        if args.findings:
            drafts, rejected = parse_drafts(args.findings)
            checked = [await self._verify_draft(d, draft_id=_new_draft_id()) for d in drafts]
            weak = [f for f in checked if _bad_ids(f)]
            if (weak or rejected) and self.pending_drafts is None:
                # Caught at the source: the sub-agent can still fix its ids and quotes.
                self.pending_drafts = checked
                lines = [_finding_line(f) for f in checked] + [r.line() for r in rejected]
                return (
                    "not sent yet: some drafts cite ids or excerpts that do not check out, "
                    "or could not be read:\n"
                    + "\n".join(lines)
                    + "\nFix them (copy ids and quotes exactly from tool outputs) and call "
                    "finish again; a second finish is sent as it is.",
                    True,
                )
            s.rejected_drafts += len(rejected)
            self.pending_drafts = checked
        self.report = args.report
        self._record_pending_drafts()
        self.done = True
        return "report sent to the parent agent.", False

    def _record_pending_drafts(self) -> None:
        for draft in self.pending_drafts or ():
            self.state.add_draft(draft, self.agent_id)
        self.pending_drafts = []

    async def _tool_add_findings(self, args: at.AddFindingsInput) -> tuple[str, bool]:
        text, accepted, _ = await self._record(args.findings)
        return text, accepted == 0

    async def _tool_submit_findings(self, args: at.SubmitFindingsInput) -> tuple[str, bool]:
        s = self.state
        if not args.findings and not s.findings and not s.drafts:
            return (
                "no findings recorded yet: pass your findings in `findings` (or record them "
                "with add_findings first). If you truly found nothing systemic, submit one "
                "finding explaining what you checked.",
                True,
            )
        broad = 0
        if args.findings:
            text, accepted, findings = await self._record(args.findings)
            rejected = len(args.findings) - accepted
            broad = sum(1 for f in findings if _too_broad(f))
        else:
            text, rejected = "no new findings.", 0
        s.summary = args.summary.strip() or s.summary
        self.report = s.summary
        can_retry = self.turns < self.max_turns and not s.over_token_budget()
        if rejected and can_retry:
            return (
                text + f"\nRun NOT submitted yet: {rejected} finding(s) were rejected. Fix "
                "them and call submit_findings again with only those (the accepted ones are "
                "kept), or call submit_findings with no findings to end the run now.",
                True,
            )
        if broad and can_retry and not self.asked_to_narrow:
            self.asked_to_narrow = True  # once: a model that cannot narrow still ends
            return (
                text + f"\nRun NOT submitted yet: {broad} matcher(s) are too broad (figures "
                "above). Narrow them (test with count_spans) and call submit_findings again "
                "with those findings under the same titles, or with no findings to end the "
                "run as it is.",
                True,
            )
        self.done = True
        return text + "\nRun submitted.", False

    async def _verify_draft(self, draft: Any, *, draft_id: str | None = None) -> Finding:
        s = self.state
        tools = s.tools
        if tools is None:
            raise EngineError("findings were submitted before the trace store was open")

        def check() -> Finding:
            finding = verify(tools.store, draft, s.run_id, draft_id, adoptable=s.adoptable)
            finding = check_harness_fields(tools.store, tools.repo, finding, draft)
            status = status_of(finding.status_reasons)  # the code refs' reasons count too
            return finding.model_copy(
                update={"status": status, "verified": status == FindingStatus.verified}
            )

        finding = await anyio.to_thread.run_sync(check)
        if draft.adopt and draft.adopt.strip() in s.adoptable:
            s.adopted.add(draft.adopt.strip())
        return finding

    async def _verify_and_accept(self, draft: Any) -> Finding:
        """Verify a draft against the store (ids, excerpts, matcher, prevalence) and record
        it."""
        finding = await self._verify_draft(draft)
        return self.state.accept(finding, self.agent_id, self.parent_id)

    async def _record(self, items: list[Any]) -> tuple[str, int, list[Finding]]:
        """Accept each finding that parses (verified, with its status) and list each one
        rejected with its reasons. Returns the text for the model, how many were accepted
        and the findings."""
        drafts, rejected = parse_drafts(items)
        self.state.rejected_drafts += len(rejected)
        lines = []
        findings = []
        for draft in drafts:
            finding = await self._verify_and_accept(draft)
            findings.append(finding)
            lines.append(_finding_line(finding))
        text = f"recorded {len(drafts)} of {len(items)}:\n" + "\n".join(lines)
        if rejected:
            text += "\nrejected (not recorded):\n" + "\n".join("- " + r.line() for r in rejected)
        return text, len(drafts), findings


def _too_broad(finding: Finding) -> bool:
    codes = {r.code for r in finding.status_reasons}
    return bool(codes & {"matcher_not_discriminating", "matcher_too_broad"})


def _finding_line(finding: Finding) -> str:
    """A finding as the model reads it back: status, prevalence, and what to fix."""
    p = finding.prevalence
    prevalence = (
        f"{p.traces_matched}/{p.traces_in_scope} traces ({p.rate:.0%}), {p.spans_matched} spans"
        if p
        else "n/a"
    )
    line = f"- {finding.id} {finding.title!r}: status={finding.status}, prevalence {prevalence}"
    if finding.first_seen is not None and finding.last_seen is not None:
        line += (
            f", first seen {finding.first_seen.isoformat(timespec='seconds')}, "
            f"last seen {finding.last_seen.isoformat(timespec='seconds')}"
        )
    if finding.code_refs or finding.suspect_commits:
        refs = [f"{c.path}:{c.start_line}-{c.end_line}" for c in finding.code_refs]
        refs += [f"commit {c.sha[:12]}" for c in finding.suspect_commits]
        line += "; verified refs: " + ", ".join(refs)
    if finding.status_reasons:
        line += "; " + "; ".join(
            f"[{r.code}] {clip(r.detail, 400)[0]}" for r in finding.status_reasons
        )
    codes = {r.code for r in finding.status_reasons}
    if codes & {"matcher_not_discriminating", "matcher_too_broad"}:
        line += ". Narrow the matcher (count_spans to test it) and re-add under the same title."
    elif finding.status != FindingStatus.verified:
        line += ". Fix what is listed and re-add under the same title to replace it."
    return line


def _bad_ids(finding: Finding) -> bool:
    codes = {r.code for r in finding.status_reasons}
    return bool(
        codes
        & {"unknown_trace", "unknown_span", "span_in_other_trace", "excerpt_not_found",
           "no_evidence"}
    )  # fmt: skip


def _new_draft_id() -> str:
    return "d_" + new_finding_id()[2:]


def result_summary(name: str, text: str) -> str:
    """A one-line, human summary of a tool result for events (the CLI shows it)."""
    first = text.split("\n", 1)[0]
    data = json_object(first) if first.startswith("{") else None
    if data is None:
        return first
    if name == "get_overview" and "traces" in data:
        return (
            f"{data.get('traces')} traces, {data.get('spans')} spans, "
            f"{data.get('error_spans')} error spans, "
            f"{len(data.get('error_signatures') or [])} error signatures"
        )
    if name == "count_spans" and "spans" in data:
        return f"{data['spans']} spans in {data.get('traces')}/{data.get('traces_in_scope')} traces"
    if "spans_matched" in data:
        return f"{data.get('returned')} matches shown, {data['spans_matched']} spans matched"
    if "total" in data and "returned" in data:
        return f"{data['returned']} of {data['total']} shown"
    if "too_large_to_show" in data:
        return f"summary only: {data['too_large_to_show']}"
    return first


def _findings_from_calls(calls: list[ToolCall]) -> str:
    """A model that answers the forced final with a findings tool call anyway: use it."""
    for call in calls:
        if call.name in ("submit_findings", "add_findings"):
            return call.arguments or ""
    return ""


def _loads_obj(text: str) -> Any:
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        raise ValueError("no JSON object")
    return json.loads(text[start : end + 1])
