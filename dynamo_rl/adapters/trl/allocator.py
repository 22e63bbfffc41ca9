"""Per-prompt rollout allocation state shared by the sampler and the trainer of the TRL adapter.

:class:`RolloutAllocator` owns the success history (``core.history.SuccessHistory``) and turns it into per-prompt
rollout counts with ``core.allocation.allocate_rollouts``. Every process holds its own copy and updates it with the
same *gathered* rewards in the same order, so all copies stay identical without any further collective: every rank
computes the same allocation for the same prompts.

``allocate`` has no side effects (the dataloader may call it for batches it skips when resuming); only ``update``
changes state. The state is saved beside each TRL checkpoint (``dynamo_allocator_state.json``, written atomically).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dynamo_rl.core.allocation import allocate_rollouts, bernoulli_variance, variance_reduction_ratio
from dynamo_rl.core.history import SuccessHistory
from dynamo_rl.method_config import AllocationConfig

STATE_FILE = "dynamo_allocator_state.json"
STATE_VERSION = 1


class RolloutAllocator:
    """History + allocation rule for one training run. ``rollouts_per_prompt`` is the mean n̄ (TRL's num_generations)."""

    def __init__(self, config: AllocationConfig, rollouts_per_prompt: int) -> None:
        if rollouts_per_prompt < 2:
            raise ValueError(f"invalid rollouts_per_prompt={rollouts_per_prompt!r}: must be ≥ 2")
        self.config = config
        self.rollouts_per_prompt = int(rollouts_per_prompt)
        self.history = SuccessHistory(forgetting=config.forgetting)
        self.num_updates = 0

    # -- allocation (pure) ----------------------------------------------------------------------------------------
    def allocate(self, prompt_ids: Sequence[str]) -> np.ndarray:
        """Rollout counts n_i (int64 (M,), Σ = M·n̄, each in [n_min, n_max]) for ``prompt_ids`` from the history."""
        prompt_ids = [str(p) for p in prompt_ids]
        budget = len(prompt_ids) * self.rollouts_per_prompt
        if self.config.allocator == "uniform":
            return np.full(len(prompt_ids), self.rollouts_per_prompt, dtype=np.int64)
        correct, total = self.history.counts(prompt_ids)
        result = allocate_rollouts(correct, total, budget=budget, **self.config.core_kwargs())
        counts = np.asarray(result.num_rollouts, dtype=np.int64)
        if int(counts.sum()) != budget or (counts < 2).any():
            raise RuntimeError(f"allocator returned counts {counts.tolist()} (sum {int(counts.sum())}); expected a sum of "
                               f"{budget} with every count ≥ 2")
        return counts

    def allocation_metrics(self, prompt_ids: Sequence[str], counts: np.ndarray) -> dict[str, float]:
        """Summary of one allocation: spread of n_i, prompts with history, and Var(alloc)/Var(uniform) (Eq 44)."""
        counts = np.asarray(counts, dtype=np.float64)
        correct, total = self.history.counts([str(p) for p in prompt_ids])
        has_history = total >= self.config.min_history
        metrics = {
            "dynamo/alloc/n_mean": float(counts.mean()),
            "dynamo/alloc/n_std": float(counts.std()),
            "dynamo/alloc/n_min": float(counts.min()),
            "dynamo/alloc/n_max": float(counts.max()),
            "dynamo/alloc/frac_with_history": float(has_history.mean()),
        }
        if has_history.sum() >= 2:
            sigmas = np.sqrt(np.clip(bernoulli_variance(correct[has_history], total[has_history]), 0.0, None))
            if (sigmas > 0).any():
                metrics["dynamo/alloc/variance_ratio"] = float(variance_reduction_ratio(sigmas, counts[has_history]))
        return metrics

    # -- history --------------------------------------------------------------------------------------------------
    def update(self, prompt_ids: Sequence[str], num_correct: np.ndarray, num_samples: np.ndarray) -> None:
        """Add one generation batch of per-prompt counts (identical call on every process)."""
        self.history.update([str(p) for p in prompt_ids], np.asarray(num_correct, dtype=np.float64),
                            np.asarray(num_samples, dtype=np.float64))
        self.num_updates += 1

    def state_dict(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "num_updates": self.num_updates, "history": self.history.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported allocator state version {state.get('version')!r}; expected {STATE_VERSION}")
        self.history = SuccessHistory(forgetting=self.config.forgetting)
        self.history.load_state_dict(state["history"])
        self.num_updates = int(state["num_updates"])

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``STATE_FILE`` into ``directory`` atomically (temp file, fsync, rename)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / STATE_FILE
        fd, tmp = tempfile.mkstemp(prefix=STATE_FILE, dir=directory)
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(self.state_dict(), handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return target

    def load(self, directory: str | os.PathLike[str]) -> bool:
        """Restore from ``directory/STATE_FILE`` if it exists; returns whether it did."""
        path = Path(directory) / STATE_FILE
        if not path.exists():
            return False
        with open(path) as handle:
            self.load_state_dict(json.load(handle))
        return True
