"""``dynamo-rl train --engine trl``: run a :class:`~dynamo_rl.run.config.TrainConfig` through TRL.

:func:`trl_config_from_train_config` maps the built-in trainer's configuration onto :class:`DynaMOConfig`:

* step = one generation batch of ``rollout.prompts_per_step`` prompts × ``allocation.mean_rollouts`` rows;
  ``optim.mini_batch_prompts`` × mean rollouts rows per optimizer step (TRL splits by rows, so a mini-batch holds
  that many *rows*, not whole prompts); ``optim.micro_batch_size`` caps ``per_device_train_batch_size``;
  ``optim.ppo_epochs`` → ``num_iterations``; ``run.steps`` generation batches → ``max_steps`` optimizer steps;
* loss: ``eps_low``/``eps_high`` → ``epsilon``/``epsilon_high``; dual-clip ``clip_ratio_c`` → TRL's ``delta`` (the
  same function for δ ≥ 1+ε_high); ``loss_agg_mode`` token-mean → ``dapo``, seq-mean-token-mean → ``grpo``,
  seq-mean-token-sum-norm → ``dr_grpo``; advantage ``grpo`` → ``scale_rewards=group``, ``dr_grpo`` → ``none``;
  ``entropy_coeff`` → ``entropy_coef``; ``fork_top_ratio`` → ``top_entropy_quantile``;
* what TRL cannot express is refused with the field name (other policy losses, other advantage estimators, the
  Entropy-Advantages baseline, ``seq-mean-token-sum``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dynamo_rl.adapters.trl.config import DynaMOConfig
from dynamo_rl.data.types import Problem
from dynamo_rl.run.config import TrainConfig

_LOSS_TYPES = {"token-mean": "dapo", "seq-mean-token-mean": "grpo", "seq-mean-token-sum-norm": "dr_grpo"}
_SCALE_REWARDS = {"grpo": "group", "dr_grpo": "none"}


def _refuse(field: str, value: Any, why: str) -> None:
    raise ValueError(f"invalid {field}={value!r} for --engine trl: {why}")


def _loss_kwargs(config: TrainConfig) -> dict[str, Any]:
    loss = config.method.loss
    if loss.policy_loss != "ppo_clip":
        _refuse("loss.policy_loss", loss.policy_loss, "TRL's loss is the PPO clip surrogate; use the built-in engine")
    if loss.advantage_estimator not in _SCALE_REWARDS:
        _refuse("loss.advantage_estimator", loss.advantage_estimator, f"TRL supports {sorted(_SCALE_REWARDS)}")
    if loss.loss_agg_mode not in _LOSS_TYPES:
        _refuse("loss.loss_agg_mode", loss.loss_agg_mode, f"TRL supports {sorted(_LOSS_TYPES)}")
    if loss.entropy_adv_alpha is not None:
        _refuse("loss.entropy_adv_alpha", loss.entropy_adv_alpha, "Entropy Advantages is not available in TRL")
    if loss.clip_ratio_c is not None and loss.clip_ratio_c < 1 + loss.eps_high:
        _refuse("loss.clip_ratio_c", loss.clip_ratio_c, "maps to TRL's delta, which must be ≥ 1 + eps_high")
    return {
        "epsilon": loss.eps_low, "epsilon_high": loss.eps_high, "delta": loss.clip_ratio_c,
        "loss_type": _LOSS_TYPES[loss.loss_agg_mode], "scale_rewards": _SCALE_REWARDS[loss.advantage_estimator],
        "entropy_coef": loss.entropy_coeff,
        "top_entropy_quantile": 1.0 if loss.fork_top_ratio is None else loss.fork_top_ratio, "beta": 0.0,
    }


def _batch_kwargs(config: TrainConfig, world_size: int) -> tuple[dict[str, Any], int]:
    """TRL batch geometry and the number of optimizer steps per generation batch."""
    prompts, rollouts = config.rollout.prompts_per_step, config.method.allocation.mean_rollouts
    mini = config.optim.mini_batch_prompts or prompts
    if prompts % mini:
        _refuse("optim.mini_batch_prompts", mini, f"must divide rollout.prompts_per_step={prompts}")
    mini_rows = mini * rollouts
    if mini_rows % world_size:
        _refuse("optim.mini_batch_prompts", mini, f"mini-batch rows {mini_rows} must divide over {world_size} processes")
    per_process = mini_rows // world_size
    micro = next(d for d in range(min(config.optim.micro_batch_size, per_process), 0, -1) if per_process % d == 0)
    grad_accum = per_process // micro
    steps_per_generation = prompts * rollouts // (micro * world_size)
    kwargs = {"num_generations": rollouts, "per_device_train_batch_size": micro,
              "gradient_accumulation_steps": grad_accum, "steps_per_generation": steps_per_generation,
              "num_iterations": config.optim.ppo_epochs}
    return kwargs, steps_per_generation * config.optim.ppo_epochs // grad_accum


def trl_config_from_train_config(config: TrainConfig, *, world_size: int = 1, **extra: Any) -> DynaMOConfig:
    """The :class:`DynaMOConfig` that runs ``config`` with TRL (``extra`` overrides any GRPOConfig field)."""
    batch, updates_per_step = _batch_kwargs(config, world_size)
    run, optim, rollout = config.run, config.optim, config.rollout
    report_to = [name for name, on in (("tensorboard", run.tensorboard), ("wandb", run.wandb)) if on] or "none"
    save_steps = (run.checkpoint_every or run.steps) * updates_per_step
    kwargs: dict[str, Any] = {
        **batch, **_loss_kwargs(config),
        "output_dir": run.output_dir, "seed": run.seed, "max_steps": run.steps * updates_per_step,
        "learning_rate": optim.lr, "adam_beta1": optim.betas[0], "adam_beta2": optim.betas[1],
        "weight_decay": optim.weight_decay, "max_grad_norm": optim.grad_clip, "warmup_steps": optim.warmup_steps,
        "lr_scheduler_type": "constant_with_warmup",
        "temperature": rollout.temperature, "top_p": rollout.top_p, "top_k": 0 if rollout.top_k == -1 else rollout.top_k,
        "max_completion_length": rollout.max_new_tokens,
        "use_vllm": rollout.backend == "vllm", "vllm_mode": "colocate",
        "vllm_gpu_memory_utilization": rollout.vllm_gpu_memory_utilization,
        "save_strategy": "steps", "save_steps": save_steps, "save_total_limit": run.keep_checkpoints,
        "logging_steps": 1, "report_to": report_to, "disable_tqdm": not run.progress,
        "use_cpu": run.device == "cpu", "bf16": run.dtype == "bfloat16",
        "dataloader_num_workers": 0, "eval_strategy": "no",
    }
    kwargs.update(extra)
    return DynaMOConfig.from_method_config(config.method, **kwargs)


def problems_to_dataset(problems: list[Problem]) -> Any:
    """A ``datasets.Dataset`` with ``prompt``, ``answer`` and the stable ``prompt_id`` (the history key)."""
    from datasets import Dataset

    if not problems:
        raise ValueError("no training problems: check data.dataset / data.max_problems")
    return Dataset.from_dict({"prompt": [p.prompt or p.problem for p in problems],
                              "answer": [p.answer for p in problems],
                              "prompt_id": [p.prompt_id for p in problems]})


def run_trl(config: TrainConfig, *, resume: bool | str = False) -> int:
    """Train ``config`` with :class:`DynaMOTrainer` and math-verify rewards; returns a process exit code.

    ``resume``: ``True`` continues from the last checkpoint in ``run.output_dir``, a path from that checkpoint.
    Evaluation is not run by this engine (``run.eval_every`` is ignored); evaluate checkpoints with ``dynamo-rl eval``.
    """
    from accelerate import PartialState

    from dynamo_rl.adapters.trl.rewards import math_verify_reward
    from dynamo_rl.adapters.trl.trainer import DynaMOTrainer
    from dynamo_rl.run.loading import load_train_problems

    args = trl_config_from_train_config(config, world_size=PartialState().num_processes,
                                        dynamo_prompt_id_column="prompt_id")
    if config.data.model == "demo":
        from dynamo_rl.demo.model import load_demo_model

        model, tokenizer = load_demo_model("cpu")
    else:
        from transformers import AutoTokenizer

        model = config.data.model
        tokenizer = AutoTokenizer.from_pretrained(model, padding_side="left")
        args.model_init_kwargs = {"dtype": "bfloat16" if config.run.dtype == "bfloat16" else "float32"}
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    trainer = DynaMOTrainer(model=model, reward_funcs=[math_verify_reward], args=args,
                            train_dataset=problems_to_dataset(load_train_problems(config)),
                            processing_class=tokenizer)
    checkpoint: str | bool | None = None
    if resume:
        checkpoint = resume if isinstance(resume, str) else True
        if checkpoint is True and not any(Path(config.run.output_dir).glob("checkpoint-*")):
            raise FileNotFoundError(f"--resume: no checkpoint-* in {config.run.output_dir}")
    trainer.train(resume_from_checkpoint=checkpoint)
    trainer.save_model(str(Path(config.run.output_dir) / "final"))
    return 0


train_with_trl = run_trl
"""Name used by ``dynamo_rl.train_cli`` (``--engine trl``)."""
