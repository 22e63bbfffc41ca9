"""Configuration of the built-in trainer: frozen dataclasses, one per concern, attribute docstrings as help text.

A run is described by :class:`TrainConfig`, which nests :class:`DataConfig`, :class:`RolloutConfig`,
:class:`OptimConfig`, :class:`RunConfig` and the engine-independent :class:`~dynamo_rl.method_config.MethodConfig`
(built from a method name and a preset by :func:`dynamo_rl.presets.build_method_config`).

YAML layout (every key optional; ``method``/``preset`` select the bundle, section keys override it)::

    method: dynamo            # dynamo | grpo | no_dra | no_gc | no_ums | <baseline>
    preset: official          # official | paper | theory
    allocation: {mean_rollouts: 8, n_min: 4, n_max: 12}
    modulation: {norm_scope: mini}
    loss: {eps_high: 0.28}
    data: {model: demo, dataset: demo}
    rollout: {prompts_per_step: 16, max_new_tokens: 16}
    optim: {lr: 1.0e-4}
    run: {steps: 40, output_dir: runs/demo}

Dotted overrides (``loss.eps_high=0.2``) apply on top of the YAML; values are parsed as YAML scalars
(``null``, ``true``, ``1e-4``). Every validation error names the dotted field. Reading and writing the YAML files and
parsing command-line overrides live in :mod:`dynamo_rl.run.config_files`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from dynamo_rl.method_config import (
    AllocationConfig,
    LossConfig,
    MethodConfig,
    ModulationConfig,
    _require,
    require_finite,
    require_types,
)
from dynamo_rl.presets import METHODS, PRESETS, build_method_config


@dataclass(frozen=True)
class DataConfig:
    """Model and problems."""

    model: str = "demo"
    """Hugging Face hub id or local path of the policy; ``demo`` = the tiny model shipped in the package."""
    dataset: str = "demo"
    """Training problems: a hub id or a JSONL/Parquet file (``dynamo_rl.data.loading``); ``demo`` = synthetic task."""
    eval_dataset: str | None = None
    """Held-out problems for periodic evaluation; ``None`` = the demo task's test split (demo) or no evaluation."""
    template: str | None = None
    """Prompt template name for real datasets (``dynamo_rl.data.templates``); ``None`` = the loader's default."""
    max_problems: int | None = None
    """Use only the first N training problems (``None`` = all)."""
    max_prompt_tokens: int | None = None
    """Longest prompt, in tokens; ``None`` = the model's context minus ``rollout.max_new_tokens``. Longer prompts are
    refused before the model loads, naming the row, unless ``skip_long_prompts``."""
    skip_long_prompts: bool = False
    """Leave prompts over the limit out (the count is printed as a warning before training) instead of refusing
    the run."""
    demo_train_per_level: int = 64
    """Demo task: training problems per difficulty level."""
    demo_eval_per_level: int = 32
    """Demo task: held-out problems per difficulty level."""

    def __post_init__(self) -> None:
        require_types(self, "data")
        _require(bool(self.model), "data.model", self.model, "must be a path, a hub id or 'demo'")
        _require(bool(self.dataset), "data.dataset", self.dataset, "must be a file, a hub id or 'demo'")
        _require(self.max_problems is None or self.max_problems > 0, "data.max_problems", self.max_problems,
                 "must be > 0 or None")
        _require(self.max_prompt_tokens is None or self.max_prompt_tokens > 0, "data.max_prompt_tokens",
                 self.max_prompt_tokens, "must be > 0 or None")
        _require(self.demo_train_per_level > 0, "data.demo_train_per_level", self.demo_train_per_level, "must be > 0")
        _require(self.demo_eval_per_level > 0, "data.demo_eval_per_level", self.demo_eval_per_level, "must be > 0")


