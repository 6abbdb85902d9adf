"""The recursive analysis engine (HALO-RLM): provider, agents, tools, findings, runs.

Reads traces only through :mod:`halo_mcp.store`; knows nothing of MCP.

The names below are loaded on first use (PEP 562): importing one light module of the
engine (its errors, its settings) must not load the run store, the finding models or the
`openai` client (over a second of start-up), so `halo-mcp --help`, `runs`, `show` and the MCP
server stay fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from halo_mcp.engine.api import run_analysis, stream_run
    from halo_mcp.engine.errors import (
        EngineError,
        NoApiKeyError,
        ProviderError,
        UnknownFindingError,
        UnknownRunError,
    )
    from halo_mcp.engine.lifecycle import RunLifecycle, open_lifecycle
    from halo_mcp.engine.models import RunRecord, RunStatus, Usage
    from halo_mcp.engine.report import prevalence_text, render_report
    from halo_mcp.engine.runner import execute_run
    from halo_mcp.engine.runstore import RunStore, open_run_store
    from halo_mcp.engine.settings import EngineSettings
    from halo_mcp.findings.models import Evidence, Finding, Prevalence

_LAZY = {
    "run_analysis": "halo_mcp.engine.api",
    "stream_run": "halo_mcp.engine.api",
    "EngineError": "halo_mcp.engine.errors",
    "NoApiKeyError": "halo_mcp.engine.errors",
    "ProviderError": "halo_mcp.engine.errors",
    "UnknownFindingError": "halo_mcp.engine.errors",
    "UnknownRunError": "halo_mcp.engine.errors",
    "RunLifecycle": "halo_mcp.engine.lifecycle",
    "open_lifecycle": "halo_mcp.engine.lifecycle",
    "RunRecord": "halo_mcp.engine.models",
    "RunStatus": "halo_mcp.engine.models",
    "Usage": "halo_mcp.engine.models",
    "prevalence_text": "halo_mcp.engine.report",
    "render_report": "halo_mcp.engine.report",
    "execute_run": "halo_mcp.engine.runner",
    "RunStore": "halo_mcp.engine.runstore",
    "open_run_store": "halo_mcp.engine.runstore",
    "EngineSettings": "halo_mcp.engine.settings",
    "Evidence": "halo_mcp.findings.models",
    "Finding": "halo_mcp.findings.models",
    "Prevalence": "halo_mcp.findings.models",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
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
    "RunLifecycle",
    "RunRecord",
    "RunStatus",
    "RunStore",
    "UnknownFindingError",
    "UnknownRunError",
    "Usage",
    "execute_run",
    "open_lifecycle",
    "open_run_store",
    "prevalence_text",
    "render_report",
    "run_analysis",
    "stream_run",
]
