"""The ``dynamo:`` section of a verl config: which DynaMO method runs, and the plugin's own switches.

verl's Hydra config has no DynaMO keys, so our configs (``configs/verl/*.yaml``) add a top-level section; on the
command line use ``+dynamo.<key>=...`` when the section is absent, ``dynamo.<key>=...`` when it is present::

    dynamo:
      method: dynamo            # dynamo_rl.presets.METHODS (dynamo, grpo, no_dra, no_gc, ...)
      preset: official          # dynamo_rl.presets.PRESETS (official, paper, theory)
      allocation: {}            # AllocationConfig overrides (n_min, n_max, allocator, ...)
      modulation: {}            # ModulationConfig overrides (mu_max, lambda_min, k, tau, ...)
      correct_threshold: 0.0    # a rollout is "correct" for the success history when its score is > this
      history_file: dynamo_history.json
      sum_pi_squared: false     # also request Σπ² from the engine (diagnostic metric only, see docs/verl.md)

The mean rollout count is verl's ``actor_rollout_ref.rollout.n`` (the budget is ``train_batch_size × n``); the clip
ranges, loss aggregation, entropy bonus and KL come from verl's actor config, not from ``MethodConfig.loss``.
No verl import here: this module is plain Python so it is testable without verl.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dynamo_rl.method_config import MethodConfig
from dynamo_rl.presets import build_method_config

SECTION = "dynamo"
_KNOWN_KEYS = frozenset({"method", "preset", "allocation", "modulation", "correct_threshold", "history_file",
                         "sum_pi_squared"})


@dataclass(frozen=True)
class VerlDynamoSettings:
    """Resolved DynaMO options for one verl run."""

    method: MethodConfig
    correct_threshold: float = 0.0
    history_file: str = "dynamo_history.json"
    sum_pi_squared: bool = False

    def modulation_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``core.modulation.modulate_advantages`` (picklable: sent to the Ray workers)."""
        return self.method.modulation.core_kwargs()


def _plain(value: Any) -> Any:
    """An OmegaConf node (or anything mapping-like) as plain dicts/lists, without importing omegaconf."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "items") and callable(value.items):  # DictConfig
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def resolve_settings(section: Mapping[str, Any] | None, *, rollout_n: int) -> VerlDynamoSettings:
    """Build :class:`VerlDynamoSettings` from the ``dynamo`` config section (``None`` = all defaults).

    ``rollout_n`` (verl's ``actor_rollout_ref.rollout.n``) becomes ``allocation.mean_rollouts``; a different explicit
    ``allocation.mean_rollouts`` is an error. Options the verl engine cannot honour raise ``ValueError`` naming the key:
    ``modulation.norm_scope`` other than ``micro`` (the loss sees one micro-batch) and
    ``modulation.entropy_change_mode=exact`` (verl's engines return Σπ², not the centred Σπ²Λ it needs).
    """
    raw = _plain(section) if section is not None else {}
    if not isinstance(raw, dict):
        raise ValueError(f"{SECTION} must be a mapping, got {type(section).__name__}")
    unknown = sorted(set(raw) - _KNOWN_KEYS)
    if unknown:
        raise ValueError(f"unknown {SECTION}.* keys {unknown}; valid: {', '.join(sorted(_KNOWN_KEYS))}")
    if isinstance(rollout_n, bool) or not isinstance(rollout_n, int) or rollout_n < 2:
        raise ValueError(f"actor_rollout_ref.rollout.n={rollout_n!r} must be an int ≥ 2 (the mean rollouts per prompt)")
    allocation = dict(raw.get("allocation") or {})
    modulation = dict(raw.get("modulation") or {})
    if allocation.get("mean_rollouts", rollout_n) != rollout_n:
        raise ValueError(f"{SECTION}.allocation.mean_rollouts={allocation['mean_rollouts']!r} differs from "
                         f"actor_rollout_ref.rollout.n={rollout_n}; set only rollout.n (it is the mean budget)")
    allocation["mean_rollouts"] = rollout_n
    method = build_method_config(str(raw.get("method", "dynamo")), str(raw.get("preset", "official")),
                                 overrides={"allocation": allocation, "modulation": modulation})
    mod = method.modulation
    if mod.enabled and mod.norm_scope != "micro":
        raise ValueError(f"{SECTION}.modulation.norm_scope={mod.norm_scope!r} is not supported on verl: the loss "
                         f"function sees one micro-batch; set {SECTION}.modulation.norm_scope=micro")
    if mod.enabled and mod.stabilization and mod.entropy_change_mode == "exact":
        raise ValueError(f"{SECTION}.modulation.entropy_change_mode='exact' needs Σπ²(log π + H), which verl's engines "
                         f"do not compute; use seq_mean_baseline (authors' code) or pi2")
    threshold = float(raw.get("correct_threshold", 0.0))
    history_file = str(raw.get("history_file", "dynamo_history.json"))
    if not history_file or "/" in history_file:
        raise ValueError(f"{SECTION}.history_file={history_file!r} must be a plain file name")
    return VerlDynamoSettings(method=method, correct_threshold=threshold, history_file=history_file,
                              sum_pi_squared=bool(raw.get("sum_pi_squared", False)))


# MethodConfig.loss field → (verl actor key, how verl's value is read)
_LOSS_KEYS = {"eps_low": "clip_ratio_low", "eps_high": "clip_ratio_high", "clip_ratio_c": "clip_ratio_c",
              "loss_agg_mode": "loss_agg_mode", "entropy_coeff": "entropy_coeff"}


def loss_mismatches(method: MethodConfig, actor: Mapping[str, Any]) -> list[str]:
    """``actor_rollout_ref.actor.<key>=<value>`` settings under which verl's loss matches ``method.loss``.

    On verl the clip ranges, dual-clip constant, aggregation and entropy bonus are verl's own actor keys (the loss is
    verl's ``ppo_loss``); this lists the ones whose verl value differs from the method's (e.g. ``grpo`` wants
    ``clip_ratio_high=0.2``), so the trainer can warn. Loss options verl has no key for (``fork_top_ratio``,
    ``entropy_adv_alpha``, ``advantage_estimator`` other than grpo/dr_grpo) are listed as unsupported.
    """
    out = []
    loss = method.loss
    for ours, key in _LOSS_KEYS.items():
        want, have = getattr(loss, ours), actor.get(key)
        if ours == "clip_ratio_c" and want is None:
            continue
        if have is None or (want != have and not (isinstance(want, float) and isinstance(have, (int, float))
                                                  and abs(want - float(have)) < 1e-12)):
            out.append(f"actor_rollout_ref.actor.{key}={want}")
    if loss.policy_loss != "ppo_clip":
        out.append(f"actor_rollout_ref.actor.policy_loss.loss_mode={loss.policy_loss} (verl's own implementation)")
    for name in ("fork_top_ratio", "entropy_adv_alpha"):
        if getattr(loss, name) is not None:
            out.append(f"{name}={getattr(loss, name)} (no verl equivalent; unsupported by the plugin)")
    if loss.advantage_estimator not in ("grpo", "dr_grpo"):
        out.append(f"advantage_estimator={loss.advantage_estimator} (use verl's algorithm.adv_estimator)")
    return out
