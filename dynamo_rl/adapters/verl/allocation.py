"""Dynamic Rollout Allocation on verl's V1 trainer, without verl: prompt ids, ``__rollout_n__``, history updates.

The trainer (:mod:`dynamo_rl.adapters.verl.trainer`) is a thin shell around :class:`VerlRolloutAllocator`, which
works on plain Python/numpy values so it is tested without Ray, TransferQueue or a GPU:

1. :func:`stable_prompt_ids` — the history key of each prompt of a dataloader batch: ``extra_info["index"]`` when the
   dataset sets it (``dynamo-rl prepare-verl`` writes our stable id there), else a hash of the raw prompt. verl's own
   ``uid`` is a fresh uuid4 on every fetch and is never used as a key.
2. :meth:`VerlRolloutAllocator.allocate` — per-prompt rollout counts with Σ n_i = prompts × ``rollout.n``
   (Eq 5-6 and Algorithm 1 of DynaMO, arXiv 2602.19208, via :func:`dynamo_rl.core.allocation.allocate_rollouts`); it
   remembers uid → prompt id for the update.
3. :meth:`VerlRolloutAllocator.update_from_trajectories` — after scoring: trajectory keys ``{uid}_{session}_{i}``,
   scores and padding tags → per-prompt (correct, total) → :class:`~dynamo_rl.core.history.SuccessHistory`.
4. :func:`save_history` / :func:`load_history` — atomic JSON next to verl's checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dynamo_rl.core.allocation import allocate_rollouts
from dynamo_rl.core.history import SuccessHistory
from dynamo_rl.method_config import AllocationConfig

_STATE_VERSION = 1


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


def parse_trajectory_key(key: str) -> tuple[str, str]:
    """``"{uid}_{session_id}_{index}"`` (verl's TransferQueue key) → ``(uid, session_id)``."""
    parts = str(key).rsplit("_", 2)
    if len(parts) != 3 or not parts[2].isdigit():
        raise ValueError(f"trajectory key {key!r} is not of the form '{{uid}}_{{session_id}}_{{index}}'")
    return parts[0], parts[1]


class VerlRolloutAllocator:
    """Success history + uid bookkeeping of one verl run (driver process only)."""

    def __init__(self, config: AllocationConfig, *, correct_threshold: float = 0.0,
                 history: SuccessHistory | None = None) -> None:
        self.config = config
        self.correct_threshold = float(correct_threshold)
        self.history = history if history is not None else SuccessHistory(forgetting=config.forgetting)
        self._uid_to_prompt: dict[str, str] = {}
        self.last_metrics: dict[str, float] = {}

    @property
    def pending_uids(self) -> int:
        """uids allocated but not yet seen in a scored batch (refilled or filtered groups stay here until reset)."""
        return len(self._uid_to_prompt)

    def allocate(self, uids: Sequence[str], prompt_ids: Sequence[str], *, mean_rollouts: int) -> np.ndarray:
        """Rollouts per prompt (int64 (M,)), Σ = M × ``mean_rollouts``; remembers ``uid → prompt id``."""
        if len(uids) != len(prompt_ids):
            raise ValueError(f"uids has {len(uids)} rows but prompt_ids has {len(prompt_ids)}")
        budget = len(prompt_ids) * int(mean_rollouts)
        correct, total = self.history.counts(list(prompt_ids))
        kwargs = self.config.core_kwargs()
        result = allocate_rollouts(correct, total, budget=budget, **kwargs)
        counts = np.asarray(result.num_rollouts, dtype=np.int64)
        if int(counts.sum()) != budget:
            raise RuntimeError(f"allocator returned Σ n_i = {int(counts.sum())} for a budget of {budget} "
                               f"({len(prompt_ids)} prompts × rollout.n={mean_rollouts}); notes: {result.notes}")
        for uid, pid in zip(uids, prompt_ids):
            self._uid_to_prompt[str(uid)] = str(pid)
        self.last_metrics = {f"dynamo/allocation/{k}": float(v) for k, v in result.metrics().items()}
        return counts

    def update_from_trajectories(self, keys: Sequence[str], scores: Sequence[float],
                                 tags: Sequence[Mapping[str, Any]] | None = None) -> dict[str, float]:
        """Add one scored batch to the history; returns metrics.

        ``keys[r]``: TransferQueue key ``{uid}_{session}_{i}`` of row r; ``scores[r]``: its sequence score (sum of
        ``rm_scores``); ``tags[r]``: its TQ tag (rows tagged ``is_padding`` are skipped). A rollout is one
        ``(uid, session)``; multi-output sessions count once, with the score of their last output. A rollout is
        correct when its score > ``correct_threshold``. Rows whose uid was never allocated here are counted in
        ``dynamo/history/unknown_rows`` and skipped.
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
            uid, session = parse_trajectory_key(key)
            if uid not in self._uid_to_prompt:
                unknown += 1
                continue
            index = int(str(key).rsplit("_", 1)[1])
            if (uid, session) not in last or last[(uid, session)][0] < index:
                last[(uid, session)] = (index, float(scores[r]))
        per_prompt: dict[str, list[float]] = {}
        seen_uids = set()
        for (uid, _), (_, score) in last.items():
            seen_uids.add(uid)
            counts = per_prompt.setdefault(self._uid_to_prompt[uid], [0.0, 0.0])
            counts[0] += float(score > self.correct_threshold)
            counts[1] += 1.0
        if per_prompt:
            ids = list(per_prompt)
            self.history.update(ids, [per_prompt[p][0] for p in ids], [per_prompt[p][1] for p in ids])
        for uid in seen_uids:
            del self._uid_to_prompt[uid]
        total = sum(c[1] for c in per_prompt.values())
        correct = sum(c[0] for c in per_prompt.values())
        return {
            "dynamo/history/prompts": float(len(self.history)),
            "dynamo/history/batch_prompts": float(len(per_prompt)),
            "dynamo/history/batch_rollouts": float(total),
            "dynamo/history/batch_accuracy": correct / total if total else float("nan"),
            "dynamo/history/unknown_rows": float(unknown),
            "dynamo/history/pending_uids": float(self.pending_uids),
        }


def save_history(history: SuccessHistory, path: str | os.PathLike[str], *, global_step: int) -> Path:
    """Write ``history`` as JSON atomically (temp file in the same folder, fsync, rename); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"version": _STATE_VERSION, "global_step": int(global_step), "history": history.state_dict()}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_history(path: str | os.PathLike[str], history: SuccessHistory) -> int:
    """Restore ``history`` from :func:`save_history`'s file; returns the stored global step."""
    with open(path, encoding="utf-8") as handle:
        payload = json.load(handle)
    if not isinstance(payload, dict) or payload.get("version") != _STATE_VERSION or "history" not in payload:
        raise ValueError(f"{path}: not a dynamo-rl history file of version {_STATE_VERSION}")
    history.load_state_dict(payload["history"])
    return int(payload.get("global_step", 0))
