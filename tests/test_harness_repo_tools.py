"""The harness repository tools: every path stays inside the root, git runs read-only on
this repository whatever the environment says, outputs are bounded, and a finding's code
refs and commits are checked against HEAD (bogus ones dropped with a reason)."""

from __future__ import annotations

import os

import pytest

from halo_mcp.harness import HarnessPathError, code, git, open_repository
from halo_mcp.harness.verify import verify_harness_refs
from tests.harness_repo import DESCRIPTION_V2, make_harness_repo
from tests.harness_repo import git as run_git


@pytest.fixture
def harness(tmp_path):
    return make_harness_repo(tmp_path / "repo")


@pytest.fixture
def repo(harness):
    return open_repository(harness.root)


def test_paths_that_leave_the_repository_are_refused(repo, tmp_path):
    (tmp_path / "secret.txt").write_text("api_key=abc\n")
    os.symlink(tmp_path / "secret.txt", repo.root / "agent" / "link.txt")
    os.symlink(tmp_path, repo.root / "outside_dir")
    with pytest.raises(HarnessPathError, match=r"contains '\.\.'"):
        code.read_file(repo, "../secret.txt")
    with pytest.raises(HarnessPathError, match="absolute"):
        code.read_file(repo, str(tmp_path / "secret.txt"))
    with pytest.raises(HarnessPathError, match="symlink leading out"):
        code.read_file(repo, "agent/link.txt")
    with pytest.raises(HarnessPathError, match="symlink leading out"):
        code.read_file(repo, "outside_dir/secret.txt")
    with pytest.raises(HarnessPathError, match="starts with '-'"):
        git.blame(repo, "--output=/tmp/x", 1, 2)
    with pytest.raises(HarnessPathError, match=r"\.\."):
        git.file_at(repo, "HEAD", "../secret.txt")
    # grep and tree never follow the link out either.
    matches, _ = code.grep(repo, "api_key")
    assert matches == []


def test_git_ignores_a_git_dir_in_the_environment(repo, harness, tmp_path, monkeypatch):
    other = tmp_path / "other"
    other.mkdir()
    run_git(other, "init", "-q")
    (other / "x").write_text("x")
    run_git(other, "add", "x")
    run_git(other, "commit", "-q", "-m", "not the harness")
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(other))
    rows, more = git.log(repo)
    assert [r["sha"] for r in rows] == list(reversed(harness.shas))
    assert more is False
    assert "GIT_DIR" not in git.git_env()


def test_only_allow_listed_subcommands_and_plain_refs_run(repo):
    with pytest.raises(git.GitError, match="not allowed"):
        git.run_git(repo, ["push", "origin"])
    with pytest.raises(git.GitError, match="not a plain ref"):
        git.show(repo, "--output=/tmp/pwned", patch=False, path=None, max_chars=100)
    with pytest.raises(git.GitError, match="not a date"):
        git.log(repo, since="2025-01-01; rm -rf /")
    capped = git.run_git(repo, ["log", "-p"], max_bytes=100)  # git is stopped, output cut
    assert capped.truncated is True and len(capped.text) == 100


def test_log_finds_the_commit_that_changed_the_description_by_pickaxe_and_date(repo, harness):
    rows, _ = git.log(repo, pickaxe="customer_id is required")
    assert [r["sha"] for r in rows] == [harness.shas[1], harness.shas[0]]
    rows, _ = git.log(repo, since="2025-03-01T10:00:00Z", until="2025-03-01T11:00:00Z")
    assert [r["subject"] for r in rows] == ["Shorter tool descriptions"]
    rows, _ = git.log(repo, since="2025-03-01", until="2025-03-01")  # the whole day, UTC
    assert [r["sha"] for r in rows] == [harness.shas[1], harness.shas[0]]
    rows, _ = git.log(repo, pickaxe_regex="free text", path="agent/tools.py")
    assert [r["sha"] for r in rows] == [harness.shas[1]]
    blame = git.blame(repo, "agent/tools.py", harness.description_line, harness.description_line)
    assert blame[0]["sha"] == harness.shas[1] and blame[0]["time"] == "2025-03-01T10:00:24+00:00"
    patch = git.show(repo, harness.shas[1], patch=True, path=None, max_chars=50)
    assert "…[truncated:" in patch and "cut to stay within 50 chars" in patch
    old = git.file_at(repo, harness.shas[0], "agent/tools.py")
    assert "customer_id is required" in old
    assert "free text" in git.diff(
        repo, harness.shas[0], harness.shas[1], path=None, stat=False, max_chars=5000
    )


