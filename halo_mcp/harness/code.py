"""The harness's source code, read-only and bounded: tree, glob, grep, read_file.

Files are listed once per call: in a git work tree through `git ls-files` (tracked and
untracked files, `.gitignore` respected), otherwise by walking the folder; vendored,
dependency and cache folders are skipped either way. Every output has a limit and says
when it was reached. Only git is run; no other binary (HALO's ripgrep) is needed.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

from halo_mcp.harness import git
from halo_mcp.harness.paths import HarnessPathError, Repository, display, relative_parts
from halo_mcp.harness.paths import resolve_in_repo as _resolve
from halo_mcp.text import clip

#: Folders never listed or searched: dependencies, vendored code, caches, build output.
SKIPPED_DIRS = frozenset(
    {
        ".git",
        "node_modules",
        "vendor",
        "third_party",
        "__pycache__",
        ".venv",
        "venv",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".cache",
        "site-packages",
        "dist",
        "build",
        ".next",
        "target",
        ".idea",
        ".vscode",
    }
)
MAX_FILES_LISTED = 50_000
MAX_FILE_BYTES = 2_000_000
BINARY_SNIFF_BYTES = 8192
LINE_CHARS = 400
READ_MAX_CHARS = 24_000
GREP_MAX_BYTES = 64_000_000


class CodeError(ValueError):
    """A code tool refused or failed; the message says what to do."""


def compile_pattern(pattern: str, *, ignore_case: bool) -> re.Pattern[str]:
    """The one place grep patterns are compiled.

    Python `re` for now: the project is moving to RE2 (google-re2, linear time) on the
    `hostile` branch; swap the engine here when it lands. Lines are cut to LINE_CHARS * 5
    before matching, which bounds (but does not remove) backtracking costs meanwhile."""
    try:
        return re.compile(pattern, re.IGNORECASE if ignore_case else 0)
    except re.error as exc:
        raise CodeError(
            f"pattern is not a valid regex ({exc}); escape ( [ * . and the like"
        ) from None


def list_files(repo: Repository) -> tuple[list[str], bool]:
    """Repository-relative paths of the files worth reading, sorted, and whether cut."""
    if repo.is_git:
        names, cut = git.work_tree_files(repo, MAX_FILES_LISTED)
    else:
        names, cut = _walk(repo.root, MAX_FILES_LISTED)
    kept = sorted(n for n in names if not (set(n.split("/")[:-1]) & SKIPPED_DIRS))
    return kept, cut


def _walk(root: Path, limit: int) -> tuple[list[str], bool]:
    names: list[str] = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        base = Path(folder).relative_to(root)
        for name in sorted(files):
            names.append((base / name).as_posix())
            if len(names) > limit:
                return names[:limit], True
    return names, False


def _under(files: list[str], path: str) -> tuple[str, list[str]]:
    """The normalized prefix and the files below it."""
    prefix = "/".join(relative_parts(path))
    if not prefix:
        return "", files
    return prefix, [f for f in files if f == prefix or f.startswith(prefix + "/")]


def tree(repo: Repository, path: str = ".", depth: int = 2, max_entries: int = 200) -> str:
    """An indented view of folders (with their file counts) and files, `depth` levels
    deep from `path`, at most `max_entries` lines."""
    target = _resolve(repo, path)
    if not target.is_dir():
        raise CodeError(f"{display(repo, target)!r} is a file; read it with read_file")
    files, cut = list_files(repo)
    prefix, below = _under(files, display(repo, target) if target != repo.root else "")
    start = len(prefix.split("/")) if prefix else 0
    counts: Counter[str] = Counter()
    entries: set[tuple[str, bool]] = set()
    for name in below:
        parts = name.split("/")[start:]
        for i in range(1, min(len(parts), depth + 1)):
            folder = "/".join(parts[:i])
            entries.add((folder, True))
            counts[folder] += 1
        if len(parts) <= depth:
            entries.add(("/".join(parts), False))
    lines = [f"{prefix or '.'}/ ({len(below)} files)"]
    for shown, (entry, is_dir) in enumerate(sorted(entries)):
        if shown >= max_entries:
            lines.append(
                f"… {len(entries) - shown} more entries not shown (limit {max_entries}); "
                "pass a deeper path or a smaller depth"
            )
            break
        pad = "  " * entry.count("/")
        leaf = entry.rsplit("/", 1)[-1]
        lines.append(f"{pad}- {leaf}/ ({counts[entry]} files)" if is_dir else f"{pad}- {leaf}")
    if cut:
        lines.append(f"(the repository has more than {MAX_FILES_LISTED:,} files; listing cut)")
    return "\n".join(lines)


def glob_to_regex(pattern: str) -> re.Pattern[str]:
    """A glob over repository-relative paths: `*` and `?` stay within a folder, `**`
    crosses folders, `[abc]` is a class. A pattern without '/' matches file names."""
    text = pattern.strip().removeprefix("./")
    if not text:
        raise CodeError("empty glob; pass e.g. '**/*.py' or 'prompts/*.md'")
    if "/" not in text:
        text = "**/" + text
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if text.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif text.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[" and "]" in text[i + 1 :]:
            end = text.index("]", i + 1)
            body = text[i + 1 : end].replace("\\", "\\\\")
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out) + r"\Z")


def glob(repo: Repository, pattern: str, limit: int = 200) -> tuple[list[str], int]:
    """Files matching the glob (sorted) and how many matched in all."""
    rx = glob_to_regex(pattern)
    files, _ = list_files(repo)
    matched = [f for f in files if rx.match(f)]
    return matched[:limit], len(matched)


def grep(
    repo: Repository,
    pattern: str,
    *,
    path: str = ".",
    glob_pattern: str | None = None,
    ignore_case: bool = False,
    limit: int = 50,
) -> tuple[list[dict[str, str | int]], dict[str, int | bool]]:
    """Matching lines (path, line number, text) and counts: files scanned, matches, and
    whether the limit or the byte budget stopped the search."""
    rx = compile_pattern(pattern, ignore_case=ignore_case)
    files, _ = list_files(repo)
    prefix, candidates = _under(files, path)
    if prefix:
        _resolve(repo, prefix)
    if glob_pattern:
        grx = glob_to_regex(glob_pattern)
        candidates = [f for f in candidates if grx.match(f)]
    matches: list[dict[str, str | int]] = []
    scanned = read = 0
    stopped = False
    for name in candidates:
        try:
            text = text_of(repo, name, quiet=True)
        except (CodeError, HarnessPathError):
            continue
        if text is None:
            continue
        scanned += 1
        read += len(text)
        for number, line in enumerate(text.splitlines(), 1):
            if rx.search(line[: LINE_CHARS * 5]):
                matches.append({"path": name, "line": number, "text": clip(line, LINE_CHARS)[0]})
                if len(matches) > limit:
                    break
        if len(matches) > limit or read > GREP_MAX_BYTES:
            stopped = True
            break
    more = len(matches) > limit
    return matches[:limit], {
        "files_scanned": scanned,
        "files_in_scope": len(candidates),
        "returned": min(len(matches), limit),
        "more_matches": more or stopped,
    }


def read_file(repo: Repository, path: str, start_line: int = 1, max_lines: int = 200) -> str:
    """Numbered lines of a text file from `start_line`, each cut at LINE_CHARS, the whole
    within READ_MAX_CHARS; a header says which lines were shown and where to continue."""
    text = text_of(repo, path, quiet=False)
    assert text is not None
    return numbered_window(text, display(repo, _resolve(repo, path)), start_line, max_lines)


def numbered_window(text: str, label: str, start_line: int, max_lines: int) -> str:
    """Lines start_line.. of `text`, numbered and bounded (read_file and git file_at)."""
    lines = text.splitlines()
    total = len(lines)
    if start_line > max(total, 1):
        raise CodeError(f"{label} has {total} lines; start_line {start_line} is past its end")
    body: list[str] = []
    used = 0
    end = start_line - 1
    for number in range(start_line, min(total, start_line - 1 + max_lines) + 1):
        row = f"{number:>6}| {clip(lines[number - 1], LINE_CHARS)[0]}"
        if used + len(row) > READ_MAX_CHARS:
            break
        body.append(row)
        used += len(row) + 1
        end = number
    head = f"{label}: lines {start_line}-{end} of {total}"
    if end < total:
        head += f" (continue with start_line={end + 1})"
    return "\n".join([head, *body])


def text_of(repo: Repository, path: str, *, quiet: bool) -> str | None:
    """A file's text, or a CodeError (None when `quiet`) for binary and huge files."""
    target = _resolve(repo, path)
    if target.is_dir():
        if quiet:
            return None
        raise CodeError(f"{display(repo, target)!r} is a folder; list it with tree")
    size = target.stat().st_size
    if size > MAX_FILE_BYTES:
        if quiet:
            return None
        raise CodeError(
            f"{display(repo, target)!r} is {size:,} bytes, over the {MAX_FILE_BYTES:,}-byte "
            "limit; grep it for what you need"
        )
    data = target.read_bytes()
    if b"\x00" in data[:BINARY_SNIFF_BYTES]:
        if quiet:
            return None
        raise CodeError(f"{display(repo, target)!r} is a binary file; only text files are read")
    return data.decode("utf-8", "replace")
