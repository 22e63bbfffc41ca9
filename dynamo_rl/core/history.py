"""Per-prompt success history for Dynamic Rollout Allocation (Sec. 4.2.2 and Algorithm 1 of DynaMO, arXiv 2602.19208).

Cumulative counts per stable prompt id: c_i ← c_i + #correct, n_i ← n_i + #rollouts after every step (the authors'
``update_prompt_stats``). Optional exponential forgetting (beyond the paper) multiplies every stored count by a factor
γ ∈ (0, 1] before each update, so old statistics fade as the policy improves; the effective history length is then
about batch/(1 − γ) rollouts per prompt and counts become fractional.

Storage is a dict id → row plus two float64 arrays that grow geometrically, so updates and look-ups for 17k+ prompts
cost one dict access per id and vectorised numpy for the rest.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["SuccessHistory"]

_STATE_VERSION = 1


def _check_forgetting(forgetting: float | None) -> float | None:
    if forgetting is None:
        return None
    if isinstance(forgetting, bool) or not isinstance(forgetting, (int, float)) or not 0 < forgetting <= 1:
        raise ValueError(f"forgetting={forgetting!r} must be in (0, 1] or None")
    return float(forgetting)


def _check_ids(name: str, prompt_ids: Sequence[str]) -> list[str]:
    ids = list(prompt_ids)
    for i, pid in enumerate(ids):
        if not isinstance(pid, str):
            raise ValueError(f"{name}[{i}]={pid!r} must be a str (a stable prompt id)")
    return ids


def _check_counts(name: str, value: object, length: int) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != (length,):
        raise ValueError(f"{name} has shape {arr.shape}, expected ({length},) to match prompt_ids")
    bad = ~np.isfinite(arr) | (arr < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name}[{i}]={float(arr[i])!r} must be a finite count ≥ 0")
    return arr


class SuccessHistory:
    """Cumulative (correct, total) rollout counts per prompt id.

    >>> h = SuccessHistory()
    >>> h.update(["a", "b", "a"], [1, 0, 2], [4, 4, 4])
    >>> h.counts(["a", "b", "c"])
    (array([3., 0., 0.]), array([8., 4., 0.]))
    """

    def __init__(self, forgetting: float | None = None) -> None:
        self.forgetting = _check_forgetting(forgetting)
        self._index: dict[str, int] = {}
        self._correct = np.zeros(0, dtype=np.float64)
        self._total = np.zeros(0, dtype=np.float64)
        self.num_updates = 0

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, prompt_id: object) -> bool:
        return prompt_id in self._index

    def __repr__(self) -> str:
        return f"SuccessHistory(prompts={len(self)}, updates={self.num_updates}, forgetting={self.forgetting})"

    def ids(self) -> list[str]:
        """Known prompt ids in insertion order."""
        return list(self._index)

    def _rows(self, ids: list[str], create: bool) -> np.ndarray:
        index = self._index
        if create:
            for pid in ids:
                if pid not in index:
                    index[pid] = len(index)
            if len(index) > self._correct.size:
                size = max(len(index), 2 * self._correct.size, 64)
                self._correct = np.concatenate((self._correct, np.zeros(size - self._correct.size)))
                self._total = np.concatenate((self._total, np.zeros(size - self._total.size)))
        return np.fromiter((index.get(pid, -1) for pid in ids), dtype=np.int64, count=len(ids))

    def update(self, prompt_ids: Sequence[str], num_correct: object, num_samples: object) -> None:
        """Add one step's results: ``num_correct[j]`` correct out of ``num_samples[j]`` rollouts of ``prompt_ids[j]``.

        Repeated ids in one call are summed. With forgetting γ, every stored count (seen in this batch or not) is
        multiplied by γ first. Validation happens before anything changes, so a bad call leaves the history intact.
        """
        ids = _check_ids("prompt_ids", prompt_ids)
        correct = _check_counts("num_correct", num_correct, len(ids))
        total = _check_counts("num_samples", num_samples, len(ids))
        over = correct > total
        if over.any():
            i = int(np.flatnonzero(over)[0])
            raise ValueError(f"num_correct[{i}]={float(correct[i])!r} exceeds num_samples[{i}]={float(total[i])!r} "
                             f"(prompt {ids[i]!r})")
        if self.forgetting is not None and self.forgetting != 1.0:
            n = len(self._index)
            self._correct[:n] *= self.forgetting
            self._total[:n] *= self.forgetting
        rows = self._rows(ids, create=True)
        np.add.at(self._correct, rows, correct)
        np.add.at(self._total, rows, total)
        self.num_updates += 1

    def counts(self, prompt_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(correct, total) float64 arrays (len(prompt_ids),) for these ids; zeros for unseen ids."""
        ids = _check_ids("prompt_ids", prompt_ids)
        rows = self._rows(ids, create=False)
        seen = rows >= 0
        correct = np.zeros(len(ids))
        total = np.zeros(len(ids))
        correct[seen] = self._correct[rows[seen]]
        total[seen] = self._total[rows[seen]]
        return correct, total

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state (plain lists and floats; float64 values survive ``json`` exactly)."""
        n = len(self._index)
        return {
            "version": _STATE_VERSION,
            "forgetting": self.forgetting,
            "num_updates": self.num_updates,
            "ids": list(self._index),
            "correct": self._correct[:n].tolist(),
            "total": self._total[:n].tolist(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the counts of :meth:`state_dict` exactly (replacing the current ones).

        The forgetting factor stays the one this object was built with; a different stored factor gives a warning.
        """
        if not isinstance(state, dict):
            raise ValueError(f"state must be a dict from SuccessHistory.state_dict(), got {type(state).__name__}")
        missing = {"version", "ids", "correct", "total"} - set(state)
        if missing:
            raise ValueError(f"state is missing keys {sorted(missing)}")
        if state["version"] != _STATE_VERSION:
            raise ValueError(f"state['version']={state['version']!r}; this code reads version {_STATE_VERSION}")
        ids = _check_ids("state['ids']", state["ids"])
        if len(set(ids)) != len(ids):
            raise ValueError("state['ids'] contains duplicate prompt ids")
        correct = _check_counts("state['correct']", state["correct"], len(ids))
        total = _check_counts("state['total']", state["total"], len(ids))
        if (correct > total).any():
            i = int(np.flatnonzero(correct > total)[0])
            raise ValueError(f"state['correct'][{i}]={float(correct[i])!r} exceeds state['total'][{i}]={float(total[i])!r}")
        stored = state.get("forgetting")
        if stored != self.forgetting and not (stored is not None and self.forgetting is not None
                                              and math.isclose(stored, self.forgetting)):
            warnings.warn(f"history was saved with forgetting={stored!r} but this SuccessHistory uses "
                          f"forgetting={self.forgetting!r}; keeping {self.forgetting!r}", stacklevel=2)
        self._index = {pid: i for i, pid in enumerate(ids)}
        self._correct = correct.copy()
        self._total = total.copy()
        self.num_updates = int(state.get("num_updates", 0))

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> SuccessHistory:
        """A new history with the stored forgetting factor and counts."""
        history = cls(forgetting=state.get("forgetting") if isinstance(state, dict) else None)
        history.load_state_dict(state)
        return history
