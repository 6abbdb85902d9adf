"""Record traces from real agent frameworks running against the fake OpenAI server.

    pip install -e '.[record]'     # frameworks and instrumentors (not for tests); LlamaIndex,
                                   # Strands, Google ADK and pydantic-ai's instrumentation
                                   # v1: '.[record-llamaindex]' / '.[record-strands]' /
                                   # '.[record-adk]' / '.[record-pydantic-ai-v1]', each in
                                   # its own venv (their pins conflict); CrewAI: a venv
                                   # from requirements-crewai.txt (no halo-mcp: mcp<2)
    python bench/record_frameworks/record.py                  # every framework
    python bench/record_frameworks/record.py pydantic_ai_v2 langgraph_oi
    python bench/record_frameworks/record.py --truth-only openai_agents_oi   # ground truth
                                   # again from the runs it lists (no recording)

Each framework runs in its own process: the fake OpenAI-compatible server
(tests/fakes/openai_server.py) plays the model, including the planted faults (plan.py);
spans go through the real OpenTelemetry SDK and the real OTLP/HTTP exporter to a local
receiver (receiver.py) that writes OTLP JSON lines. Written per framework, under
tests/data/frameworks/<framework>/: traces.jsonl.gz, ground_truth.json (planted mode ->
traces, words a triage title must hold) and versions.json (library versions).
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path[:0] = [str(ROOT), str(HERE)]

import plan  # noqa: E402
from receiver import OtlpReceiver  # noqa: E402

from tests.fakes.openai_server import FakeOpenAIServer  # noqa: E402

FAKE_KEY = "sk-fake-recording-0000"
DEFAULT_OUT = ROOT / "tests" / "data" / "frameworks"


@dataclass
class Context:
    """What a framework's recorder gets: the fake model, the OTel provider, the plan."""

    name: str
    fake: FakeOpenAIServer
    out_dir: Path
    modes: dict[str, int]
    tracer_provider: Any = None
    endpoint: str = ""
    #: Called before the files are closed (flush a provider the framework made itself).
    on_finish: list[Callable[[], Any]] = field(default_factory=list)
    outcomes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return self.fake.base_url

    def each(
        self,
        run_one: Callable[[plan.PlannedRun], Any],
        final_tool: str | None = None,
        script: Callable[[plan.PlannedRun], list[Any]] | None = None,
    ) -> None:
        """Play every planned run: script the model, run, note how it ended. `script`
        replaces plan.steps (other providers' faults)."""
        for run in plan.runs(self.modes):
            self.fake.clear()
            self.fake.script(script(run) if script else plan.steps(run, final_tool))
            began = time.perf_counter()
            try:
                run_one(run)
                ended = "ok"
            except Exception as exc:  # the planted failures end runs this way
                ended = f"{type(exc).__name__}: {str(exc)[:200]}"
            # Let requests a run left behind (a timed-out call still being answered) end
            # before the next run is scripted.
            time.sleep(plan.SLOW_REPLY + 0.2 if run.mode == "timeout" else 0.02)
            self.outcomes.append(
                {
                    "mode": run.mode,
                    "number": run.number,
                    "streamed": run.streamed,
                    "ended": ended,
                    "seconds": round(time.perf_counter() - began, 2),
                }
            )
        self.fake.clear()


def otel_provider(service: str, endpoint: str) -> Any:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return provider


def versions(packages: list[str], node_packages: list[str]) -> dict[str, str]:
    out = {"python": sys.version.split()[0]}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    if node_packages:
        node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False)
        out["node"] = node.stdout.strip()
        for name in node_packages:
            manifest = HERE / "vercel" / "node_modules" / name / "package.json"
            found = manifest.exists() and json.loads(manifest.read_text()).get("version")
            out[f"npm:{name}"] = found or "not installed"
    return out


