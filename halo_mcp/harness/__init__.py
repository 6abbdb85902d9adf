"""Read-only access to the harness repository the traces came from: its code and its git
history, for the engine's agents, and the checks that keep findings' code refs honest.

No LLM and no MCP here: `paths` confines every path to the repository root, `code` lists,
globs, greps and reads files, `git` runs allow-listed read-only git commands, and `verify`
checks a finding's code refs and suspect commits against HEAD.
"""

from halo_mcp.harness.paths import HarnessPathError, Repository, open_repository

__all__ = ["HarnessPathError", "Repository", "open_repository"]
