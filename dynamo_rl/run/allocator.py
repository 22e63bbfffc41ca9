"""The stateful rollout allocator every engine uses (built-in trainer, TRL adapter, verl plugin).

:class:`RolloutAllocator` owns the success history (:class:`~dynamo_rl.core.history.SuccessHistory`) and turns it
into per-prompt rollout counts with :func:`dynamo_rl.core.allocation.allocate_rollouts` (Eq 5-6, Algorithm 1 and
App. C-D of DynaMO, arXiv 2602.19208). It also computes the live Eq 44 variance ratio, the allocation metrics (one
namespace, ``alloc/*`` and ``history/*``, in every engine; ``docs/metrics.md``) and saves its state as one versioned
JSON file written atomically. Engines keep only their own bookkeeping (TRL: row expansion across processes; verl:
the uid → prompt map).

``allocate`` has no side effects (a dataloader may call it for batches it then skips); only ``update`` changes state.

State file (``allocator_state.json``, :data:`STATE_VERSION` 2)::

    {"format": "dynamo-rl/allocator", "version": 2, "num_updates": 12, "history": <SuccessHistory.state_dict()>}

Older files load too: the TRL adapter's ``dynamo_allocator_state.json`` (version 1 with ``num_updates``), the verl
plugin's history file (version 1 with ``global_step``) and the built-in trainer's bare ``history.json``. Anything
else is refused with a message naming the file.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dynamo_rl.core.allocation import AllocationResult, allocate_rollouts, bernoulli_variance, variance_reduction_ratio
from dynamo_rl.core.history import SuccessHistory
from dynamo_rl.method_config import AllocationConfig
from dynamo_rl.run import metric_names as K
from dynamo_rl.run.atomic import atomic_write_json

STATE_FILE = "allocator_state.json"
STATE_FORMAT = "dynamo-rl/allocator"
STATE_VERSION = 2
LEGACY_STATE_FILES = ("dynamo_allocator_state.json", "history.json", "dynamo_history.json")
"""Files of earlier releases that :meth:`RolloutAllocator.load` also reads (TRL adapter, built-in trainer, verl)."""


class AllocatorStateError(ValueError):
    """An allocator state file that cannot be read (corrupt, foreign or of an unknown version)."""


@dataclass(frozen=True)
class Allocation:
    """One allocation: the prompts, their rollout counts and what was known when it was made."""

    prompt_ids: tuple[str, ...]
    num_rollouts: np.ndarray
    """int64 (M,): rollouts per prompt."""
    result: AllocationResult
    """The core result (effective budget and bounds, weights, notes)."""
    has_history: np.ndarray
    """bool (M,): prompts with at least ``min_history`` historical rollouts."""
    variance_ratio: float | None
    """Live Eq 44: Σσ²/n_i over Σσ²/n̄ for the prompts with history, σ = √P from history, n̄ = their mean n_i (the
    same rollouts spread uniformly); None without history."""
    variance_ratio_configured: float | None = None
    """Σσ²/n_i over Σσ²/n̄ with n̄ = ``allocation.mean_rollouts`` (uniform at the configured budget): differs from
    ``variance_ratio`` only for a budget-saving allocator (``variance_matched``: ≈ its target ρ when it is met)."""

    @property
    def budget(self) -> int:
        return int(self.num_rollouts.sum())

    def counts(self) -> list[int]:
        return [int(n) for n in self.num_rollouts]


def live_variance_ratio(num_correct: np.ndarray, num_samples: np.ndarray, num_rollouts: np.ndarray,
                        min_history: int) -> float | None:
    """Eq 44 of DynaMO (arXiv 2602.19208) for one allocation: Var(allocation)/Var(uniform) over the prompts with at
    least ``min_history`` historical rollouts, σ_i = √P_i (Eq 6). None when no prompt has enough history; 1.0 when
    every such σ is 0."""
    known = num_samples >= max(min_history, 2)
    if not known.any():
        return None
    sigmas = np.sqrt(np.clip(bernoulli_variance(num_correct[known], num_samples[known]), 0.0, None))
    return variance_reduction_ratio(sigmas, num_rollouts[known])


def per_prompt_counts(prompt_ids: Sequence[str], correct: Sequence[Any],
                      scored: Sequence[bool] | None = None) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Rollout-level outcomes → per-prompt ``(ids, #correct, #scored)`` in order of first appearance.

    ``prompt_ids[r]`` is the prompt of rollout r, ``correct[r]`` whether it was correct (truthy), ``scored[r]``
    whether it counts at all (False for rollouts the verifier could not score; default all True)."""
    if len(correct) != len(prompt_ids) or (scored is not None and len(scored) != len(prompt_ids)):
        raise ValueError(f"prompt_ids ({len(prompt_ids)}), correct ({len(correct)}) and scored "
                         f"({'-' if scored is None else len(scored)}) must have one entry per rollout")
    index: dict[str, int] = {}
    for pid in prompt_ids:
        index.setdefault(str(pid), len(index))
    rows = np.fromiter((index[str(p)] for p in prompt_ids), dtype=np.int64, count=len(prompt_ids))
    ok = np.ones(len(prompt_ids), dtype=bool) if scored is None else np.asarray(scored, dtype=bool)
    hit = np.asarray([bool(c) for c in correct], dtype=bool) & ok
    return (list(index), np.bincount(rows, weights=hit, minlength=len(index)),
            np.bincount(rows, weights=ok, minlength=len(index)))


