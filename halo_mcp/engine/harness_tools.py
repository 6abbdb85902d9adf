"""The agents' tools over the harness repository (code and git history) and SQL over the
trace views. Same shape as agent_tools.STORE_TOOLS: `(ctx, args) -> str`, synchronous
(the agent loop runs them in a worker thread), every output within its budget. Their
errors (HarnessPathError, CodeError, GitError: ValueErrors; SqlError: a StoreError) go
back to the model as tool errors it can act on.

The repository tools are offered only when the run was given a repository, the git tools
only when it is a work tree. `engine_tools` is the one table the agent loop reads.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from halo_mcp.engine.agent_tools import STORE_TOOLS, StoreTool, ToolContext, _Args, _dumps
from halo_mcp.harness import code, git
from halo_mcp.harness.paths import Repository
from halo_mcp.store.sql import SQL_SCHEMA

#: Characters of patch/diff text one call returns.
PATCH_CHARS = 16_000


class SqlArgs(_Args):
    sql: str = Field(description="One SELECT over the views spans and traces (SQLite dialect).")
    limit: int = Field(50, ge=1, le=500, description="Rows to return.")


class TreeArgs(_Args):
    path: str = Field(".", description="Folder, relative to the repository root.")
    depth: int = Field(2, ge=1, le=6)
    max_entries: int = Field(200, ge=10, le=500)


class GlobArgs(_Args):
    pattern: str = Field(description="e.g. '**/*.py', 'prompts/*.md', '*tool*'.")
    limit: int = Field(200, ge=1, le=500)


class GrepArgs(_Args):
    pattern: str = Field(max_length=1000, description="Regex searched line by line.")
    path: str = Field(".", description="Folder or file to search under.")
    glob: str | None = Field(None, description="Only files matching this glob, e.g. '*.py'.")
    ignore_case: bool = False
    limit: int = Field(50, ge=1, le=200)


class ReadFileArgs(_Args):
    path: str = Field(description="File, relative to the repository root.")
    start_line: int = Field(1, ge=1)
    max_lines: int = Field(200, ge=1, le=600)
    ref: str | None = Field(
        None, description="Read the file as of this commit or ref (git) instead of now."
    )


class GitLogArgs(_Args):
    since: str | None = Field(None, description="e.g. '2026-03-01' or '2026-03-01 14:00'.")
    until: str | None = None
    path: str | None = Field(None, description="Only commits touching this path.")
    rev_range: str | None = Field(None, description="e.g. 'v1.2..HEAD'.")
    pickaxe: str | None = Field(
        None, max_length=500, description="-S: commits that add or remove this exact string."
    )
    pickaxe_regex: str | None = Field(
        None, max_length=500, description="-G: commits whose diff has a line matching this regex."
    )
    limit: int = Field(30, ge=1, le=100)


class GitShowArgs(_Args):
    ref: str = Field(description="A commit sha or ref.")
    patch: bool = Field(False, description="The patch instead of the file stat.")
    path: str | None = Field(None, description="Limit to this path.")


class GitDiffArgs(_Args):
    from_ref: str
    to_ref: str | None = Field(None, description="Default: the work tree.")
    path: str | None = None
    stat: bool = False


class GitBlameArgs(_Args):
    path: str
    start_line: int = Field(ge=1)
    end_line: int = Field(ge=1)
    ref: str | None = None


def query_sql(ctx: ToolContext, args: SqlArgs) -> str:
    budget = ctx.budget_for("sql") - 2000  # the header and JSON punctuation
    result = ctx.store.query_sql(args.sql, limit=args.limit, max_chars=budget)
    head: dict[str, Any] = {
        "columns": result.columns,
        "returned": result.returned,
        "truncated": result.truncated,
    }
    if result.note:
        head["note"] = result.note
    return "\n".join([_dumps(head), *(_dumps(row) for row in result.rows)])


def _repo(ctx: ToolContext) -> Repository:
    repo = ctx.repo
    if repo is None:
        raise ValueError("this run has no repository; the code and git tools are unavailable")
    return repo


def repo_tree(ctx: ToolContext, args: TreeArgs) -> str:
    return code.tree(_repo(ctx), args.path, args.depth, args.max_entries)


def repo_glob(ctx: ToolContext, args: GlobArgs) -> str:
    files, total = code.glob(_repo(ctx), args.pattern, args.limit)
    head: dict[str, Any] = {"matched": total, "returned": len(files)}
    if total > len(files):
        head["note"] = f"first {len(files)} of {total}; narrow the pattern"
    return "\n".join([_dumps(head), *files])


def repo_grep(ctx: ToolContext, args: GrepArgs) -> str:
    matches, counts = code.grep(
        _repo(ctx),
        args.pattern,
        path=args.path,
        glob_pattern=args.glob,
        ignore_case=args.ignore_case,
        limit=args.limit,
    )
    lines = [_dumps(counts)]
    lines += [f"{m['path']}:{m['line']}: {m['text']}" for m in matches]
    return "\n".join(lines)


def repo_read_file(ctx: ToolContext, args: ReadFileArgs) -> str:
    repo = _repo(ctx)
    if args.ref:
        text = git.file_at(repo, args.ref, args.path)
        label = f"{args.path} at {args.ref}"
        return code.numbered_window(text, label, args.start_line, args.max_lines)
    return code.read_file(repo, args.path, args.start_line, args.max_lines)


def git_log(ctx: ToolContext, args: GitLogArgs) -> str:
    rows, more = git.log(
        _repo(ctx),
        since=args.since,
        until=args.until,
        path=args.path,
        rev_range=args.rev_range,
        pickaxe=args.pickaxe,
        pickaxe_regex=args.pickaxe_regex,
        limit=args.limit,
    )
    head: dict[str, Any] = {"returned": len(rows), "more": more}
    return "\n".join([_dumps(head), *(_dumps(r) for r in rows)]) if rows else "no commits match"


def git_show(ctx: ToolContext, args: GitShowArgs) -> str:
    return git.show(_repo(ctx), args.ref, patch=args.patch, path=args.path, max_chars=PATCH_CHARS)


def git_diff(ctx: ToolContext, args: GitDiffArgs) -> str:
    return git.diff(
        _repo(ctx),
        args.from_ref,
        args.to_ref,
        path=args.path,
        stat=args.stat,
        max_chars=PATCH_CHARS,
    )


def git_blame(ctx: ToolContext, args: GitBlameArgs) -> str:
    if args.end_line < args.start_line or args.end_line - args.start_line > 200:
        raise ValueError("end_line must be >= start_line and at most 200 lines after it")
    rows = git.blame(_repo(ctx), args.path, args.start_line, args.end_line, ref=args.ref)
    return "\n".join(
        f"{r['line']:>6}| {str(r['sha'])[:12]} {r.get('time', '')} "
        f"{r.get('subject', '')!r} | {r.get('text', '')}"
        for r in rows
    )


SQL_TOOLS: dict[str, tuple[str, type[BaseModel], StoreTool]] = {
    "query_sql": (
        "Read-only SQL (one SELECT) over views of the trace index, for what filters "
        "cannot answer: rates per agent, model, tool or hour, joins between spans (a "
        "tool's errors against the next LLM call), first/last time a failure occurs. "
        "Rows, characters and time are bounded.\n" + SQL_SCHEMA,
        SqlArgs,
        query_sql,
    ),
}

CODE_TOOLS: dict[str, tuple[str, type[BaseModel], StoreTool]] = {
    "repo_tree": (
        "The harness repository as a tree of folders (with file counts) and files; "
        ".gitignore'd, vendored and cache folders skipped.",
        TreeArgs,
        repo_tree,
    ),
    "repo_glob": ("Files of the harness repository matching a glob.", GlobArgs, repo_glob),
    "repo_grep": (
        "Regex search over the harness repository's text files: path:line: text.",
        GrepArgs,
        repo_grep,
    ),
    "repo_read_file": (
        "Numbered lines of a file of the harness repository (optionally at a git ref). "
        "Cite code as path:start-end with these line numbers.",
        ReadFileArgs,
        repo_read_file,
    ),
}

GIT_TOOLS: dict[str, tuple[str, type[BaseModel], StoreTool]] = {
    "git_log": (
        "Commits of the harness repository, newest first (sha, ISO date, author, subject): "
        "a date window (since/until), a path, a range, or the pickaxe (commits adding or "
        "removing a string, or with diff lines matching a regex).",
        GitLogArgs,
        git_log,
    ),
    "git_show": (
        "One commit: message and changed files (stat), or its patch (bounded).",
        GitShowArgs,
        git_show,
    ),
    "git_diff": (
        "The diff between two refs (or a ref and the work tree).",
        GitDiffArgs,
        git_diff,
    ),
    "git_blame": (
        "Who last changed each line of a window: line, commit sha, date, subject, text.",
        GitBlameArgs,
        git_blame,
    ),
}


def engine_tools(
    has_repo: bool = False, is_git: bool = False
) -> dict[str, tuple[str, type[BaseModel], StoreTool]]:
    """Every synchronous tool an agent of this run may call, by name: the store tools,
    SQL, and with a repository the code tools (and the git tools for a work tree)."""
    tools = {**STORE_TOOLS, **SQL_TOOLS}
    if has_repo:
        tools.update(CODE_TOOLS)
        if is_git:
            tools.update(GIT_TOOLS)
    return tools
