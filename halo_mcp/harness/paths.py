"""The one function that turns a user's or an agent's path into a file inside the repository.

Every code and git tool calls :func:`resolve_in_repo` before touching a file. Absolute
paths, `..` parts, NUL bytes, flag-like names and symlinks that lead out of the root are
refused with a message saying what is allowed, so a prompt-injected agent cannot read
outside the harness repository.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath


class HarnessPathError(ValueError):
    """A path the repository tools refuse; the message says what to pass instead."""


@dataclass(frozen=True)
class Repository:
    """A harness repository: its resolved root, and whether git can read its history
    (only when the root is a work tree's top: history never reaches outside the root).
    `enclosing_work_tree` names the work tree a subfolder root lies in, for a hint."""

    root: Path
    is_git: bool
    enclosing_work_tree: Path | None = None


def open_repository(path: str | Path) -> Repository:
    """The repository at `path` (a directory), resolved; git history when it is a work
    tree root (a `.git` directory or file at the top)."""
    raw = str(path).strip()
    if not raw or "\x00" in raw:
        raise HarnessPathError("The repository path is empty or contains a NUL byte.")
    try:
        root = Path(raw).expanduser().resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise HarnessPathError(
            f"Repository {raw!r} not found ({exc}); pass the directory of the harness's "
            "source code (its git work tree root)."
        ) from None
    if not root.is_dir():
        raise HarnessPathError(f"Repository {raw!r} is not a directory; pass its root folder.")
    if (root / ".git").exists():
        return Repository(root=root, is_git=True)
    enclosing = next((p for p in root.parents if (p / ".git").exists()), None)
    return Repository(root=root, is_git=False, enclosing_work_tree=enclosing)


def relative_parts(raw: str) -> tuple[str, ...]:
    """The parts of a repository-relative path, or a HarnessPathError naming the problem.
    '' and '.' mean the root."""
    text = raw.strip().replace("\\", "/")
    if "\x00" in text:
        raise HarnessPathError("The path contains a NUL byte; pass a plain relative path.")
    if text.startswith("-"):
        raise HarnessPathError(f"Path {text!r} starts with '-'; pass it as ./{text}.")
    if text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        raise HarnessPathError(
            f"Path {text!r} is absolute; pass a path relative to the repository root, "
            "e.g. 'src/agent/prompts.py'."
        )
    parts = tuple(p for p in PurePosixPath(text).parts if p not in ("", "."))
    if ".." in parts:
        raise HarnessPathError(
            f"Path {text!r} contains '..'; paths must stay inside the repository root."
        )
    return parts


def resolve_in_repo(repo: Repository, raw: str, *, must_exist: bool = True) -> Path:
    """The resolved file or directory for a repository-relative path.

    Symlinks are followed, then the target must still lie inside the root."""
    parts = relative_parts(raw)
    candidate = repo.root.joinpath(*parts)
    try:
        resolved = candidate.resolve(strict=must_exist)
    except FileNotFoundError:
        raise HarnessPathError(
            f"No such file or directory in the repository: {'/'.join(parts) or '.'!r}. "
            "List the tree or glob to find the right path."
        ) from None
    except (OSError, RuntimeError) as exc:  # symlink loop, permissions
        raise HarnessPathError(f"Cannot read {'/'.join(parts)!r}: {exc}.") from None
    if resolved != repo.root and not resolved.is_relative_to(repo.root):
        raise HarnessPathError(
            f"Path {'/'.join(parts)!r} is a symlink leading out of the repository; only "
            "files inside the repository root can be read."
        )
    return resolved


def display(repo: Repository, path: Path) -> str:
    """A resolved path as the repository-relative text the tools show ('.' for the root)."""
    rel = path.relative_to(repo.root).as_posix()
    return rel or "."