class RolloutAllocator:
    """Success history + allocation rule of one training run (identical on every process that holds one)."""

    def __init__(self, config: AllocationConfig) -> None:
        self.config = config
        self.history = SuccessHistory(forgetting=config.forgetting)
        self.num_updates = 0

    def __repr__(self) -> str:
        return f"RolloutAllocator(allocator={self.config.allocator!r}, prompts={len(self.history)})"

    # -- allocation (pure) ----------------------------------------------------------------------------------------
    def allocate(self, prompt_ids: Sequence[str]) -> Allocation:
        """Rollout counts for ``prompt_ids`` from the current history; budget = M × ``mean_rollouts``."""
        ids = tuple(str(p) for p in prompt_ids)
        correct, total = self.history.counts(list(ids))
        budget = len(ids) * self.config.mean_rollouts
        result = allocate_rollouts(correct, total, budget=budget, **self.config.core_kwargs())
        counts = np.asarray(result.num_rollouts, dtype=np.int64)
        ratio = live_variance_ratio(correct, total, counts, self.config.min_history) if ids else None
        configured = None
        if ratio is not None:
            known = total >= max(self.config.min_history, 2)
            spent, uniform = counts[known].sum(), known.sum() * self.config.mean_rollouts
            configured = ratio * uniform / spent if spent else None  # Σσ²/n_i ÷ Σσ²/n̄ scales with the total
        return Allocation(prompt_ids=ids, num_rollouts=counts, result=result,
                          has_history=total >= self.config.min_history, variance_ratio=ratio,
                          variance_ratio_configured=configured)

    # -- history --------------------------------------------------------------------------------------------------
    def update(self, prompt_ids: Sequence[str], num_correct: Sequence[float], num_samples: Sequence[float]) -> None:
        """Add one batch of per-prompt counts (c_i += #correct, n_i += #rollouts; paper Alg. 1)."""
        self.history.update([str(p) for p in prompt_ids], np.asarray(num_correct, dtype=np.float64),
                            np.asarray(num_samples, dtype=np.float64))
        self.num_updates += 1

    def update_from_rollouts(self, prompt_ids: Sequence[str], correct: Sequence[Any],
                             scored: Sequence[bool] | None = None) -> None:
        """Add one batch given per-rollout outcomes (see :func:`per_prompt_counts`)."""
        ids, num_correct, num_samples = per_prompt_counts(prompt_ids, correct, scored)
        self.update(ids, num_correct, num_samples)

    # -- metrics --------------------------------------------------------------------------------------------------
    def metrics(self, allocation: Allocation, levels: Sequence[Any] | None = None, *,
                scalars_only: bool = False) -> dict[str, Any]:
        """The ``alloc/*`` and ``history/*`` keys of one allocation (``docs/metrics.md``). ``levels[i]`` (optional):
        a difficulty label of prompt i for the ``level/*`` keys. ``scalars_only`` drops the histogram and list."""
        n = allocation.num_rollouts
        result = allocation.result
        out: dict[str, Any] = {K.HISTORY_PROMPTS: len(self.history)}
        if n.size == 0:
            return out
        out.update({
            K.ALLOC_BUDGET: int(n.sum()), K.ALLOC_BUDGET_REQUESTED: int(result.requested_budget),
            K.ALLOC_ROLLOUTS_SAVED: int(result.requested_budget - n.sum()),
            K.ALLOC_MIN: int(n.min()), K.ALLOC_MAX: int(n.max()), K.ALLOC_MEAN: float(n.mean()),
            K.ALLOC_STD: float(n.std()),
            K.ALLOC_AT_N_MIN: float((n == result.n_min).mean()), K.ALLOC_AT_N_MAX: float((n == result.n_max).mean()),
            K.ALLOC_WITH_HISTORY: float(allocation.has_history.mean()),
            K.ALLOC_VARIANCE_RATIO: allocation.variance_ratio,
        })
        if result.requested_budget != int(n.sum()):
            out[K.ALLOC_VARIANCE_RATIO_CONFIGURED] = allocation.variance_ratio_configured
        if not scalars_only:
            values, counts = np.unique(n, return_counts=True)
            out[K.ALLOC_HISTOGRAM] = {str(int(v)): int(c) for v, c in zip(values, counts)}
            out[K.ALLOC_NUM_ROLLOUTS] = allocation.counts()
        if levels is not None:
            for level in sorted({lv for lv in levels if lv is not None}, key=str):
                chosen = np.array([lv == level for lv in levels])
                out[K.LEVEL_NUM_ROLLOUTS_MEAN.format(level)] = float(n[chosen].mean())
                out[K.LEVEL_ROLLOUTS.format(level)] = int(n[chosen].sum())
        return out

    # -- state ----------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"format": STATE_FORMAT, "version": STATE_VERSION, "num_updates": self.num_updates,
                "history": self.history.state_dict()}

    def load_state_dict(self, state: Any, *, source: str = "state") -> None:
        """Restore from :meth:`state_dict` or from a file of an earlier release (see the module docstring)."""
        history, num_updates = _parse_state(state, source)
        restored = SuccessHistory(forgetting=self.config.forgetting)
        try:
            restored.load_state_dict(history)
        except ValueError as err:
            raise AllocatorStateError(f"{source}: invalid success history ({err})") from None
        self.history = restored
        self.num_updates = num_updates if num_updates is not None else restored.num_updates

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write :data:`STATE_FILE` into ``directory`` atomically; returns its path."""
        return atomic_write_json(Path(directory) / STATE_FILE, self.state_dict())

    def load(self, directory: str | os.PathLike[str]) -> bool:
        """Restore from ``directory``'s state file (or a legacy one); returns whether one was there."""
        path = find_state_file(directory)
        if path is None:
            return False
        self.load_state_dict(read_state_file(path), source=str(path))
        return True


