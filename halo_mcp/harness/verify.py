"""Checking a finding's code refs and suspect commits against the repository at HEAD.

The model proposes; the repository decides. A code ref must name a file that exists at
HEAD (in a git work tree: the committed file, else the file on disk) and lines within it;
its excerpt must occur in those lines (whitespace-insensitive). An excerpt found at other
lines of the same file moves the ref there, with a note. A suspect commit must resolve to
a commit of the repository; its full sha and real subject replace what the model wrote.
Whatever cannot be checked is dropped, with a StatusReason ('code_ref_dropped',
'commit_dropped') and a note.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from halo_mcp.findings.models import CodeRef, Finding, StatusReason, SuspectCommit
from halo_mcp.harness import git
from halo_mcp.harness.code import CodeError, text_of
from halo_mcp.harness.paths import HarnessPathError, Repository, relative_parts
from halo_mcp.store.api import TraceReader
from halo_mcp.store.errors import StoreError
from halo_mcp.text import clip

MAX_CODE_REFS = 10
MAX_SUSPECT_COMMITS = 5
MAX_REF_LINES = 60
EXCERPT_CHARS = 1500
#: Excerpts cited at the wrong lines are looked for elsewhere only in files this long.
MAX_RELOCATE_LINES = 20_000


class CodeRefDraft(BaseModel):
    """A code ref as the agent submits it (the schema the model sees)."""

    path: str = Field(description="Repository-relative path, e.g. 'agent/tools.py'.")
    start_line: int = Field(description="First line (1-based), as read_file numbers them.")
    end_line: int | None = Field(None, description="Last line; defaults to start_line.")
    excerpt: str | None = Field(
        None, description="The lines quoted exactly (checked against the file at HEAD)."
    )


class SuspectCommitDraft(BaseModel):
    sha: str = Field(description="Commit sha (full, or a unique prefix of 7+ chars).")
    subject: str | None = None


class HarnessCheck(BaseModel):
    """What survived verification, and why the rest did not."""

    code_refs: list[CodeRef] = []
    suspect_commits: list[SuspectCommit] = []
    reasons: list[StatusReason] = []
    notes: list[str] = []


def verify_harness_refs(
    repo: Repository | None, code_refs: Iterable[Any] | None, commits: Iterable[Any] | None
) -> HarnessCheck:
    """Check drafts (dicts or draft models) against `repo`; without a repository every
    ref and commit is dropped, saying so."""
    out = HarnessCheck()
    refs = list(code_refs or [])
    shas = list(commits or [])
    if repo is None:
        why = "cannot be checked: no repository was given to this run (pass --repo or repo_path)"
        for r in refs:
            _drop(out, "code_ref_dropped", f"code ref {_get(r, 'path')} {why}", [])
        for c in shas:
            _drop(out, "commit_dropped", f"suspect commit {_get(c, 'sha')} {why}", [])
        return out
    cache: dict[str, list[str] | str] = {}
    for raw in refs[:MAX_CODE_REFS]:
        _check_ref(repo, raw, cache, out)
    if len(refs) > MAX_CODE_REFS:
        out.notes.append(f"kept the first {MAX_CODE_REFS} of {len(refs)} code refs")
    for raw in shas[:MAX_SUSPECT_COMMITS]:
        _check_commit(repo, raw, out)
    if len(shas) > MAX_SUSPECT_COMMITS:
        out.notes.append(f"kept the first {MAX_SUSPECT_COMMITS} of {len(shas)} suspect commits")
    return out


def _check_ref(
    repo: Repository, raw: Any, cache: dict[str, list[str] | str], out: HarnessCheck
) -> None:
    try:
        draft = raw if isinstance(raw, CodeRefDraft) else CodeRefDraft.model_validate(raw)
    except ValidationError:
        _drop(
            out,
            "code_ref_dropped",
            f"code ref {clip(str(raw), 200)[0]} is not of the form "
            "{path, start_line, end_line, excerpt}",
            [],
        )
        return
    label = f"{draft.path}:{draft.start_line}"
    try:
        path = "/".join(relative_parts(draft.path))
    except HarnessPathError as exc:
        _drop(out, "code_ref_dropped", f"code ref {label}: {exc}", [label])
        return
    lines = _lines_at_head(repo, path, cache)
    if isinstance(lines, str):
        _drop(out, "code_ref_dropped", f"code ref {label}: {lines}", [label])
        return
    start = draft.start_line
    end = draft.end_line if draft.end_line is not None else start
    if start < 1 or end < start or end > len(lines):
        _drop(
            out,
            "code_ref_dropped",
            f"code ref {path}:{start}-{end}: the file has {len(lines)} lines at HEAD",
            [label],
        )
        return
    if end - start + 1 > MAX_REF_LINES:
        out.notes.append(f"code ref {path}:{start}-{end} cut to {MAX_REF_LINES} lines")
        end = start + MAX_REF_LINES - 1
    if draft.excerpt and draft.excerpt.strip():
        found = _find_excerpt(lines, draft.excerpt, start, end)
        if found is None:
            _drop(
                out,
                "code_ref_dropped",
                f"code ref {path}:{start}-{end}: the excerpt does not occur in the file at HEAD",
                [label],
            )
            return
        if found != (start, end) and not (found[0] >= start and found[1] <= end):
            out.notes.append(
                f"code ref {path}:{start}-{end} moved to lines {found[0]}-{found[1]}, "
                "where its excerpt is"
            )
            start, end = found
    excerpt = clip("\n".join(lines[start - 1 : end]), EXCERPT_CHARS)[0]
    out.code_refs.append(
        CodeRef(path=path, start_line=start, end_line=end, excerpt=excerpt, verified=True)
    )


def _lines_at_head(
    repo: Repository, path: str, cache: dict[str, list[str] | str]
) -> list[str] | str:
    """The file's lines at HEAD, or why it cannot be read."""
    if path in cache:
        return cache[path]
    result: list[str] | str
    try:
        if repo.is_git:
            result = git.file_at(repo, "HEAD", path).splitlines()
        else:
            text = text_of(repo, path, quiet=False)
            result = (text or "").splitlines()
    except git.GitError:
        result = "no such file at HEAD"
    except (CodeError, HarnessPathError) as exc:
        result = str(exc)
    cache[path] = result
    return result


