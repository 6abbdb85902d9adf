"""The simulated agent harness: one call to :func:`simulate` is one agent run (one trace).

The run is format-neutral (a list of :class:`SimSpan`); the writers turn it into HALO
JSONL, OTLP or Agents SDK lines. A run: root agent span, optional input guardrail,
several LLM turns each followed by tool calls, sometimes a hand-off to a sub-agent, and a
final answer. Planted failure modes change the run in the ways described in
:mod:`halo_mcp.synth.failures`; a run with no mode has no error span at all.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import orjson

from halo_mcp.synth import content

MAX_TURNS = 20
MS = 1_000_000


@dataclass(frozen=True)
class AgentSpec:
    name: str
    service: str
    model: str
    tools: tuple[str, ...]
    sub_agent: str
    sub_model: str
    sub_tools: tuple[str, ...]
    questions: tuple[str, ...]
    weight: float


AGENTS: tuple[AgentSpec, ...] = (
    AgentSpec(
        name="support-agent",
        service="support-bot",
        model="gpt-5.4-mini",
        tools=("search_docs", "read_file", "run_sql", "http_get", "create_ticket"),
        sub_agent="billing-specialist",
        sub_model="gpt-5.4-mini",
        sub_tools=("run_sql", "search_docs"),
        questions=(
            "Why was customer {n} charged twice for order {m}?",
            "Can you check the refund status of invoice INV-{n}?",
            "A user says the {w} page shows the wrong plan since {m} days, what happened?",
            "Summarize the open tickets about {w} for account {n}.",
        ),
        weight=0.45,
    ),
    AgentSpec(
        name="coder-agent",
        service="code-assistant",
        model="claude-sonnet-4.5",
        tools=("read_file", "write_file", "search_docs", "run_tests", "http_get"),
        sub_agent="test-runner",
        sub_model="claude-haiku-4.5",
        sub_tools=("run_tests", "read_file"),
        questions=(
            "Fix the failing test in the {w} module (issue #{n}).",
            "Add input validation to the {w} handler and update the tests.",
            "Why does the {w} job time out after {m} seconds? Propose a patch.",
            "Refactor load_{w} so it streams rows instead of loading {n} at once.",
        ),
        weight=0.30,
    ),
    AgentSpec(
        name="research-agent",
        service="research-service",
        model="gpt-5.4",
        tools=("search_docs", "http_get", "read_file", "run_sql"),
        sub_agent="web-researcher",
        sub_model="gpt-5.4-mini",
        sub_tools=("http_get", "search_docs"),
        questions=(
            "Compare Q{q} revenue growth across regions and explain the {w} trend.",
            "Write a brief on {w} pricing changes over the last {m} months.",
            "What drove the drop in {w} usage in week {q}? Cite sources.",
            "Build a summary table of the top {m} {w} accounts by revenue.",
        ),
        weight=0.25,
    ),
)
_AGENT_WEIGHTS = [agent.weight for agent in AGENTS]
_HOSTS = ("inventory.internal", "billing-api.internal", "api.partner-data.com")


@dataclass(slots=True)
class SimSpan:
    """One span of a simulated run, independent of the output format."""

    kind: str  # agent | llm | tool | guardrail | handoff
    name: str  # agent name, model, tool name, guardrail name or target agent
    span_id: str
    parent_id: str | None
    start_ns: int
    end_ns: int
    agent: str
    error: str | None = None  # "Type: message"
    error_type: str | None = None
    model: str | None = None
    provider: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    messages: list[dict[str, str]] | None = None  # LLM input
    output_text: str | None = None  # LLM text, tool result, agent answer
    tool_calls: list[dict[str, str]] | None = None  # LLM output: id, name, arguments
    input_text: str | None = None  # tool arguments (JSON) or agent input
    call_id: str | None = None


@dataclass(slots=True)
class SimTrace:
    trace_id: str
    session_id: str
    user_id: str
    service: str
    agent: AgentSpec
    modes: frozenset[str]
    spans: list[SimSpan] = field(default_factory=list)


def _span_id(rng: random.Random) -> str:
    return f"{rng.getrandbits(64):016x}"


class _Run:
    """State of one run being simulated: the clock, the spans, the arguments used."""

    def __init__(self, rng: random.Random, trace: SimTrace, start_ns: int, tiny: bool) -> None:
        self.rng = rng
        self.trace = trace
        self.t = start_ns
        self.tiny = tiny
        self.used_args: set[str] = set()

    # -- primitives ---------------------------------------------------------------------

    def add(self, span: SimSpan) -> SimSpan:
        self.trace.spans.append(span)
        return span

    def gap(self, low_ms: float = 1, high_ms: float = 25) -> None:
        self.t += int(self.rng.uniform(low_ms, high_ms) * MS)

    def llm(
        self,
        agent: _Agent,
        *,
        text: str | None = None,
        tool_calls: list[dict[str, str]] | None = None,
        error: tuple[str, str] | None = None,
    ) -> SimSpan:
        rng = self.rng
        if error is not None:
            duration = int(rng.uniform(40, 900) * MS)
            out_tokens = 0
        else:
            out_chars = len(text or "") + sum(len(c["arguments"]) + 20 for c in tool_calls or ())
            out_tokens = max(8, out_chars // 4 + rng.randint(0, 40))
            duration = int((rng.uniform(250, 900) + out_tokens * rng.uniform(8, 20)) * MS)
        span = SimSpan(
            kind="llm",
            name=agent.model,
            span_id=_span_id(rng),
            parent_id=agent.span_id,
            start_ns=self.t,
            end_ns=self.t + duration,
            agent=agent.name,
            model=agent.model,
            provider=agent.provider,
            input_tokens=0 if error else agent.tokens,
            output_tokens=out_tokens,
            messages=agent.messages(),
            output_text=None if error else text,
            tool_calls=None if error else tool_calls,
        )
        if error is not None:
            span.error_type, span.error = error
        self.t = span.end_ns
        return self.add(span)

    def tool(
        self,
        agent: _Agent,
        name: str,
        args: str,
        call_id: str,
        *,
        result: str | None = None,
        error: tuple[str, str] | None = None,
        duration_ms: float | None = None,
    ) -> SimSpan:
        rng = self.rng
        if duration_ms is None:
            duration_ms = rng.lognormvariate(4.5, 1.0)  # ~90 ms median
        span = SimSpan(
            kind="tool",
            name=name,
            span_id=_span_id(rng),
            parent_id=agent.span_id,
            start_ns=self.t,
            end_ns=self.t + int(duration_ms * MS),
            agent=agent.name,
            input_text=args,
            output_text=None if error else result,
            call_id=call_id,
        )
        if error is not None:
            span.error_type, span.error = error
        self.t = span.end_ns
        return self.add(span)

    # -- content ------------------------------------------------------------------------

    def call_id(self) -> str:
        return f"call_{self.rng.getrandbits(96):024x}"

    def fresh_args(self, tool: str) -> str:
        """Arguments for a normal (succeeding) call, never repeated within the run."""
        for _ in range(20):
            args = self._args(tool)
            if args not in self.used_args:
                self.used_args.add(args)
                return args
        args = orjson.dumps({**orjson.loads(args), "page": len(self.used_args)}).decode()
        self.used_args.add(args)
        return args

    def _args(self, tool: str) -> str:
        rng = self.rng
        if tool == "search_docs":
            value = {"query": content.words(rng, rng.randint(2, 5)), "top_k": rng.choice((3, 5))}
        elif tool == "read_file":
            if rng.random() < 0.5:
                path = f"/data/{content.file_word(rng)}_{rng.randint(1, 400)}.csv"
            else:
                path = f"/workspace/src/{content.file_word(rng)}/{content.file_word(rng)}.py"
            value = {"path": path}
        elif tool == "write_file":
            path = f"/workspace/src/{content.file_word(rng)}/{content.file_word(rng)}.py"
            value = {"path": path, "content": content.excerpt(rng, content.CODE, 120)}
        elif tool == "run_sql":
            table = content.file_word(rng)
            value = {
                "query": f"SELECT * FROM {table} WHERE account_id = {rng.randint(1, 99999)} "
                f"ORDER BY created_at DESC LIMIT {rng.choice((10, 50, 100))}"
            }
        elif tool == "http_get":
            value = {
                "url": f"https://{rng.choice(_HOSTS)}/v1/{content.file_word(rng)}/"
                f"{rng.randint(1000, 999999)}"
            }
        elif tool == "run_tests":
            value = {"path": f"tests/test_{content.file_word(rng)}.py", "verbose": False}
        else:  # create_ticket
            value = {"title": content.words(rng, 5), "priority": rng.choice(("p2", "p3"))}
        return orjson.dumps(value).decode()

    def result(self, tool: str) -> str:
        rng = self.rng
        if self.tiny:
            return f"ok: {content.words(rng, rng.randint(2, 6))}"
        size = content.tool_result_size(rng)
        if tool == "read_file":
            pool = content.CSV if rng.random() < 0.5 else content.CODE
            return content.excerpt(rng, pool, size)
        if tool in ("run_sql", "http_get"):
            return "[" + content.excerpt(rng, content.RECORDS, size) + "]"
        if tool == "run_tests":
            passed = rng.randint(5, 300)
            return f"{passed} passed in {rng.uniform(0.5, 40):.2f}s\n" + content.excerpt(
                rng, content.CODE, min(size, 4000)
            )
        if tool == "write_file":
            return f"wrote {rng.randint(100, 20000)} bytes"
        if tool == "create_ticket":
            return orjson.dumps({"ticket": f"SUP-{rng.randint(1000, 99999)}"}).decode()
        return content.excerpt(rng, content.PROSE, size)

    def answer(self) -> str:
        rng = self.rng
        if self.tiny:
            return f"Done: {content.words(rng, rng.randint(4, 10))}."
        return "Here is what I found.\n\n" + content.excerpt(
            rng, content.PROSE, rng.randint(300, 1500)
        )


class _Agent:
    """An agent at work: who it is, its span, and the messages it sends each turn
    (system prompt, task, recent history)."""

    def __init__(
        self, run: _Run, name: str, model: str, tools: tuple[str, ...], task: str, span_id: str
    ) -> None:
        self.name = name
        self.model = model
        self.provider = "anthropic" if model.startswith("claude") else "openai"
        self.span_id = span_id
        self.tiny = run.tiny
        self.system = "" if run.tiny else content.system_prompt(name, tools)
        self.task = task
        self.history: list[dict[str, str]] = []
        self.tokens = 40 if run.tiny else len(self.system) // 4 + 60

    def messages(self) -> list[dict[str, str]]:
        if self.tiny:
            return [{"role": "user", "content": self.task}]
        head = [{"role": "system", "content": self.system}, {"role": "user", "content": self.task}]
        return head + self.history[-4:]

    def record(self, calls: list[dict[str, str]], results: list[str]) -> None:
        self.tokens += 30 + sum(len(r) for r in results) // 4
        if self.tiny:
            return
        names = ", ".join(f"{c['name']}({c['arguments']})" for c in calls)
        self.history.append({"role": "assistant", "content": f"Calling {names}"})
        for result in results:
            clipped = result if len(result) <= 600 else result[:600] + " [...]"
            self.history.append({"role": "tool", "content": clipped})


def _rate_limit_error(rng: random.Random) -> tuple[str, str]:
    limit = rng.choice((500, 1000, 5000))
    return (
        "RateLimitError",
        "RateLimitError: Error code: 429 - Rate limit reached for requests in organization "
        f"org-{rng.getrandbits(48):012x} on requests per min (RPM): Limit {limit}, Used "
        f"{limit}, Requested 1. Please try again in {rng.randint(20, 2000)}ms.",
    )


def _context_error(rng: random.Random, model: str) -> tuple[str, str]:
    limit = 200_000 if model.startswith("claude") else 128_000
    return (
        "BadRequestError",
        f"BadRequestError: Error code: 400 - This model's maximum context length is {limit} "
        f"tokens. However, your messages resulted in {limit + rng.randint(50, 30000)} "
        "tokens. Please reduce the length of the messages.",
    )


def _arg_error_path(rng: random.Random) -> str:
    choice = rng.randrange(4)
    if choice == 0:
        return f"/data/q{rng.randint(1, 4)} report.csv"
    if choice == 1:
        return f"/data/customer list {rng.randint(2019, 2026)}.xlsx"
    if choice == 2:
        return f"/workspace/docs/release notes v{rng.randint(1, 9)}.{rng.randint(0, 20)}.md"
    return f"/data/{content.file_word(rng)} {content.file_word(rng)} {rng.randint(1, 99)}.csv"


def _plan_steps(rng: random.Random, modes: frozenset[str], has_handoff: bool) -> list[str]:
    """The root agent's turns in order; each step is one LLM call of the root agent."""
    steps = ["tool"] * rng.randint(2, 6)
    if has_handoff:
        steps.insert(rng.randint(0, len(steps)), "handoff")
    if "tool_arg_error" in modes:
        at = rng.randint(0, len(steps))
        steps[at:at] = ["arg_error", "arg_fix"]
    if "retry_loop" in modes:
        at = rng.randint(0, len(steps))
        steps[at:at] = ["loop"] * rng.randint(4, 8)
    if "max_turns_giveup" in modes:
        while len(steps) < MAX_TURNS:
            steps.insert(rng.randint(0, len(steps)), "tool")
        return steps[:MAX_TURNS]
    return [*steps, "final"]