@dataclass(frozen=True)
class RolloutConfig:
    """Sampling of training rollouts."""

    backend: str = "hf"
    """Generation backend: ``hf`` (transformers ``generate``, CPU or GPU) or ``vllm`` (GPU)."""
    prompts_per_step: int = 8
    """Prompts M sampled per training step; the rollout budget is M × allocation.mean_rollouts."""
    temperature: float = 1.0
    """Sampling temperature (also divides the logits when recomputing log-probabilities)."""
    top_p: float = 1.0
    """Nucleus sampling threshold (1.0 = off)."""
    top_k: int = -1
    """Top-k sampling (-1 = off)."""
    max_new_tokens: int = 256
    """Longest response in tokens; longer ones are truncated (and usually unparseable)."""
    eval_samples: int = 1
    """Responses per held-out problem during evaluation (accuracy is avg@n)."""
    eval_temperature: float = 0.0
    """Sampling temperature for evaluation (0 = greedy)."""
    vllm_gpu_memory_utilization: float = 0.5
    """vLLM backend only: fraction of GPU memory for the engine (the policy shares the GPU)."""
    sampler: str = "none"
    """Built-in engine: ``none`` (one-shot, n_i from the allocator), ``dapo`` (DAPO dynamic sampling: keep only groups
    with mixed outcomes, refill from the training set) or ``adaptive`` (adaptive early stopping, Reinforce-Ada)."""
    sampler_max_rounds: int = 10
    """Multi-round samplers: the most generation rounds per step (DAPO's max_num_gen_batches)."""
    sampler_round_size: int = 2
    """``adaptive``: rollouts per prompt per round."""
    sampler_budget: int | None = None
    """Multi-round samplers: the most rollouts generated per step, discarded ones included (``None``: DAPO unlimited
    within its rounds; ``adaptive`` prompts_per_step × allocation.mean_rollouts)."""

    def __post_init__(self) -> None:
        require_types(self, "rollout")
        require_finite(self, "rollout")
        _require(self.backend in ("hf", "vllm"), "rollout.backend", self.backend, "expected hf or vllm")
        _require(self.prompts_per_step >= 1, "rollout.prompts_per_step", self.prompts_per_step, "must be ≥ 1")
        _require(self.temperature > 0, "rollout.temperature", self.temperature, "must be > 0 for RL sampling")
        _require(0 < self.top_p <= 1, "rollout.top_p", self.top_p, "must be in (0, 1]")
        _require(self.top_k == -1 or self.top_k > 0, "rollout.top_k", self.top_k, "must be -1 or > 0")
        _require(self.max_new_tokens >= 1, "rollout.max_new_tokens", self.max_new_tokens, "must be ≥ 1")
        _require(self.eval_samples >= 1, "rollout.eval_samples", self.eval_samples, "must be ≥ 1")
        _require(self.eval_temperature >= 0, "rollout.eval_temperature", self.eval_temperature, "must be ≥ 0")
        _require(0 < self.vllm_gpu_memory_utilization < 1, "rollout.vllm_gpu_memory_utilization",
                 self.vllm_gpu_memory_utilization, "must be in (0, 1)")
        _require(self.sampler in ("none", "dapo", "adaptive"), "rollout.sampler", self.sampler,
                 "expected none, dapo or adaptive")
        _require(self.sampler_max_rounds >= 1, "rollout.sampler_max_rounds", self.sampler_max_rounds, "must be ≥ 1")
        _require(self.sampler_round_size >= 1, "rollout.sampler_round_size", self.sampler_round_size, "must be ≥ 1")
        _require(self.sampler_budget is None or self.sampler_budget >= 1, "rollout.sampler_budget",
                 self.sampler_budget, "must be ≥ 1 or None")