def _squash(text: str) -> str:
    return " ".join(text.split())


def _find_excerpt(lines: list[str], excerpt: str, start: int, end: int) -> tuple[int, int] | None:
    """Where the excerpt is: within start..end if it is there, else the first place in
    the file (as a line range), else None. Whitespace-insensitive; a leading line-number
    gutter copied from read_file ('  12| ') is ignored."""
    wanted_lines = [_strip_gutter(x) for x in excerpt.strip().splitlines()]
    wanted = _squash("\n".join(wanted_lines))
    if not wanted:
        return None
    if wanted in _squash("\n".join(lines[start - 1 : end])):
        return start, end
    if len(lines) > MAX_RELOCATE_LINES:
        return None
    span = max(1, len(wanted_lines)) + 1
    for end in range(1, len(lines) + 1):  # the smallest window that ends first
        for begin in range(end - 1, max(-1, end - 1 - span), -1):
            if wanted in _squash("\n".join(lines[begin:end])):
                return begin + 1, end
    return None


def _strip_gutter(line: str) -> str:
    head, sep, rest = line.partition("| ")
    return rest if sep and head.strip().isdigit() else line


def _check_commit(repo: Repository, raw: Any, out: HarnessCheck) -> None:
    try:
        draft = (
            raw if isinstance(raw, SuspectCommitDraft) else SuspectCommitDraft.model_validate(raw)
        )
    except ValidationError:
        _drop(out, "commit_dropped", f"suspect commit {clip(str(raw), 200)[0]} has no sha", [])
        return
    sha = draft.sha.strip()
    found = None
    if repo.is_git:
        try:
            found = git.resolve_commit(repo, sha)
        except git.GitError:
            found = None
    if found is None:
        why = (
            "is not a commit of the repository"
            if repo.is_git
            else "cannot be checked: the repository has no git history"
        )
        _drop(out, "commit_dropped", f"suspect commit {sha!r} {why}", [sha])
        return
    full, subject = found
    if any(c.sha == full for c in out.suspect_commits):
        return
    out.suspect_commits.append(
        SuspectCommit(sha=full, subject=clip(subject, 300)[0], verified=True)
    )


def _drop(out: HarnessCheck, code: str, detail: str, ids: list[str]) -> None:
    out.reasons.append(StatusReason(code=code, detail=detail, ids=ids))
    out.notes.append("dropped " + detail)


def _get(item: Any, key: str) -> Any:
    return item.get(key) if isinstance(item, dict) else getattr(item, key, item)


def check_harness_fields(
    store: TraceReader, repo: Repository | None, finding: Finding, draft: Any
) -> Finding:
    """The finding with its code refs and suspect commits checked against the repository
    (dropped ones noted in status_reasons and verification_notes), and first_seen /
    last_seen counted by the store from its matcher. Synchronous: run it in a thread."""
    check = verify_harness_refs(
        repo, getattr(draft, "code_refs", None), getattr(draft, "suspect_commits", None)
    )
    update: dict[str, Any] = {
        "code_refs": check.code_refs,
        "suspect_commits": check.suspect_commits,
        "status_reasons": [*finding.status_reasons, *check.reasons],
        "verification_notes": [*finding.verification_notes, *check.notes],
    }
    if finding.matcher is not None and finding.prevalence and finding.prevalence.spans_matched:
        # The matcher was already counted; a failure here only loses the dates.
        with contextlib.suppress(StoreError):
            update["first_seen"], update["last_seen"] = store.seen(finding.matcher)
    return finding.model_copy(update=update)
