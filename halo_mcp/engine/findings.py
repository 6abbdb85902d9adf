"""The engine's side of findings: ordering, and reading findings out of a final answer.

Drafts and their parsing are in halo_mcp.findings.drafts; verification (ids, excerpts,
matcher, status) in halo_mcp.findings.verify.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from pydantic import Field

from halo_mcp.findings import drafts
from halo_mcp.findings.drafts import EvidenceDraft, RejectedDraft
from halo_mcp.findings.models import Finding, Severity
from halo_mcp.findings.verify import verify_draft
from halo_mcp.harness.verify import CodeRefDraft, SuspectCommitDraft

_SEVERITY_ORDER = {s: i for i, s in enumerate(Severity)}

#: Verification lives in halo_mcp.findings.verify; the engine's name for it.
verify = verify_draft
__all__ = [
    "EvidenceDraft",
    "FindingDraft",
    "LenientDraft",
    "RejectedDraft",
    "parse_drafts",
    "parse_final_json",
    "sort_findings",
    "verify",
]


class FindingDraft(drafts.FindingDraft):
    """A finding as the engine's agents submit it: the shared draft, plus the harness
    code and commits behind it (checked against the repository by harness.verify)."""

    code_refs: list[CodeRefDraft] = Field(
        default_factory=list,
        description="Harness code causing it (when the run has a repository): path, lines "
        "and the exact excerpt, as read with repo_read_file. Checked against HEAD.",
    )
    suspect_commits: list[SuspectCommitDraft] = Field(
        default_factory=list,
        description="Commits suspected of introducing it (sha from git_log/git_blame).",
    )


class LenientDraft(FindingDraft):
    """Parsing form: a bad matcher must not throw the finding away, only mark it; code
    refs and commits are checked one by one (harness.verify)."""

    matcher: Any = None
    code_refs: Any = None
    suspect_commits: Any = None


def parse_drafts(items: Iterable[Any]) -> tuple[list[LenientDraft], list[RejectedDraft]]:
    """The drafts that parse, and each one that does not with its reasons."""
    return drafts.parse_drafts(items, LenientDraft)


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    """Most severe first; within a severity, most prevalent first."""
    return sorted(
        findings,
        key=lambda f: (
            _SEVERITY_ORDER.get(f.severity, 99),
            -(f.prevalence.rate if f.prevalence else -1.0),
            -(f.prevalence.spans_matched if f.prevalence else 0),
        ),
    )


def parse_final_json(text: str) -> list[Any] | None:
    """The findings list out of a forced final answer: JSON, maybe fenced or with prose."""
    if not text:
        return None
    candidates = [text.strip()]
    fenced = re.findall(r"```(?:json)?\s*(.*?)```", text, flags=re.S)
    candidates.extend(fenced)
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    start, end = text.find("["), text.rfind("]")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    for candidate in candidates:
        try:
            data = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(data, dict) and isinstance(data.get("findings"), list):
            return data["findings"]
        if isinstance(data, list):
            return data
    return None
