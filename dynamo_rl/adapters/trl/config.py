"""``DynaMOConfig``: TRL's ``GRPOConfig`` plus the DynaMO method options.

The DynaMO fields are generated from :class:`dynamo_rl.method_config.AllocationConfig` and
:class:`~dynamo_rl.method_config.ModulationConfig` (``dynamo_<field>``, with the field's own help text), so they never
drift from the other engines. Each defaults to ``None`` = "what ``dynamo_method`` under ``dynamo_preset`` says"; a
value you set wins, also when it equals a default. Options that may themselves be ``None`` (``dynamo_alpha``,
``dynamo_weight_floor``, ``dynamo_mastery_threshold``, ``dynamo_forgetting``) take the string ``"none"`` for an
explicit None. The mean rollouts per prompt is TRL's ``num_generations``; when ``dynamo_n_min``/``dynamo_n_max`` are
not given they follow it (``[n̄/2, 3n̄/2]``, the paper's [8, 24] at 16), so DRA can act out of the box.

The method's loss (clip range, dual clip, aggregation, advantage estimator, entropy bonus, Fork Tokens) is written
into TRL's own fields (:func:`trl_loss_kwargs`); a TRL field you set to a value that contradicts the method is
refused, naming both. Methods whose loss TRL does not have (``clip_cov``, ``kl_cov``) are refused with the list of
supported ones; W-REINFORCE and Entropy Advantages are computed by the adapter from :mod:`dynamo_rl.core`.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
import warnings
from dataclasses import dataclass, field
from typing import Any

from trl import GRPOConfig

from dynamo_rl.method_config import AllocationConfig, LossConfig, MethodConfig, ModulationConfig
from dynamo_rl.presets import METHODS, PRESETS, build_method_config

_SECTIONS: dict[str, type] = {"allocation": AllocationConfig, "modulation": ModulationConfig}
_SKIP = {"allocation": {"mean_rollouts"}}  # mean_rollouts is TRL's num_generations
_NONE_WORDS = ("none", "null")
_LOSS_TYPES = {"token-mean": "dapo", "seq-mean-token-mean": "grpo", "seq-mean-token-sum-norm": "dr_grpo"}
_SCALE_REWARDS = {"grpo": "group", "dr_grpo": "none"}
ADAPTER_ADVANTAGES = ("grpo", "dr_grpo", "w_reinforce", "rloo")
"""Advantage estimators the TRL adapter computes (TRL's group rule for grpo/dr_grpo, dynamo_rl.core for the rest)."""


def _field_docs(cls: type) -> dict[str, str]:
    from dynamo_rl.run.config_docs import field_docs

    return field_docs(cls)


def method_fields() -> list[tuple[str, str, str]]:
    """``(dynamo_name, section, field)`` of every generated DynaMO field."""
    return [(f"dynamo_{f.name}", section, f.name) for section, cls in _SECTIONS.items()
            for f in dataclasses.fields(cls) if f.name not in _SKIP.get(section, set())]


def _annotation(cls: type, name: str) -> Any:
    hint = typing.get_type_hints(cls)[name]
    args = typing.get_args(hint)
    if type(None) in args:  # may itself be None: accept the string "none"
        base = next(a for a in args if a is not type(None))
        return base | str | None
    return hint | None


def _generated_fields() -> list[tuple[str, Any, Any]]:
    out = []
    for dynamo_name, section, name in method_fields():
        cls = _SECTIONS[section]
        doc = " ".join(_field_docs(cls).get(name, "").split())
        out.append((dynamo_name, _annotation(cls, name), field(default=None, metadata={
            "help": f"DynaMO {section}.{name} (None: from dynamo_method/dynamo_preset). {doc}"})))
    return out


def trl_loss_kwargs(loss: LossConfig) -> dict[str, Any]:
    """The ``GRPOConfig`` loss fields that run ``loss`` in TRL; ``ValueError`` naming the field TRL cannot express."""
    def refuse(name: str, value: Any, why: str) -> None:
        raise ValueError(f"invalid loss.{name}={value!r} for TRL: {why}; supported methods with TRL: "
                         f"{', '.join(supported_methods())}")

    if loss.policy_loss != "ppo_clip":
        refuse("policy_loss", loss.policy_loss, "TRL's loss is the PPO clip surrogate")
    if loss.loss_agg_mode not in _LOSS_TYPES:
        refuse("loss_agg_mode", loss.loss_agg_mode, f"TRL has {', '.join(_LOSS_TYPES)}")
    if loss.advantage_estimator not in ADAPTER_ADVANTAGES:
        refuse("advantage_estimator", loss.advantage_estimator, f"the adapter computes {', '.join(ADAPTER_ADVANTAGES)}")
    if loss.clip_ratio_c is not None and loss.clip_ratio_c < 1 + loss.eps_high:
        refuse("clip_ratio_c", loss.clip_ratio_c, "it maps to TRL's delta, which must be ≥ 1 + eps_high")
    return {
        "epsilon": loss.eps_low, "epsilon_high": loss.eps_high, "delta": loss.clip_ratio_c,
        "loss_type": _LOSS_TYPES[loss.loss_agg_mode],
        "scale_rewards": _SCALE_REWARDS.get(loss.advantage_estimator, "group"),
        "entropy_coef": loss.entropy_coeff, "beta": 0.0,
        "top_entropy_quantile": 1.0 if loss.fork_top_ratio is None else loss.fork_top_ratio,
    }


def supported_methods() -> list[str]:
    """Method bundles (``dynamo_rl.presets.METHODS``) that the TRL adapter runs (their loss maps onto TRL's)."""
    return [name for name in sorted(METHODS) if _trl_can_run(build_method_config(name).loss)]


def _trl_can_run(loss: LossConfig) -> bool:
    return (loss.policy_loss == "ppo_clip" and loss.loss_agg_mode in _LOSS_TYPES
            and loss.advantage_estimator in ADAPTER_ADVANTAGES
            and (loss.clip_ratio_c is None or loss.clip_ratio_c >= 1 + loss.eps_high))


_TRL_DEFAULTS = {f.name: f.default for f in dataclasses.fields(GRPOConfig)}


@dataclass
class _DynaMOOptions:
    """Adapter options of :class:`DynaMOConfig` (the generated method fields are added below)."""

    dynamo_method: str = field(default="dynamo", metadata={"help": f"Method bundle: {', '.join(sorted(METHODS))}."})
    dynamo_preset: str = field(default="official", metadata={"help": f"Preset: {', '.join(sorted(PRESETS))}."})
    dynamo_prompt_id_column: str | None = field(default=None, metadata={
        "help": "Dataset column holding a stable prompt id (the success-history key). None: the row index."})
    dynamo_success_threshold: float = field(default=0.0, metadata={
        "help": "A completion counts as correct in the success history iff its weighted total reward > this."})


def _post_init(self: Any) -> None:
    self._dynamo_method_config = self._resolve_method_config()
    self._apply_method_loss()
    GRPOConfig.__post_init__(self)
    self._validate_dynamo()
    self._warn_if_dra_cannot_act()


def _explicit(self: Any) -> dict[str, dict[str, Any]]:
    """The DynaMO fields the user set, per section (``"none"`` → None, numeric strings from a CLI → numbers)."""
    out: dict[str, dict[str, Any]] = {section: {} for section in _SECTIONS}
    for dynamo_name, section, name in method_fields():
        value = getattr(self, dynamo_name)
        if value is None:
            continue
        hint = typing.get_type_hints(_SECTIONS[section])[name]
        if isinstance(value, str) and (int in (typing.get_args(hint) or (hint,))) and float not in typing.get_args(hint):
            raise ValueError(f"invalid {dynamo_name}={value!r}: expected an int")
        if isinstance(value, str):
            if value.strip().lower() in _NONE_WORDS and type(None) in typing.get_args(hint):
                value = None
            elif float in (typing.get_args(hint) or (hint,)):
                try:
                    value = float(value)
                except ValueError:
                    raise ValueError(f"invalid {dynamo_name}={value!r}: expected a number or 'none'") from None
        out[section][name] = value
    return out


def _resolve_method_config(self: Any) -> MethodConfig:
    explicit = _explicit(self)
    explicit["allocation"]["mean_rollouts"] = self.num_generations
    loss = self.dynamo_loss
    if isinstance(loss, str):
        import json

        try:
            loss = json.loads(loss)
        except ValueError:
            raise ValueError(f"invalid dynamo_loss={loss!r}: expected a JSON object of LossConfig fields") from None
    if loss is not None:
        if not isinstance(loss, dict):
            raise ValueError(f"invalid dynamo_loss={loss!r}: expected a dict of LossConfig fields")
        valid = [f.name for f in dataclasses.fields(LossConfig)]
        unknown = sorted(set(loss) - set(valid))
        if unknown:
            raise ValueError(f"invalid dynamo_loss: unknown field {unknown[0]!r}; valid: {', '.join(valid)}")
        explicit["loss"] = dict(loss)
    try:
        return build_method_config(self.dynamo_method, self.dynamo_preset, explicit)
    except KeyError as exc:
        name = "dynamo_method" if "method" in str(exc) else "dynamo_preset"
        raise ValueError(f"invalid {name}={getattr(self, name)!r}: {exc.args[0]}") from None
    except ValueError as exc:
        raise ValueError(_rename_fields(str(exc))) from None


def _apply_method_loss(self: Any) -> None:
    """Write the method's loss into TRL's fields that are at TRL's default; refuse contradicting user values."""
    try:
        wanted = trl_loss_kwargs(self._dynamo_method_config.loss)
    except ValueError as exc:
        raise ValueError(f"invalid dynamo_method={self.dynamo_method!r}: {exc}") from None
    for name, value in wanted.items():
        current = getattr(self, name)
        if current == _TRL_DEFAULTS[name] or current == value:
            setattr(self, name, value)
        elif not (name == "scale_rewards" and self._dynamo_method_config.loss.advantage_estimator == "grpo"
                  and current == "batch"):  # TRL's batch-std variant of the GRPO rule is a user choice
            raise ValueError(f"{name}={current!r} contradicts dynamo_method={self.dynamo_method!r} under "
                             f"dynamo_preset={self.dynamo_preset!r}, which needs {name}={value!r}; leave {name} unset "
                             "or choose a method that matches")


def _warn_if_dra_cannot_act(self: Any) -> None:
    alloc = self._dynamo_method_config.allocation
    if alloc.allocator == "uniform":
        return
    reason = None
    if alloc.n_min == alloc.n_max:
        reason = f"dynamo_n_min = dynamo_n_max = {alloc.n_min}"
    elif self.generation_batch_size // self.num_generations == 1:
        reason = "one prompt per generation batch (generation_batch_size = num_generations)"
    if reason:
        warnings.warn(f"DynaMO allocation cannot vary the rollouts per prompt: {reason}; every prompt gets "
                      f"num_generations={self.num_generations}", stacklevel=3)


def _validate_dynamo(self: Any) -> None:
    if self._dynamo_method_config.allocation.allocator == "variance_matched":
        raise ValueError("invalid dynamo_allocator='variance_matched' with TRL: it generates fewer rollouts than the "
                         "budget, but TRL's generation batch is a fixed generation_batch_size rows (its sampler, "
                         "buffers and step counting depend on it). Use the built-in engine or verl for the compute-"
                         "saving mode, or dynamo_allocator='optimal' (same variance-optimal rule, full budget) with TRL")
    if not math.isfinite(self.dynamo_success_threshold):
        raise ValueError(f"invalid dynamo_success_threshold={self.dynamo_success_threshold!r}: must be finite")
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


def _method_config(self: Any) -> MethodConfig:
    """The resolved :class:`MethodConfig` (preset → method → explicit ``dynamo_*`` fields)."""
    return self._dynamo_method_config


def _prompts_per_generation_batch(self: Any) -> int:
    """Number of distinct prompts in one generation batch (TRL's ``generation_batch_size // num_generations``)."""
    return self.generation_batch_size // self.num_generations


def _from_method_config(cls: type, method: MethodConfig, *, method_name: str = "dynamo", preset: str = "official",
                        **grpo_kwargs: Any) -> Any:
    """A ``DynaMOConfig`` whose DynaMO options equal ``method`` exactly (every field explicit; ``grpo_kwargs`` go to
    ``GRPOConfig``; ``num_generations`` is the method's ``mean_rollouts``)."""
    kwargs: dict[str, Any] = {}
    for dynamo_name, section, name in method_fields():
        value = getattr(getattr(method, section), name)
        kwargs[dynamo_name] = "none" if value is None else value
    grpo_kwargs.setdefault("num_generations", method.allocation.mean_rollouts)
    return cls(dynamo_method=method_name, dynamo_preset=preset, dynamo_loss=dataclasses.asdict(method.loss),
               **kwargs, **grpo_kwargs)


DynaMOConfig = dataclasses.make_dataclass(
    "DynaMOConfig",
    [(f.name, f.type, field(default=f.default, metadata=f.metadata)) for f in dataclasses.fields(_DynaMOOptions)]
    + [("dynamo_loss", dict | str | None, field(default=None, metadata={
        "help": "LossConfig fields to set explicitly, as a dict or JSON (None: from dynamo_method/dynamo_preset); "
                "used by from_method_config"}))]
    + _generated_fields(),
    bases=(GRPOConfig,),
    namespace={
        "__doc__": "``GRPOConfig`` + DynaMO (DRA and token modulation). See ``docs/trl.md`` for every option.",
        "__post_init__": _post_init, "_resolve_method_config": _resolve_method_config,
        "_apply_method_loss": _apply_method_loss, "_validate_dynamo": _validate_dynamo,
        "_warn_if_dra_cannot_act": _warn_if_dra_cannot_act,
        "method_config": property(_method_config),
        "prompts_per_generation_batch": property(_prompts_per_generation_batch),
        "from_method_config": classmethod(_from_method_config),
        "__module__": __name__,
    },
)


def _rename_fields(message: str) -> str:
    """``invalid allocation.n_min=...`` → ``invalid dynamo_n_min=...`` (``mean_rollouts`` → ``num_generations``)."""
    message = message.replace("allocation.mean_rollouts", "num_generations")
    return re.sub(r"\b(?:allocation|modulation)\.(\w+)", r"dynamo_\1", message)