def test_tree_glob_grep_and_read_file_are_bounded_and_skip_ignored_folders(repo):
    (repo.root / "secrets").mkdir()
    (repo.root / "secrets" / "token.txt").write_text("search_orders token\n")
    (repo.root / "node_modules" / "pkg").mkdir(parents=True)
    (repo.root / "node_modules" / "pkg" / "index.js").write_text("search_orders\n")
    (repo.root / "agent" / "blob.bin").write_bytes(b"\x00\x01search_orders")
    (repo.root / "agent" / "long.py").write_text("".join(f"x{i} = {i}\n" for i in range(1000)))
    tree = code.tree(repo, ".", depth=1)
    assert "secrets" not in tree and "node_modules" not in tree and "agent/" in tree
    assert code.glob(repo, "*.py") == (["agent/long.py", "agent/tools.py"], 2)
    assert code.glob(repo, "agent/**")[1] == 3
    matches, counts = code.grep(repo, r"search_\w+")
    assert [(m["path"], m["line"]) for m in matches] == [("agent/tools.py", 4)]
    assert counts["more_matches"] is False
    matches, counts = code.grep(repo, r"^x\d+", limit=5)
    assert len(matches) == 5 and counts["more_matches"] is True
    with pytest.raises(code.CodeError, match="binary"):
        code.read_file(repo, "agent/blob.bin")
    window = code.read_file(repo, "agent/long.py", start_line=10, max_lines=3)
    assert window.splitlines() == [
        "agent/long.py: lines 10-12 of 1000 (continue with start_line=13)",
        "    10| x9 = 9",
        "    11| x10 = 10",
        "    12| x11 = 11",
    ]
    with pytest.raises(code.CodeError, match="not a valid regex"):
        code.grep(repo, "(unclosed")


def test_code_refs_and_commits_are_verified_and_bogus_ones_dropped(repo, harness):
    line = harness.description_line
    check = verify_harness_refs(
        repo,
        [
            {"path": "agent/tools.py", "start_line": line, "end_line": line,
             "excerpt": DESCRIPTION_V2.strip()},
            {"path": "agent/tools.py", "start_line": 1, "excerpt": '"name": "search_orders",'},
            {"path": "agent/nope.py", "start_line": 1, "end_line": 2},
            {"path": "agent/tools.py", "start_line": 500, "end_line": 501},
            {"path": "agent/tools.py", "start_line": 2, "end_line": 3,
             "excerpt": "this text is nowhere"},
            {"path": "../etc/passwd", "start_line": 1},
        ],
        [{"sha": harness.shas[1][:10]}, {"sha": "deadbeefdeadbeef"}, {"sha": "HEAD; ls"}],
    )  # fmt: skip
    kept = [(r.path, r.start_line, r.end_line, r.verified) for r in check.code_refs]
    assert kept == [("agent/tools.py", line, line, True), ("agent/tools.py", 4, 4, True)]
    assert check.code_refs[0].excerpt == DESCRIPTION_V2
    assert any("moved to lines 4-4" in n for n in check.notes)
    assert [(c.sha, c.subject) for c in check.suspect_commits] == [
        (harness.shas[1], "Shorter tool descriptions")
    ]
    codes = [r.code for r in check.reasons]
    assert codes.count("code_ref_dropped") == 4 and codes.count("commit_dropped") == 2
    details = " | ".join(r.detail for r in check.reasons)
    assert "no such file at HEAD" in details and "has 9 lines" in details
    assert "excerpt does not occur" in details and "deadbeefdeadbeef" in details


def test_without_a_repository_refs_are_dropped_with_the_reason(harness):
    check = verify_harness_refs(None, [{"path": "a.py", "start_line": 1}], [{"sha": "abc1234"}])
    assert check.code_refs == [] and check.suspect_commits == []
    assert {r.code for r in check.reasons} == {"code_ref_dropped", "commit_dropped"}
    assert "no repository" in check.reasons[0].detail


def test_a_folder_without_git_has_code_tools_but_no_history(tmp_path):
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "prompt.md").write_text("You are a helpful agent.\n")
    repo = open_repository(tmp_path / "plain")
    assert repo.is_git is False
    assert code.glob(repo, "*.md") == (["prompt.md"], 1)
    with pytest.raises(git.GitError, match=r"no \.git at its root"):
        git.log(repo)
    check = verify_harness_refs(
        repo, [{"path": "prompt.md", "start_line": 1, "excerpt": "helpful agent"}], []
    )
    assert check.code_refs[0].verified is True


def test_a_folder_inside_a_work_tree_gets_no_history_and_says_why(harness):
    repo = open_repository(harness.root / "agent")
    assert repo.is_git is False and repo.enclosing_work_tree == harness.root
    with pytest.raises(git.GitError, match="inside the work tree"):
        git.log(repo)
    assert code.glob(repo, "*.py") == (["tools.py"], 1)
