"""The recursive analysis engine (HALO-RLM): provider, agents, tools, findings, runs.

Reads traces only through :mod:`halo_mcp.store`; knows nothing of MCP.
"""

from halo_mcp.engine.api import run_analysis, stream_run
from halo_mcp.engine.errors import (
    EngineError,
    NoApiKeyError,
    ProviderError,
    UnknownFindingError,
    UnknownRunError,
)
from halo_mcp.engine.models import Evidence, Finding, Prevalence, RunRecord, RunStatus, Usage
from halo_mcp.engine.report import prevalence_text, render_report
from halo_mcp.engine.runner import execute_run
from halo_mcp.engine.runstore import RunStore, open_run_store
from halo_mcp.engine.settings import EngineSettings

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
