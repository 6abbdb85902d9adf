"""Write a synthetic trace file, streaming, and its manifest.

Deterministic: the same arguments give byte-identical files (gzip included: no mtime, no
file name in the header). Memory does not grow with the file: each run is simulated,
written and dropped.
"""

from __future__ import annotations

import contextlib
import gzip as gzip_module
import logging
import random
from collections import Counter
from pathlib import Path
from typing import BinaryIO

from halo_mcp.synth import messy
from halo_mcp.synth.content import iso_ns
from halo_mcp.synth.failures import (
    ERROR_TYPE_MODE,
    FAILURE_MODES,
    FailurePlanner,
    resolve_rates,
)
from halo_mcp.synth.manifest import (
    MAX_LISTED_TRACE_IDS,
    SAMPLE_TRACE_IDS,
    BadLineRecord,
    Manifest,
    PlantedMode,
    ToolCount,
    manifest_path,
)
from halo_mcp.synth.scenario import SimTrace, pick_agent, simulate
from halo_mcp.synth.writers import FORMATS, WRITERS, trace_key

log = logging.getLogger(__name__)

CONVENTIONS = ("openinference", "genai", "mixed")
PROFILES = ("realistic", "tiny")
#: All runs start from here and spread over three days (fixed, so files are reproducible).
BASE_NS = 1_794_787_200 * 1_000_000_000  # 2026-11-16T00:00:00Z
TIMELINE_NS = 72 * 3600 * 1_000_000_000
#: Rough bytes per trace, to plan a --size-mb file (only used to space the runs in time).
_BYTES_PER_TRACE = {"realistic": 85_000, "tiny": 11_500}
#: With bad_lines > 0, this share of runs is written the sloppy-but-valid way.
MESSY_RUN_RATE = 0.05


