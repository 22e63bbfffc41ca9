"""``dynamo-rl train --engine trl``: run a :class:`~dynamo_rl.run.config.TrainConfig` through TRL, writing the same
run directory as the built-in trainer (``config.yaml``, ``metrics.jsonl``, ``checkpoints/``, ``plots/``).

:func:`trl_config_from_train_config` maps the run config onto :class:`DynaMOConfig`:

* step = one generation batch of ``rollout.prompts_per_step`` prompts × ``allocation.mean_rollouts`` rows;
  ``optim.mini_batch_prompts`` × mean rollouts rows per optimizer step (TRL splits by rows, so a mini-batch holds
  that many *rows*, not whole prompts); ``optim.micro_batch_size`` caps ``per_device_train_batch_size``;
  ``optim.ppo_epochs`` → ``num_iterations``; ``run.steps`` generation batches → ``max_steps`` optimizer steps;
* the method (allocation, modulation, loss) goes through :meth:`DynaMOConfig.from_method_config`, the one mapping
  of :mod:`dynamo_rl.adapters.trl.config` (what TRL cannot express is refused there, naming the field).

TRL's checkpoints land in ``RUN_DIR/checkpoints/checkpoint-<optimizer step>`` (a Hugging Face model folder with the
tokenizer, the allocator state and ``dynamo_state.json``). Each generation batch is one ``metrics.jsonl`` record with
the shared keys (``docs/metrics.md``) and TRL's own keys under ``trl/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from dynamo_rl.adapters.trl.config import DynaMOConfig
from dynamo_rl.data.types import Problem
from dynamo_rl.run import metric_names as K
from dynamo_rl.run.checkpoint import CHECKPOINTS, list_checkpoints
from dynamo_rl.run.config import TrainConfig, config_to_dict
from dynamo_rl.run.config_files import save_config
from dynamo_rl.run.metrics import MetricsLogger

TRL_KEYS = {"reward": K.REWARD_MEAN, "reward_std": K.REWARD_STD, "loss": K.LOSS, "grad_norm": K.GRAD_NORM,
            "learning_rate": K.LR, "entropy": K.ENTROPY, "completions/mean_length": K.RESPONSE_LENGTH,
            "completions/clipped_ratio": K.TRUNCATED}
"""TRL's log keys for quantities the shared namespace names (they are logged under both names)."""
SHARED_PREFIXES = ("alloc/", "history/", "mod/", "acc/", "groups/")


def _batch_kwargs(config: TrainConfig, world_size: int) -> tuple[dict[str, Any], int]:
    """TRL batch geometry and the number of optimizer steps per generation batch."""
    prompts, rollouts = config.rollout.prompts_per_step, config.method.allocation.mean_rollouts
    mini = config.optim.mini_batch_prompts or prompts
    if prompts % mini:
        raise ValueError(f"invalid optim.mini_batch_prompts={mini} for --engine trl: must divide "
                         f"rollout.prompts_per_step={prompts}")
    mini_rows = mini * rollouts
    if mini_rows % world_size:
        raise ValueError(f"invalid optim.mini_batch_prompts={mini} for --engine trl: mini-batch rows {mini_rows} must "
                         f"divide over {world_size} processes")
    per_process = mini_rows // world_size
    micro = next(d for d in range(min(config.optim.micro_batch_size, per_process), 0, -1) if per_process % d == 0)
    grad_accum = per_process // micro
    steps_per_generation = prompts * rollouts // (micro * world_size)
    kwargs = {"per_device_train_batch_size": micro, "gradient_accumulation_steps": grad_accum,
              "steps_per_generation": steps_per_generation, "num_iterations": config.optim.ppo_epochs}
    return kwargs, steps_per_generation * config.optim.ppo_epochs // grad_accum


def trl_config_from_train_config(config: TrainConfig, *, world_size: int = 1, **extra: Any) -> DynaMOConfig:
    """The :class:`DynaMOConfig` that runs ``config`` with TRL (``extra`` overrides any GRPOConfig field)."""
    if config.rollout.sampler != "none":
        raise ValueError(f"invalid rollout.sampler={config.rollout.sampler!r} for --engine trl: multi-round samplers "
                         "change the number of rows of a generation batch, which TRL fixes; use --engine builtin")
    batch, updates_per_step = _batch_kwargs(config, world_size)
    run, optim, rollout = config.run, config.optim, config.rollout
    report_to = [name for name, on in (("tensorboard", run.tensorboard), ("wandb", run.wandb)) if on] or "none"
    save_steps = (run.checkpoint_every or run.steps) * updates_per_step
    kwargs: dict[str, Any] = {
        **batch,
        "output_dir": str(Path(run.output_dir) / CHECKPOINTS), "seed": run.seed,
        "max_steps": run.steps * updates_per_step,
        "learning_rate": optim.lr, "adam_beta1": optim.betas[0], "adam_beta2": optim.betas[1],
        "weight_decay": optim.weight_decay, "max_grad_norm": optim.grad_clip, "warmup_steps": optim.warmup_steps,
        "lr_scheduler_type": "constant_with_warmup",
        "temperature": rollout.temperature, "top_p": rollout.top_p, "top_k": 0 if rollout.top_k == -1 else rollout.top_k,
        "max_completion_length": rollout.max_new_tokens,
        "use_vllm": rollout.backend == "vllm", "vllm_mode": "colocate",
        "vllm_gpu_memory_utilization": rollout.vllm_gpu_memory_utilization,
        "save_strategy": "steps", "save_steps": save_steps, "save_total_limit": run.keep_checkpoints,
        "logging_steps": updates_per_step, "report_to": report_to, "disable_tqdm": not run.progress,
        "use_cpu": run.device == "cpu", "bf16": run.dtype == "bfloat16",
        "dataloader_num_workers": 0, "eval_strategy": "no",
    }
    kwargs.update(extra)
    return DynaMOConfig.from_method_config(config.method, method_name=config.method_name, preset=config.preset,
                                           **kwargs)


