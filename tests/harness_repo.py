"""A fixture harness repository (three commits; the second rewrites a tool description)
and traces whose failure mode starts after that commit, for the harness tests."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from tests.store_spans import agent, llm, tool, write

TOOLS_V1 = '''"""Tools of the order-support agent."""

SEARCH_ORDERS = {
    "name": "search_orders",
    "description": "Search a customer's orders. customer_id is required: always pass it.",
    "parameters": {"customer_id": "string", "query": "string"},
}

MAX_RETRIES = 3
'''
DESCRIPTION_V2 = '    "description": "Search orders by free text.",'
TOOLS_V2 = TOOLS_V1.replace(
    '    "description": "Search a customer\'s orders. customer_id is required: always pass it.",',
    DESCRIPTION_V2,
)
#: Commit times: before the traces, inside them (the regression), after them.
COMMIT_TIMES = ("2025-03-01T09:00:00Z", "2025-03-01T10:00:24Z", "2025-03-02T12:00:00Z")
ERROR = "ValidationError: missing required argument 'customer_id'"


@dataclass
class HarnessRepo:
    root: Path
    shas: list[str]  # oldest first
    description_line: int  # line of the tool description in agent/tools.py


def git(root: Path, *args: str, when: str | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env |= {
        "GIT_AUTHOR_NAME": "Dev",
        "GIT_AUTHOR_EMAIL": "dev@example.com",
        "GIT_COMMITTER_NAME": "Dev",
        "GIT_COMMITTER_EMAIL": "dev@example.com",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    if when:
        env |= {"GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when}
    out = subprocess.run(
        ["git", *args], cwd=root, env=env, check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


def make_harness_repo(root: Path) -> HarnessRepo:
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    (root / "agent").mkdir()
    (root / ".gitignore").write_text("secrets/\n")
    (root / "agent" / "tools.py").write_text(TOOLS_V1)
    (root / "README.md").write_text("# order-support agent\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "Add search_orders tool", when=COMMIT_TIMES[0])
    (root / "agent" / "tools.py").write_text(TOOLS_V2)
    git(root, "commit", "-q", "-am", "Shorter tool descriptions", when=COMMIT_TIMES[1])
    (root / "README.md").write_text("# order-support agent\n\nRun with make run.\n")
    git(root, "commit", "-q", "-am", "Docs: how to run", when=COMMIT_TIMES[2])
    shas = git(root, "log", "--reverse", "--format=%H").split()
    line = TOOLS_V2.splitlines().index(DESCRIPTION_V2) + 1
    return HarnessRepo(root=root, shas=shas, description_line=line)


def regression_traces(path: Path, traces: int = 12) -> Path:
    """One trace every 5 s from 10:00:00; from 10:00:25 on (after the second commit)
    search_orders fails for want of customer_id."""
    spans = []
    for i in range(traces):
        t, start = f"tr{i:02d}", i * 5
        fails = start > 24
        spans += [
            agent(t, f"{t}-a", "support", start, start + 4),
            llm(t, f"{t}-l", f"{t}-a", start + 0.5, start + 1),
            tool(
                t,
                f"{t}-s",
                f"{t}-a",
                start + 1.5,
                start + 2,
                "search_orders",
                args='{"query": "late parcel"}' if fails else '{"customer_id": "c7"}',
                error=ERROR if fails else None,
            ),
        ]
    return write(path, spans)


def first_failure_time() -> datetime:
    return datetime(2025, 3, 1, 10, 0, 26, 500000, tzinfo=timezone.utc)
