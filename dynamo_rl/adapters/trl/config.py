"""``DynaMOConfig``: TRL's ``GRPOConfig`` plus the DynaMO allocation and modulation options.

Every option of :class:`dynamo_rl.method_config.AllocationConfig` and :class:`~dynamo_rl.method_config.ModulationConfig`
appears here with a ``dynamo_`` prefix, the same name and the same default (``mean_rollouts`` is TRL's
``num_generations``: the mean number of rollouts per prompt, so the budget of a generation batch stays
``generation_batch_size`` rows). ``dynamo_method`` and ``dynamo_preset`` select a bundle from :mod:`dynamo_rl.presets`
first; a ``dynamo_*`` field set to a value other than its default then overrides the bundle. Loss options (clip range,
``loss_type``, ``delta``, ``scale_rewards``...) stay TRL's own.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from trl import GRPOConfig

from dynamo_rl.method_config import AllocationConfig, MethodConfig, ModulationConfig
from dynamo_rl.presets import METHODS, PRESETS, build_method_config

_ALLOCATION_FIELDS = ("allocator", "n_min", "n_max", "proxy_power", "min_history", "weight_floor", "mastery_threshold",
                      "tie_breaker", "n_explore", "infeasible", "forgetting")
_MODULATION_FIELDS = ("gradient_compensation", "stabilization", "alpha", "mu_max", "lambda_min", "k", "tau",
                      "entropy_change_mode", "norm_scope", "ums_min_tokens")


def _help(section: type, name: str) -> dict[str, str]:
    return {"help": f"DynaMO {section.__name__}.{name} (see dynamo_rl.method_config)."}


@dataclass
class DynaMOConfig(GRPOConfig):
    """``GRPOConfig`` + DynaMO (DRA and token modulation). See ``docs/trl.md`` for every option."""

    dynamo_method: str = field(default="dynamo", metadata={"help": f"Method bundle: {', '.join(sorted(METHODS))}."})
    dynamo_preset: str = field(default="official", metadata={"help": f"Preset: {', '.join(sorted(PRESETS))}."})

    # Allocation (AllocationConfig, same defaults)
    dynamo_allocator: str = field(default="official", metadata=_help(AllocationConfig, "allocator"))
    dynamo_n_min: int = field(default=8, metadata=_help(AllocationConfig, "n_min"))
    dynamo_n_max: int = field(default=24, metadata=_help(AllocationConfig, "n_max"))
    dynamo_proxy_power: float = field(default=1.0, metadata=_help(AllocationConfig, "proxy_power"))
    dynamo_min_history: int = field(default=4, metadata=_help(AllocationConfig, "min_history"))
    dynamo_weight_floor: float | None = field(default=0.01, metadata=_help(AllocationConfig, "weight_floor"))
    dynamo_mastery_threshold: float | None = field(default=0.85, metadata=_help(AllocationConfig, "mastery_threshold"))
    dynamo_tie_breaker: float = field(default=1e-6, metadata=_help(AllocationConfig, "tie_breaker"))
    dynamo_n_explore: int = field(default=4, metadata=_help(AllocationConfig, "n_explore"))
    dynamo_infeasible: str = field(default="clamp_budget", metadata=_help(AllocationConfig, "infeasible"))
    dynamo_forgetting: float | None = field(default=None, metadata=_help(AllocationConfig, "forgetting"))

    # Modulation (ModulationConfig, same defaults)
    dynamo_gradient_compensation: bool = field(default=True,
                                               metadata=_help(ModulationConfig, "gradient_compensation"))
    dynamo_stabilization: bool = field(default=True, metadata=_help(ModulationConfig, "stabilization"))
    dynamo_alpha: float | None = field(default=None, metadata=_help(ModulationConfig, "alpha"))
    dynamo_mu_max: float = field(default=1.2, metadata=_help(ModulationConfig, "mu_max"))
    dynamo_lambda_min: float = field(default=0.6, metadata=_help(ModulationConfig, "lambda_min"))
    dynamo_k: float = field(default=50.0, metadata=_help(ModulationConfig, "k"))
    dynamo_tau: float = field(default=0.99, metadata=_help(ModulationConfig, "tau"))
    dynamo_entropy_change_mode: str = field(default="seq_mean_baseline",
                                            metadata=_help(ModulationConfig, "entropy_change_mode"))
    dynamo_norm_scope: str = field(default="micro", metadata=_help(ModulationConfig, "norm_scope"))
    dynamo_ums_min_tokens: int = field(default=2, metadata=_help(ModulationConfig, "ums_min_tokens"))

    # Adapter options
    dynamo_prompt_id_column: str | None = field(default=None, metadata={
        "help": "Dataset column holding a stable prompt id (the success-history key). None: the row index."})
    dynamo_success_threshold: float = field(default=0.0, metadata={
        "help": "A completion counts as correct in the success history iff its weighted total reward > this."})

    def __post_init__(self) -> None:
        super().__post_init__()
        self._dynamo_method_config = self._resolve_method_config()
        self._validate_dynamo()

    # -- resolution -----------------------------------------------------------------------------------------------
    def _resolve_method_config(self) -> MethodConfig:
        try:
            base = build_method_config(self.dynamo_method, self.dynamo_preset)
        except KeyError as exc:
            name = "dynamo_method" if "method" in str(exc) else "dynamo_preset"
            raise ValueError(f"invalid {name}={getattr(self, name)!r}: {exc.args[0]}") from None
        overrides: dict[str, dict[str, Any]] = {"allocation": {"mean_rollouts": self.num_generations},
                                                "modulation": {}}
        for section, cls, names in (("allocation", AllocationConfig, _ALLOCATION_FIELDS),
                                    ("modulation", ModulationConfig, _MODULATION_FIELDS)):
            defaults = {f.name: f.default for f in dataclasses.fields(cls)}
            for name in names:
                value = getattr(self, f"dynamo_{name}")
                if value != defaults[name]:
                    overrides[section][name] = value
        # The bundle's n_min/n_max may not bracket this run's num_generations; report it under our field names.
        try:
            return base.replace(**overrides)
        except ValueError as exc:
            raise ValueError(_rename_fields(str(exc))) from None

    def _validate_dynamo(self) -> None:
        if not self.dynamo_success_threshold == self.dynamo_success_threshold:  # NaN
            raise ValueError(f"invalid dynamo_success_threshold={self.dynamo_success_threshold!r}: must not be NaN")
        mod = self._dynamo_method_config.modulation
        if mod.enabled and mod.entropy_change_mode == "exact":
            raise ValueError(
                "invalid dynamo_entropy_change_mode='exact': it needs Σπ²·log π over the vocabulary, which TRL's fused "
                "LM head does not compute (it gives log Σπ² only). Use 'seq_mean_baseline' (authors' code) or 'pi2' "
                "with TRL, or the built-in trainer for 'exact'."
            )
        if mod.enabled and mod.norm_scope == "mini" and self.gradient_accumulation_steps != 1:
            raise ValueError(
                f"invalid dynamo_norm_scope='mini' with gradient_accumulation_steps={self.gradient_accumulation_steps}"
                ": TRL computes the current-policy statistics one micro-batch at a time, so the mini-batch range is "
                "known only when an optimizer step is one micro-batch per process (gradient_accumulation_steps=1). "
                "Use 'micro' or set gradient_accumulation_steps=1."
            )
        if mod.enabled and mod.norm_scope == "global" and (self.steps_per_generation != 1 or
                                                           self.gradient_accumulation_steps != 1):
            raise ValueError(
                f"invalid dynamo_norm_scope='global' with steps_per_generation={self.steps_per_generation}, "
                f"gradient_accumulation_steps={self.gradient_accumulation_steps}: the whole generation batch must be "
                "one micro-batch per process (both = 1). Use 'micro' or 'mini'."
            )
        if self.dataloader_num_workers != 0:
            raise ValueError(
                f"invalid dataloader_num_workers={self.dataloader_num_workers}: DynaMOTrainer needs 0 so that the "
                "allocation of each generation batch is drawn in the main process (see docs/trl.md, look-ahead)."
            )
        liger = self.liger_kernel_config or {}
        if self.use_liger_kernel and liger.get("fused_linear_cross_entropy"):
            raise ValueError(
                "invalid liger_kernel_config={'fused_linear_cross_entropy': True}: the Liger loss replaces the model "
                "forward and TRL's _compute_loss, where DynaMO writes the modulated advantages."
            )

    # -- public views -----------------------------------------------------------------------------------------------
    @property
    def method_config(self) -> MethodConfig:
        """The resolved :class:`MethodConfig` (preset → method → explicit ``dynamo_*`` fields)."""
        return self._dynamo_method_config

    @property
    def prompts_per_generation_batch(self) -> int:
        """Number of distinct prompts in one generation batch (TRL's ``generation_batch_size // num_generations``)."""
        return self.generation_batch_size // self.num_generations

    @classmethod
    def from_method_config(cls, method: MethodConfig, **grpo_kwargs: Any) -> DynaMOConfig:
        """A ``DynaMOConfig`` whose DynaMO options equal ``method`` (``grpo_kwargs`` go to ``GRPOConfig``)."""
        kwargs = {f"dynamo_{name}": getattr(method.allocation, name) for name in _ALLOCATION_FIELDS}
        kwargs.update({f"dynamo_{name}": getattr(method.modulation, name) for name in _MODULATION_FIELDS})
        return cls(dynamo_method="dynamo", dynamo_preset="official", **kwargs, **grpo_kwargs)


def _rename_fields(message: str) -> str:
    """``invalid allocation.n_min=...`` → ``invalid dynamo_n_min=...`` (``mean_rollouts`` → ``num_generations``)."""
    message = message.replace("allocation.mean_rollouts", "num_generations")
    return re.sub(r"\b(?:allocation|modulation)\.(\w+)", r"dynamo_\1", message)
