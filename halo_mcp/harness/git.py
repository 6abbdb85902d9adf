"""Read-only git over the harness repository: a handful of allow-listed subcommands.

Every call goes through :func:`run_git`: the subcommand must be on the allow list, the
inherited `GIT_*` variables are dropped (a `GIT_DIR` or `GIT_WORK_TREE` in the server's
environment must not point git at another repository), user and system config are
ignored, repository discovery stops at the root, network protocols are disabled, external
diff and textconv programs are off, and each call has a timeout and an output cap. The
functions build argv lists themselves: refs and dates are checked, paths follow `--`, so
nothing an agent passes can become an option.

Synchronous (subprocess); async callers run these in a worker thread.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
from dataclasses import dataclass
from datetime import datetime, timezone

from halo_mcp.harness.paths import Repository, relative_parts, resolve_in_repo
from halo_mcp.settings import Environment
from halo_mcp.text import clip

#: The git subcommands the tools may run. Anything else is refused before git starts.
ALLOWED_SUBCOMMANDS = frozenset({"log", "show", "diff", "blame", "ls-files", "rev-parse"})
GIT_TIMEOUT_S = 15.0
MAX_GIT_OUTPUT_BYTES = 2_000_000
#: Options in front of every call: no network, no programs from config, no pager.
_SAFE_CONFIG = (
    "-c",
    "protocol.allow=never",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "diff.external=",
    "-c",
    "core.pager=cat",
    "--no-pager",
)
_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/@{}^~-]{0,199}$")
_RANGE = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9._/@{}^~-]{0,199}(\.\.\.?[A-Za-z0-9._/@{}^~-]{1,200})?$"
)
_DATE = re.compile(r"^[A-Za-z0-9 :.+_-]{1,60}$")


class GitError(ValueError):
    """git refused or failed; the message says what to change."""


@dataclass(frozen=True)
class GitOutput:
    text: str
    truncated: bool


def git_env() -> dict[str, str]:
    """The environment git runs with: the server's, minus every GIT_* variable, plus the
    switches that keep it from prompting or reading user and system config."""
    env = {
        k: v for k, v in Environment.for_child_process().items() if not k.upper().startswith("GIT_")
    }
    env.update(
        {
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_OPTIONAL_LOCKS": "0",
            "LC_ALL": "C",
        }
    )
    return env


def run_git(
    repo: Repository,
    args: list[str],
    *,
    timeout_s: float = GIT_TIMEOUT_S,
    max_bytes: int = MAX_GIT_OUTPUT_BYTES,
    check: bool = True,
) -> GitOutput:
    """Run `git <args>` in the repository (read-only subcommands only), bounded in time
    and output. Raises GitError with git's message when it fails and `check` is set."""
    if not repo.is_git:
        where = (
            f"it is a folder inside the work tree {repo.enclosing_work_tree}, whose history "
            "reaches beyond it"
            if repo.enclosing_work_tree
            else "no .git at its root"
        )
        raise GitError(
            f"This repository has no git history available ({where}); the code tools "
            "(tree, glob, grep, read_file) still work."
        )
    if not args or args[0] not in ALLOWED_SUBCOMMANDS:
        raise GitError(f"git subcommand {args[:1]} is not allowed")
    env = git_env()
    env["GIT_CEILING_DIRECTORIES"] = str(repo.root.parent)
    argv = ["git", *_SAFE_CONFIG, *args]
    try:
        proc = subprocess.Popen(
            argv,
            cwd=repo.root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except OSError as exc:
        raise GitError(f"cannot run git ({exc}); install git to use the history tools") from None
    try:
        out, err = _bounded_communicate(proc, timeout_s, max_bytes)
    except subprocess.TimeoutExpired:
        raise GitError(
            f"git {args[0]} took longer than {timeout_s:.0f}s and was stopped; narrow it "
            "(a path, a date window, a smaller range or limit)"
        ) from None
    truncated = len(out) > max_bytes
    if check and proc.returncode not in (0, None) and not truncated:
        message = clip(err.decode("utf-8", "replace").strip() or "no message", 600)[0]
        raise GitError(f"git {args[0]} failed: {message}")
    return GitOutput(out[:max_bytes].decode("utf-8", "replace"), truncated)


def _bounded_communicate(
    proc: subprocess.Popen[bytes], timeout_s: float, max_bytes: int
) -> tuple[bytes, bytes]:
    """Read stdout up to max_bytes + 1 (then stop git), and stderr, within the timeout."""
    chunks: list[bytes] = []
    errs: list[bytes] = []

    def read_out() -> None:
        assert proc.stdout is not None
        size = 0
        while size <= max_bytes:
            chunk = proc.stdout.read(65536)
            if not chunk:
                return
            chunks.append(chunk)
            size += len(chunk)
        proc.kill()  # enough: the caller cuts and says so

    def read_err() -> None:
        assert proc.stderr is not None
        for chunk in iter(lambda: proc.stderr.read(65536) if proc.stderr else b"", b""):
            if len(errs) < 4:  # keep the start; drain the rest so git never blocks on it
                errs.append(chunk)

    readers = [threading.Thread(target=read_out), threading.Thread(target=read_err)]
    for t in readers:
        t.daemon = True
        t.start()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    finally:
        for t in readers:
            t.join(timeout=1)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    return b"".join(chunks), b"".join(errs)


# ------------------------------------------------------------------- argument checks


def check_ref(ref: str, what: str = "ref") -> str:
    ref = ref.strip()
    if not _REF.match(ref) or ".." in ref:
        raise GitError(
            f"{what} {ref!r} is not a plain ref: pass a commit sha, a branch or tag name, "
            "HEAD, HEAD~3 and the like"
        )
    return ref


def check_range(value: str) -> str:
    value = value.strip()
    if not _RANGE.match(value):
        raise GitError(f"range {value!r} is not of the form A..B or A...B (refs or shas)")
    return value


def check_date(value: str, what: str) -> str:
    value = value.strip()
    if not _DATE.match(value):
        raise GitError(
            f"{what} {value!r} is not a date git understands: use e.g. 2026-03-01, "
            "'2026-03-01 14:00' or '2 weeks ago'"
        )
    return value


def _day_edge(value: str, clock: str) -> str:
    """A bare date as the start (since) or end (until) of that day, UTC: git alone would
    read '2026-03-01' as that day at the current time of day."""
    return f"{value}T{clock}Z" if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) else value