def find_state_file(directory: str | os.PathLike[str]) -> Path | None:
    """The allocator state file in ``directory``: the current name first, then the legacy names."""
    for name in (STATE_FILE, *LEGACY_STATE_FILES):
        path = Path(directory) / name
        if path.is_file():
            return path
    return None


def read_state_file(path: str | os.PathLike[str]) -> Any:
    """The JSON content of a state file; a torn or non-JSON file raises :class:`AllocatorStateError`."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise AllocatorStateError(f"{path}: not a readable allocator state file ({type(err).__name__}: {err})") \
            from None


def _parse_state(state: Any, source: str) -> tuple[dict[str, Any], int | None]:
    """``(history state, num_updates or None)`` from any supported layout."""
    if not isinstance(state, dict):
        raise AllocatorStateError(f"{source}: expected a JSON object, got {type(state).__name__}")
    if state.get("format") == STATE_FORMAT:
        if state.get("version") != STATE_VERSION:
            raise AllocatorStateError(f"{source}: allocator state version {state.get('version')!r}; this release "
                                      f"reads versions 1-{STATE_VERSION} (upgrade dynamo-rl to read newer files)")
        if not isinstance(state.get("history"), dict):
            raise AllocatorStateError(f"{source}: allocator state has no 'history' object")
        return state["history"], _count(state.get("num_updates"), source)
    if isinstance(state.get("history"), dict) and state.get("version") == 1:  # TRL adapter (num_updates) / verl
        return state["history"], _count(state.get("num_updates"), source)
    if {"ids", "correct", "total"} <= set(state):  # the built-in trainer's bare history.json
        return state, None
    raise AllocatorStateError(f"{source}: not a dynamo-rl allocator state (keys {sorted(state)[:6]})")


def _count(value: Any, source: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise AllocatorStateError(f"{source}: num_updates={value!r} must be a count ≥ 0")
    return int(value)
