"""Metric keys of the built-in trainer and the sinks that record them.

Every key is defined in ``docs/metrics.md`` ("Trainer"). ``metrics.jsonl`` (one JSON object per step, always
written) is the record of a run; TensorBoard and Weights & Biases mirror the scalars when installed and asked for.
Keys produced by :func:`dynamo_rl.objective.compute_objective` (``loss/*``, ``mod/*``, ...) are logged as they come,
averaged over the micro-batches of a step.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

STEP = "step"
# Rewards and verification
REWARD_MEAN = "reward/mean"
REWARD_STD = "reward/std"
ACCURACY = "acc/mean"
STATUS = "status/{}"  # correct / incorrect / unparseable / timeout counts
GROUPS_ALL_CORRECT = "groups/all_correct_frac"
GROUPS_ALL_WRONG = "groups/all_wrong_frac"
# Policy update
LOSS = "actor/loss"
ENTROPY = "actor/entropy"
GRAD_NORM = "actor/grad_norm"
LR = "actor/lr"
OPTIMIZER_STEPS = "actor/optimizer_steps"
# Allocation
ALLOC_MIN = "alloc/num_rollouts_min"
ALLOC_MAX = "alloc/num_rollouts_max"
ALLOC_MEAN = "alloc/num_rollouts_mean"
ALLOC_HISTOGRAM = "alloc/histogram"
ALLOC_NUM_ROLLOUTS = "alloc/num_rollouts"
ALLOC_WITH_HISTORY = "alloc/frac_with_history"
ALLOC_VARIANCE_RATIO = "alloc/variance_reduction_ratio"
HISTORY_PROMPTS = "history/num_prompts"
LEVEL_ROLLOUTS = "level/{}/rollouts"
LEVEL_NUM_ROLLOUTS_MEAN = "level/{}/num_rollouts_mean"
LEVEL_ACCURACY = "level/{}/acc"
# Tokens and time
RESPONSE_TOKENS = "tokens/response_total"
RESPONSE_LENGTH = "tokens/response_length_mean"
TRUNCATED = "tokens/truncated_frac"
STEP_TIME = "time/step_s"
GENERATE_TIME = "time/generate_s"
VERIFY_TIME = "time/verify_s"
UPDATE_TIME = "time/update_s"
# Held-out evaluation
EVAL_ACCURACY = "eval/acc"
EVAL_LEVEL_ACCURACY = "eval/level/{}/acc"
EVAL_TIME = "eval/time_s"

TIME_KEYS = (STEP_TIME, GENERATE_TIME, VERIFY_TIME, UPDATE_TIME, EVAL_TIME)
"""Wall-clock keys: the only ones that differ between two runs with the same seed."""


def to_float(value: Any) -> Any:
    """Tensors / numpy scalars -> Python floats; non-finite -> None (JSON has no NaN)."""
    if hasattr(value, "item") and getattr(value, "numel", lambda: 1)() == 1:
        value = value.item()
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): to_float(v) for k, v in value.items()}
    return value


class MetricsLogger:
    """Appends one JSON line per record to ``RUN_DIR/metrics.jsonl`` and mirrors scalars to optional sinks."""

    def __init__(self, run_dir: str | Path, *, tensorboard: bool = False, wandb: bool = False,
                 wandb_project: str = "dynamo-rl", config: dict[str, Any] | None = None,
                 resume_step: int | None = None) -> None:
        self.path = Path(run_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None:
            truncate_after(self.path, resume_step)
        elif self.path.exists():
            self.path.unlink()
        self._file = open(self.path, "a", encoding="utf-8")
        self._tb = self._wandb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as err:
                raise ImportError("run.tensorboard=true needs the tensorboard package: pip install tensorboard") from err
            self._tb = SummaryWriter(str(Path(run_dir) / "tensorboard"))
        if wandb:
            try:
                import wandb as wandb_module
            except ImportError as err:
                raise ImportError("run.wandb=true needs the wandb package: pip install wandb") from err
            self._wandb = wandb_module.init(project=wandb_project, config=config, dir=str(run_dir),
                                            name=Path(run_dir).name, resume="allow")

    def log(self, step: int, metrics: Mapping[str, Any]) -> dict[str, Any]:
        record = {STEP: step, **{k: to_float(v) for k, v in metrics.items()}}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        scalars = {k: v for k, v in record.items() if isinstance(v, (int, float)) and k != STEP}
        if self._tb is not None:
            for key, value in scalars.items():
                self._tb.add_scalar(key, value, step)
        if self._wandb is not None:
            self._wandb.log(scalars, step=step)
        return record

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


def truncate_after(path: Path, step: int) -> None:
    """Drop records with ``step`` > ``step`` (a resumed run re-does the steps after its checkpoint)."""
    if not path.exists():
        return
    keep = [line for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and json.loads(line).get(STEP, 0) <= step]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in keep), encoding="utf-8")
    os.replace(tmp, path)


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """All records of ``RUN_DIR/metrics.jsonl`` in order."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"no metrics.jsonl in {run_dir}")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def allocation_metrics(num_rollouts: np.ndarray, levels: list[Any], has_history: np.ndarray,
                       variance_ratio: float | None) -> dict[str, Any]:
    """Histogram, range and per-level mean of the allocation n_i of one step."""
    values, counts = np.unique(num_rollouts, return_counts=True)
    out: dict[str, Any] = {
        ALLOC_MIN: int(num_rollouts.min()), ALLOC_MAX: int(num_rollouts.max()),
        ALLOC_MEAN: float(num_rollouts.mean()), ALLOC_HISTOGRAM: {str(int(v)): int(c) for v, c in zip(values, counts)},
        ALLOC_WITH_HISTORY: float(np.mean(has_history)), ALLOC_VARIANCE_RATIO: variance_ratio,
        ALLOC_NUM_ROLLOUTS: [int(n) for n in num_rollouts],
    }
    for level in sorted({lv for lv in levels if lv is not None}, key=str):
        chosen = np.array([lv == level for lv in levels])
        out[LEVEL_NUM_ROLLOUTS_MEAN.format(level)] = float(num_rollouts[chosen].mean())
        out[LEVEL_ROLLOUTS.format(level)] = int(num_rollouts[chosen].sum())
    return out


def reward_metrics(rewards: np.ndarray, correct: np.ndarray, statuses: list[str], levels: list[Any],
                   num_rollouts: np.ndarray, correct_per_prompt: np.ndarray) -> dict[str, Any]:
    """Reward, accuracy, verifier status counts, degenerate groups and per-level accuracy of one step."""
    out: dict[str, Any] = {REWARD_MEAN: float(rewards.mean()), REWARD_STD: float(rewards.std()),
                           ACCURACY: float(correct.mean())}
    for status in ("correct", "incorrect", "unparseable", "timeout"):
        out[STATUS.format(status)] = int(sum(s == status for s in statuses))
    out[GROUPS_ALL_CORRECT] = float(np.mean(correct_per_prompt == num_rollouts))
    out[GROUPS_ALL_WRONG] = float(np.mean(correct_per_prompt == 0))
    for level in sorted({lv for lv in levels if lv is not None}, key=str):
        chosen = np.array([lv == level for lv in levels])
        out[LEVEL_ACCURACY.format(level)] = float(correct[chosen].mean())
    return out