def repo_path_arg(repo: Repository, raw: str) -> str:
    """A repository-relative path for after `--`: checked like every path, but it need
    not exist now (history may hold deleted files)."""
    parts = relative_parts(raw)
    if parts:
        resolve_in_repo(repo, "/".join(parts), must_exist=False)
    return "/".join(parts) or "."


# ----------------------------------------------------------------------- commands

LOG_FORMAT = "%H%x1f%ad%x1f%an%x1f%s"


def log(
    repo: Repository,
    *,
    since: str | None = None,
    until: str | None = None,
    path: str | None = None,
    rev_range: str | None = None,
    pickaxe: str | None = None,
    pickaxe_regex: str | None = None,
    limit: int = 30,
) -> tuple[list[dict[str, str]], bool]:
    """Commits newest first (sha, date, author, subject) and whether more exist."""
    args = ["log", f"--format={LOG_FORMAT}", "--date=iso-strict", f"-n{int(limit) + 1}"]
    if since:
        args.append("--since=" + _day_edge(check_date(since, "since"), "00:00:00"))
    if until:
        args.append("--until=" + _day_edge(check_date(until, "until"), "23:59:59"))
    if pickaxe:
        args.append("-S" + pickaxe)
    if pickaxe_regex:
        args.append("-G" + pickaxe_regex)
    if rev_range:
        args.append(check_range(rev_range))
    args.append("--")
    if path:
        args.append(repo_path_arg(repo, path))
    text = run_git(repo, args).text
    rows = []
    for line in text.splitlines():
        parts = line.split("\x1f")
        if len(parts) == 4:
            rows.append(
                {"sha": parts[0], "date": parts[1], "author": parts[2], "subject": parts[3]}
            )
    return rows[:limit], len(rows) > limit


