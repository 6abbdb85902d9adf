"""The failure modes the generator can plant, their default rates, and their matchers.

Each mode's matcher is a :class:`halo_mcp.store.models.SpanFilter` (as a dict) that selects
exactly the spans the mode produced and nothing else, so a test can compare the store's
count for the matcher with the planted count in the manifest.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FailureMode:
    name: str
    description: str
    default_rate: float
    matcher: dict[str, Any]


FAILURE_MODES: tuple[FailureMode, ...] = (
    FailureMode(
        name="tool_arg_error",
        description=(
            "read_file is called with a path containing a space and fails with "
            "FileNotFoundError; the agent then retries with an underscored path that works."
        ),
        default_rate=0.12,
        matcher={"tool_name": "read_file", "errors_only": True},
    ),
    FailureMode(
        name="retry_loop",
        description=(
            "The agent calls http_get 4-8 times in a row with identical arguments, each "
            "call timing out, before giving up on it."
        ),
        default_rate=0.06,
        matcher={"tool_name": "http_get", "errors_only": True},
    ),
    FailureMode(
        name="max_turns_giveup",
        description=(
            "The run hits the 20-turn limit with no final answer; the root agent span ends "
            "with 'MaxTurnsExceeded: agent stopped after 20 turns'."
        ),
        default_rate=0.05,
        matcher={"kind": ["agent"], "errors_only": True, "text": "MaxTurnsExceeded"},
    ),
    FailureMode(
        name="rate_limit_burst",
        description=(
            "LLM calls fail with 429 'RateLimitError: Error code: 429 - Rate limit reached "
            "for requests' (then succeed on retry), clustered in a few time windows."
        ),
        default_rate=0.04,
        matcher={"kind": ["llm"], "errors_only": True, "text": "RateLimitError"},
    ),
    FailureMode(
        name="context_overflow",
        description=(
            "An LLM call fails with 400 'maximum context length' after a large tool result; "
            "the harness trims the history and the retry succeeds."
        ),
        default_rate=0.02,
        matcher={"kind": ["llm"], "errors_only": True, "text": "maximum context length"},
    ),
)

MODE_NAMES: tuple[str, ...] = tuple(mode.name for mode in FAILURE_MODES)
DEFAULT_FAILURE_RATES: dict[str, float] = {mode.name: mode.default_rate for mode in FAILURE_MODES}
NO_FAILURES: dict[str, float] = dict.fromkeys(MODE_NAMES, 0.0)


def resolve_rates(failure_rates: dict[str, float] | None) -> dict[str, float]:
    """Defaults overridden by `failure_rates`; unknown names and bad rates are refused."""
    rates = dict(DEFAULT_FAILURE_RATES)
    for name, rate in (failure_rates or {}).items():
        if name not in rates:
            raise ValueError(f"unknown failure mode {name!r}; choose from: {', '.join(MODE_NAMES)}")
        if not 0.0 <= float(rate) <= 1.0:
            raise ValueError(f"rate for {name} must be between 0 and 1, got {rate}")
        rates[name] = float(rate)
    return rates


class FailurePlanner:
    """Decides per trace which modes apply, from its own random stream.

    One draw per mode per trace, always in the same order, so changing one mode's rate
    (e.g. to 0 for a "fixed" release) leaves the other modes' decisions unchanged.
    Rate-limit bursts only land in a few windows of the trace sequence (three by
    default), with a higher in-window probability, so the overall rate is kept.
    """

    def __init__(self, seed: int, rates: dict[str, float], planned_traces: int) -> None:
        self._rng = random.Random(f"halo-synth-failures-{seed}")
        self._rates = rates
        self._period = max(1, math.ceil(planned_traces / 3))
        rate = rates["rate_limit_burst"]
        width = max(1, round(self._period * min(1.0, max(0.1, 1.5 * rate))))
        self._window_start = (self._period - width) // 2
        self._window_width = width
        self._in_window_rate = min(1.0, rate * self._period / width)

    def in_burst_window(self, index: int) -> bool:
        offset = index % self._period - self._window_start
        return 0 <= offset < self._window_width

    def modes_for(self, index: int) -> frozenset[str]:
        chosen: set[str] = set()
        for name in MODE_NAMES:
            draw = self._rng.random()
            rate = self._rates[name]
            if name == "rate_limit_burst":
                if self.in_burst_window(index) and draw < self._in_window_rate:
                    chosen.add(name)
            elif draw < rate:
                chosen.add(name)
        return frozenset(chosen)


#: The error type each mode gives its spans; every error span of a run comes from a mode.
ERROR_TYPE_MODE: dict[str, str] = {
    "FileNotFoundError": "tool_arg_error",
    "ReadTimeout": "retry_loop",
    "MaxTurnsExceeded": "max_turns_giveup",
    "RateLimitError": "rate_limit_burst",
    "BadRequestError": "context_overflow",
}
