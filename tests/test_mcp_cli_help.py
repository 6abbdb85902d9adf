"""`halo-mcp --help` and `halo-mcp query --help` read as one consistent manual: every
subcommand line is a capitalized sentence, every query option says what it does, and
--fields lists exactly the fields the store accepts."""

from __future__ import annotations

import argparse
import re

from halo_mcp.cli import build_parser
from halo_mcp.store.models import SPAN_FIELDS


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    [action] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return action.choices


def test_every_subcommand_help_line_is_a_capitalized_sentence():
    parser = build_parser()
    [action] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    lines = {choice.dest: choice.help for choice in action._choices_actions}
    assert {"query", "serve", "run", "triage", "check", "install"} <= set(lines)
    for name, text in lines.items():
        assert text and text[0].isupper() and text.rstrip().endswith((".", "?")), (name, text)


def test_every_query_option_has_help_and_fields_lists_the_valid_fields():
    query = _subcommands(build_parser())["query"]
    for action in query._actions:
        assert action.help, f"query option {action.option_strings or action.dest} has no help"
    helps = {opt: a.help for a in query._actions for opt in a.option_strings}
    listed = re.search(r"valid: (.*?) \(default", helps["--fields"]).group(1).split(", ")
    assert listed == list(SPAN_FIELDS)
    assert "default 20" in helps["--limit"]
    for option in ("--service", "--agent", "--model", "--min-duration-ms", "--max-duration-ms"):
        assert len(helps[option]) > 10