def pick_agent(rng: random.Random) -> AgentSpec:
    return rng.choices(AGENTS, weights=_AGENT_WEIGHTS)[0]


def simulate(
    rng: random.Random,
    spec: AgentSpec,
    trace_id: str,
    session_id: str,
    user_id: str,
    start_ns: int,
    modes: frozenset[str],
    *,
    tiny: bool,
) -> SimTrace:
    """Simulate one run of the agent `spec` with the given planted failure modes."""
    trace = SimTrace(trace_id, session_id, user_id, spec.service, spec, modes)
    run = _Run(rng, trace, start_ns, tiny)
    task = rng.choice(spec.questions).format(
        n=rng.randint(1000, 99999),
        m=rng.randint(2, 30),
        q=rng.randint(1, 4),
        w=content.words(rng, 1),
    )
    root = run.add(
        SimSpan(
            "agent", spec.name, _span_id(rng), None, start_ns, start_ns, spec.name, input_text=task
        )
    )
    run.gap(2, 15)
    if spec.name == "support-agent" and rng.random() < 0.4:
        guard = run.add(
            SimSpan("guardrail", "pii_check", _span_id(rng), root.span_id, run.t, 0, spec.name)
        )
        guard.input_text = task
        guard.output_text = "passed"
        run.t += int(rng.uniform(3, 40) * MS)
        guard.end_ns = run.t
        run.gap()

    steps = _plan_steps(rng, modes, has_handoff=rng.random() < 0.15)
    rate_limited_at = rng.randrange(len(steps)) if "rate_limit_burst" in modes else -1
    overflow_at = rng.randrange(len(steps)) if "context_overflow" in modes else -1
    agent = _Agent(run, spec.name, spec.model, spec.tools, task, root.span_id)
    loop_call: tuple[str, tuple[str, str], float] | None = None  # args, error, timeout s
    bad_path = ""
    final_text: str | None = None

    for index, step in enumerate(steps):
        if index == rate_limited_at:
            for _ in range(rng.randint(1, 3)):
                run.llm(agent, error=_rate_limit_error(rng))
                run.gap(200, 4000)  # backoff before the retry
        if index == overflow_at:
            agent.tokens += 140_000
            run.llm(agent, error=_context_error(rng, spec.model))
            agent.tokens = agent.tokens // 4  # the harness trims the history
            agent.history = agent.history[-2:]
            run.gap(5, 50)

        if step == "final":
            final_text = run.answer()
            run.llm(agent, text=final_text)
            continue
        if step == "handoff":
            _handoff(run, spec, agent)
            continue

        # A tool-using turn: decide the calls, run the LLM, then the tools.
        calls: list[tuple[str, str, tuple[str, str] | None, str | None]] = []
        if step == "arg_error":
            bad_path = _arg_error_path(rng)
            not_found = (
                "FileNotFoundError",
                f"FileNotFoundError: [Errno 2] No such file or directory: '{bad_path}'",
            )
            calls.append(("read_file", orjson.dumps({"path": bad_path}).decode(), not_found, None))
        elif step == "arg_fix":
            fixed = orjson.dumps({"path": bad_path.replace(" ", "_")}).decode()
            run.used_args.add(fixed)
            calls.append(("read_file", fixed, None, run.result("read_file")))
        elif step == "loop":
            if loop_call is None:
                host, timeout = rng.choice(_HOSTS), rng.choice((10, 30, 60))
                url = f"https://{host}/v1/orders/{rng.randint(10000, 99999)}?expand=items"
                message = (
                    f"ReadTimeout: HTTPSConnectionPool(host='{host}', port=443): Read timed "
                    f"out. (read timeout={timeout})"
                )
                loop_call = (orjson.dumps({"url": url}).decode(), ("ReadTimeout", message), timeout)
            calls.append(("http_get", loop_call[0], loop_call[1], None))
        else:
            count = 2 if rng.random() < 0.2 else 1
            for tool in rng.sample(spec.tools, count):
                calls.append((tool, run.fresh_args(tool), None, run.result(tool)))

        call_specs = [{"id": run.call_id(), "name": c[0], "arguments": c[1]} for c in calls]
        thought = "" if run.tiny else f"I will use {calls[0][0]} to {content.words(rng, 6)}."
        run.llm(agent, text=thought, tool_calls=call_specs)
        run.gap()
        results: list[str] = []
        for (tool, args, error, result), call in zip(calls, call_specs, strict=False):
            duration = None
            if error is not None and loop_call is not None and tool == "http_get":
                duration = loop_call[2] * 1000 + rng.uniform(1, 90)  # waited for the timeout
            run.tool(
                agent, tool, args, call["id"], result=result, error=error, duration_ms=duration
            )
            results.append(error[1] if error else result or "")
            run.gap(0.2, 3)
        agent.record(call_specs, results)
        run.gap()

    run.gap(1, 10)
    root.end_ns = run.t
    root.output_text = final_text
    if "max_turns_giveup" in modes:
        root.error_type = "MaxTurnsExceeded"
        root.error = f"MaxTurnsExceeded: agent stopped after {MAX_TURNS} turns"
    return trace


