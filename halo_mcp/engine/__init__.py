"""The recursive analysis engine (HALO-RLM): provider, agents, tools, findings, runs.

Reads traces only through :mod:`halo_mcp.store`; knows nothing of MCP.
"""

from typing import TYPE_CHECKING, Any

from halo_mcp.engine.errors import (
    EngineError,
    NoApiKeyError,
    ProviderError,
    UnknownFindingError,
    UnknownRunError,
)
from halo_mcp.engine.models import RunRecord, RunStatus, Usage
from halo_mcp.engine.report import prevalence_text, render_report
from halo_mcp.engine.runstore import RunStore, open_run_store
from halo_mcp.engine.settings import EngineSettings
from halo_mcp.findings.models import Evidence, Finding, Prevalence

if TYPE_CHECKING:
    from halo_mcp.engine.api import run_analysis, stream_run
    from halo_mcp.engine.runner import execute_run

# The agent machinery imports `openai` (over a second of start-up): load it on first use,
# so reading runs (`halo-mcp runs`, `show`) and starting the MCP server stay fast.
_LAZY = {
    "run_analysis": "halo_mcp.engine.api",
    "stream_run": "halo_mcp.engine.api",
    "execute_run": "halo_mcp.engine.runner",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "EngineError",
    "EngineSettings",
    "Evidence",
    "Finding",
    "NoApiKeyError",
    "Prevalence",
    "ProviderError",
    "RunRecord",
    "RunStatus",
    "RunStore",
    "UnknownFindingError",
    "UnknownRunError",
    "Usage",
    "execute_run",
    "open_run_store",
    "prevalence_text",
    "render_report",
    "run_analysis",
    "stream_run",
]