def generate(
    path: str | Path,
    *,
    traces: int | None = None,
    size_mb: float | None = None,
    seed: int = 0,
    format: str = "halo",
    convention: str = "openinference",
    profile: str = "realistic",
    failure_rates: dict[str, float] | None = None,
    gzip: bool | None = None,
    bad_lines: int = 0,
) -> Manifest:
    """Generate a trace file at `path` and write `<path>.manifest.json` next to it.

    Give `traces` (number of agent runs) or `size_mb` (stop once the uncompressed content
    reaches that many MB, 10^6 bytes). `failure_rates` overrides the per-trace rates of
    :data:`DEFAULT_FAILURE_RATES` (pass :data:`NO_FAILURES` for a clean set). `gzip`
    defaults to True when `path` ends in `.gz`. `bad_lines` > 0 makes the file messy: it
    starts with a BOM, holds that many malformed lines (the last one a truncated final
    line without newline; their line numbers are in the manifest), and ~5% of runs are
    written sloppily but validly (numbers as strings, null/empty strings, enum names).
    """
    if (traces is None) == (size_mb is None):
        raise ValueError("give exactly one of traces (a count) or size_mb (a target size)")
    if traces is not None and traces < 1:
        raise ValueError(f"traces must be at least 1, got {traces}")
    if size_mb is not None and size_mb <= 0:
        raise ValueError(f"size_mb must be positive, got {size_mb}")
    if format not in FORMATS:
        raise ValueError(f"unknown format {format!r}; choose from: {', '.join(FORMATS)}")
    if convention not in CONVENTIONS:
        raise ValueError(
            f"unknown convention {convention!r}; choose from: {', '.join(CONVENTIONS)}"
        )
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose from: {', '.join(PROFILES)}")
    if bad_lines < 0:
        raise ValueError(f"bad_lines must be >= 0, got {bad_lines}")
    rates = resolve_rates(failure_rates)
    path = Path(path)
    use_gzip = path.name.endswith(".gz") if gzip is None else gzip
    target_bytes = None if size_mb is None else int(size_mb * 1_000_000)
    planned = traces or max(1, (target_bytes or 0) // _BYTES_PER_TRACE[profile])

    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        out: BinaryIO | gzip_module.GzipFile = stack.enter_context(
            path.open("wb", buffering=1 << 20)
        )
        if use_gzip:
            out = stack.enter_context(
                gzip_module.GzipFile(filename="", mode="wb", fileobj=out, compresslevel=6, mtime=0)
            )
        state = _write(
            out,
            traces,
            target_bytes,
            planned,
            seed,
            format,
            convention,
            profile,
            rates,
            bad_lines,
        )

    manifest = state.manifest(path.name, format, convention, profile, seed, use_gzip, rates)
    manifest_path(path).write_text(manifest.model_dump_json(indent=2) + "\n")
    log.info("wrote %s: %d traces, %d spans", path, manifest.traces, manifest.spans)
    return manifest


class _Tally:
    """Counts kept while writing, turned into the manifest at the end."""

    def __init__(self, format: str) -> None:
        self.format = format
        self.traces = 0
        self.spans = 0
        self.lines = 0
        self.bytes = 0
        self.error_spans = 0
        self.error_traces = 0
        self.first_ns: int | None = None
        self.last_ns = 0
        self.services: Counter[str] = Counter()
        self.agents: Counter[str] = Counter()
        self.models: Counter[str] = Counter()
        self.tools: dict[str, ToolCount] = {}
        self.mode_traces: dict[str, int] = Counter()
        self.mode_spans: dict[str, int] = Counter()
        self.mode_ids: dict[str, list[str]] = {m.name: [] for m in FAILURE_MODES}
        self.bom = False
        self.messy_traces = 0
        self.bad: list[BadLineRecord] = []

    def add_trace(self, trace: SimTrace) -> None:
        self.traces += 1
        self.spans += len(trace.spans)
        self.services[trace.service] += 1
        errors_by_mode: Counter[str] = Counter()
        for span in trace.spans:
            if span.kind == "agent":
                self.agents[span.name] += 1
            elif span.kind == "llm":
                self.models[span.model or ""] += 1
            elif span.kind == "tool":
                counts = self.tools.setdefault(span.name, ToolCount())
                counts.calls += 1
                counts.errors += span.error is not None
            if span.error_type is not None:
                errors_by_mode[ERROR_TYPE_MODE[span.error_type]] += 1
            self.last_ns = max(self.last_ns, span.end_ns)
        if self.first_ns is None:
            self.first_ns = trace.spans[0].start_ns
        if errors_by_mode:
            self.error_traces += 1
            self.error_spans += sum(errors_by_mode.values())
        if set(errors_by_mode) != trace.modes:  # the harness must plant exactly what was asked
            raise AssertionError(
                f"planted {sorted(errors_by_mode)} but asked {sorted(trace.modes)}"
            )
        key = trace_key(trace.trace_id, self.format)
        for mode, count in errors_by_mode.items():
            self.mode_traces[mode] += 1
            self.mode_spans[mode] += count
            if len(self.mode_ids[mode]) < MAX_LISTED_TRACE_IDS + 1:
                self.mode_ids[mode].append(key)

    def manifest(
        self,
        file: str,
        format: str,
        convention: str,
        profile: str,
        seed: int,
        gzip: bool,
        rates: dict[str, float],
    ) -> Manifest:
        modes = []
        for mode in FAILURE_MODES:
            ids = self.mode_ids[mode.name]
            complete = len(ids) <= MAX_LISTED_TRACE_IDS
            modes.append(
                PlantedMode(
                    name=mode.name,
                    description=mode.description,
                    rate=rates[mode.name],
                    planted_traces=self.mode_traces[mode.name],
                    planted_spans=self.mode_spans[mode.name],
                    trace_ids=ids if complete else ids[:SAMPLE_TRACE_IDS],
                    trace_ids_complete=complete,
                    matcher=dict(mode.matcher),
                )
            )
        return Manifest(
            file=file,
            format=format,
            convention=convention,
            profile=profile,
            seed=seed,
            gzip=gzip,
            traces=self.traces,
            spans=self.spans,
            lines=self.lines,
            bytes=self.bytes,
            error_spans=self.error_spans,
            error_traces=self.error_traces,
            start_time=iso_ns(self.first_ns) if self.first_ns is not None else None,
            end_time=iso_ns(self.last_ns) if self.traces else None,
            services=dict(sorted(self.services.items())),
            agents=dict(sorted(self.agents.items())),
            models=dict(sorted(self.models.items())),
            tools=dict(sorted(self.tools.items())),
            bom=self.bom,
            messy_traces=self.messy_traces,
            bad_lines=self.bad,
            failure_modes=modes,
        )


def _write(
    out: BinaryIO | gzip_module.GzipFile,
    traces: int | None,
    target_bytes: int | None,
    planned: int,
    seed: int,
    format: str,
    convention: str,
    profile: str,
    rates: dict[str, float],
    bad_lines: int,
) -> _Tally:
    rng = random.Random(seed)
    convention_rng = random.Random(f"halo-synth-conventions-{seed}")
    messy_rng = random.Random(f"halo-synth-messy-{seed}")
    planner = FailurePlanner(seed, rates, planned)
    writer = WRITERS[format]
    tiny = profile == "tiny"
    tally = _Tally(format)

    # Bad lines go before chosen runs (never splitting a run, never first), plus a
    # truncated tail.
    inner = max(0, bad_lines - 1)
    bad_before = Counter(messy_rng.randrange(1, max(2, planned)) for _ in range(inner))
    kinds = iter(messy.BAD_LINE_KINDS[i % len(messy.BAD_LINE_KINDS)] for i in range(inner))
    mean_gap = TIMELINE_NS // planned
    start_ns = BASE_NS
    sessions: dict[str, tuple[str, str]] = {}  # agent -> its current (session, user)
    last_line = b"{}"

    def emit(chunk: bytes, lines: int) -> None:
        if bad_lines > 0 and tally.bytes == 0:
            chunk = messy.BOM + chunk
            tally.bom = True
        out.write(chunk)
        tally.lines += lines
        tally.bytes += len(chunk)

    index = 0
    while True:
        if traces is not None and index >= traces:
            break
        if target_bytes is not None and tally.bytes >= target_bytes:
            break
        for _ in range(bad_before.pop(index, 0)):
            kind = next(kinds)
            tally.bad.append(BadLineRecord(line=tally.lines + 1, kind=kind))
            emit(messy.bad_line(kind, messy_rng, format, last_line) + b"\n", 1)

        modes = planner.modes_for(index)
        trace_id = f"{rng.getrandbits(128):032x}"
        spec = pick_agent(rng)
        if spec.name not in sessions or rng.random() > 0.3:  # else: the same chat goes on
            sessions[spec.name] = (
                f"sess_{rng.getrandbits(64):016x}",
                f"user_{rng.randint(1, 500):04d}",
            )
        session, user = sessions[spec.name]
        run = simulate(rng, spec, trace_id, session, user, start_ns, modes, tiny=tiny)
        trace_convention = convention
        if convention == "mixed":
            trace_convention = convention_rng.choices(
                ("openinference", "genai", "genai-legacy"), weights=(5, 3, 2)
            )[0]
        messy_run = bad_lines > 0 and messy_rng.random() < MESSY_RUN_RATE
        tally.messy_traces += messy_run
        lines = writer(run, trace_convention, tiny, messy_run)
        emit(b"\n".join(lines) + b"\n", len(lines))
        tally.add_trace(run)
        last_line = lines[-1]
        start_ns += int(mean_gap * rng.uniform(0.2, 1.8))
        index += 1

    for _ in range(sum(bad_before.values())):  # runs planned but not written (size_mb)
        kind = next(kinds)
        tally.bad.append(BadLineRecord(line=tally.lines + 1, kind=kind))
        emit(messy.bad_line(kind, messy_rng, format, last_line) + b"\n", 1)
    if bad_lines > 0:
        tally.bad.append(BadLineRecord(line=tally.lines + 1, kind="truncated_json"))
        emit(messy.bad_line("truncated_json", messy_rng, format, last_line), 1)
    return tally
