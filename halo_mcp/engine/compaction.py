"""Context compaction: summarize an agent's older turns so long runs do not overflow.

Kept verbatim: the system prompt, the task, and the last few turns (a turn = an assistant
message and the tool results answering it). Everything between becomes one message
written by the compaction model. If that model call fails, a mechanical digest (which
tools were called with which arguments) stands in, so compaction itself never kills a run.
"""

from __future__ import annotations

import logging
from typing import Any

from halo_mcp.engine.errors import ProviderError
from halo_mcp.engine.prompts import COMPACTION_PROMPT
from halo_mcp.engine.provider import ChatProvider
from halo_mcp.text import clip

log = logging.getLogger(__name__)

SUMMARY_HEADER = "[summary of earlier work, compacted to save context]\n"
#: Characters of the old conversation shown to the compaction model.
MAX_SUMMARY_INPUT_CHARS = 120_000
TOOL_RESULT_CHARS_IN_SUMMARY = 3_000
FORCED_TAIL_TOOL_CHARS = 2_000


def estimate_tokens(messages: list[dict[str, Any]]) -> int:
    """Rough token count (chars / 4): good enough to decide when to compact."""
    chars = 0
    for m in messages:
        content = m.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            chars += sum(len(str(p.get("text", ""))) for p in content if isinstance(p, dict))
        for call in m.get("tool_calls") or []:
            fn = call.get("function", {})
            chars += len(fn.get("name", "")) + len(fn.get("arguments", "") or "")
        chars += 16
    return chars // 4


def _tail_start(
    messages: list[dict[str, Any]], keep_turns: int, head: int, target_tokens: int | None
) -> int:
    """Index where the kept recent turns begin (an assistant message).

    With `target_tokens`, keeps as many recent turns as fit in it (at least one), so a
    compaction buys real room and does not have to run again on the next turn.
    """
    starts = [i for i in range(head, len(messages)) if messages[i].get("role") == "assistant"]
    if not starts:
        return len(messages)
    if target_tokens is not None:
        chosen = starts[-1]
        for start in reversed(starts[:-1]):
            if estimate_tokens(messages[start:]) > target_tokens:
                break
            chosen = start
        return chosen
    if len(starts) <= keep_turns:
        return head
    return starts[-keep_turns] if keep_turns > 0 else len(messages)


def render_excerpt(messages: list[dict[str, Any]]) -> str:
    """The old turns as plain text for the compaction model, bounded."""
    parts = []
    for m in messages:
        role = m.get("role", "?")
        content = m.get("content") or ""
        if not isinstance(content, str):
            content = str(content)
        if role == "tool":
            content = clip(content, TOOL_RESULT_CHARS_IN_SUMMARY)[0]
        line = f"{role}: {content}" if content else f"{role}:"
        for call in m.get("tool_calls") or []:
            fn = call.get("function", {})
            line += f"\n  -> {fn.get('name')}({clip(fn.get('arguments') or '', 600)[0]})"
        parts.append(line)
    text = "\n\n".join(parts)
    if len(text) > MAX_SUMMARY_INPUT_CHARS:
        # Keep the most recent part of the excerpt: the older start is least relevant.
        cut = len(text) - MAX_SUMMARY_INPUT_CHARS
        text = f"[first {cut} chars of older history omitted]\n" + text[cut:]
    return text


def mechanical_digest(messages: list[dict[str, Any]]) -> str:
    """A summary without a model: the calls made and the agent's own words, clipped."""
    lines = []
    for m in messages:
        if m.get("role") == "assistant":
            if m.get("content"):
                lines.append("- said: " + clip(str(m["content"]), 300)[0])
            for call in m.get("tool_calls") or []:
                fn = call.get("function", {})
                lines.append(
                    f"- called {fn.get('name')}({clip(fn.get('arguments') or '', 200)[0]})"
                )
    return "\n".join(lines[-200:]) or "(no earlier tool calls)"


async def compact(
    messages: list[dict[str, Any]],
    provider: ChatProvider,
    model: str,
    *,
    keep_turns: int = 2,
    target_tokens: int | None = None,
    head: int = 2,
    force: bool = False,
) -> list[dict[str, Any]] | None:
    """A compacted copy of `messages`, or None when there is nothing to compact.

    Keeps `keep_turns` recent turns, or as many as fit in `target_tokens` when given.
    With `force` (after a context-length error), keeps only the last turn and shortens
    its tool results too.
    """
    if force:
        keep_turns, target_tokens = 1, None
    start = _tail_start(messages, keep_turns, head, target_tokens)
    middle = messages[head:start]
    tail = [dict(m) for m in messages[start:]]
    if force:
        for m in tail:
            if m.get("role") == "tool" and isinstance(m.get("content"), str):
                m["content"] = clip(m["content"], FORCED_TAIL_TOOL_CHARS)[0]
    if not middle:
        if force and tail != messages[start:]:
            return messages[:head] + tail
        return None
    summary = await _summarize(middle, provider, model)
    note = {"role": "user", "content": SUMMARY_HEADER + summary}
    log.info("compacted %d messages into a summary of %d chars", len(middle), len(summary))
    return [*messages[:head], note, *tail]


async def _summarize(middle: list[dict[str, Any]], provider: Any, model: str) -> str:
    request = [
        {"role": "system", "content": COMPACTION_PROMPT},
        {"role": "user", "content": render_excerpt(middle)},
    ]
    try:
        completion = await provider.complete(request, model=model)
    except ProviderError as exc:
        log.warning("compaction model failed (%s); using a mechanical digest", exc)
        return mechanical_digest(middle)
    text = (completion.content or "").strip()
    return text or mechanical_digest(middle)
