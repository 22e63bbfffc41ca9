"""Verification fast path vs math-verify: time per completion, time per training step and per study run.

    python benchmarks/bench_verify.py                       # verify real demo completions both ways
    python benchmarks/bench_verify.py --train-steps 20      # + the demo trainer for 20 steps, both ways
    python benchmarks/bench_verify.py --study-run --steps 20  # + one study run (train + final evaluation), both ways

Each part runs the same work twice, with ``MathVerifier(fast_path=False)`` (math-verify for every completion, the
behaviour before the fast path) and with ``MathVerifier()`` (plain integers decided directly), checks that the
results are identical (verdicts; ``metrics.jsonl`` and the study's result file except time keys), and prints both
timings and their ratio side by side. One-time costs (imports, math-verify's parser) are paid by an untimed warm-up
first, so the path timed first is not penalised. Single-threaded; timings on a shared machine are noisy, ratios less so.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))



def _is_time_key(key: str) -> bool:
    """Wall-clock entries (``time/step_s``, ``eval/time_s``, the study's ``seconds``): they differ between runs."""
    return key.startswith("time/") or key.endswith("time_s") or key == "seconds"


def _line(what: str, before: float, after: float, unit: str = "s") -> str:
    ratio = before / after if after > 0 else float("inf")
    return f"{what:<44} math-verify {before:10.4f} {unit}   fast path {after:10.4f} {unit}   speed-up {ratio:6.2f}x"


def demo_completions(count: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """``count`` completions of the shipped demo model at T = 1 on training problems, with their gold answers."""
    from dynamo_rl.demo.model import DEMO_ASSETS, load_model
    from dynamo_rl.demo.task import make_problems
    from dynamo_rl.rollout.hf import HFBackend
    from dynamo_rl.rollout.types import SamplingParams

    model, tokenizer = load_model(DEMO_ASSETS, "cpu")
    problems = make_problems("train", max(count // 20, 1), seed=seed)
    samples = -(-count // len(problems))
    backend = HFBackend(model, tokenizer, batch_size=256)
    completions = backend.generate([p.prompt or p.problem for p in problems], [samples] * len(problems),
                                   SamplingParams(temperature=1.0, max_new_tokens=16, seed=seed))
    texts = [c.text for c in completions][:count]
    answers = [problems[c.prompt_index].answer for c in completions][:count]
    return texts, answers


def bench_completions(count: int) -> None:
    from dynamo_rl.rewards.math_verifier import MathVerifier

    texts, answers = demo_completions(count)
    slow, fast = MathVerifier(fast_path=False), MathVerifier()
    slow.warmup()
    fast.warmup()
    timings = []
    verdicts = []
    for verifier in (slow, fast):
        start = time.perf_counter()
        verdicts.append([verifier.verify(t, a) for t, a in zip(texts, answers)])
        timings.append(time.perf_counter() - start)
    if verdicts[0] != verdicts[1]:
        raise SystemExit("ERROR: the fast path changed a verdict")
    decided = sum(fast._fast_verdict(t, a) is not None for t, a in zip(texts, answers))
    statuses = {s: sum(v.status == s for v in verdicts[0]) for s in ("correct", "incorrect", "unparseable")}
    print(f"demo completions: {len(texts)} (statuses {statuses}); fast path decided {decided} "
          f"({decided / len(texts):.1%}); verdicts identical")
    print(_line("verify, all completions", timings[0], timings[1]))
    print(_line("verify, per completion", timings[0] / len(texts) * 1e3, timings[1] / len(texts) * 1e3, "ms"))


def _strip_times(record: Any) -> Any:
    if isinstance(record, dict):
        return {k: _strip_times(v) for k, v in record.items() if not _is_time_key(k)}
    if isinstance(record, list):
        return [_strip_times(v) for v in record]
    return record


def _metrics(run_dir: Path) -> list[dict[str, Any]]:
    lines = (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [_strip_times(json.loads(line)) for line in lines if line.strip()]


def bench_train(steps: int) -> None:
    from dynamo_rl.rewards.math_verifier import MathVerifier
    from dynamo_rl.run.config_files import load_config
    from dynamo_rl.trainer.loop import train

    timings, logs, verify_s = [], [], []
    MathVerifier(fast_path=False).warmup()
    with tempfile.TemporaryDirectory() as tmp:
        for fast_path in (False, True):
            run_dir = Path(tmp) / f"fast{int(fast_path)}"
            config = load_config(REPO / "dynamo_rl" / "configs" / "demo.yaml", [
                ("run.steps", steps), ("run.eval_every", 0), ("run.plots", False), ("run.progress", False),
                ("run.output_dir", str(run_dir)), ("run.checkpoint_every", 0)])
            start = time.perf_counter()
            result = train(config, verifier=MathVerifier(fast_path=fast_path))
            timings.append(time.perf_counter() - start)
            verify_s.append(sum(r.get("time/verify_s") or 0.0 for r in result.records))
            logs.append(_metrics(run_dir))
    same = logs[0] == logs[1]
    print(f"demo trainer, {steps} steps: metrics.jsonl except time keys {'IDENTICAL' if same else 'DIFFERENT'}")
    print(_line(f"train() wall time, {steps} steps", timings[0], timings[1]))
    print(_line("time/verify_s summed over the steps", verify_s[0], verify_s[1]))
    if not same:
        raise SystemExit("ERROR: the fast path changed the training run")


def bench_study_run(steps: int | None, sizes_args: list[str]) -> None:
    import dataclasses

    from experiments.study import apply_size_overrides
    from experiments.study_plan import Sizes, row_spec
    from experiments.study_runs import execute_run, result_path

    sizes = Sizes() if steps is None else dataclasses.replace(Sizes(), steps=steps)
    sizes = apply_size_overrides(sizes, sizes_args)
    sizes_dict = json.loads(json.dumps(dataclasses.asdict(sizes)))
    spec = row_spec("main", "grpo", seed=0)
    timings, results, logs = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        # untimed warm-up: imports, math-verify's parser and the first generate call cost the same for both paths
        tiny = dataclasses.replace(sizes, steps=1, eval_every=0, final_samples=max(sizes.final_ks))
        execute_run(spec.to_dict(), json.loads(json.dumps(dataclasses.asdict(tiny))), str(Path(tmp) / "warm"), None,
                    fast_path=False)
        for fast_path in (False, True):
            out = Path(tmp) / f"fast{int(fast_path)}"
            start = time.perf_counter()
            execute_run(spec.to_dict(), sizes_dict, str(out), None, fast_path=fast_path)
            timings.append(time.perf_counter() - start)
            results.append(_strip_times(json.loads(result_path(out, spec).read_text())))
            logs.append(_metrics(out / "runs" / spec.run_id))
    same = results[0] == results[1] and logs[0] == logs[1]
    print(f"study run {spec.run_id} ({sizes.steps} steps, {sizes.total_rollouts} rollouts, final evaluation "
          f"{sizes.final_samples} samples/problem): result file and metrics.jsonl except time keys "
          f"{'IDENTICAL' if same else 'DIFFERENT'}")
    print(_line("study run wall time (train + evaluations)", timings[0], timings[1]))
    if not same:
        raise SystemExit("ERROR: the fast path changed the study run")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--completions", type=int, default=2048, help="demo completions to verify (0: skip)")
    parser.add_argument("--train-steps", type=int, default=0, help="also time the demo trainer for this many steps")
    parser.add_argument("--study-run", action="store_true", help="also time one study run (GRPO, seed 0)")
    parser.add_argument("--steps", type=int, default=None, help="steps of the study run (default: the study's)")
    parser.add_argument("--size", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a field of experiments.study_plan.Sizes for --study-run")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    if args.completions:
        bench_completions(args.completions)
    if args.train_steps:
        bench_train(args.train_steps)
    if args.study_run:
        bench_study_run(args.steps, args.size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