def write_truth(name: str, out_dir: Path, modes: dict[str, int], outcomes: list[dict]) -> None:
    """ground_truth.json from the plan and how each run ended (`outcomes`)."""
    import recorders

    spec = recorders.RECORDERS[name]
    planted = {mode: count for mode, count in modes.items() if mode != "ok"}
    words = {m: plan.TITLE_WORDS[m] for m in planted}
    category = {m: plan.CATEGORY[m] for m in planted}
    unanswered = sum(1 for o in outcomes if o["ended"] != "ok")
    if spec.silent_turn_limit:  # no error: the runs cut by the cap just end unanswered
        unanswered += planted.pop("turn_limit", 0)
        del words["turn_limit"], category["turn_limit"]
    if spec.answer_found:  # every run that raised ended without an answer
        planted["no_final_answer"] = unanswered
        words["no_final_answer"] = ["without a final answer"]
        category["no_final_answer"] = "no-final-answer"
    truth = {
        "framework": name,
        "description": spec.description,
        "traces": sum(modes.values()),
        "planted": planted,
        "title_words": words,
        "category": category,
        "turn_limit": plan.TURN_LIMIT,
        "runs": outcomes,
    }
    (out_dir / "ground_truth.json").write_text(json.dumps(truth, indent=1) + "\n")


def rewrite_truth(name: str, out_root: Path) -> None:
    """ground_truth.json again from the runs it lists (after a change to the plan's words
    or a recorder's flags), without recording again."""
    import recorders

    out_dir = out_root / name
    old = json.loads((out_dir / "ground_truth.json").read_text())
    modes = recorders.RECORDERS[name].modes or plan.PLANTED
    write_truth(name, out_dir, modes, old["runs"])


def record_one(name: str, out_root: Path) -> None:
    import recorders

    spec = recorders.RECORDERS[name]
    out_dir = out_root / name
    out_dir.mkdir(parents=True, exist_ok=True)
    modes = spec.modes or plan.PLANTED
    with FakeOpenAIServer() as fake:
        ctx = Context(name=name, fake=fake, out_dir=out_dir, modes=modes)
        receiver = None
        if spec.otel:
            receiver = OtlpReceiver(out_dir / "traces.jsonl")
            ctx.endpoint = receiver.endpoint
            ctx.tracer_provider = otel_provider(f"{name}-agent", receiver.endpoint)
        spec.record(ctx)
        for finish in ctx.on_finish:
            finish()
        if ctx.tracer_provider is not None:
            ctx.tracer_provider.force_flush()
            ctx.tracer_provider.shutdown()
        if receiver is not None:
            receiver.stop()
    plain = out_dir / "traces.jsonl"
    with open(plain, "rb") as source, gzip.open(out_dir / "traces.jsonl.gz", "wb", 9) as target:
        shutil.copyfileobj(source, target)  # a small file to keep in the repository
    plain.unlink()
    write_truth(name, out_dir, modes, ctx.outcomes)
    (out_dir / "versions.json").write_text(
        json.dumps(versions(spec.packages, spec.node_packages), indent=1) + "\n"
    )
    print(f"{name}: {len(ctx.outcomes)} runs -> {out_dir}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    import recorders

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help=f"of: {', '.join(recorders.RECORDERS)}")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--truth-only",
        action="store_true",
        help="rewrite ground_truth.json from the runs it lists; record nothing",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    names = args.names or list(recorders.RECORDERS)
    unknown = [n for n in names if n not in recorders.RECORDERS]
    if unknown:
        parser.error(f"unknown framework(s) {unknown}; known: {list(recorders.RECORDERS)}")
    if args.truth_only:
        for name in names:
            rewrite_truth(name, args.out)
        return 0
    if args.in_process:
        for name in names:
            record_one(name, args.out)
        return 0
    failed = []
    for name in names:  # one process each: instrumentors patch libraries process-wide
        cmd = [sys.executable, __file__, "--in-process", "--out", str(args.out), name]
        if subprocess.run(cmd, check=False).returncode != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception:
        traceback.print_exc()
        sys.exit(1)
