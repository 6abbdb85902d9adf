"""The check workflow, one for both front ends (`halo-mcp check` and the check_findings tool):
resolve where the findings come from, recount them on the baseline traces when given, then
recount them on the new traces and decide a verdict per finding.

Where findings come from (`CheckSource`): a run (its id), a saved JSON (a triage report, a
run record or a list of findings), or a triage of the baseline traces. With baseline traces,
'before' is always recounted on them, so 'before' and 'after' come from the same counting.

Stores are used one at a time through `with_store(paths, fn)`, which the front end supplies:
the CLI opens and closes each store, the MCP server reuses its open stores. Run lookups go
through `run_findings(run_id)` (the front end's run store and who may see what), since
check sits below the engine and does not know runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import orjson
from pydantic import TypeAdapter, ValidationError

from halo_mcp.check.recount import CheckReport, check_findings, recount_prevalence
from halo_mcp.findings.models import Finding
from halo_mcp.store.api import TraceReader
from halo_mcp.triage import run_triage

T = TypeVar("T")


@dataclass(frozen=True)
class FromRun:
    """The findings of a recorded run."""

    run_id: str


@dataclass(frozen=True)
class FromSavedJson:
    """Findings saved as JSON: `halo-mcp triage --json` output, a run record or a list."""

    path: Path


@dataclass(frozen=True)
class FromBaselineTriage:
    """The items of a triage of the baseline traces."""


CheckSource = FromRun | FromSavedJson | FromBaselineTriage


def parse_source(text: str) -> CheckSource:
    """The CLI's SOURCE argument: 'triage', a JSON file (by suffix or because it exists),
    else a run id."""
    if text == "triage":
        return FromBaselineTriage()
    path = Path(text)
    if path.suffix.lower() == ".json" or path.is_file():
        return FromSavedJson(path)
    return FromRun(text)


@dataclass(frozen=True)
class RunFindings:
    """What the check needs of a run: whether it ended, and its findings."""

    run_id: str
    status: str
    ended: bool
    findings: list[Finding]


class CheckError(ValueError):
    """The check cannot run as asked; the message says what to pass instead."""


class NothingToCheck(CheckError):
    """The source holds no findings (front ends add where to find some)."""

    def __init__(self, what: str, run_id: str | None) -> None:
        super().__init__(f"Nothing to check: {what} has no findings.")
        self.what, self.run_id = what, run_id


class WithStore(Protocol):
    """Run `fn` on the open store of `paths` (StoreError when they cannot be opened)."""

    def __call__(self, paths: Sequence[Path | str], fn: Callable[[TraceReader], T], /) -> T: ...


@dataclass
class CheckOutcome:
    report: CheckReport
    what: str  # where the findings came from, e.g. "run run_abc"
    findings_omitted: int = 0  # beyond max_findings, not checked


def run_check(
    source: CheckSource,
    new_paths: Sequence[Path | str],
    *,
    with_store: WithStore,
    run_findings: Callable[[str], RunFindings],
    baseline_paths: Sequence[Path | str] | None = None,
    with_baseline_store: WithStore | None = None,
    finding_ids: Sequence[str] | None = None,
    max_findings: int | None = None,
    on_step: Callable[[str], None] | None = None,
) -> CheckOutcome:
    """Check the findings of `source` on `new_paths` (see the module doc).

    `with_baseline_store` opens the baseline's stores (default `with_store`): the two
    differ when each has its own time window over one growing collection.
    Raises CheckError (NothingToCheck when there is nothing to check); store errors as
    `with_store` raises them.
    """
    with_baseline = with_baseline_store or with_store

    def step(message: str) -> None:
        if on_step is not None:
            on_step(message)

    baseline = list(baseline_paths) if baseline_paths else None
    run_id: str | None = None
    if isinstance(source, FromRun):
        run = run_findings(source.run_id)
        if not run.ended:
            raise CheckError(
                f"Run {run.run_id} is still {run.status}; wait for it to finish (get_run over "
                f"MCP, `halo-mcp show {run.run_id}` in a terminal), then check its findings."
            )
        findings, run_id, what = run.findings, run.run_id, f"run {run.run_id}"
    elif isinstance(source, FromSavedJson):
        findings, run_id, what = load_saved_findings(source.path)
    else:
        if baseline is None:
            raise CheckError("A triage needs the baseline traces (the traces from before).")
        step("triaging the baseline traces")
        findings = with_baseline(baseline, run_triage).items
        what = "triage of the baseline traces"
    if finding_ids:
        wanted = set(finding_ids)
        findings = [f for f in findings if f.id in wanted]
        if not findings:
            raise CheckError(f"None of the finding ids belongs to {what}; omit them to check all.")
    if not findings:
        raise NothingToCheck(what, run_id)
    omitted = max(0, len(findings) - max_findings) if max_findings is not None else 0
    if omitted:
        findings = findings[: len(findings) - omitted]
    label = None
    if baseline is not None:
        step("recounting on the baseline traces")
        chosen = findings
        findings = with_baseline(baseline, lambda store: recount_prevalence(chosen, store))
        label = "recount on the baseline traces " + ", ".join(str(p) for p in baseline)
    step("recounting on the new traces")
    checked = findings
    report = with_store(
        new_paths,
        lambda store: check_findings(checked, store, run_id=run_id, baseline_label=label),
    )
    return CheckOutcome(report=report, what=what, findings_omitted=omitted)


def load_saved_findings(path: Path) -> tuple[list[Finding], str | None, str]:
    """Findings from a saved JSON: (findings, run id, where they came from)."""
    if not path.is_file():
        raise CheckError(f"{path} does not exist; pass a run id or a saved JSON file")
    try:
        data = orjson.loads(path.read_bytes())
        if isinstance(data, dict) and "items" in data:
            raw, run_id, what = data["items"], None, f"triage saved in {path}"
        elif isinstance(data, dict) and "findings" in data:
            raw, run_id = data["findings"], data.get("id")
            what = f"run {run_id} saved in {path}"
        elif isinstance(data, list):
            raw, run_id, what = data, None, f"findings saved in {path}"
        else:
            raise ValueError("no 'items' or 'findings' in it")
        findings = _FINDINGS.validate_python(raw)
    except (orjson.JSONDecodeError, ValidationError, ValueError, OSError) as exc:
        raise CheckError(
            f"{path} is not a triage report, run record or findings list ({exc}). Save "
            "one with `halo-mcp triage PATH --json > triage.json`."
        ) from None
    return findings, run_id, what


_FINDINGS = TypeAdapter(list[Finding])
