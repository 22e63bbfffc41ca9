"""Dynamic Rollout Allocation on verl's V1 trainer, without verl: prompt ids, ``__rollout_n__``, history updates.

The success history, the allocation rule (Eq 5-6, Algorithm 1 of DynaMO, arXiv 2602.19208), the live Eq 44 variance
ratio, the ``alloc/*`` / ``history/*`` metrics and the state file are :class:`dynamo_rl.run.allocator.RolloutAllocator`,
the one allocator every engine uses. :class:`VerlRolloutAllocator` composes it and keeps only verl's own
bookkeeping, on plain Python/numpy values so it is tested without Ray, TransferQueue or a GPU:

1. :func:`stable_prompt_ids` — the history key of each prompt of a dataloader batch: ``extra_info["index"]`` when the
   dataset sets it (``dynamo-rl prepare-verl`` writes our stable id there), else a hash of the raw prompt. verl's own
   ``uid`` is a fresh uuid4 on every fetch and is never used as a key.
2. :meth:`VerlRolloutAllocator.allocate` — per-prompt rollout counts with Σ n_i = prompts × ``rollout.n``
   (``RolloutAllocator.allocate``); it remembers uid → prompt id for the update.
3. :meth:`VerlRolloutAllocator.update_from_trajectories` — after scoring: TransferQueue keys ``{uid}_{session}_{i}``,
   scores and padding tags → one outcome per rollout → ``RolloutAllocator.update_from_rollouts``.
4. :meth:`VerlRolloutAllocator.save` / :meth:`~VerlRolloutAllocator.load` — ``allocator_state.json`` in verl's
   ``global_step_N`` folder (``RolloutAllocator.save``/``load``, which also read the old ``dynamo_history.json``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dynamo_rl.core.history import SuccessHistory
from dynamo_rl.method_config import AllocationConfig
from dynamo_rl.run import metric_names as K
from dynamo_rl.run.allocator import Allocation, RolloutAllocator

HISTORY_BATCH_PROMPTS = "history/batch_prompts"
"""Prompts added to the history by one scored batch."""
HISTORY_BATCH_ROLLOUTS = "history/batch_rollouts"
"""Rollouts (uid × session, padding excluded) added to the history by one scored batch."""
HISTORY_BATCH_ACCURACY = "history/batch_accuracy"
"""Fraction of those rollouts with score > ``correct_threshold`` (NaN when there are none)."""
HISTORY_UNKNOWN_ROWS = "history/unknown_rows"
"""Scored rows whose uid this allocator never allocated (should be 0)."""
HISTORY_PENDING_UIDS = "history/pending_uids"
"""Allocated uids not scored yet (in-flight refills, or groups dropped by DAPO filtering)."""


def _prompt_hash(raw_prompt: Any) -> str:
    text = raw_prompt if isinstance(raw_prompt, str) else json.dumps(raw_prompt, sort_keys=True, ensure_ascii=False,
                                                                     default=str)
    return "sha1:" + hashlib.sha1(text.encode()).hexdigest()[:20]


def stable_prompt_ids(extra_infos: Sequence[Any], raw_prompts: Sequence[Any]) -> list[str]:
    """History keys for a batch: ``str(extra_info["index"])`` when present, else ``sha1:`` of the raw prompt.

    ``extra_infos[j]`` is the row's ``extra_info`` (a dict, or None); ``raw_prompts[j]`` its chat messages or text.
    verl's dataset substitutes ``index = 0`` when ``extra_info.index`` is missing, so the presence is checked in
    ``extra_info`` itself, never in verl's ``index`` column.
    """
    if len(extra_infos) != len(raw_prompts):
        raise ValueError(f"extra_infos has {len(extra_infos)} rows but raw_prompts has {len(raw_prompts)}")
    ids = []
    for extra, prompt in zip(extra_infos, raw_prompts):
        index = extra.get("index") if isinstance(extra, Mapping) else None
        ids.append(_prompt_hash(prompt) if index is None or index == "" else str(index))
    return ids


def parse_trajectory_key(key: str) -> tuple[str, str, int]:
    """``"{uid}_{session_id}_{index}"`` (verl's TransferQueue key) → ``(uid, session_id, index)``."""
    parts = str(key).rsplit("_", 2)
    if len(parts) != 3 or not parts[2].isdigit():
        raise ValueError(f"trajectory key {key!r} is not of the form '{{uid}}_{{session_id}}_{{index}}'")
    return parts[0], parts[1], int(parts[2])


class VerlRolloutAllocator:
    """verl's uid bookkeeping around the shared :class:`RolloutAllocator` (driver process only)."""

    def __init__(self, config: AllocationConfig, *, correct_threshold: float = 0.0) -> None:
        if isinstance(correct_threshold, bool) or not isinstance(correct_threshold, (int, float)) \
                or not math.isfinite(correct_threshold):
            raise ValueError(f"correct_threshold={correct_threshold!r} must be a finite number")
        self.allocator = RolloutAllocator(config)
        self.correct_threshold = float(correct_threshold)
        self._uid_to_prompt: dict[str, str] = {}
        self.last_allocation: Allocation | None = None
        self.last_metrics: dict[str, float] = {}

    def __repr__(self) -> str:
        return f"VerlRolloutAllocator({self.allocator!r}, pending_uids={self.pending_uids})"

    @property
    def config(self) -> AllocationConfig:
        return self.allocator.config

    @property
    def history(self) -> SuccessHistory:
        return self.allocator.history

    @property
    def pending_uids(self) -> int:
        """uids allocated but not yet seen in a scored batch (refilled or filtered groups stay here)."""
        return len(self._uid_to_prompt)

    def allocate(self, uids: Sequence[str], prompt_ids: Sequence[str]) -> np.ndarray:
        """Rollouts per prompt (int64 (M,)), Σ = M × ``mean_rollouts`` (= verl's ``rollout.n``); remembers
        ``uid → prompt id``. Sets :attr:`last_metrics` to the ``alloc/*`` and ``history/*`` scalars of
        ``RolloutAllocator.metrics`` (``alloc/variance_reduction_ratio`` left out while no prompt has history)."""
        if len(uids) != len(prompt_ids):
            raise ValueError(f"uids has {len(uids)} rows but prompt_ids has {len(prompt_ids)}")
        allocation = self.allocator.allocate([str(p) for p in prompt_ids])
        budget = len(prompt_ids) * self.config.mean_rollouts
        if allocation.budget != budget:
            raise RuntimeError(f"allocator returned Σ n_i = {allocation.budget} for a budget of {budget} "
                               f"({len(prompt_ids)} prompts × rollout.n={self.config.mean_rollouts}); "
                               f"notes: {allocation.result.notes}")
        for uid, pid in zip(uids, prompt_ids):
            self._uid_to_prompt[str(uid)] = str(pid)
        self.last_allocation = allocation
        metrics = self.allocator.metrics(allocation, scalars_only=True)
        self.last_metrics = {key: float(value) for key, value in metrics.items() if value is not None}
        return allocation.num_rollouts.copy()

    def update_from_trajectories(self, keys: Sequence[str], scores: Sequence[float],
                                 tags: Sequence[Mapping[str, Any]] | None = None) -> dict[str, float]:
        """Add one scored batch to the history; returns the ``history/*`` metrics of the update.

        ``keys[r]``: TransferQueue key ``{uid}_{session}_{i}`` of row r; ``scores[r]``: its sequence score (sum of
        ``rm_scores``); ``tags[r]``: its TQ tag (rows tagged ``is_padding`` are skipped). A rollout is one
        ``(uid, session)``; multi-output sessions count once, with the score of their last output. A rollout is
        correct when its score > ``correct_threshold``. Rows whose uid was never allocated here are counted in
        ``history/unknown_rows`` and skipped.
        """
        scores = np.asarray(scores, dtype=np.float64)
        if scores.shape != (len(keys),):
            raise ValueError(f"scores has shape {scores.shape}, expected ({len(keys)},) to match keys")
        if tags is not None and len(tags) != len(keys):
            raise ValueError(f"tags has {len(tags)} rows but keys has {len(keys)}")
        last: dict[tuple[str, str], tuple[int, float]] = {}
        unknown = 0
        for r, key in enumerate(keys):
            if tags is not None and tags[r].get("is_padding", False):
                continue
            uid, session, index = parse_trajectory_key(key)
            if uid not in self._uid_to_prompt:
                unknown += 1
                continue
            if (uid, session) not in last or last[(uid, session)][0] < index:
                last[(uid, session)] = (index, float(scores[r]))
        prompt_ids = [self._uid_to_prompt[uid] for uid, _ in last]
        correct = [score > self.correct_threshold for _, score in last.values()]
        if prompt_ids:
            self.allocator.update_from_rollouts(prompt_ids, correct)
        for uid in {uid for uid, _ in last}:
            del self._uid_to_prompt[uid]
        return {
            K.HISTORY_PROMPTS: float(len(self.history)),
            HISTORY_BATCH_PROMPTS: float(len(set(prompt_ids))),
            HISTORY_BATCH_ROLLOUTS: float(len(prompt_ids)),
            HISTORY_BATCH_ACCURACY: sum(correct) / len(correct) if correct else float("nan"),
            HISTORY_UNKNOWN_ROWS: float(unknown),
            HISTORY_PENDING_UIDS: float(self.pending_uids),
        }

    # -- state: the shared allocator's versioned file -------------------------------------------------------------
    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``allocator_state.json`` into ``directory`` atomically (``RolloutAllocator.save``)."""
        return self.allocator.save(directory)

    def load(self, directory: str | os.PathLike[str]) -> bool:
        """Restore from ``directory`` (``allocator_state.json``, or an older ``dynamo_history.json``); returns
        whether a state file was there. uids allocated before the restart are forgotten."""
        return self.allocator.load(directory)

    def state_dict(self) -> dict[str, Any]:
        return self.allocator.state_dict()

    def load_state_dict(self, state: Any) -> None:
        self.allocator.load_state_dict(state)
