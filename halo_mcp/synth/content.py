"""Text the simulated agents read and write, precomputed once so generation stays fast.

Large text pools are built from a fixed seed at import; spans take slices of them. That
keeps output deterministic (the pools never depend on the user's seed) and cheap: a
100 KB tool result is one string slice, not 100 KB of random draws.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable

_WORDS = str.split(
    "the agent customer order invoice refund account shipping policy report data query "
    "result table user request error retry timeout token model prompt answer context "
    "document section summary revenue quarter growth metric latency cache index file "
    "function module config deploy release version test failure success status update "
    "review analysis source reference market product feature pricing plan subscription "
    "billing payment ticket priority support escalation region server database schema "
    "column value record batch stream event log message channel team project budget "
    "forecast estimate risk compliance audit security access permission role service "
    "endpoint response payload header format parser buffer memory thread process queue "
    "worker job schedule window limit quota usage cost trend chart insight finding issue "
    "is are was were be been has have had will would can could should may might must and "
    "or but if then else when while for with without from into onto over under a an this "
    "that these those each every some any all most many few more less"
)

_FILE_WORDS = str.split(
    "report summary notes export backlog roadmap metrics customers invoices orders "
    "pipeline config settings schema migration handler client server utils models views"
)


def _fill(n_chars: int, piece: Callable[[], str], header: str = "") -> str:
    """`header`, then pieces drawn one after another until there are `n_chars` characters."""
    parts = [header]
    size = len(header)
    while size < n_chars:
        part = piece()
        parts.append(part)
        size += len(part)
    return "".join(parts)


def _prose(rng: random.Random, n_chars: int) -> str:
    def sentence() -> str:
        text = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(6, 18)))
        text = text[0].upper() + text[1:] + ". "
        return text + "\n\n" if rng.random() < 0.12 else text

    return _fill(n_chars, sentence)


def _code(rng: random.Random, n_chars: int) -> str:
    def block() -> str:
        name = f"{rng.choice(_FILE_WORDS)}_{rng.choice(_WORDS)}"
        arg = rng.choice(_WORDS)
        return (
            f"def {name}({arg}, limit={rng.randint(1, 500)}):\n"
            f'    """{rng.choice(_WORDS).capitalize()} the {arg} {rng.choice(_WORDS)}."""\n'
            f"    rows = load_{rng.choice(_FILE_WORDS)}({arg})\n"
            f"    if len(rows) > limit:\n"
            f"        raise ValueError(f'too many rows: {{len(rows)}}')\n"
            f"    return [r for r in rows if r.{rng.choice(_WORDS)} is not None]\n\n"
        )

    return _fill(n_chars, block)


def _csv(rng: random.Random, n_chars: int) -> str:
    def row() -> str:
        cells = (  # drawn left to right: the pool stays the same for the same seed
            rng.randint(10000, 99999),
            f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            rng.choice(("emea", "amer", "apac")),
            rng.choice(_FILE_WORDS),
            rng.randint(1, 900),
            f"{rng.randint(100, 99999)}.{rng.randint(0, 99):02d}",
            rng.choice(("paid", "open", "refunded", "overdue")),
        )
        return ",".join(map(str, cells)) + "\n"

    return _fill(n_chars, row, header="id,date,region,product,units,revenue,status\n")


def _json_records(rng: random.Random, n_chars: int) -> str:
    def row() -> str:
        return (
            f'{{"id": {rng.randint(1, 10**6)}, "status": "{rng.choice(("ok", "pending"))}", '
            f'"name": "{rng.choice(_WORDS)} {rng.choice(_FILE_WORDS)}", '
            f'"amount": {rng.randint(1, 10**5) / 100}, "tags": ["{rng.choice(_WORDS)}"]}},\n'
        )

    return _fill(n_chars, row)


_POOL_CHARS = 360_000
_pool_rng = random.Random(20261124)
PROSE = _prose(_pool_rng, _POOL_CHARS)
CODE = _code(_pool_rng, _POOL_CHARS)
CSV = _csv(_pool_rng, _POOL_CHARS)
RECORDS = _json_records(_pool_rng, _POOL_CHARS)

MAX_TOOL_RESULT = 100_000
MIN_TOOL_RESULT = 200


def excerpt(rng: random.Random, pool: str, n_chars: int) -> str:
    """About `n_chars` characters of `pool` from a random line (or word) boundary."""
    n_chars = min(n_chars, len(pool) // 2)
    start = rng.randrange(len(pool) - n_chars - 4096)
    boundary = pool.find("\n" if pool is not PROSE else ". ", start, start + 4096)
    start = start if boundary < 0 else boundary + (1 if pool is not PROSE else 2)
    return pool[start : start + n_chars]


def tool_result_size(rng: random.Random) -> int:
    """Heavy-tailed result size: median ~1.3 KB, a long tail up to 100 KB."""
    size = int(math.exp(rng.gauss(7.15, 1.35)))
    return max(MIN_TOOL_RESULT, min(MAX_TOOL_RESULT, size))


def system_prompt(agent: str, tools: tuple[str, ...]) -> str:
    """A stable ~1.5 KB system prompt per agent, like a real harness sends every turn."""
    rng = random.Random(f"system-{agent}")
    tool_lines = "\n".join(f"- {tool}: {excerpt(rng, PROSE, 90).strip()}" for tool in tools)
    return (
        f"You are {agent}, an assistant that completes the user's task with the tools below.\n"
        f"Rules: call one tool at a time when results depend on each other; never invent "
        f"file paths; stop and answer when you have enough information; you have at most "
        f"20 turns.\n\nTools:\n{tool_lines}\n\nGuidelines:\n{excerpt(rng, PROSE, 700)}"
    )


def words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(n))


def file_word(rng: random.Random) -> str:
    return rng.choice(_FILE_WORDS)


_second_cache: dict[int, str] = {}


def iso_ns(ns: int) -> str:
    """ISO-8601 UTC with nanoseconds, e.g. 2026-11-16T08:00:01.123456789Z (HALO format)."""
    seconds, frac = divmod(ns, 1_000_000_000)
    prefix = _second_cache.get(seconds)
    if prefix is None:
        if len(_second_cache) > 4096:
            _second_cache.clear()
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(seconds))
        _second_cache[seconds] = prefix
    return f"{prefix}{frac:09d}Z"


def iso_us(ns: int) -> str:
    """ISO-8601 with microseconds and +00:00, as the OpenAI Agents SDK writes `started_at`."""
    text = iso_ns(ns)
    return f"{text[:26]}+00:00"