@dataclass(frozen=True)
class OptimConfig:
    """AdamW, gradient clipping, warm-up, and how a rollout batch is split into updates."""

    lr: float = 1e-6
    """Peak learning rate (paper run script: 1e-6)."""
    betas: tuple[float, float] = (0.9, 0.999)
    """AdamW (β1, β2)."""
    weight_decay: float = 0.1
    """AdamW decoupled weight decay (paper: 0.1)."""
    grad_clip: float = 1.0
    """Clip the global gradient L2 norm to this value (paper: 1.0)."""
    warmup_steps: int = 10
    """Linear warm-up of the learning rate over this many optimiser steps, then constant (paper: 10)."""
    mini_batch_prompts: int | None = None
    """Prompts per PPO mini-batch (one optimiser step each); the mini-batch holds all their rollouts, so its size in
    sequences follows the allocation. ``None`` = the whole step's batch is one mini-batch (paper: 32 of 512)."""
    ppo_epochs: int = 1
    """Passes over the rollout batch (paper: 1)."""
    micro_batch_size: int = 64
    """Sequences per forward/backward pass (gradient accumulation inside a mini-batch; memory knob only)."""

    def __post_init__(self) -> None:
        require_types(self, "optim")
        require_finite(self, "optim")
        _require(self.lr > 0, "optim.lr", self.lr, "must be > 0")
        _require(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "optim.betas", self.betas,
                 "must be two numbers in [0, 1)")
        _require(self.weight_decay >= 0, "optim.weight_decay", self.weight_decay, "must be ≥ 0")
        _require(self.grad_clip > 0, "optim.grad_clip", self.grad_clip, "must be > 0")
        _require(self.warmup_steps >= 0, "optim.warmup_steps", self.warmup_steps, "must be ≥ 0")
        _require(self.mini_batch_prompts is None or self.mini_batch_prompts >= 1, "optim.mini_batch_prompts",
                 self.mini_batch_prompts, "must be ≥ 1 or None")
        _require(self.ppo_epochs >= 1, "optim.ppo_epochs", self.ppo_epochs, "must be ≥ 1")
        _require(self.micro_batch_size >= 1, "optim.micro_batch_size", self.micro_batch_size, "must be ≥ 1")


ENGINES = ("builtin", "trl")
MAX_SEED = 2**32 - 1
"""Largest ``run.seed``: every generator seeded from it (numpy, torch, per-step sampling seeds) accepts it."""


@dataclass(frozen=True)
class RunConfig:
    """Engine, length, seeding, outputs, evaluation, checkpoints and logging."""

    engine: str = "builtin"
    """``builtin`` (the small built-in trainer) or ``trl`` (TRL's GRPOTrainer via ``dynamo_rl.adapters.trl``)."""
    steps: int = 100
    """Training steps (one rollout batch each)."""
    seed: int = 0
    """Seed of prompt sampling, generation and model initialisation; two runs with the same seed are identical."""
    output_dir: str = "runs/dynamo"
    """Run directory: metrics.jsonl, config.yaml, checkpoints/, plots/."""
    eval_every: int = 10
    """Evaluate on the held-out problems every N steps (and before the first and after the last); 0 = never."""
    checkpoint_every: int = 10
    """Write a checkpoint every N steps (and after the last); 0 = only at the end."""
    keep_checkpoints: int = 2
    """Number of most recent checkpoints to keep."""
    device: str = "auto"
    """``auto`` (CUDA when available), ``cpu`` or ``cuda``."""
    dtype: str = "float32"
    """Parameter dtype of the policy: ``float32`` or ``bfloat16`` (GPU)."""
    tensorboard: bool = False
    """Also log scalars to TensorBoard (needs the ``tensorboard`` package)."""
    wandb: bool = False
    """Also log to Weights & Biases (needs ``wandb``; project from ``wandb_project``)."""
    wandb_project: str = "dynamo-rl"
    """W&B project name."""
    progress: bool = True
    """Show a tqdm progress bar with the key metrics."""
    plots: bool = True
    """Write PNG plots into RUN_DIR/plots at the end of the run."""
    num_verifier_workers: int = 0
    """Processes for answer verification (0 = in-process, with per-answer timeout where supported)."""
    threads: int | None = None
    """torch CPU threads for this process (``None`` = torch's default). Tiny models run fastest with 1."""

    def __post_init__(self) -> None:
        require_types(self, "run")
        require_finite(self, "run")
        _require(self.engine in ENGINES, "run.engine", self.engine, f"expected one of {', '.join(ENGINES)}")
        _require(self.steps >= 1, "run.steps", self.steps, "must be ≥ 1")
        _require(0 <= self.seed <= MAX_SEED, "run.seed", self.seed, f"must be in [0, {MAX_SEED}] (2**32 - 1)")
        _require(self.eval_every >= 0, "run.eval_every", self.eval_every, "must be ≥ 0")
        _require(self.checkpoint_every >= 0, "run.checkpoint_every", self.checkpoint_every, "must be ≥ 0")
        _require(self.keep_checkpoints >= 1, "run.keep_checkpoints", self.keep_checkpoints, "must be ≥ 1")
        _require(self.device in ("auto", "cpu", "cuda"), "run.device", self.device, "expected auto, cpu or cuda")
        _require(self.dtype in ("float32", "bfloat16"), "run.dtype", self.dtype, "expected float32 or bfloat16")
        _require(self.num_verifier_workers >= 0, "run.num_verifier_workers", self.num_verifier_workers, "must be ≥ 0")
        _require(self.threads is None or self.threads >= 1, "run.threads", self.threads, "must be ≥ 1 or None")


