"""Deterministic triage (no LLM, no API key): the symptoms a trace set shows, counted.

Triage reads aggregates of the trace index through the store's one door,
``TraceStore.aggregates()`` (errors grouped by signature, repeated tool inputs, latency
and token distributions, root spans; no SQL here) and turns each symptom into an item
of the same shape as an engine finding (source="triage"): a matcher, a prevalence computed
by the store, and evidence ids. It says nothing about causes; the engine's root agent
starts from :func:`triage_summary` and spends its turns on why.

One module per idea:
- models.py: the rule, the report, Measurement and Candidate (an item before ranking);
- detectors: error_clusters.py (error signature clusters, retry storms; bursts.py says
  when they come in bursts), loops.py (identical tool calls), limits.py (runs piled at a
  silent step limit), outliers.py (latency and tokens per tool/model/agent), answers.py
  (runs without a final answer), tool_failures.py (tools by failure rate);
- context.py: one aggregate reader plus the aggregates detectors share;
- rank.py: merging items over the same traces, ranking, conversion to findings;
- measure.py: recounting an item's rule on other traces (for check);
- summary.py: the bounded text for an agent's prompt; run.py: `run_triage`;
- describe.py: rules and matchers in words, and `validation` without the rule JSON.

Each item's rule (what exactly was counted) travels in its `validation` text after
``[triage-rule]``, so `check` can recompute it on new traces even when the item was saved
as a plain Finding; text renderings show :func:`readable_validation` instead.
"""

from __future__ import annotations

from halo_mcp.triage.answers import ROOT_SAMPLE, missing_measure
from halo_mcp.triage.bursts import BURST_MIN_ERRORS
from halo_mcp.triage.context import AggregateContext
from halo_mcp.triage.describe import (
    describe_rule,
    describe_scope,
    readable_validation,
    split_validation,
)
from halo_mcp.triage.error_clusters import (
    MIN_STORM_ERRORS,
    cluster_signature,
    error_clusters,
    error_type,
    mask_models,
    signature_regex,
)
from halo_mcp.triage.limits import STEP_CAP_MIN_TRACES, step_cap
from halo_mcp.triage.loops import MIN_REPEATS
from halo_mcp.triage.measure import count_matcher, measure, measure_in, rule_of
from halo_mcp.triage.models import (
    EXAMPLES,
    RULE_TAG,
    TRIAGE_RUN_ID,
    Measurement,
    ToolFailure,
    TriageReport,
    TriageRule,
)
from halo_mcp.triage.outliers import (
    OUTLIER_FACTOR,
    OUTLIER_MIN_GROUP,
    OUTLIER_SAMPLE_ROWS,
    OUTLIER_Z,
    more_than_tail,
    outlier_threshold,
)
from halo_mcp.triage.rank import MERGE_JACCARD
from halo_mcp.triage.run import MAX_ITEMS, run_triage
from halo_mcp.triage.summary import SUMMARY_CHARS, triage_summary

__all__ = [
    "BURST_MIN_ERRORS",
    "EXAMPLES",
    "MAX_ITEMS",
    "MERGE_JACCARD",
    "MIN_REPEATS",
    "MIN_STORM_ERRORS",
    "OUTLIER_FACTOR",
    "OUTLIER_MIN_GROUP",
    "OUTLIER_SAMPLE_ROWS",
    "OUTLIER_Z",
    "ROOT_SAMPLE",
    "RULE_TAG",
    "STEP_CAP_MIN_TRACES",
    "SUMMARY_CHARS",
    "TRIAGE_RUN_ID",
    "AggregateContext",
    "Measurement",
    "ToolFailure",
    "TriageReport",
    "TriageRule",
    "cluster_signature",
    "count_matcher",
    "describe_rule",
    "describe_scope",
    "error_clusters",
    "error_type",
    "mask_models",
    "measure",
    "measure_in",
    "missing_measure",
    "more_than_tail",
    "outlier_threshold",
    "readable_validation",
    "rule_of",
    "run_triage",
    "signature_regex",
    "split_validation",
    "step_cap",
    "triage_summary",
]
