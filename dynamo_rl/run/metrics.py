"""The metrics log of a run, shared by every engine: ``RUN_DIR/metrics.jsonl`` (one JSON object per training step,
always written, fsynced) plus optional TensorBoard / Weights & Biases mirrors of the scalars.

Keys are in :mod:`dynamo_rl.run.metric_names` and ``docs/metrics.md``. A torn last line (a kill in the middle of a
write) is dropped with a warning by :func:`read_metrics` and by a resumed run, which rewrites that step anyway.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from dynamo_rl.run.atomic import atomic_write_text
from dynamo_rl.run.metric_names import (
    ACCURACY,
    GROUPS_ALL_CORRECT,
    GROUPS_ALL_WRONG,
    LEVEL_ACCURACY,
    REWARD_MEAN,
    REWARD_STD,
    STATUS,
    STEP,
)


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


def _parse_lines(path: Path) -> list[dict[str, Any]]:
    """Records of a metrics file; a torn (unparseable) LAST line is dropped with a warning, any other bad line
    raises ``ValueError`` naming the file and line."""
    return [record for _, record in _numbered_records(path)]


def _numbered_records(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, record)`` of a metrics file (see :func:`_parse_lines`)."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    records: list[tuple[int, dict[str, Any]]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except ValueError as err:
            if number == len(lines):
                warnings.warn(f"{path}: dropping a torn last line ({number}): {line[:60]!r}", stacklevel=3)
                break
            raise ValueError(f"{path}: line {number} is not a metrics record ({err})") from None
        records.append((number, record))
    return records


def truncate_after(path: Path, step: int) -> None:
    """Drop records with ``step`` > ``step`` and a torn last line (a resumed run re-does the steps after its
    checkpoint); the file is replaced atomically."""
    if not path.exists():
        return
    keep = []
    for number, record in _numbered_records(path):
        value = record.get(STEP, 0)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{path}: line {number} is not a metrics record (its {STEP!r} is {value!r}, expected an "
                             "integer); fix or remove the line to resume")
        if value <= step:
            keep.append(record)
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in keep))


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """All records of ``RUN_DIR/metrics.jsonl`` in order (a torn last line is dropped with a warning)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not Path(run_dir).is_dir():
        raise FileNotFoundError(f"no run directory {run_dir}")
    if not path.exists():
        raise FileNotFoundError(f"no metrics.jsonl in {run_dir}")
    return _parse_lines(path)


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
