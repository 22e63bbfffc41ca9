"""The ``dynamo:`` section of a verl config (which DynaMO method runs) and the verl keys that method's loss needs.

verl's Hydra config has no DynaMO keys, so our configs (``configs/verl/*.yaml``) add a top-level section; on the
command line use ``+dynamo.<key>=...`` when the section is absent, ``dynamo.<key>=...`` when it is present::

    dynamo:
      method: dynamo            # dynamo_rl.presets.METHODS (dynamo, grpo, no_dra, no_gc, ...)
      preset: official          # dynamo_rl.presets.PRESETS (official, paper, theory)
      allocation: {}            # AllocationConfig overrides (n_min, n_max, allocator, ...)
      modulation: {}            # ModulationConfig overrides (mu_max, lambda_min, k, tau, ...)
      loss: {}                  # LossConfig overrides (eps_high, ...); verl's actor keys must then agree
      correct_threshold: 0.0    # a rollout is "correct" for the success history when its score is > this
      sum_pi_squared: false     # also request Σπ² from the engine (diagnostic metric mod/sum_sq_probs_mean)

The valid keys are the fields of :class:`DynamoSection` and, inside ``allocation`` / ``modulation`` / ``loss``, the
fields of the :mod:`dynamo_rl.method_config` dataclasses; anything else is an error naming the valid keys.

**Mean rollouts.** verl's ``actor_rollout_ref.rollout.n`` is the method's ``allocation.mean_rollouts`` (the budget is
``train_batch_size × n``). It is passed to :func:`~dynamo_rl.presets.build_method_config` as an explicit override,
so without ``n_min``/``n_max`` the bounds follow it (:func:`~dynamo_rl.presets.derived_bounds`: [n/2, 3n/2]) and
DRA acts out of the box.

**Loss.** On verl the loss *is* verl's ``ppo_loss`` (plus our modulation of the advantages), so verl's own config
keys stay the source of the clip ranges, policy loss, aggregation, entropy bonus and advantage estimator. The method
(preset + method bundle + ``dynamo.loss``) states what they must be: :func:`verl_loss_settings` translates
``MethodConfig.loss`` into verl keys, driven by the core registries' signatures (the keyword arguments of the
selected policy loss and advantage estimator), and refuses what verl cannot express, naming the methods it can run.
:func:`check_loss` compares those keys with the run's verl config; the trainer refuses to start on a mismatch and
lists the overrides to set.

No verl import here: this module is plain Python so it is testable without verl. ``python -m
dynamo_rl.adapters.verl.settings METHOD [PRESET]`` prints the Hydra overrides that make verl's loss the method's.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dynamo_rl.method_config import AllocationConfig, LossConfig, MethodConfig, ModulationConfig
from dynamo_rl.presets import METHODS, PRESETS, build_method_config

SECTION = "dynamo"
ACTOR = "actor_rollout_ref.actor"

EXACT_REFUSAL = ("entropy_change_mode='exact' needs Σπ²(log π + H) per token (Eq 27), which verl's engines do not "
                 "compute (they return Σπ² at most); use seq_mean_baseline (authors' code) or pi2")
"""Why verl refuses the ``exact`` entropy-change estimate (the ``theory`` preset)."""


@dataclass(frozen=True)
class DynamoSection:
    """The keys of the ``dynamo:`` section of a verl config (their docstrings are the help text)."""

    method: str = "dynamo"
    """A :data:`dynamo_rl.presets.METHODS` name (dynamo, grpo, ablations, baselines)."""
    preset: str = "official"
    """A :data:`dynamo_rl.presets.PRESETS` name (official, paper, theory)."""
    allocation: dict = field(default_factory=dict)
    """:class:`~dynamo_rl.method_config.AllocationConfig` overrides; ``mean_rollouts`` is ``rollout.n``."""
    modulation: dict = field(default_factory=dict)
    """:class:`~dynamo_rl.method_config.ModulationConfig` overrides."""
    loss: dict = field(default_factory=dict)
    """:class:`~dynamo_rl.method_config.LossConfig` overrides (verl's actor keys must then agree, see check_loss)."""
    correct_threshold: float = 0.0
    """A rollout counts as correct for the success history when its sequence reward is > this (finite)."""
    sum_pi_squared: bool = False
    """Also ask the engine for Σπ² (metric ``mod/sum_sq_probs_mean``; needs ``use_fused_kernels=false``)."""


_SECTION_CONFIGS = {"allocation": AllocationConfig, "modulation": ModulationConfig, "loss": LossConfig}
_REMOVED_KEYS = {"history_file": "the allocator state is always saved as allocator_state.json in verl's "
                                 "global_step_N folder (an old dynamo_history.json there still loads)"}


@dataclass(frozen=True)
class VerlDynamoSettings:
    """Resolved DynaMO options for one verl run."""

    method: MethodConfig
    method_name: str = "dynamo"
    preset: str = "official"
    correct_threshold: float = 0.0
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


def _names(cls: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _parse_section(section: Any) -> DynamoSection:
    raw = _plain(section) if section is not None else {}
    if not isinstance(raw, dict):
        raise ValueError(f"{SECTION} must be a mapping, got {type(section).__name__}")
    valid = _names(DynamoSection)
    for key in raw:
        if key in _REMOVED_KEYS:
            raise ValueError(f"{SECTION}.{key} was removed: {_REMOVED_KEYS[key]}; delete the key")
        if key not in valid:
            raise ValueError(f"unknown key {SECTION}.{key}; valid keys: {', '.join(valid)}")
    for name, cls in _SECTION_CONFIGS.items():
        value = raw.get(name)
        if value is None:
            raw[name] = {}
            continue
        if not isinstance(value, dict):
            raise ValueError(f"{SECTION}.{name} must be a mapping of {cls.__name__} fields, got {value!r}")
        fields = _names(cls)
        for key in value:
            if key not in fields:
                raise ValueError(f"unknown key {SECTION}.{name}.{key}; valid keys: {', '.join(fields)}")
    threshold = raw.get("correct_threshold", 0.0)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold):
        raise ValueError(f"{SECTION}.correct_threshold={threshold!r} must be a finite number")
    raw["correct_threshold"] = float(threshold)
    if not isinstance(raw.get("sum_pi_squared", False), bool):
        raise ValueError(f"{SECTION}.sum_pi_squared={raw['sum_pi_squared']!r} must be true or false")
    return DynamoSection(**raw)


def resolve_settings(section: Mapping[str, Any] | None, *, rollout_n: int) -> VerlDynamoSettings:
    """Build :class:`VerlDynamoSettings` from the ``dynamo`` config section (``None`` = all defaults).

    ``rollout_n`` (verl's ``actor_rollout_ref.rollout.n``) becomes ``allocation.mean_rollouts`` (bounds derived from
    it unless given); a different explicit ``allocation.mean_rollouts`` is an error. Raises ``ValueError`` naming the
    key for an unknown key, an invalid value or an option verl cannot honour: ``modulation.norm_scope`` other than
    ``micro`` (the loss sees one micro-batch), ``modulation.entropy_change_mode=exact`` (:data:`EXACT_REFUSAL`), an
    allocator that may spend less than the budget, and loss options outside :func:`verl_loss_settings`.
    """
    parsed = _parse_section(section)
    if isinstance(rollout_n, bool) or not isinstance(rollout_n, int) or rollout_n < 2:
        raise ValueError(f"actor_rollout_ref.rollout.n={rollout_n!r} must be an int ≥ 2 (the mean rollouts per prompt)")
    allocation = dict(parsed.allocation)
    if allocation.get("mean_rollouts", rollout_n) != rollout_n:
        raise ValueError(f"{SECTION}.allocation.mean_rollouts={allocation['mean_rollouts']!r} differs from "
                         f"actor_rollout_ref.rollout.n={rollout_n}; set only rollout.n (it is the mean budget)")
    allocation["mean_rollouts"] = rollout_n
    overrides = {"allocation": allocation, "modulation": dict(parsed.modulation), "loss": dict(parsed.loss)}
    try:
        method = build_method_config(parsed.method, parsed.preset, overrides=overrides)
    except KeyError as err:  # unknown preset / method: the message names the valid ones
        raise ValueError(f"{SECTION}: {err.args[0]}") from None
    except TypeError as err:  # a wrong value type reaching a dataclass
        raise ValueError(f"{SECTION}: {err}") from None
    mod = method.modulation
    if mod.enabled and mod.norm_scope != "micro":
        raise ValueError(f"{SECTION}.modulation.norm_scope={mod.norm_scope!r} is not supported on verl: the loss "
                         f"function sees one micro-batch; set {SECTION}.modulation.norm_scope=micro")
    if mod.enabled and mod.stabilization and mod.entropy_change_mode == "exact":
        raise ValueError(f"{SECTION}.modulation.{EXACT_REFUSAL}")
    if method.allocation.allocator in _BUDGET_SAVING_ALLOCATORS:
        raise ValueError(f"{SECTION}.allocation.allocator={method.allocation.allocator!r} is not supported on verl: "
                         "it may spend fewer rollouts than train_batch_size × rollout.n, and verl's mini-batches "
                         "are ppo_mini_batch_size × rollout.n rows")
    verl_loss_settings(method)  # refuses what verl's loss cannot express
    return VerlDynamoSettings(method=method, method_name=parsed.method, preset=parsed.preset,
                              correct_threshold=parsed.correct_threshold, sum_pi_squared=parsed.sum_pi_squared)


_BUDGET_SAVING_ALLOCATORS = ("variance_matched",)
"""Allocators whose Σ n_i may be below the budget (``AllocationResult.rollouts_saved``)."""

# ---------------------------------------------------------------------------------------------------- the loss
_POLICY_LOSS_MODES = {"ppo_clip": "vanilla", "clip_cov": "clip_cov", "kl_cov": "kl_cov"}
"""core.losses name → verl ``policy_loss.loss_mode`` with the same per-token loss."""
_POLICY_KWARG_KEYS = {
    "eps_low": "clip_ratio_low", "eps_high": "clip_ratio_high", "clip_ratio_c": "clip_ratio_c",
    "clip_cov_ratio": "policy_loss.clip_cov_ratio", "clip_cov_lb": "policy_loss.clip_cov_lb",
    "clip_cov_ub": "policy_loss.clip_cov_ub", "kl_cov_ratio": "policy_loss.kl_cov_ratio",
    "kl_cov_coef": "policy_loss.ppo_kl_coef",
}
"""Keyword argument of a core policy loss → the verl actor key (under ``actor_rollout_ref.actor``) that sets it."""
_ADVANTAGES = {"grpo": True, "dr_grpo": False}
"""core.advantages name → verl ``algorithm.norm_adv_by_std_in_grpo`` (with adv_estimator grpo or dynamo_grpo)."""
_ADV_ESTIMATORS = ("grpo", "dynamo_grpo")
VERL_GRPO_EPS = 1e-6
"""ε of verl's GRPO std normalisation (``compute_grpo_outcome_advantage``; verl passes no other value)."""
_VERL_AGG_MODES = ("token-mean", "token-sum", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm")
"""verl 0.9.1 ``ActorConfig`` loss aggregation modes."""


class UnsupportedOnVerl(ValueError):
    """A method option that verl's loss cannot express."""


def _problem(loss: LossConfig) -> tuple[str, Any, str] | None:
    """``(field, value, why)`` of the first option of ``loss`` that verl cannot express, else None."""
    if loss.fork_top_ratio is not None:
        return "fork_top_ratio", loss.fork_top_ratio, "verl has no top-entropy token mask (Fork Tokens)"
    if loss.entropy_adv_alpha is not None:
        return "entropy_adv_alpha", loss.entropy_adv_alpha, "verl has no entropy-shaped advantage"
    if loss.policy_loss not in _POLICY_LOSS_MODES:
        return "policy_loss", loss.policy_loss, f"verl runs {', '.join(_POLICY_LOSS_MODES)}"
    if loss.advantage_estimator not in _ADVANTAGES:
        return "advantage_estimator", loss.advantage_estimator, f"verl runs {', '.join(_ADVANTAGES)}"
    if loss.loss_agg_mode not in _VERL_AGG_MODES:
        return "loss_agg_mode", loss.loss_agg_mode, f"verl has {', '.join(_VERL_AGG_MODES)}"
    for name, value in sorted(loss.policy_loss_kwargs().items()):
        if name == "generator":
            continue
        if name not in _POLICY_KWARG_KEYS:
            return name, value, f"verl's {_POLICY_LOSS_MODES[loss.policy_loss]} loss has no such option"
        if value is None:
            return name, value, "verl's loss has no switch to disable it"
    for name, value in sorted(loss.advantage_kwargs().items()):
        if not (name == "eps" and loss.advantage_estimator == "grpo"):
            return name, value, "verl's advantage estimator has no such option"
        if not math.isclose(value, VERL_GRPO_EPS):
            return "grpo_eps", value, f"verl's GRPO advantage uses ε = {VERL_GRPO_EPS:g}"
    return None


def supported_methods(preset: str = "official") -> list[str]:
    """The :data:`~dynamo_rl.presets.METHODS` whose loss verl can express under ``preset``."""
    return [name for name in sorted(METHODS) if _problem(build_method_config(name, preset).loss) is None]


def verl_loss_settings(method: MethodConfig, config: Any = None) -> dict[str, Any]:
    """The verl config keys (dotted paths from the config root) that make verl's loss ``method.loss``.

    ``algorithm.adv_estimator`` maps to a tuple of accepted values; every other key to one value. Derived from the
    core registries: each keyword argument of the selected policy loss (``LossConfig.policy_loss_kwargs``) and
    advantage estimator (``advantage_kwargs``) is mapped to a verl key, or refused. Dr. GRPO's
    ``seq-mean-token-sum-norm`` also needs L_max = ``actor.loss_scale_factor`` = ``data.max_response_length`` (the
    built-in trainer's L_max; verl's default, the micro-batch's padded width, varies): its value is read from
    ``config`` when given, else written as the Hydra interpolation ``${data.max_response_length}``.

    Raises :class:`UnsupportedOnVerl` (a ``ValueError``) naming the field and the methods verl can run, for Fork
    Tokens, Entropy Advantages, other advantage estimators or policy losses, a disabled dual clip, or a GRPO ε other
    than verl's.
    """
    loss = method.loss
    problem = _problem(loss)
    if problem is not None:
        name, value, why = problem
        raise UnsupportedOnVerl(f"invalid loss.{name}={value!r} on verl: {why}. Methods verl can run: "
                                f"{', '.join(supported_methods())}")
    out: dict[str, Any] = {f"{ACTOR}.policy_loss.loss_mode": _POLICY_LOSS_MODES[loss.policy_loss]}
    for name, value in sorted(loss.policy_loss_kwargs().items()):
        if name != "generator":
            out[f"{ACTOR}.{_POLICY_KWARG_KEYS[name]}"] = value
    out[f"{ACTOR}.loss_agg_mode"] = loss.loss_agg_mode
    if loss.loss_agg_mode == "seq-mean-token-sum-norm":
        out[f"{ACTOR}.loss_scale_factor"] = ("${data.max_response_length}" if config is None
                                             else _lookup(config, "data.max_response_length"))
    out[f"{ACTOR}.entropy_coeff"] = loss.entropy_coeff
    out["algorithm.adv_estimator"] = _ADV_ESTIMATORS
    out["algorithm.norm_adv_by_std_in_grpo"] = _ADVANTAGES[loss.advantage_estimator]
    return out


def _lookup(config: Any, path: str) -> Any:
    node = config
    for part in path.split("."):
        if node is None or not hasattr(node, "get"):
            return None
        node = node.get(part, None)
    return node


def _effective(config: Any, path: str) -> Any:
    """verl's effective value: ``clip_ratio_low/high`` fall back to ``clip_ratio``, ``loss_mode`` to vanilla."""
    value = _lookup(config, path)
    if value is None and path in (f"{ACTOR}.clip_ratio_low", f"{ACTOR}.clip_ratio_high"):
        value = _lookup(config, f"{ACTOR}.clip_ratio")
    if value is None and path == f"{ACTOR}.policy_loss.loss_mode":
        value = "vanilla"
    return value


def _same(want: Any, have: Any) -> bool:
    if isinstance(want, tuple):
        return have in want
    if isinstance(want, bool) or isinstance(have, bool):
        return isinstance(want, bool) and isinstance(have, bool) and want == have
    if isinstance(want, (int, float)) and isinstance(have, (int, float)):
        return math.isclose(float(want), float(have), rel_tol=1e-9, abs_tol=1e-12)
    return want == have


def loss_mismatches(method: MethodConfig, config: Any) -> list[str]:
    """``key=value`` Hydra overrides under which the verl ``config`` (root: ``actor_rollout_ref``, ``algorithm``)
    runs ``method``'s loss; empty when it already does. Raises :class:`UnsupportedOnVerl` for what verl cannot run."""
    out = []
    for path, want in verl_loss_settings(method, config).items():
        have = _effective(config, path)
        if not _same(want, have):
            value = want[0] if isinstance(want, tuple) else want
            out.append(f"{path}={str(value).lower() if isinstance(value, bool) else value}"
                       f"  (have {have!r})")
    return out


def check_loss(method: MethodConfig, config: Any, *, method_name: str = "", preset: str = "") -> None:
    """Refuse (``ValueError``) a verl ``config`` whose loss keys do not run ``method``'s loss; the message lists the
    overrides to set (or, to run something else deliberately, the ``dynamo.loss`` override that states it)."""
    mismatches = loss_mismatches(method, config)
    if mismatches:
        label = f"{method_name or 'the method'}" + (f" (preset {preset})" if preset else "")
        raise ValueError(f"verl's loss settings do not match {label}; set:\n  " + "\n  ".join(mismatches)
                         + f"\n(or state a deliberate change of the method in {SECTION}.loss, e.g. "
                           f"+{SECTION}.loss.eps_high=0.3 with {ACTOR}.clip_ratio_high=0.3)")


def verl_overrides(method: str = "dynamo", preset: str = "official", loss: Mapping[str, Any] | None = None
                   ) -> list[str]:
    """Hydra overrides (``key=value``) that make verl's loss ``method`` under ``preset`` (plus ``loss`` overrides)."""
    config = build_method_config(method, preset, overrides={"loss": dict(loss or {})})
    out = []
    for path, value in verl_loss_settings(config).items():
        value = value[0] if isinstance(value, tuple) else value
        out.append(f"{path}={str(value).lower() if isinstance(value, bool) else value}")
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m dynamo_rl.adapters.verl.settings METHOD [PRESET]``: print the overrides, one per line."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not 1 <= len(args) <= 2 or args[0] in ("-h", "--help"):
        print(f"usage: python -m dynamo_rl.adapters.verl.settings METHOD [PRESET]\n  METHOD: "
              f"{', '.join(supported_methods())}\n  PRESET: {', '.join(PRESETS)}", file=sys.stderr)
        return 2
    try:
        print("\n".join(verl_overrides(*args)))
    except (KeyError, ValueError) as err:
        print(f"error: {err.args[0] if isinstance(err, KeyError) else err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