def problems_to_dataset(problems: list[Problem]) -> Any:
    """A ``datasets.Dataset`` with ``prompt``, ``answer`` and the stable ``prompt_id`` (the history key)."""
    from datasets import Dataset

    if not problems:
        raise ValueError("no training problems: check data.dataset / data.max_problems")
    return Dataset.from_dict({"prompt": [p.prompt or p.problem for p in problems],
                              "answer": [p.answer for p in problems],
                              "prompt_id": [p.prompt_id for p in problems]})


class RunLogCallback(TrainerCallback):
    """Writes one ``metrics.jsonl`` record per generation batch (TRL logs every ``updates_per_step`` optimizer steps),
    with the shared keys and TRL's own keys under ``trl/``."""

    def __init__(self, logger: MetricsLogger, updates_per_step: int) -> None:
        self.logger = logger
        self.updates_per_step = updates_per_step
        self.records: list[dict[str, Any]] = []

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **_: Any) -> None:
        if not logs or state.global_step == 0 or state.global_step % self.updates_per_step:
            return
        if "loss" not in logs and not any(key.startswith(SHARED_PREFIXES) for key in logs):
            return  # TRL's end-of-training summary (train_runtime, ...), not a training step
        row: dict[str, Any] = {}
        for key, value in logs.items():
            if not isinstance(value, (int, float)):
                continue
            if key.startswith(SHARED_PREFIXES):
                row[key] = value
            else:
                row[f"trl/{key}"] = value
                if key in TRL_KEYS:
                    row[TRL_KEYS[key]] = value
        if row:
            self.records.append(self.logger.log(state.global_step // self.updates_per_step, row))


def run_trl(config: TrainConfig, *, resume: bool = False) -> list[dict[str, Any]]:
    """Train ``config`` with :class:`DynaMOTrainer` and math-verify rewards; returns the logged records.

    ``resume``: continue from the newest complete checkpoint of ``run.output_dir`` (corrupt ones are skipped with a
    warning). Held-out evaluation is not run by this engine (``run.eval_every`` is ignored); evaluate checkpoints with
    ``dynamo-rl eval --model RUN_DIR/checkpoints/checkpoint-N``.
    """
    from accelerate import PartialState

    from dynamo_rl.adapters.trl.rewards import math_verify_reward
    from dynamo_rl.adapters.trl.trainer import DynaMOTrainer
    from dynamo_rl.run.loading import load_policy, load_train_problems

    run_dir = Path(config.run.output_dir)
    args = trl_config_from_train_config(config, world_size=PartialState().num_processes,
                                        dynamo_prompt_id_column="prompt_id")
    updates_per_step = _batch_kwargs(config, PartialState().num_processes)[1]
    model, tokenizer = load_policy(config)
    trainer = DynaMOTrainer(model=model, reward_funcs=[math_verify_reward], args=args,
                            train_dataset=problems_to_dataset(load_train_problems(config, tokenizer)),
                            processing_class=tokenizer)
    checkpoint = None
    start_step = 0
    if resume:
        checkpoint, start_step = _resume_point(run_dir)
    if PartialState().is_main_process:
        save_config(config, run_dir / "config.yaml")
    logger = MetricsLogger(run_dir, tensorboard=False, wandb=False, config=config_to_dict(config),
                           resume_step=start_step if resume else None)
    callback = RunLogCallback(logger, updates_per_step)
    trainer.add_callback(callback)
    try:
        trainer.train(resume_from_checkpoint=checkpoint)
    finally:
        logger.close()
    if config.run.plots and PartialState().is_main_process:
        from dynamo_rl.run.plots import write_plots

        write_plots(run_dir)
    return callback.records


def _resume_point(run_dir: Path) -> tuple[str, int]:
    """The newest TRL checkpoint that is complete and whose files read back (older ones on failure)."""
    import json
    import warnings

    found = [(step, path) for step, path in list_checkpoints(run_dir) if path.name.startswith("checkpoint-")]
    for step, path in reversed(found):
        try:
            json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
            from safetensors import safe_open

            with safe_open(str(path / "model.safetensors"), framework="pt"):
                pass
        except Exception as err:
            warnings.warn(f"checkpoint {path} cannot be read ({type(err).__name__}); falling back to an older one",
                          stacklevel=2)
            continue
        return str(path), step
    raise FileNotFoundError(f"--resume {run_dir}: no readable TRL checkpoint in {run_dir / CHECKPOINTS}")
