"""The planted failure modes: which runs fail how, and what the scripted model says in each.

Every framework runs the same small agent: one tool, `read_file(path)`, and a user asking
for a file. Each run plays one mode; the model's replies for it come from the fake
OpenAI-compatible server (tests/fakes/openai_server.py), faults included.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from tests.fakes.openai_server import (
    Reply,
    Step,
    context_length_error,
    delay,
    reply,
    status,
    tool_call,
)

#: The run's step/turn/request cap every framework is given.
TURN_LIMIT = 5
#: Client timeout (seconds); the `timeout` mode's reply comes later than that.
CLIENT_TIMEOUT = 1.0
SLOW_REPLY = 2.5
MODEL = "gpt-4o-mini"
PROMPT = "Read the file I need and tell me what it says."
TOOL_DESCRIPTION = "Read a text file and return its contents."

#: Mode -> runs planted, and the words a triage title for it must hold (one of them).
PLANTED: dict[str, int] = {
    "ok": 12,
    "tool_error": 3,
    "rate_limit": 2,
    "context_overflow": 2,
    "timeout": 2,
    "turn_limit": 2,
    "loop": 2,
}
TITLE_WORDS: dict[str, list[str]] = {
    "tool_error": ["FileNotFoundError", "No such file", "ENOENT"],
    "rate_limit": ["RateLimit", "429", "rate limit"],
    "context_overflow": ["context"],
    "timeout": ["Timeout", "timed out"],
    "turn_limit": [
        "MaxTurnsExceeded",
        "UsageLimitExceeded",
        "GraphRecursionError",
        "LlmCallsLimitExceeded",
        "turns",
        "turn limit",
    ],
    "loop": ["read_file"],
}
CATEGORY: dict[str, str] = {
    "tool_error": "tool-error",
    "rate_limit": "rate-limit",
    "context_overflow": "context-overflow",
    "timeout": "timeout",
    "turn_limit": "turn-limit",
    "loop": "loop",
}


@dataclass(frozen=True)
class PlannedRun:
    mode: str
    number: int  # 0-based, within its mode

    @property
    def streamed(self) -> bool:
        """Every other run of a mode streams (for frameworks that can)."""
        return self.number % 2 == 1


def runs(modes: dict[str, int] | None = None) -> list[PlannedRun]:
    """The runs, modes interleaved (round robin) so no mode comes in one block."""
    counts = dict(modes or PLANTED)
    out: list[PlannedRun] = []
    for number in range(max(counts.values())):
        out.extend(PlannedRun(mode, number) for mode, count in counts.items() if number < count)
    return out


def _call(path: str) -> Step:
    return tool_call("read_file", {"path": path}, id=f"call_{uuid.uuid4().hex[:20]}")


def steps(run: PlannedRun, final_tool: str | None = None) -> list[Step]:
    """The scripted model replies for one run; with `final_tool`, answers are calls of that
    tool (smolagents' `final_answer`) instead of plain text."""
    script = _steps(run)
    if final_tool is None:
        return script
    return [
        tool_call(final_tool, {"answer": step.content})
        if isinstance(step, Reply) and step.content and not step.tool_calls
        else step
        for step in script
    ]


def _steps(run: PlannedRun) -> list[Step]:
    n = run.number
    if run.mode == "ok":
        return [_call(f"/data/notes-{n}.txt"), reply(f"The notes say: meeting at {n + 9} am.")]
    if run.mode == "tool_error":
        return [_call(f"/data/missing-{n}.txt"), reply("That file does not exist.")]
    if run.mode == "rate_limit":
        org = uuid.uuid4().hex[:12]
        message = (
            f"Rate limit reached for {MODEL} in organization org-{org} on requests per min "
            f"(RPM): Limit 3, Used 3, Requested 1. Please try again in {20 + n}s."
        )
        return [status(429, message, error_code="rate_limit_exceeded")]
    if run.mode == "context_overflow":
        return [context_length_error(128000, 200000 + 1000 * n)]
    if run.mode == "timeout":
        return [delay(SLOW_REPLY, reply("too late"))]
    if run.mode == "turn_limit":
        return [_call(f"/data/part-{n}-{k}.txt") for k in range(TURN_LIMIT + 3)]
    if run.mode == "loop":
        return [_call("/data/report.txt") for _ in range(3)] + [reply("The report is empty.")]
    raise ValueError(f"unknown mode {run.mode!r}")


def read_file(path: str) -> str:
    """The tool every agent has: missing files raise FileNotFoundError like open() does."""
    if "missing" in path:
        raise FileNotFoundError(2, "No such file or directory", path)
    return f"contents of {path}: all good"


def anthropic_steps(run: PlannedRun) -> list[Step]:
    """The run's replies with the faults Anthropic's API returns instead of OpenAI's
    (served as the Messages API by the fake server)."""
    from tests.fakes.anthropic_messages import anthropic_context_overflow, anthropic_rate_limit

    if run.mode == "rate_limit":
        return [anthropic_rate_limit()]
    if run.mode == "context_overflow":
        return [anthropic_context_overflow(200000 + 1000 * (run.number + 1))]
    return steps(run)
