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
(``null``, ``true``, ``1e-4``). Every validation error names the dotted field.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dynamo_rl.method_config import AllocationConfig, LossConfig, MethodConfig, ModulationConfig, _require
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
    demo_train_per_level: int = 64
    """Demo task: training problems per difficulty level."""
    demo_eval_per_level: int = 32
    """Demo task: held-out problems per difficulty level."""

    def __post_init__(self) -> None:
        _require(bool(self.model), "data.model", self.model, "must be a path, a hub id or 'demo'")
        _require(bool(self.dataset), "data.dataset", self.dataset, "must be a file, a hub id or 'demo'")
        _require(self.max_problems is None or self.max_problems > 0, "data.max_problems", self.max_problems,
                 "must be > 0 or None")
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

    def __post_init__(self) -> None:
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


@dataclass(frozen=True)
class RunConfig:
    """Length, seeding, outputs, evaluation, checkpoints and logging."""

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
        _require(self.steps >= 1, "run.steps", self.steps, "must be ≥ 1")
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

    def __post_init__(self) -> None:
        _require(self.method_name in METHODS, "method", self.method_name, f"expected one of {sorted(METHODS)}")
        _require(self.preset in PRESETS, "preset", self.preset, f"expected one of {sorted(PRESETS)}")

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
        return tuple(_coerce(dotted, v, item) for v in value)
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


def config_from_dict(raw: dict[str, Any] | None) -> TrainConfig:
    """Build and validate a :class:`TrainConfig` from the YAML layout (see module docstring)."""
    raw = dict(raw or {})
    unknown = sorted(set(raw) - set(SECTIONS) - set(TOP_LEVEL))
    if unknown:
        raise ValueError(f"unknown config key {unknown[0]!r}; valid keys: {', '.join(TOP_LEVEL + tuple(SECTIONS))}")
    method_name = raw.get("method", "dynamo")
    preset = raw.get("preset", "official")
    _require(method_name in METHODS, "method", method_name, f"expected one of {sorted(METHODS)}")
    _require(preset in PRESETS, "preset", preset, f"expected one of {sorted(PRESETS)}")
    overrides = {name: _check_fields(name, cls, raw.get(name) or {}) for name, cls in METHOD_SECTIONS.items()}
    method = build_method_config(method_name, preset, overrides)
    sections = {name: _build_section(name, cls, raw.get(name) or {}) for name, cls in RUN_SECTIONS.items()}
    return TrainConfig(method_name=method_name, preset=preset, method=method, **sections)




def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    """Fully resolved YAML layout; ``config_from_dict(config_to_dict(c)) == c``."""
    out: dict[str, Any] = {"method": config.method_name, "preset": config.preset}
    for name in METHOD_SECTIONS:
        out[name] = dataclasses.asdict(getattr(config.method, name))
    for name in RUN_SECTIONS:
        out[name] = dataclasses.asdict(getattr(config, name))
    return _plain(out)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def parse_override(text: str) -> tuple[str, Any]:
    """``"loss.eps_high=0.2"`` -> ``("loss.eps_high", 0.2)``; the value is parsed as a YAML scalar."""
    import yaml

    if "=" not in text:
        raise ValueError(f"invalid override {text!r}: expected KEY=VALUE, e.g. loss.eps_high=0.2")
    key, value = text.split("=", 1)
    return key.strip(), yaml.safe_load(value) if value.strip() else ""


def apply_overrides(raw: dict[str, Any], overrides: list[tuple[str, Any]]) -> dict[str, Any]:
    """Return a copy of the raw YAML layout with dotted ``(key, value)`` overrides applied."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in (raw or {}).items()}
    for key, value in overrides:
        parts = key.split(".")
        if len(parts) == 1 and key in TOP_LEVEL:
            out[key] = value
        elif len(parts) == 2 and parts[0] in SECTIONS:
            valid = [f.name for f in dataclasses.fields(SECTIONS[parts[0]])]
            if parts[1] not in valid:
                raise ValueError(f"unknown field {key}; valid fields of {parts[0]}: {', '.join(valid)}")
            out.setdefault(parts[0], {})[parts[1]] = value
        else:
            raise ValueError(f"unknown config key {key!r}; expected method, preset or SECTION.FIELD with SECTION in "
                             f"{', '.join(SECTIONS)}")
    return out


def load_config(path: str | Path | None = None, overrides: list[tuple[str, Any]] | None = None) -> TrainConfig:
    """Load a YAML file (or the defaults when ``path`` is None) and apply dotted overrides."""
    raw: dict[str, Any] = {}
    if path is not None:
        import yaml

        with open(path, encoding="utf-8") as f:
            raw = yaml.safe_load(f) or {}
        if not isinstance(raw, dict):
            raise ValueError(f"invalid config file {path}: expected a mapping at the top level")
    return config_from_dict(apply_overrides(raw, overrides or []))


def save_config(config: TrainConfig, path: str | Path) -> None:
    import yaml

    Path(path).write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False), encoding="utf-8")


# ----------------------------------------------------------------------------------------------------------------
# Help text from attribute docstrings
# ----------------------------------------------------------------------------------------------------------------

def field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings of a dataclass (the string literal right after each annotated field)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, following in zip(body, body[1:] + [None]):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if (isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
                    and isinstance(following.value.value, str)):
                docs[node.target.id] = " ".join(following.value.value.split())
    return docs


def section_docs() -> dict[str, tuple[str, dict[str, str]]]:
    """``{section: (class docstring, {field: docstring})}`` for every config section."""
    return {name: ((cls.__doc__ or "").strip(), field_docs(cls)) for name, cls in SECTIONS.items()}
