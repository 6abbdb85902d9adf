"""`halo-mcp --help` and `halo-mcp query --help` read as one consistent manual: every
subcommand line is a capitalized sentence, every query option says what it does, and
--fields lists exactly the fields the store accepts. Read from the printed help, as a
user sees it."""

from __future__ import annotations

import re

import pytest

from halo_mcp.cli import main
from halo_mcp.store.models import SPAN_FIELDS


def _help(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    return capsys.readouterr().out


def _entries(text: str, section: str) -> dict[str, str]:
    """The entries of a help section: invocation -> help (continuation lines joined)."""
    block = text.split(f"\n{section}:\n", 1)[1].split("\n\n", 1)[0]
    entries: dict[str, str] = {}
    current = None
    for line in block.splitlines():
        if re.match(r"^ {2,4}\S", line):
            invocation, _, help_text = line.strip().partition("  ")
            current = invocation
            entries[current] = help_text.strip()
        elif current is not None:
            entries[current] = f"{entries[current]} {line.strip()}".strip()
    return entries


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "1000")  # one help text per line


def test_every_subcommand_help_line_is_a_capitalized_sentence(capsys):
    lines = _entries(_help(capsys), "positional arguments")
    lines.pop("COMMAND")
    assert {"query", "serve", "run", "triage", "check", "install"} <= set(lines)
    for name, text in lines.items():
        assert text and text[0].isupper() and text.rstrip().endswith((".", "?")), (name, text)


def test_every_query_option_has_help_and_fields_lists_the_valid_fields(capsys):
    text = _help(capsys, "query")
    entries = {**_entries(text, "positional arguments"), **_entries(text, "options")}
    for invocation, help_text in entries.items():
        assert help_text, f"query option {invocation} has no help"
    helps = {
        part.split(" ")[0]: help_text
        for invocation, help_text in entries.items()
        for part in invocation.split(", ")
    }
    listed = re.search(r"valid: (.*?) \(default", helps["--fields"]).group(1).split(", ")
    assert listed == list(SPAN_FIELDS)
    assert "default 20" in helps["--limit"]
    for option in ("--service", "--agent", "--model", "--min-duration-ms", "--max-duration-ms"):
        assert len(helps[option]) > 10
