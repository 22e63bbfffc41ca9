"""Training-step time of each engine, this checkout against a baseline checkout, side by side in one run.

For each engine (``builtin``, ``trl``) and each checkout, ``dynamo-rl train`` runs the CPU demo twice, for ``--short``
and ``--long`` steps, in fresh processes; the per-step time is (wall(long) − wall(short)) / (long − short), so model
loading and start-up cancel out. Checkouts alternate within each repeat so drift of the machine's load hits both;
the median over repeats is reported, with the ratio current / baseline.

    git worktree add /tmp/baseline <commit>            # e.g. the previous release
    python benchmarks/bench_engine_steps.py --baseline /tmp/baseline [--repeats 3] [--short 2] [--long 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def wall(checkout: Path, engine: str, steps: int) -> float:
    """Seconds of one ``dynamo-rl train`` process on the demo (``steps`` steps, no evaluation, no plots)."""
    with tempfile.TemporaryDirectory() as tmp:
        code = ("import sys; from dynamo_rl.cli import main; sys.exit(main(sys.argv[1:]))")
        args = [sys.executable, "-c", code, "train", "--output", str(Path(tmp) / "run"), "--run.steps", str(steps),
                "--run.eval_every", "0", "--run.plots", "false", "--run.progress", "false",
                "--run.checkpoint_every", "0"]
        if engine != "builtin":
            args += ["--engine", engine]
        env = {**os.environ, "PYTHONPATH": str(checkout), "OMP_NUM_THREADS": "1"}
        start = time.perf_counter()
        subprocess.run(args, env=env, cwd=tmp, check=True, capture_output=True, timeout=1800)
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", required=True, type=Path, help="checkout of the baseline version")
    parser.add_argument("--engines", default="builtin,trl")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--short", type=int, default=2)
    parser.add_argument("--long", type=int, default=10)
    args = parser.parse_args()
    checkouts = {"baseline": args.baseline.resolve(), "current": REPO}
    per_step: dict[tuple[str, str], list[float]] = {}
    for repeat in range(args.repeats):
        for engine in args.engines.split(","):
            order = ("baseline", "current") if repeat % 2 == 0 else ("current", "baseline")
            for name in order:
                short = wall(checkouts[name], engine, args.short)
                long = wall(checkouts[name], engine, args.long)
                per_step.setdefault((engine, name), []).append((long - short) / (args.long - args.short))
                print(f"repeat {repeat + 1} {engine:>7} {name:>8}: {per_step[(engine, name)][-1]:.3f} s/step",
                      flush=True)
    print(f"\n{'engine':>8} {'baseline s/step':>16} {'current s/step':>15} {'current/baseline':>17}")
    for engine in args.engines.split(","):
        base = statistics.median(per_step[(engine, "baseline")])
        cur = statistics.median(per_step[(engine, "current")])
        print(f"{engine:>8} {base:>16.3f} {cur:>15.3f} {cur / base:>17.3f}")


if __name__ == "__main__":
    main()