@dataclass(frozen=True)
class TrainConfig:
    """A complete training run."""

    method_name: str = "dynamo"
    """Method bundle from ``dynamo_rl.presets.METHODS`` (dynamo, grpo, ablations, baselines)."""
    preset: str = "official"
    """Preset from ``dynamo_rl.presets.PRESETS`` (official, paper, theory), applied before the method."""
    method: MethodConfig = field(default_factory=MethodConfig)
    """Resolved method options (allocation, modulation, loss)."""
    data: DataConfig = field(default_factory=DataConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)
    explicit: tuple[str, ...] = ()
    """Method fields the user set (``section.field``, sorted): they win over the method bundle and the preset, also
    when their value equals a default. Every other method field comes from ``method_name`` and ``preset``."""

    def __post_init__(self) -> None:
        _require(isinstance(self.method_name, str) and self.method_name in METHODS, "method", self.method_name,
                 f"expected one of {', '.join(sorted(METHODS))}")
        _require(isinstance(self.preset, str) and self.preset in PRESETS, "preset", self.preset,
                 f"expected one of {', '.join(sorted(PRESETS))}")
        for name, cls in (("method", MethodConfig), *RUN_SECTIONS.items()):
            value = getattr(self, name)
            _require(isinstance(value, cls), name, value, f"expected a {cls.__name__}")
        _require(isinstance(self.explicit, tuple) and all(isinstance(k, str) for k in self.explicit), "explicit",
                 self.explicit, "expected a tuple of SECTION.FIELD names")

    @property
    def budget(self) -> int:
        """Rollouts per step: prompts per step × mean rollouts per prompt."""
        return self.rollout.prompts_per_step * self.method.allocation.mean_rollouts


# ----------------------------------------------------------------------------------------------------------------
# Sections, dict round trip, overrides
# ----------------------------------------------------------------------------------------------------------------

METHOD_SECTIONS: dict[str, type] = {"allocation": AllocationConfig, "modulation": ModulationConfig, "loss": LossConfig}
RUN_SECTIONS: dict[str, type] = {"data": DataConfig, "rollout": RolloutConfig, "optim": OptimConfig, "run": RunConfig}
SECTIONS: dict[str, type] = {**METHOD_SECTIONS, **RUN_SECTIONS}
TOP_LEVEL = ("method", "preset")


def _coerce(dotted: str, value: Any, annotation: Any) -> Any:
    """Check ``value`` against a field annotation (after YAML parsing); ints are accepted for floats."""
    hint = annotation
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        hint = next(a for a in options if a is not type(None))
        origin = typing.get_origin(hint)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"invalid {dotted}={value!r}: expected a list")
        item_types = [a for a in typing.get_args(hint) if a is not Ellipsis]
        item = item_types[0] if item_types else str
        return tuple(_coerce(f"{dotted}[{index}]", v, item) for index, v in enumerate(value))
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    if hint in (int, float, str, bool) and (not isinstance(value, hint) or (hint is int and isinstance(value, bool))):
        raise ValueError(f"invalid {dotted}={value!r}: expected {hint.__name__}, got {type(value).__name__}")
    return value


