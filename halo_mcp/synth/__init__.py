"""Deterministic synthetic agent traces with planted failure modes at known rates.

    from halo_mcp.synth import generate, NO_FAILURES
    manifest = generate("traces.jsonl", traces=300, seed=1)            # HALO JSONL
    generate("t.otlp.jsonl.gz", traces=50, format="otlp", convention="genai")
    generate("clean.jsonl", traces=100, failure_rates=NO_FAILURES)    # no error spans
    manifest.mode("tool_arg_error").matcher   # a SpanFilter dict selecting its spans

CLI: `python -m halo_mcp.synth OUT --traces N [...]` (see `--help`).
"""

from halo_mcp.synth.failures import (
    DEFAULT_FAILURE_RATES,
    FAILURE_MODES,
    MODE_NAMES,
    NO_FAILURES,
    FailureMode,
)
from halo_mcp.synth.generate import CONVENTIONS, PROFILES, generate
from halo_mcp.synth.manifest import (
    BadLineRecord,
    Manifest,
    PlantedMode,
    ToolCount,
    load_manifest,
    manifest_path,
)
from halo_mcp.synth.messy import BAD_LINE_KINDS
from halo_mcp.synth.writers import FORMATS

__all__ = [
    "BAD_LINE_KINDS",
    "CONVENTIONS",
    "DEFAULT_FAILURE_RATES",
    "FAILURE_MODES",
    "FORMATS",
    "MODE_NAMES",
    "NO_FAILURES",
    "PROFILES",
    "BadLineRecord",
    "FailureMode",
    "Manifest",
    "PlantedMode",
    "ToolCount",
    "generate",
    "load_manifest",
    "manifest_path",
]
