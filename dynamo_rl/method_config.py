"""Method options shared by every engine (built-in trainer, TRL adapter, verl plugin).

Frozen dataclasses, one per concern; the attribute docstring is the help text. Defaults here are the ``official``
preset (the authors' released code); :mod:`dynamo_rl.presets` defines ``paper``, ``official`` and ``theory`` as named
bundles of overrides, and each method name (``dynamo``, ``grpo``, baselines, ablations) as a further bundle.
Config objects stop at the engine boundary: engines unpack them into keyword arguments for :mod:`dynamo_rl.core`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import types
import typing
from dataclasses import dataclass, field
from typing import Any


def _require(cond: bool, field_name: str, value: Any, why: str) -> None:
    if not cond:
        raise ValueError(f"invalid {field_name}={value!r}: {why}")


def _one_of(field_name: str, value: Any, names: Any) -> None:
    names = list(names)
    _require(value in names, field_name, value, f"expected one of {', '.join(names)}")


def require_finite(config: Any, section: str) -> None:
    """Every float field of a config dataclass must be finite (NaN and ±inf are refused, naming the field)."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        values = value if isinstance(value, tuple) else (value,)
        for v in values:
            if isinstance(v, float) and not math.isfinite(v):
                raise ValueError(f"invalid {section}.{f.name}={value!r}: must be a finite number")


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _matches(value: Any, hint: Any) -> bool:
    """Whether ``value`` has the type a field annotation asks for (ints count as floats, bools as neither)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, option) for option in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, (tuple, list)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(v, args[0]) for v in value)
        return all(_matches(v, a) for v, a in zip(value, args))  # the length is each field's own rule
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    return True


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(option) for option in typing.get_args(hint))
    if hint is type(None):
        return "null"
    if origin is tuple:
        return "a list of numbers" if float in typing.get_args(hint) else "a list"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(hint, str(hint))


def require_types(config: Any, section: str) -> None:
    """Every field of a config dataclass has its annotated type (``True`` is no number, ``2.5`` no count, ``"no"``
    no bool); the error names ``section.field``, the value and the expected type."""
    hints = _field_types(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if not _matches(value, hints[f.name]):
            got = "" if isinstance(value, (tuple, list)) else f", got {type(value).__name__}"
            raise ValueError(f"invalid {section}.{f.name}={value!r}: expected {_type_name(hints[f.name])}{got}")


def allocator_names() -> list[str]:
    """Every allocator name :func:`dynamo_rl.core.allocation.allocate_rollouts` accepts (from its registry)."""
    from dynamo_rl.core.allocation import ALLOCATORS, HISTORY_ALLOCATORS

    return sorted(ALLOCATORS.names() + HISTORY_ALLOCATORS.names())  # read now: allocators registered later count


@dataclass(frozen=True)
class AllocationConfig:
    """Dynamic Rollout Allocation (DRA, paper Sec. 4.2, Eq 5-6, Alg. 1, App. C-D)."""

    allocator: str = "official"
    """How the rollout budget is split (any name of ``core.allocation.ALLOCATOR_NAMES``): ``uniform`` (GRPO),
    ``official`` (n_min + proportional share of the remainder, the authors' code), ``waterfill`` (App. C-D:
    n_i = clip(λ·w_i, n_min, n_max), the continuous minimiser of Σ w_i²/n_i rounded by largest remainder, which misses
    the integer optimum in a few % of batches, by < 0.03 %), ``optimal`` (the exact integer minimiser of Σ w_i²/n_i),
    ``variance_matched`` (the fewest rollouts whose variance-optimal allocation, σ = √P, matches
    ``variance_target_ratio`` × uniform's estimator variance) or ``knapsack`` (Knapsack RL, Li et al. 2025)."""
    mean_rollouts: int = 16
    """Mean rollouts per prompt n̄; the budget is n̄ × prompts per batch."""
    n_min: int = 8
    """Lower bound on rollouts per prompt (paper Table 3: [8, 24]). Never below 2."""
    n_max: int = 24
    """Upper bound on rollouts per prompt."""
    proxy_power: float = 1.0
    """Weight = P_i ** proxy_power: 1.0 uses the Bernoulli variance as in paper and code; 0.5 its square root, the
    standard deviation that Eq 5 calls for (ambiguity A1)."""
    min_history: int = 4
    """Prompts with fewer historical rollouts than this have no weight yet (uniform share). Must be ≥ 2."""
    weight_floor: float | None = 0.01
    """Smallest weight of a prompt with history (authors' code); ``None`` disables the floor."""
    mastery_threshold: float | None = 0.85
    """Prompts whose historical accuracy is at least this get the floor weight (authors' code, A3); ``None`` = off."""
    tie_breaker: float = 1e-6
    """Adds (1 − acc)·tie_breaker to each weight so harder prompts win ties (authors' code); 0 disables it."""
    n_explore: int = 4
    """Exploration rollouts for prompts without enough history (authors' ``initial_budget``; raised to n_min)."""
    infeasible: str = "clamp_budget"
    """When budget < M·n_min or > M·n_max: ``clamp_budget`` (authors' code: move the budget into range) or
    ``scale_min`` (App. D: scale the bounds, never below 2 rollouts)."""
    forgetting: float | None = None
    """Exponential forgetting factor in (0, 1] applied to history counts before each update (beyond the paper;
    ``None`` = cumulative counts as in the paper)."""
    variance_target_ratio: float = 1.0
    """``variance_matched`` only: target estimator variance as a multiple ρ of uniform allocation's Σσ²/n̄ (over the
    prompts with history, σ = √P); 1.0 = match uniform with fewer rollouts, > 1 saves more, < 1 aims lower (then the
    full budget may not suffice; the allocation says so). Must be finite and in (0, 100]."""

    def __post_init__(self) -> None:
        require_types(self, "allocation")
        require_finite(self, "allocation")
        _one_of("allocation.allocator", self.allocator, allocator_names())
        _require(self.n_min >= 2, "allocation.n_min", self.n_min, "must be ≥ 2 (a group of one has no baseline)")
        _require(self.n_max >= self.n_min, "allocation.n_max", self.n_max, f"must be ≥ n_min={self.n_min}")
        _require(self.n_min <= self.mean_rollouts <= self.n_max, "allocation.mean_rollouts", self.mean_rollouts,
                 f"must lie in [n_min, n_max] = [{self.n_min}, {self.n_max}]")
        _require(self.proxy_power > 0, "allocation.proxy_power", self.proxy_power, "must be > 0")
        _require(self.min_history >= 2, "allocation.min_history", self.min_history, "must be ≥ 2")
        _require(self.weight_floor is None or self.weight_floor >= 0, "allocation.weight_floor", self.weight_floor,
                 "must be ≥ 0 or None")
        _require(self.mastery_threshold is None or 0 < self.mastery_threshold <= 1, "allocation.mastery_threshold",
                 self.mastery_threshold, "must be in (0, 1] or None")
        _require(self.tie_breaker >= 0, "allocation.tie_breaker", self.tie_breaker, "must be ≥ 0")
        _require(self.infeasible in ("clamp_budget", "scale_min"), "allocation.infeasible", self.infeasible,
                 "expected clamp_budget or scale_min")
        _require(self.forgetting is None or 0 < self.forgetting <= 1, "allocation.forgetting", self.forgetting,
                 "must be in (0, 1] or None")
        rho = self.variance_target_ratio
        _require(isinstance(rho, (int, float)) and not isinstance(rho, bool) and 0 < rho <= 100,
                 "allocation.variance_target_ratio", rho, "must be a finite number in (0, 100]")

    def core_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``core.allocation.allocate_rollouts``: every field whose name is one of its keyword
        parameters (read from its signature, so a new option only needs a field of the same name)."""
        from dynamo_rl.core.allocation import allocate_rollouts

        return _matching_kwargs(self, _keyword_params(allocate_rollouts) - {"budget"})


def _matching_kwargs(config: Any, names: frozenset[str]) -> dict[str, Any]:
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name in names}


@dataclass(frozen=True)
class ModulationConfig:
    """Gradient-aware advantage modulation (paper Sec. 4.3, Eq 8-14)."""

    gradient_compensation: bool = True
    """Gradient Compensation (GC, Eq 8-9): boost positive-advantage, low-entropy tokens by up to mu_max."""
    stabilization: bool = True
    """Update Magnitude Stabilization (UMS, Eq 10-13): damp tokens whose estimated entropy change is extreme."""
    alpha: float | None = None
    """Unified strength α (paper): sets mu_max = 1 + α and lambda_min = 1 − α. ``None`` uses the separate knobs."""
    mu_max: float = 1.2
    """Largest GC factor f(H_min) (authors' run script: 1.2)."""
    lambda_min: float = 0.6
    """Smallest UMS factor, the lower bound of g (Eq 13)."""
    k: float = 50.0
    """Sigmoid steepness of g (Eq 13)."""
    tau: float = 0.99
    """Sigmoid centre of g on the normalised instability x ∈ [0, 1] (run script 0.99; unified-α mode 0.9)."""
    entropy_change_mode: str = "seq_mean_baseline"
    """Entropy-change estimate (A7): ``seq_mean_baseline`` (authors' code), ``exact`` (first order with the
    full-vocabulary baseline Σπ²Λ) or ``pi2`` (first release, π_t²Λ_t ξ_t)."""
    norm_scope: str = "micro"
    """Where H_min/H_max and max Ξ are taken (A6): ``micro`` (authors' code), ``mini`` or ``global`` batch."""
    ums_min_tokens: int = 0
    """UMS is skipped (g = 1) when fewer than this many tokens of the normalisation scope have nonzero instability, so
    a lone token is not damped to λ_min (a guard beyond the paper; 0 = off, as in the authors' code and the
    ``official`` preset; ``paper`` and ``theory`` use 2)."""

    @property
    def effective_mu_max(self) -> float:
        return 1.0 + self.alpha if self.alpha is not None else self.mu_max

    @property
    def effective_lambda_min(self) -> float:
        return 1.0 - self.alpha if self.alpha is not None else self.lambda_min

    def __post_init__(self) -> None:
        from dynamo_rl.core.modulation import ENTROPY_CHANGE_MODES

        require_types(self, "modulation")
        require_finite(self, "modulation")
        _require(self.alpha is None or 0 <= self.alpha < 1, "modulation.alpha", self.alpha, "must be in [0, 1)")
        _require(self.mu_max >= 1, "modulation.mu_max", self.mu_max, "must be ≥ 1")
        _require(0 < self.lambda_min <= 1, "modulation.lambda_min", self.lambda_min, "must be in (0, 1]")
        _require(self.k > 0, "modulation.k", self.k, "must be > 0")
        _require(0 <= self.tau <= 1, "modulation.tau", self.tau, "must be in [0, 1]")
        _one_of("modulation.entropy_change_mode", self.entropy_change_mode, ENTROPY_CHANGE_MODES)
        _require(self.norm_scope in ("micro", "mini", "global"), "modulation.norm_scope", self.norm_scope,
                 "expected micro, mini or global")
        _require(self.ums_min_tokens >= 0, "modulation.ums_min_tokens", self.ums_min_tokens, "must be ≥ 0 (0 = off)")

    @property
    def enabled(self) -> bool:
        return self.gradient_compensation or self.stabilization

    def core_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``core.modulation.modulate_advantages`` (clip ranges come from the loss config): the
        effective μ_max / λ_min and every field whose name is one of its keyword parameters."""
        from dynamo_rl.core.modulation import modulate_advantages

        out = _matching_kwargs(self, _keyword_params(modulate_advantages))
        out.update(mu_max=self.effective_mu_max, lambda_min=self.effective_lambda_min)
        return out


@dataclass(frozen=True)
class LossConfig:
    """Advantage estimator, per-token policy loss, token masks/shaping and aggregation (Eq 2-3, 15; baselines)."""

    advantage_estimator: str = "grpo"
    """Outcome advantage (core.advantages registry): ``grpo``, ``dr_grpo``, ``w_reinforce``, ``rloo``."""
    grpo_eps: float = 1e-6
    """ε in the GRPO std normalisation (Eq 2; verl 1e-6, TRL 1e-4)."""
    w_reinforce_lambda: float = 0.1
    """W-REINFORCE advantage for correct responses (incorrect ones get −1)."""
    policy_loss: str = "ppo_clip"
    """Per-token loss (core.losses registry): ``ppo_clip``, ``clip_cov``, ``kl_cov``."""
    eps_low: float = 0.2
    """Lower clip range ε_low."""
    eps_high: float = 0.28
    """Upper clip range ε_high (authors' code silently uses 0.28; paper Table 3 says 0.2)."""
    clip_ratio_c: float | None = 10.0
    """Dual-clip constant c for negative advantages; ``None`` disables dual clip."""
    loss_agg_mode: str = "token-mean"
    """``token-mean``, ``seq-mean-token-mean``, ``seq-mean-token-sum`` or ``seq-mean-token-sum-norm``."""
    entropy_coeff: float = 0.0
    """Entropy bonus coefficient (Entropy Loss baseline: 0.001)."""
    fork_top_ratio: float | None = None
    """Fork Tokens baseline: train only on the top-ρ entropy tokens (ρ = 0.2); ``None`` = off."""
    entropy_adv_alpha: float | None = None
    """Entropy Advantages baseline (Cheng et al.): ψ = min(α·H, |A|/κ) added to A; ``None`` = off (paper α 0.4)."""
    entropy_adv_kappa: float = 2.0
    """κ of Entropy Advantages."""
    clip_cov_ratio: float = 2e-4
    """Clip-Cov: fraction of tokens whose gradient is detached."""
    clip_cov_lb: float = 1.0
    """Clip-Cov: lower covariance bound ω_low."""
    clip_cov_ub: float = 5.0
    """Clip-Cov: upper covariance bound ω_high."""
    kl_cov_ratio: float = 2e-3
    """KL-Cov: fraction of tokens that get the KL penalty."""
    kl_cov_coef: float = 1.0
    """KL-Cov: penalty coefficient β."""

    def __post_init__(self) -> None:
        from dynamo_rl.core.advantages import ADVANTAGES
        from dynamo_rl.core.aggregation import AGGREGATIONS
        from dynamo_rl.core.losses import POLICY_LOSSES

        require_types(self, "loss")
        require_finite(self, "loss")
        _one_of("loss.advantage_estimator", self.advantage_estimator, ADVANTAGES.names())
        _one_of("loss.policy_loss", self.policy_loss, POLICY_LOSSES.names())
        _one_of("loss.loss_agg_mode", self.loss_agg_mode, AGGREGATIONS.names())
        _require(self.grpo_eps > 0, "loss.grpo_eps", self.grpo_eps, "must be > 0")
        _require(self.eps_low >= 0 and self.eps_high >= 0, "loss.eps_low/eps_high", (self.eps_low, self.eps_high),
                 "must be ≥ 0")
        _require(self.clip_ratio_c is None or self.clip_ratio_c > 1, "loss.clip_ratio_c", self.clip_ratio_c,
                 "must be > 1 or None")
        _require(self.fork_top_ratio is None or 0 < self.fork_top_ratio <= 1, "loss.fork_top_ratio",
                 self.fork_top_ratio, "must be in (0, 1] or None")
        _require(self.entropy_adv_kappa > 1, "loss.entropy_adv_kappa", self.entropy_adv_kappa,
                 "must be > 1 so advantages never flip sign")

    def advantage_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the registered advantage estimator ``advantage_estimator``: its keyword parameter
        ``p`` is read from the field ``<estimator>_<p>`` (``grpo_eps``) or ``p``; ``w_reinforce_lambda`` → ``lam``."""
        from dynamo_rl.core.advantages import ADVANTAGES

        return self._registry_kwargs(ADVANTAGES.get(self.advantage_estimator), self.advantage_estimator)

    def policy_loss_kwargs(self, generator: Any = None) -> dict[str, Any]:
        """Keyword arguments of the registered policy loss ``policy_loss`` (read from the fields of the same name or
        ``<loss>_<name>``; ``generator`` seeds losses that draw random tokens, e.g. Clip-Cov)."""
        from dynamo_rl.core.losses import POLICY_LOSSES

        fn = POLICY_LOSSES.get(self.policy_loss)
        out = self._registry_kwargs(fn, self.policy_loss)
        if "generator" in _keyword_params(fn):
            out["generator"] = generator
        return out

    def _registry_kwargs(self, fn: Any, name: str) -> dict[str, Any]:
        fields = {f.name for f in dataclasses.fields(self)}
        out = {}
        for param in _keyword_params(fn):
            for candidate in (_CORE_ALIASES.get(f"{name}_{param}"), f"{name}_{param}", param):
                if candidate in fields:
                    out[param] = getattr(self, candidate)
                    break
        return out


_CORE_ALIASES = {"w_reinforce_lam": "w_reinforce_lambda"}
"""Core keyword parameters whose config field has another name."""


def _keyword_params(fn: Any) -> frozenset[str]:
    import inspect

    return frozenset(name for name, p in inspect.signature(fn).parameters.items()
                     if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))


@dataclass(frozen=True)
class MethodConfig:
    """Everything that defines an RL method, independent of the engine that runs it."""

    allocation: AllocationConfig = field(default_factory=AllocationConfig)
    modulation: ModulationConfig = field(default_factory=ModulationConfig)
    loss: LossConfig = field(default_factory=LossConfig)

    def __post_init__(self) -> None:
        for name, cls in (("allocation", AllocationConfig), ("modulation", ModulationConfig), ("loss", LossConfig)):
            value = getattr(self, name)
            _require(isinstance(value, cls), name, value, f"expected a {cls.__name__}")

    def replace(self, **sections: dict[str, Any]) -> MethodConfig:
        """Return a copy with per-section overrides, e.g. ``replace(loss={"eps_high": 0.2})``."""
        kwargs = {}
        for name, overrides in sections.items():
            if name not in ("allocation", "modulation", "loss"):
                raise KeyError(f"unknown method config section {name!r}; valid: allocation, modulation, loss")
            if not isinstance(overrides, dict):
                raise ValueError(f"invalid {name}={overrides!r}: expected a mapping of fields")
            valid = [f.name for f in dataclasses.fields(getattr(self, name))]
            unknown = sorted(str(key) for key in set(overrides) - set(valid))
            if unknown:
                raise ValueError(f"unknown field {name}.{unknown[0]}; valid fields of {name}: {', '.join(valid)}")
            kwargs[name] = dataclasses.replace(getattr(self, name), **overrides)
        return dataclasses.replace(self, **kwargs)