def _check_fields(name: str, cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """Known field names and well-typed values of one section (errors name ``section.field``)."""
    if not isinstance(values, dict):
        raise ValueError(f"invalid {name}={values!r}: expected a mapping of fields")
    hints = typing.get_type_hints(cls)
    valid = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        if key not in valid:
            raise ValueError(f"unknown field {name}.{key}; valid fields of {name}: {', '.join(valid)}")
        kwargs[key] = _coerce(f"{name}.{key}", value, hints[key])
    return kwargs


def _build_section(name: str, cls: type, values: dict[str, Any]) -> Any:
    return cls(**_check_fields(name, cls, values))


class ConfigError(ValueError):
    """A configuration the user wrote that cannot be used; the message names the file, field or value."""


@dataclass
class MethodSpec:
    """What decides the method sections: a method bundle, a preset and the fields the user set explicitly."""

    method: str = "dynamo"
    preset: str = "official"
    explicit: dict[str, dict[str, Any]] = field(default_factory=dict)

    def set(self, section: str, name: str, value: Any) -> None:
        self.explicit.setdefault(section, {})[name] = value

    def build(self) -> MethodConfig:
        _require(isinstance(self.method, str) and self.method in METHODS, "method", self.method,
                 f"expected one of {', '.join(sorted(METHODS))}")
        _require(isinstance(self.preset, str) and self.preset in PRESETS, "preset", self.preset,
                 f"expected one of {', '.join(sorted(PRESETS))}")
        checked = {name: _check_fields(name, cls, self.explicit.get(name) or {})
                   for name, cls in METHOD_SECTIONS.items()}
        return build_method_config(self.method, self.preset, checked)

    def dotted(self) -> tuple[str, ...]:
        return tuple(sorted(f"{s}.{k}" for s, values in self.explicit.items() for k in values))


def _method_spec(raw: dict[str, Any]) -> MethodSpec:
    """The method spec of a YAML layout.

    A hand-written file: every method-section field it contains is explicit. A file this package wrote (it has an
    ``explicit`` list): the listed fields, plus any field whose value differs from what its method, preset and
    listed fields resolve to (an edit by hand after the run). Other fields of a written file are the record of
    what ran, not choices, so ``--method`` on the command line re-decides them.
    """
    spec = MethodSpec(method=raw.get("method", "dynamo"), preset=raw.get("preset", "official"))
    sections = {}
    for name in METHOD_SECTIONS:
        values = raw.get(name) or {}
        if not isinstance(values, dict):
            raise ConfigError(f"invalid {name}={values!r}: expected a mapping of fields")
        sections[name] = values
    if "explicit" not in raw:
        spec.explicit = {name: dict(values) for name, values in sections.items() if values}
        return spec
    listed = raw["explicit"] or []
    if not isinstance(listed, list) or not all(isinstance(k, str) and k.count(".") == 1 for k in listed):
        raise ConfigError(f"invalid explicit={listed!r}: expected a list of SECTION.FIELD names")
    for key in listed:
        section, name = key.split(".")
        if section not in METHOD_SECTIONS:
            raise ConfigError(f"invalid explicit entry {key!r}: SECTION must be one of {', '.join(METHOD_SECTIONS)}")
        valid = [f.name for f in dataclasses.fields(METHOD_SECTIONS[section])]
        if name not in valid:
            raise ConfigError(f"invalid explicit entry {key!r}: unknown field; valid fields of {section}: "
                              f"{', '.join(valid)}")
        if name in sections[section]:
            spec.set(section, name, sections[section][name])
    resolved = spec.build()
    for section, values in sections.items():
        current = getattr(resolved, section)
        checked = _check_fields(section, METHOD_SECTIONS[section], values)
        for name, value in checked.items():
            if value != getattr(current, name):
                spec.set(section, name, values[name])
    return spec


def config_from_dict(raw: dict[str, Any] | None, overrides: list[tuple[str, Any]] | None = None) -> TrainConfig:
    """Build and validate a :class:`TrainConfig` from the YAML layout (see module docstring), then apply dotted
    command-line ``overrides``: ``method``/``preset`` replace the bundle (fields the file set explicitly stay),
    ``SECTION.FIELD`` sets a field (a method field becomes explicit)."""
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"invalid config {raw!r}: expected a mapping of sections (method, preset, "
                          f"{', '.join(SECTIONS)})")
    raw = dict(raw or {})
    unknown = sorted((str(k) for k in set(raw) - set(SECTIONS) - set(TOP_LEVEL) - {"explicit"}), key=str)
    if unknown:
        raise ConfigError(f"unknown config key {unknown[0]!r}; valid keys: {', '.join(TOP_LEVEL + tuple(SECTIONS))}")
    overrides = _check_overrides(overrides)
    spec = _method_spec(raw)
    run_raw: dict[str, dict[str, Any]] = {}
    for name in RUN_SECTIONS:
        values = raw.get(name) or {}
        if not isinstance(values, dict):
            raise ConfigError(f"invalid {name}={values!r}: expected a mapping of fields")
        run_raw[name] = dict(values)
    for key, value in overrides or []:
        check_key(key)
        section, _, name = key.partition(".")
        if not name:
            setattr(spec, key, value)
        elif section in METHOD_SECTIONS:
            spec.set(section, name, value)
        else:
            run_raw[section][name] = value
    method = spec.build()
    sections = {name: _build_section(name, cls, run_raw[name]) for name, cls in RUN_SECTIONS.items()}
    return TrainConfig(method_name=spec.method, preset=spec.preset, method=method, explicit=spec.dotted(), **sections)


