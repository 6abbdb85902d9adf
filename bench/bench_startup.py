"""Start-up cost of the entry points, this tree against a baseline commit, in the same run:
building the CLI parser (what `halo-mcp --help` and every command pay), building the MCP
server, and `halo-mcp serve` over stdio from spawn to its tools/list answer (the cold start
`serve --test` and a coding agent see).

    python bench/bench_startup.py [--baseline REF] [--runs 9]

Each figure is the median CPU time (user + system) of fresh interpreters, which a busy
machine disturbs far less than wall time; the two trees are interleaved so that load hits
both alike. Also the modules each one loads. The baseline tree is `git archive REF` in a
temporary directory.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_mcp import HANDSHAKE  # the same opening the MCP benchmark sends

ROOT = Path(__file__).resolve().parent.parent

CASES = {
    "cli parser": "import halo_mcp.cli as c; c.build_parser()",
    "mcp server": "import halo_mcp.server as s; s.create_server(s.ServerSettings())",
}

# Import halo_mcp from TREE, not from the editable install (its finder runs first).
PROBE = """
import sys, time
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f)]
sys.path.insert(0, {tree!r})
started = time.process_time()
{code}
elapsed = time.process_time() - started
assert sys.modules["halo_mcp"].__file__.startswith({tree!r})
print(elapsed, len(sys.modules), "openai" in sys.modules)
"""


def measure(tree: Path, code: str) -> tuple[float, int, bool]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(tree=str(tree), code=code)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return float(out[0]), int(out[1]), out[2] == "True"


SERVE = """
import sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f)]
sys.path.insert(0, {tree!r})
from halo_mcp.cli import main
raise SystemExit(main(["serve"]))
"""


def serve_to_tools_list(tree: Path) -> float:
    """CPU seconds the stdio server of `tree` spends from its start to the end of stdin,
    right after its tools/list answer (interpreter start included)."""
    payload = "".join(json.dumps(m) + "\n" for m in HANDSHAKE).encode()
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE.format(tree=str(tree))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(payload)
    proc.stdin.flush()
    for line in proc.stdout:
        if json.loads(line).get("id") == 2:
            break
    proc.stdin.close()
    _, _, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0  # reaped above
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="main", help="git ref to compare with")
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", args.baseline, "halo_mcp"],
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
        print(f"baseline {args.baseline} vs this tree, median of {args.runs} fresh interpreters")
        for name, code in CASES.items():
            times: dict[str, list[float]] = {"baseline": [], "this tree": []}
            modules: dict[str, int] = {}
            openai: dict[str, bool] = {}
            for _ in range(args.runs):
                for label, tree in (("baseline", base), ("this tree", ROOT)):
                    elapsed, count, loaded = measure(tree, code)
                    times[label].append(elapsed)
                    modules[label], openai[label] = count, loaded
            before = statistics.median(times["baseline"])
            after = statistics.median(times["this tree"])
            print(
                f"{name:11s} baseline {before * 1000:6.0f} ms ({modules['baseline']} modules,"
                f" openai {openai['baseline']})  this tree {after * 1000:6.0f} ms"
                f" ({modules['this tree']} modules, openai {openai['this tree']})"
                f"  ratio {after / before:.2f}"
            )
        serve: dict[str, list[float]] = {"baseline": [], "this tree": []}
        for _ in range(args.runs):
            for label, tree in (("baseline", base), ("this tree", ROOT)):
                serve[label].append(serve_to_tools_list(tree))
        before = statistics.median(serve["baseline"])
        after = statistics.median(serve["this tree"])
        print(
            f"serve stdio baseline {before * 1000:6.0f} ms to tools/list"
            f"  this tree {after * 1000:6.0f} ms  ratio {after / before:.2f}"
        )


if __name__ == "__main__":
    main()
