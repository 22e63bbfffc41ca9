"""Named bundles of method options: presets (``paper``, ``official``, ``theory``) and methods (``dynamo``, ``grpo``,
ablations, baselines). Every deviation between the paper and the authors' code is one option in
:mod:`dynamo_rl.method_config`; a preset picks one side of each. See ``docs/implementation_details.md``.

``build_method_config(method, preset)`` applies the preset first, then the method's own overrides.
"""

from __future__ import annotations

from typing import Any

from dynamo_rl.method_config import MethodConfig

Overrides = dict[str, dict[str, Any]]

PRESETS: dict[str, Overrides] = {
    # The authors' released code (DynaMO-RL @ 63e5ec9 + run script): the dataclass defaults.
    "official": {
        "allocation": {"allocator": "official", "proxy_power": 1.0, "min_history": 4, "weight_floor": 0.01,
                       "mastery_threshold": 0.85, "tie_breaker": 1e-6, "infeasible": "clamp_budget"},
        "modulation": {"alpha": None, "mu_max": 1.2, "lambda_min": 0.6, "k": 50.0, "tau": 0.99,
                       "entropy_change_mode": "seq_mean_baseline", "norm_scope": "micro", "ums_min_tokens": 0},
        "loss": {"eps_low": 0.2, "eps_high": 0.28, "clip_ratio_c": 10.0, "loss_agg_mode": "token-mean"},
    },
    # The paper's text: water-filling (App. D), variance weights, no code-only heuristics, unified α = 0.4,
    # Table 3 clip 0.2, the factorised entropy-change estimate of the first release, batch-level normalisation.
    "paper": {
        "allocation": {"allocator": "waterfill", "proxy_power": 1.0, "min_history": 4, "weight_floor": None,
                       "mastery_threshold": None, "tie_breaker": 0.0, "infeasible": "scale_min"},
        "modulation": {"alpha": 0.4, "k": 50.0, "tau": 0.9, "entropy_change_mode": "pi2", "norm_scope": "mini",
                       "ums_min_tokens": 2},
        "loss": {"eps_low": 0.2, "eps_high": 0.2, "clip_ratio_c": 10.0, "loss_agg_mode": "token-mean"},
    },
    # First principles: σ-weighted water-filling (Eq 5 with √P, A1), exact first-order entropy change (Eq 27).
    "theory": {
        "allocation": {"allocator": "waterfill", "proxy_power": 0.5, "min_history": 4, "weight_floor": None,
                       "mastery_threshold": None, "tie_breaker": 0.0, "infeasible": "scale_min"},
        "modulation": {"alpha": 0.4, "k": 50.0, "tau": 0.9, "entropy_change_mode": "exact", "norm_scope": "mini",
                       "ums_min_tokens": 2},
        "loss": {"eps_low": 0.2, "eps_high": 0.2, "clip_ratio_c": 10.0, "loss_agg_mode": "token-mean"},
    },
}

_NO_DRA = {"allocator": "uniform"}
_NO_MOD = {"gradient_compensation": False, "stabilization": False}
_GRPO_BACKBONE: Overrides = {"allocation": _NO_DRA, "modulation": _NO_MOD, "loss": {"eps_high": 0.2}}

METHODS: dict[str, Overrides] = {
    "dynamo": {},
    "no_dra": {"allocation": _NO_DRA},
    "no_gc": {"modulation": {"gradient_compensation": False}},
    "no_ums": {"modulation": {"stabilization": False}},
    "no_gc_ums": {"modulation": _NO_MOD},
    "grpo": _GRPO_BACKBONE,
    "dr_grpo": {**_GRPO_BACKBONE, "loss": {"eps_high": 0.2, "advantage_estimator": "dr_grpo",
                                           "loss_agg_mode": "seq-mean-token-sum-norm"}},
    "clip_higher": {**_GRPO_BACKBONE, "loss": {"eps_high": 0.28}},
    "entropy_loss": {**_GRPO_BACKBONE, "loss": {"eps_high": 0.2, "entropy_coeff": 0.001}},
    "fork_tokens": {**_GRPO_BACKBONE, "loss": {"eps_high": 0.28, "fork_top_ratio": 0.2}},
    "entropy_adv": {**_GRPO_BACKBONE, "loss": {"eps_high": 0.2, "entropy_adv_alpha": 0.4, "entropy_adv_kappa": 2.0}},
    "clip_cov": {**_GRPO_BACKBONE, "loss": {"policy_loss": "clip_cov", "eps_low": 1.0, "eps_high": 1.0}},
    "kl_cov": {**_GRPO_BACKBONE, "loss": {"policy_loss": "kl_cov", "eps_high": 0.2}},
    "w_reinforce": {**_GRPO_BACKBONE, "loss": {"eps_high": 0.2, "advantage_estimator": "w_reinforce"}},
}

BASELINES = ("grpo", "clip_higher", "entropy_loss", "fork_tokens", "entropy_adv", "clip_cov", "kl_cov", "w_reinforce")
ABLATIONS = ("no_dra", "no_gc", "no_ums", "no_gc_ums")


def derived_bounds(mean_rollouts: int) -> tuple[int, int]:
    """Default ``(n_min, n_max)`` for a mean of n̄ rollouts per prompt: the paper's ratio [n̄/2, 3n̄/2] (Table 3:
    [8, 24] at n̄ = 16), never below 2. Used when the mean is set and the bounds are not, so DRA can act."""
    return max(2, mean_rollouts // 2), max(mean_rollouts * 3 // 2, 2)


def build_method_config(method: str = "dynamo", preset: str = "official",
                        overrides: Overrides | None = None) -> MethodConfig:
    """The :class:`MethodConfig` for ``method`` under ``preset``, with the user's explicit ``overrides`` last.

    Precedence: dataclass defaults < preset < method bundle < ``overrides`` (every field in ``overrides`` wins, also
    when its value equals a default). When ``allocation.mean_rollouts`` is overridden without ``n_min``/``n_max``,
    the bounds follow it (:func:`derived_bounds`). Baselines keep the preset's allocation/modulation switched off, so
    they differ from GRPO only where their paper says. Raises ``KeyError`` naming the valid choices for an unknown
    preset or method and ``ValueError`` naming the field for an invalid value.
    """
    if not isinstance(preset, str) or preset not in PRESETS:
        raise KeyError(f"unknown preset {preset!r}; valid presets: {', '.join(sorted(PRESETS))}")
    if not isinstance(method, str) or method not in METHODS:
        raise KeyError(f"unknown method {method!r}; valid methods: {', '.join(sorted(METHODS))}")
    overrides = {name: dict(values) for name, values in (overrides or {}).items()}
    allocation = overrides.get("allocation", {})
    if "mean_rollouts" in allocation:
        mean = allocation["mean_rollouts"]
        if isinstance(mean, bool) or not isinstance(mean, int):
            raise ValueError(f"invalid allocation.mean_rollouts={mean!r}: expected an int")
        n_min, n_max = derived_bounds(mean)
        allocation.setdefault("n_min", n_min)
        allocation.setdefault("n_max", max(n_max, allocation["n_min"]))
    config = MethodConfig().replace(**PRESETS[preset])
    config = config.replace(**METHODS[method])
    if overrides:
        config = config.replace(**overrides)
    return config
