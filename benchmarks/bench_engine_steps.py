"""Training-step time of each engine, this checkout against a baseline checkout, side by side in one run.

For each engine (``builtin``, ``trl``) and each checkout, ``dynamo-rl train`` runs ``--steps`` steps of the CPU demo
in a fresh process, and the step times the engine itself logs are read back: the built-in trainer's ``time/step_s``
(``metrics.jsonl``), TRL's ``step_time`` (``trainer_state.json`` of its last checkpoint; one optimizer step per
generation batch in the demo config). The first ``--warmup`` steps are dropped. Checkouts alternate within each
repeat so drift of the machine's load hits both; the median over all measured steps is reported, with the ratio
current / baseline.

    git worktree add /tmp/baseline <commit>            # e.g. the previous release
    python benchmarks/bench_engine_steps.py --baseline /tmp/baseline [--repeats 2] [--steps 12]
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

REPO = Path(__file__).resolve().parents[1]


def step_times(checkout: Path, engine: str, steps: int, warmup: int) -> list[float]:
    """Per-step seconds logged by one ``dynamo-rl train`` process on the demo (no evaluation, no plots)."""
    with tempfile.TemporaryDirectory() as tmp:
        code = "import sys; from dynamo_rl.cli import main; sys.exit(main(sys.argv[1:]))"
        run = Path(tmp) / "run"
        args = [sys.executable, "-c", code, "train", "--output", str(run), "--run.steps", str(steps),
                "--run.eval_every", "0", "--run.plots", "false", "--run.progress", "false",
                "--run.checkpoint_every", str(steps)]
        if engine != "builtin":
            args += ["--engine", engine]
        env = {**os.environ, "PYTHONPATH": str(checkout), "OMP_NUM_THREADS": "1"}
        subprocess.run(args, env=env, cwd=tmp, check=True, capture_output=True, timeout=1800)
        if engine == "builtin":
            records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
            times = [r["time/step_s"] for r in records if r.get("step", 0) > warmup and "time/step_s" in r]
        else:
            state = sorted(run.rglob("trainer_state.json"), key=lambda p: p.stat().st_mtime)[-1]
            history = json.loads(state.read_text())["log_history"]
            times = [h["step_time"] for h in history if "step_time" in h and h.get("step", 0) > warmup]
        if not times:
            raise RuntimeError(f"no step times logged by {engine} in {checkout}")
        return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", required=True, type=Path, help="checkout of the baseline version")
    parser.add_argument("--engines", default="builtin,trl")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    checkouts = {"baseline": args.baseline.resolve(), "current": REPO}
    per_step: dict[tuple[str, str], list[float]] = {}
    for repeat in range(args.repeats):
        for engine in args.engines.split(","):
            order = ("baseline", "current") if repeat % 2 == 0 else ("current", "baseline")
            for name in order:
                times = step_times(checkouts[name], engine, args.steps, args.warmup)
                per_step.setdefault((engine, name), []).extend(times)
                print(f"repeat {repeat + 1} {engine:>7} {name:>8}: median {statistics.median(times):.3f} s/step "
                      f"over {len(times)} steps", flush=True)
    print(f"\n{'engine':>8} {'baseline s/step':>16} {'current s/step':>15} {'current/baseline':>17}")
    for engine in args.engines.split(","):
        base = statistics.median(per_step[(engine, "baseline")])
        cur = statistics.median(per_step[(engine, "current")])
        print(f"{engine:>8} {base:>16.3f} {cur:>15.3f} {cur / base:>17.3f}")


if __name__ == "__main__":
    main()
