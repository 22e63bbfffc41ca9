"""One unit of work of the study, executed in a worker process: a training run (built-in trainer + final pass@k
evaluation) or the gradient-variance measurement (:mod:`experiments.study_variance`). Results are written atomically
as JSON, so an interrupted study skips what is done and redoes only what is not.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from experiments.study_plan import RunSpec, Sizes

DROP_KEYS = ("alloc/num_rollouts", "alloc/histogram")
"""Per-step list/dict metrics left out of the result files (the per-level means are kept)."""


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to a temporary file, fsync, rename: a crash never leaves a half-written result."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1, allow_nan=False)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def result_path(output: Path, spec: RunSpec) -> Path:
    return output / "results" / f"{spec.run_id}.json"


def model_dir(output: Path, family: str) -> Path:
    return output / "models" / family


def train_config_dict(spec: RunSpec, sizes: Sizes, run_dir: Path) -> dict[str, Any]:
    """The trainer's YAML layout for one run: the method bundle, the study's common sizes, then the row's dotted
    overrides (``allocation.allocator=optimal``; they may also change sizes, e.g. the budget sweep's n̄)."""
    raw: dict[str, Any] = {
        "method": spec.method,
        "preset": spec.preset,
        "allocation": {"mean_rollouts": sizes.mean_rollouts, "n_min": sizes.n_min, "n_max": sizes.n_max},
        "modulation": {},
        "loss": {},
        "data": {"model": "demo", "dataset": "demo", "demo_train_per_level": sizes.train_per_level,
                 "demo_eval_per_level": sizes.eval_per_level},
        "rollout": {"backend": "hf", "prompts_per_step": sizes.prompts_per_step, "temperature": 1.0,
                    "max_new_tokens": sizes.max_new_tokens, "eval_samples": sizes.eval_samples,
                    "eval_temperature": 1.0},
        "optim": {"lr": sizes.lr, "weight_decay": 0.0, "warmup_steps": sizes.warmup_steps, "grad_clip": 1.0,
                  "mini_batch_prompts": sizes.mini_batch_prompts, "ppo_epochs": 1, "micro_batch_size": 128},
        "run": {"steps": sizes.steps, "seed": spec.seed, "output_dir": str(run_dir), "eval_every": sizes.eval_every,
                "checkpoint_every": max(sizes.steps // 2, 1) if spec.keep_checkpoints else 0,
                "keep_checkpoints": 2 if spec.keep_checkpoints else 1, "device": "cpu", "progress": False,
                "plots": False},
    }
    for key, value in spec.overrides.items():
        section, dot, name = key.partition(".")
        if not dot or section not in raw or not isinstance(raw[section], dict):
            raise ValueError(f"invalid override {key!r} of row {spec.row!r}: expected SECTION.FIELD")
        raw[section][name] = value
    rollout = raw["rollout"]
    if rollout.get("sampler", "none") != "none" and rollout.get("sampler_budget") is None:
        # equal budget in GENERATED rollouts: a multi-round sampler may generate (and discard) at most n̄ × prompts
        rollout["sampler_budget"] = rollout["prompts_per_step"] * raw["allocation"]["mean_rollouts"]
    return raw


def load_sizes(sizes_dict: dict[str, Any]) -> Sizes:
    """:class:`Sizes` from its JSON form (fields unknown to this version are ignored)."""
    known = {f.name for f in dataclasses.fields(Sizes)}
    values = {k: v for k, v in sizes_dict.items() if k in known}
    return Sizes(**{**values, "final_ks": tuple(values.get("final_ks", Sizes.final_ks))})


def start_model_dir(output: Path, family: str, model_path: str | None) -> Path:
    """Folder of the warm-started model a run of ``family`` starts from."""
    from dynamo_rl.demo.model import DEMO_ASSETS

    return (Path(model_path) if model_path else DEMO_ASSETS) if family == "arith" else model_dir(output, family)


def _scalars(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items()
            if k not in DROP_KEYS and (v is None or isinstance(v, (int, float)))}


def final_evaluation(backend: Any, eval_problems: list[Any], sizes: Sizes, seed: int,
                     verifier: Any = None) -> dict[str, Any]:
    """pass@1 (avg@n) and pass@k at T = 1 on the held-out problems, overall and per level, plus per-problem counts."""
    from dynamo_rl.core.passk import avg_at_n, mean_pass_at_k
    from dynamo_rl.eval.evaluate import evaluate
    from dynamo_rl.rollout.types import SamplingParams

    by_level: dict[str, list[Any]] = {}
    for problem in eval_problems:
        by_level.setdefault(f"L{problem.meta['level']}", []).append(problem)
    params = SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=sizes.max_new_tokens, seed=10_007 * seed + 17)
    results = evaluate(backend, by_level, n=sizes.final_samples, ks=list(sizes.final_ks), params=params,
                       verifier=verifier, timeout=None, progress=False, chunk_size=64)
    counts = [(p["num_samples"], p["num_correct"]) for r in results.benchmarks.values() for p in r.problems]
    n = [c[0] for c in counts]
    c = [c[1] for c in counts]
    out: dict[str, Any] = {"pass@1": avg_at_n(n, c), "levels": {}}
    for k in sizes.final_ks:
        out[f"pass@{k}"] = mean_pass_at_k(n, c, k)
    for name, result in results.benchmarks.items():
        out["levels"][name] = {"pass@1": result.avg_at_n, "num_problems": result.num_problems,
                               **{f"pass@{k}": v for k, v in result.pass_at_k.items()}}
    out["num_correct"] = {name: [p["num_correct"] for p in r.problems] for name, r in results.benchmarks.items()}
    return out


def execute_run(spec_dict: dict[str, Any], sizes_dict: dict[str, Any], output: str,
                model: str | None = None, fast_path: bool = True) -> dict[str, Any]:
    """Train one run, evaluate it, write ``results/<run_id>.json`` and return a short summary (for a ``variance``
    unit: measure the gradient variance on the checkpoints of its training run instead). The run's own output
    (warnings, progress) goes to ``logs/<run_id>.log``. ``fast_path=False`` verifies every answer with math-verify
    (identical verdicts, slower; ``benchmarks/bench_verify.py --study-run`` compares both)."""
    spec = RunSpec(**spec_dict)
    with _log_to(Path(output) / "logs" / f"{spec.run_id}.log"):
        if spec.kind == "variance":
            from experiments.study_variance import measure_variance

            return measure_variance(spec_dict, sizes_dict, output, model)
        return _execute_run(spec_dict, sizes_dict, output, model, fast_path)


@contextlib.contextmanager
def _log_to(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        yield


def _execute_run(spec_dict: dict[str, Any], sizes_dict: dict[str, Any], output: str,
                 model_path: str | None, fast_path: bool = True) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    from dynamo_rl.demo.model import load_model
    from dynamo_rl.demo.task import make_problems
    from dynamo_rl.rewards.math_verifier import MathVerifier
    from dynamo_rl.run.config import config_from_dict
    from dynamo_rl.trainer.loop import train
    from dynamo_rl.trainer.setup import make_rollout_backend

    spec = RunSpec(**spec_dict)
    sizes = load_sizes(sizes_dict)
    out = Path(output)
    run_dir = out / "runs" / spec.run_id
    shutil.rmtree(run_dir, ignore_errors=True)  # a run interrupted before its result file restarts from scratch
    start = time.perf_counter()
    config = config_from_dict(train_config_dict(spec, sizes, run_dir))
    verifier = MathVerifier(fast_path=fast_path)
    folder = start_model_dir(out, spec.family, model_path)
    model, tokenizer = load_model(folder, "cpu")
    weights_sha256 = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    problems = make_problems("train", sizes.train_per_level, seed=spec.seed, family=spec.family)
    eval_problems = make_problems("test", sizes.eval_per_level, seed=sizes.eval_seed, family=spec.family)
    backend = make_rollout_backend(config, model, tokenizer)
    initial = (final_evaluation(backend, eval_problems, sizes, spec.seed, verifier)
               if spec.group == "main" and spec.row == "grpo" else None)
    # The periodic evaluation scores the held-out problems and (when asked) the training pool, each level tagged
    # with its split, so the trainer's per-level accuracies give both learning curves.
    tagged = _tag(eval_problems, "heldout") + (_tag(problems, "train") if sizes.eval_train_pool else [])
    trained = train(config, model=model, tokenizer=tokenizer, problems=problems, eval_problems=tagged,
                    backend=backend, verifier=verifier)
    train_seconds = time.perf_counter() - start
    final = final_evaluation(backend, eval_problems, sizes, spec.seed, verifier)
    final_train = final_evaluation(backend, problems, sizes, spec.seed, verifier) if sizes.eval_train_pool else None
    counts = {}
    for problem in tagged:
        counts[problem.meta["level"]] = counts.get(problem.meta["level"], 0) + 1
    curve = []
    rollouts = 0
    for record in trained.records:  # cumulative rollouts generated up to and including each step (step 0: none)
        rollouts += generated_rollouts(record)
        curve.append({**_scalars(record), **_split_curves(record, counts), "rollouts": rollouts})
    result = {
        "spec": spec.to_dict(), "run_id": spec.run_id, "sizes": sizes_dict, "model_sha256": weights_sha256,
        "budget_per_step": config.budget, "total_rollouts": rollouts, "final": final, "final_train": final_train,
        "initial": initial, "curve": curve, "train_problems": len(problems), "eval_problems": len(eval_problems),
        "updates_per_batch": len(range(0, config.rollout.prompts_per_step, config.optim.mini_batch_prompts
                                       or config.rollout.prompts_per_step)) * config.optim.ppo_epochs,
        "seconds": {"train": train_seconds, "total": time.perf_counter() - start},
    }
    if spec.keep_checkpoints:
        keep_weights(run_dir, out / "checkpoints" / spec.run_id)
    write_json_atomic(result_path(out, spec), finite(result))
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)  # the study needs metrics, not optimiser states
    return {"run_id": spec.run_id, "pass@1": final["pass@1"], "seconds": result["seconds"]["total"]}


def keep_weights(run_dir: Path, target: Path) -> None:
    """Copy the policy weights and success history of every checkpoint of ``run_dir`` to ``target/step_N/``."""
    for checkpoint in sorted((run_dir / "checkpoints").glob("step_*")):
        dest = target / checkpoint.name
        tmp = target / f".{checkpoint.name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for name in ("model.safetensors", "history.json", "state.json"):
            if (checkpoint / name).exists():
                shutil.copy2(checkpoint / name, tmp / name)
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)