def check_key(key: str) -> None:
    """``key`` is ``method``, ``preset`` or an existing ``SECTION.FIELD``; else :class:`ConfigError` naming it."""
    section, _, name = key.partition(".")
    if not name and key in TOP_LEVEL:
        return
    if name and "." not in name and section in SECTIONS:
        valid = [f.name for f in dataclasses.fields(SECTIONS[section])]
        if name not in valid:
            raise ConfigError(f"unknown field {key}; valid fields of {section}: {', '.join(valid)}")
        return
    raise ConfigError(f"unknown config key {key!r}; expected method, preset or SECTION.FIELD with SECTION in "
                      f"{', '.join(SECTIONS)}")


def _check_overrides(overrides: Any) -> list[tuple[str, Any]]:
    """``overrides`` as a list of ``(KEY, VALUE)`` pairs (a dict, a string or ragged items are refused)."""
    if overrides is None:
        return []
    if not isinstance(overrides, (list, tuple)):
        raise ConfigError(f"invalid overrides={overrides!r}: expected a list of (KEY, VALUE) pairs, e.g. "
                          "[('optim.lr', 1e-5)] (parse_override('optim.lr=1e-5') makes one from text)")
    for item in overrides:
        if not (isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str)):
            raise ConfigError(f"invalid override {item!r}: expected a (KEY, VALUE) pair with KEY like "
                              "'optim.lr' (parse_override('optim.lr=1e-5') makes one from text)")
    return [(key, value) for key, value in overrides]


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    """Fully resolved YAML layout plus the ``explicit`` list; ``config_from_dict(config_to_dict(c)) == c``."""
    out: dict[str, Any] = {"method": config.method_name, "preset": config.preset}
    for name in METHOD_SECTIONS:
        out[name] = dataclasses.asdict(getattr(config.method, name))
    for name in RUN_SECTIONS:
        out[name] = dataclasses.asdict(getattr(config, name))
    out["explicit"] = list(config.explicit)
    return _plain(out)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
