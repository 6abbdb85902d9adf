"""halo-mcp: HALO's recursive trace-analysis engine behind MCP, with a CLI.

Layers, top to bottom (imports point down only):
- `halo_mcp.server`, `halo_mcp.tools`, `halo_mcp.cli`: the edges (MCP and terminal);
- `halo_mcp.engine`: LLM agents, findings, runs, triage;
- `halo_mcp.store`: trace ingestion, the on-disk index, span queries.
"""

__version__ = "0.1.0"