def _handoff(run: _Run, spec: AgentSpec, parent: _Agent) -> None:
    """The root agent hands a sub-task to its sub-agent, which runs 1-2 tool turns."""
    rng = run.rng
    call = {"id": run.call_id(), "name": f"transfer_to_{spec.sub_agent.replace('-', '_')}"}
    call["arguments"] = orjson.dumps({"task": content.words(rng, 8)}).decode()
    run.llm(parent, text="", tool_calls=[call])
    run.gap()
    handoff = run.add(
        SimSpan("handoff", spec.sub_agent, _span_id(rng), parent.span_id, run.t, 0, parent.name)
    )
    run.t += int(rng.uniform(0.1, 1) * MS)
    handoff.end_ns = run.t
    sub_span = run.add(
        SimSpan("agent", spec.sub_agent, _span_id(rng), parent.span_id, run.t, 0, spec.sub_agent)
    )
    sub_span.input_text = call["arguments"]
    sub = _Agent(
        run, spec.sub_agent, spec.sub_model, spec.sub_tools, call["arguments"], sub_span.span_id
    )
    run.gap()
    for _ in range(rng.randint(1, 2)):
        tool = rng.choice(spec.sub_tools)
        args, result = run.fresh_args(tool), run.result(tool)
        calls = [{"id": run.call_id(), "name": tool, "arguments": args}]
        run.llm(sub, text="", tool_calls=calls)
        run.gap()
        run.tool(sub, tool, args, calls[0]["id"], result=result)
        sub.record(calls, [result])
        run.gap()
    summary = run.answer()
    run.llm(sub, text=summary)
    run.gap(1, 5)
    sub_span.end_ns = run.t
    sub_span.output_text = summary
    parent.record([call], [summary])
    run.gap()