def show(repo: Repository, ref: str, *, patch: bool, path: str | None, max_chars: int) -> str:
    """A commit's header and --stat, or its patch cut at max_chars."""
    args = [
        "show",
        "--no-ext-diff",
        "--no-textconv",
        "--format=commit %H%nDate: %ad%nAuthor: %an%n%n%B",
        "--date=iso-strict",
        "--patch" if patch else "--stat",
        check_ref(ref),
        "--",
    ]
    if path:
        args.append(repo_path_arg(repo, path))
    out = run_git(repo, args)
    return _clipped(out, max_chars, "pass a path, or use patch=false for the stat")


def diff(
    repo: Repository,
    from_ref: str,
    to_ref: str | None,
    *,
    path: str | None,
    stat: bool,
    max_chars: int,
) -> str:
    """The diff between two refs (or a ref and the work tree), cut at max_chars."""
    args = ["diff", "--no-ext-diff", "--no-textconv"]
    if stat:
        args.append("--stat")
    args.append(check_ref(from_ref, "from_ref"))
    if to_ref:
        args.append(check_ref(to_ref, "to_ref"))
    args.append("--")
    if path:
        args.append(repo_path_arg(repo, path))
    out = run_git(repo, args)
    return _clipped(out, max_chars, "pass a path or stat=true") or "(no differences)"


def blame(
    repo: Repository, path: str, start_line: int, end_line: int, *, ref: str | None = None
) -> list[dict[str, str | int]]:
    """Who last changed each line of a window: line number, full sha, date, summary, text."""
    rel = repo_path_arg(repo, path)
    args = ["blame", "--line-porcelain", f"-L{int(start_line)},{int(end_line)}"]
    if ref:
        args.append(check_ref(ref))
    args += ["--", rel]
    text = run_git(repo, args).text
    rows: list[dict[str, str | int]] = []
    current: dict[str, str | int] = {}
    for line in text.splitlines():
        if line.startswith("\t"):
            current["text"] = clip(line[1:], 300)[0]
            rows.append(current)
            current = {}
            continue
        head, _, rest = line.partition(" ")
        if re.fullmatch(r"[0-9a-f]{40}", head):
            current = {"sha": head, "line": int(rest.split()[1])}
        elif head == "author-time" and rest.isdigit():
            when = datetime.fromtimestamp(int(rest), tz=timezone.utc)
            current["time"] = when.isoformat(timespec="seconds")
        elif head == "summary":
            current["subject"] = clip(rest, 200)[0]
    return rows


def file_at(repo: Repository, ref: str, path: str) -> str:
    """A file's content at a ref (`git show REF:path`)."""
    rel = repo_path_arg(repo, path)
    out = run_git(repo, ["show", "--no-textconv", f"{check_ref(ref)}:{rel}"])
    if out.truncated:
        raise GitError(f"{rel} at {ref} is larger than {MAX_GIT_OUTPUT_BYTES:,} bytes")
    if "\x00" in out.text[:8192]:
        raise GitError(f"{rel} at {ref} is a binary file")
    return out.text


def resolve_commit(repo: Repository, sha: str) -> tuple[str, str] | None:
    """(full sha, subject) of a commit named by a sha or unique prefix, or None."""
    sha = sha.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{7,40}", sha):
        return None
    out = run_git(
        repo, ["log", "-1", "--no-walk", "--format=%H%x1f%s", sha + "^{commit}", "--"], check=False
    )
    parts = out.text.strip().split("\x1f")
    if len(parts) != 2 or not parts[0].startswith(sha):
        return None
    return parts[0], parts[1]


def work_tree_files(repo: Repository, limit: int) -> tuple[list[str], bool]:
    """Tracked and untracked files, .gitignore respected (`git ls-files -co
    --exclude-standard`), at most `limit`, and whether the list was cut."""
    out = run_git(repo, ["ls-files", "-z", "-c", "-o", "--exclude-standard"])
    names = [n for n in out.text.split("\x00") if n]
    names = list(dict.fromkeys(names))
    return names[:limit], out.truncated or len(names) > limit


def _clipped(out: GitOutput, max_chars: int, advice: str) -> str:
    text, cut = clip(out.text, max_chars)
    if out.truncated and not cut:
        text += f"\n…[truncated: output over {MAX_GIT_OUTPUT_BYTES:,} bytes]"
    if cut or out.truncated:
        text += f"\n(cut to stay within {max_chars:,} chars; {advice})"
    return text
