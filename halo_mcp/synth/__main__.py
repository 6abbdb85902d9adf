"""`python -m halo_mcp.synth OUT --traces N`: write a synthetic trace file and its manifest."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from halo_mcp.synth.failures import MODE_NAMES
from halo_mcp.synth.generate import CONVENTIONS, PROFILES, generate
from halo_mcp.synth.manifest import manifest_path
from halo_mcp.synth.writers import FORMATS


def _rate(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected MODE=RATE (e.g. retry_loop=0.1), got {text!r}")
    try:
        return name.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"rate in {text!r} is not a number") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m halo_mcp.synth",
        description=(
            "Write deterministic synthetic agent traces with planted failure modes, and "
            "OUT.manifest.json describing them (counts, affected trace ids, matchers)."
        ),
    )
    parser.add_argument("out", metavar="OUT", help="Output file (.gz compresses).")
    size = parser.add_mutually_exclusive_group(required=True)
    size.add_argument("--traces", type=int, help="Number of agent runs (traces).")
    size.add_argument("--size-mb", type=float, help="Generate until the content reaches ~M MB.")
    parser.add_argument("--seed", type=int, default=0, help="Same seed, same bytes (default 0).")
    parser.add_argument("--format", choices=FORMATS, default="halo")
    parser.add_argument("--convention", choices=CONVENTIONS, default="openinference")
    parser.add_argument("--profile", choices=PROFILES, default="realistic")
    parser.add_argument(
        "--rate",
        type=_rate,
        action="append",
        default=[],
        metavar="MODE=RATE",
        help=f"Per-trace rate of a failure mode (0 disables). Modes: {', '.join(MODE_NAMES)}.",
    )
    parser.add_argument("--clean", action="store_true", help="Disable every failure mode.")
    parser.add_argument("--gzip", action="store_true", help="Gzip even without a .gz suffix.")
    parser.add_argument("--bad-lines", type=int, default=0, help="Malformed lines to insert.")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rates = dict.fromkeys(MODE_NAMES, 0.0) if args.clean else {}
    rates.update(dict(args.rate))
    began = time.perf_counter()
    try:
        manifest = generate(
            args.out,
            traces=args.traces,
            size_mb=args.size_mb,
            seed=args.seed,
            format=args.format,
            convention=args.convention,
            profile=args.profile,
            failure_rates=rates,
            gzip=True if args.gzip else None,
            bad_lines=args.bad_lines,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - began
    speed = manifest.bytes / 1e6 / max(seconds, 1e-9)
    planted = ", ".join(f"{m.name}={m.planted_traces}" for m in manifest.failure_modes)
    print(
        f"wrote {args.out}: {manifest.traces} traces, {manifest.spans} spans, "
        f"{manifest.bytes / 1e6:.1f} MB in {seconds:.1f}s ({speed:.0f} MB/s); "
        f"planted traces: {planted}; manifest: {manifest_path(args.out)}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
