"""A finding's code refs, suspect commits and first/last seen as markdown bullets (the
run report and `halo-mcp show` both print them; each adds its own heading)."""

from __future__ import annotations

from halo_mcp.findings.models import Finding
from halo_mcp.text import clip

EXCERPT_LINES = 12


def seen_line(finding: Finding) -> str | None:
    if finding.first_seen is None or finding.last_seen is None:
        return None
    first = finding.first_seen.isoformat(timespec="seconds")
    last = finding.last_seen.isoformat(timespec="seconds")
    return f"first seen {first}, last seen {last}"


def code_ref_bullets(finding: Finding) -> list[str]:
    """One bullet per verified code ref (path:start-end and the excerpt as a code block)."""
    lines: list[str] = []
    for ref in finding.code_refs:
        check = "verified at HEAD" if ref.verified else "not verified"
        lines.append(f"- `{ref.path}:{ref.start_line}-{ref.end_line}` ({check})")
        if ref.excerpt:
            body = ref.excerpt.splitlines()
            shown = [clip(x, 200)[0] for x in body[:EXCERPT_LINES]]
            if len(body) > EXCERPT_LINES:
                shown.append(f"… {len(body) - EXCERPT_LINES} more lines")
            lines += ["  ```", *(f"  {x}" for x in shown), "  ```"]
    return lines


def commit_bullets(finding: Finding) -> list[str]:
    return [
        f"- `{c.sha[:12]}` {clip(c.subject or '', 200)[0]}"
        + ("" if c.verified else " (not verified)")
        for c in finding.suspect_commits
    ]
