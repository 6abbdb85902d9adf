"""Trace path validation, the one check every tool runs before reading a file: over HTTP
paths stay inside the roots (symlinks resolved, '..' and NUL refused); over stdio any
readable path is accepted and reported back absolute."""

from __future__ import annotations

import pytest
from mcp.server.mcpserver.exceptions import ToolError

from halo_mcp.tools.paths import normalize_roots, resolve_trace_paths


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    inside = root / "sub" / "t.jsonl"
    inside.write_text("{}\n")
    outside = tmp_path / "secret.jsonl"
    outside.write_text("{}\n")
    return root, inside, outside


def test_over_stdio_a_relative_path_comes_back_absolute(tree, monkeypatch):
    root, inside, _ = tree
    monkeypatch.chdir(root)
    assert resolve_trace_paths(["sub/t.jsonl"], None) == [inside.resolve()]


def test_a_missing_file_names_the_absolute_path_looked_at(tree, monkeypatch):
    root, _, _ = tree
    monkeypatch.chdir(root)
    with pytest.raises(ToolError, match=str(root / "missing.jsonl")):
        resolve_trace_paths(["missing.jsonl"], None)


def test_inside_the_roots_a_relative_path_is_taken_from_the_first_root(tree):
    root, inside, _ = tree
    roots = normalize_roots([root])
    assert resolve_trace_paths(["sub/t.jsonl"], roots) == [inside.resolve()]
    assert resolve_trace_paths([str(inside)], roots) == [inside.resolve()]
    assert resolve_trace_paths([str(root)], roots) == [root.resolve()]  # a directory


def test_a_path_outside_the_roots_is_refused_with_the_roots_named(tree):
    root, _, outside = tree
    with pytest.raises(ToolError, match="outside the allowed roots") as err:
        resolve_trace_paths([str(outside)], normalize_roots([root]))
    assert str(root.resolve()) in str(err.value)


def test_a_symlink_that_escapes_the_roots_is_refused(tree):
    root, _, outside = tree
    link = root / "innocent.jsonl"
    link.symlink_to(outside)
    with pytest.raises(ToolError, match="outside the allowed roots"):
        resolve_trace_paths([str(link)], normalize_roots([root]))
    # Over stdio the same link is fine: the user can read the target anyway.
    assert resolve_trace_paths([str(link)], None) == [outside.resolve()]


def test_dot_dot_nul_and_flag_like_paths_are_refused(tree):
    root, _, _ = tree
    roots = normalize_roots([root])
    with pytest.raises(ToolError, match=r"contains '\.\.'"):
        resolve_trace_paths(["sub/../sub/t.jsonl"], roots)
    with pytest.raises(ToolError, match="NUL"):
        resolve_trace_paths(["sub/t.jsonl\x00.txt"], roots)
    with pytest.raises(ToolError, match="starts with '-'"):
        resolve_trace_paths(["--help"], None)
    with pytest.raises(ToolError, match="No trace path"):
        resolve_trace_paths([], None)


def test_a_root_that_is_not_a_directory_is_a_configuration_error(tree):
    _, inside, _ = tree
    with pytest.raises(ValueError, match="not a directory"):
        normalize_roots([inside])