def generated_rollouts(record: dict[str, Any]) -> int:
    """Rollouts generated in one step: ``alloc/budget`` (every generated rollout, discarded ones of a multi-round
    sampler included), else the sum of ``alloc/num_rollouts``."""
    if record.get("alloc/budget") is not None:
        return int(record["alloc/budget"])
    return int(sum(record.get("alloc/num_rollouts") or []))


def _tag(problems: list[Any], split: str) -> list[Any]:
    """Copies whose ``meta["level"]`` is ``"<split>-L<level>"`` (the trainer logs accuracy per level)."""
    return [dataclasses.replace(p, meta={**p.meta, "level": f"{split}-L{p.meta['level']}"}) for p in problems]


def _split_curves(record: dict[str, Any], counts: dict[str, int]) -> dict[str, float]:
    """``curve/<split>`` (problem-weighted mean over levels) and ``curve/<split>/L<k>`` from the tagged levels."""
    out: dict[str, float] = {}
    for split in ("heldout", "train"):
        total = weight = 0.0
        for tag, count in counts.items():
            value = record.get(f"eval/level/{tag}/acc")
            if tag.startswith(split + "-") and value is not None:
                out[f"curve/{split}/{tag.split('-', 1)[1]}"] = value
                total += value * count
                weight += count
        if weight:
            out[f"curve/{split}"] = total / weight
    return out


def finite(value: Any) -> Any:
    """NaN/inf → None, recursively (strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value
