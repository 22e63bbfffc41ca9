"""The built-in training loop: one readable function, :func:`train`, that runs DynaMO (or GRPO, a baseline, an
ablation) on one machine. Read it top to bottom; each phase has a banner. The method math is in
:mod:`dynamo_rl.core` and :mod:`dynamo_rl.trainer.objective`; the policy update is :mod:`dynamo_rl.trainer.update`.

Determinism: prompt order, generation seeds, mini-batch shuffles and Clip-Cov's selection are all derived from
``(run.seed, step)``, so a run resumed from a checkpoint (model, optimiser, scheduler, success history, RNG states)
continues exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dynamo_rl.core.advantages import compute_advantages
from dynamo_rl.data.types import Problem
from dynamo_rl.rewards.runner import verify_all
from dynamo_rl.rollout.types import SamplingParams
from dynamo_rl.run import metric_names as K
from dynamo_rl.run.allocator import RolloutAllocator
from dynamo_rl.run.atomic import atomic_write_text
from dynamo_rl.run.checkpoint import load_checkpoint, restore_latest, save_checkpoint
from dynamo_rl.run.config import TrainConfig, config_to_dict
from dynamo_rl.run.config_files import config_yaml
from dynamo_rl.run.metrics import MetricsLogger, reward_metrics
from dynamo_rl.trainer import sampling
from dynamo_rl.trainer.batch import RolloutBatch
from dynamo_rl.trainer.update import update_policy


@dataclass
class TrainResult:
    """What :func:`train` returns: the run directory, the last step and every logged record."""

    run_dir: Path
    step: int
    records: list[dict[str, Any]] = field(default_factory=list)
    allocator: RolloutAllocator | None = None


def sample_prompts(problems: list[Problem], count: int, *, seed: int, step: int) -> list[Problem]:
    """The ``count`` prompts of ``step`` (1-based): consecutive slices of a per-epoch permutation seeded by
    ``(seed, epoch)``, so every problem is seen once per epoch and the choice depends only on (seed, step)."""
    per_epoch = max(len(problems) // count, 1)
    epoch, slot = divmod(step - 1, per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(len(problems))
    return [problems[i] for i in order[slot * count:(slot + 1) * count]]


def evaluate(backend: Any, verifier: Any, problems: list[Problem], config: TrainConfig, *, step: int) -> dict[str, Any]:
    """Held-out accuracy (avg@n over ``rollout.eval_samples``), overall and per difficulty level."""
    start = time.perf_counter()
    params = SamplingParams(temperature=config.rollout.eval_temperature, top_p=config.rollout.top_p,
                            top_k=config.rollout.top_k, max_new_tokens=config.rollout.max_new_tokens,
                            seed=config.run.seed * 1_000_003 + 999_983)
    counts = [config.rollout.eval_samples] * len(problems)
    completions = backend.generate([p.prompt or p.problem for p in problems], counts, params)
    batch = RolloutBatch.from_completions(problems, counts, completions)
    correct = np.array([v.correct for v in verify_all(verifier, batch.texts, batch.answers)], dtype=float)
    out: dict[str, Any] = {K.EVAL_ACCURACY: float(correct.mean())}
    for level in sorted({lv for lv in batch.levels if lv is not None}, key=str):
        out[K.EVAL_LEVEL_ACCURACY.format(level)] = float(correct[[lv == level for lv in batch.levels]].mean())
    out[K.EVAL_TIME] = time.perf_counter() - start
    return out


def _restore(config: TrainConfig, resume: bool, *, model: Any, optimizer: Any, scheduler: Any,
             allocator: RolloutAllocator) -> int:
    """The step the run starts from (:func:`dynamo_rl.run.preflight.check_resume`: a fresh run refuses a directory
    that already holds a run), after loading the newest readable checkpoint when resuming."""
    if not resume:
        from dynamo_rl.run.preflight import check_resume

        return check_resume(config, resume=False)
    run_dir = Path(config.run.output_dir)
    loaded = restore_latest(run_dir, lambda path: load_checkpoint(path, model=model, optimizer=optimizer,
                                                                   scheduler=scheduler, allocator=allocator))
    if loaded is None:
        raise FileNotFoundError(f"--resume {run_dir}: no checkpoint in {run_dir / 'checkpoints'}")
    return loaded.step


def train(config: TrainConfig, *, model: Any = None, tokenizer: Any = None, problems: list[Problem] | None = None,
          eval_problems: list[Problem] | None = None, backend: Any = None, verifier: Any = None,
          resume: bool = False) -> TrainResult:
    """Run ``config.run.steps`` training steps and return the logged records. Any part left as None is built from the
    config (:mod:`dynamo_rl.trainer.setup`); ``resume=True`` continues from the run directory's last checkpoint."""
    from dynamo_rl.run import loading
    from dynamo_rl.trainer import setup
    from dynamo_rl.trainer.progress import ProgressBar

    # ---------------------------------------------------------------- setup: policy, data, backend, verifier, state
    if config.run.threads:
        torch.set_num_threads(config.run.threads)
    torch.manual_seed(config.run.seed)
    if model is None:
        model, tokenizer = loading.load_policy(config)
    problems = loading.load_train_problems(config, tokenizer) if problems is None else problems
    if eval_problems is None:
        eval_problems, _ = loading.within_prompt_limit(config, loading.load_eval_problems(config), tokenizer,
                                                       "data.eval_dataset")
    backend = setup.make_rollout_backend(config, model, tokenizer) if backend is None else backend
    owns_verifier = verifier is None
    verifier = setup.make_verifier(config) if verifier is None else verifier
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    optimizer, scheduler = setup.make_optimizer(config, model)
    allocator = RolloutAllocator(config.method.allocation)
    run_dir = Path(config.run.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    text = config_yaml(config)
    start_step = _restore(config, resume, model=model, optimizer=optimizer, scheduler=scheduler, allocator=allocator)
    atomic_write_text(run_dir / "config.yaml", text)
    logger = MetricsLogger(run_dir, tensorboard=config.run.tensorboard, wandb=config.run.wandb,
                             wandb_project=config.run.wandb_project, config=config_to_dict(config),
                             resume_step=start_step if resume else None)
    records: list[dict[str, Any]] = []
    bar = ProgressBar(total=config.run.steps, initial=start_step, enabled=config.run.progress)
    if start_step == 0 and config.run.eval_every and eval_problems:
        records.append(logger.log(0, evaluate(backend, verifier, eval_problems, config, step=0)))

    try:
        for step in range(start_step + 1, config.run.steps + 1):
            t0 = time.perf_counter()
            # ------------------------------------------------ 1. sample prompts, 2. allocate n_i from the history
            prompts = sample_prompts(problems, config.rollout.prompts_per_step, seed=config.run.seed, step=step)
            prompt_ids = [p.prompt_id for p in prompts]
            allocation = allocator.allocate(prompt_ids)
            num_rollouts = allocation.num_rollouts

            # ------------------------------------------------ 3. generate n_i responses per prompt, 4. verify each
            #                                                    against ITS prompt's answer (or a multi-round sampler)
            if config.rollout.sampler == "none":
                got = sampling.one_shot(backend, verifier, prompts, num_rollouts, config, step)
            else:
                got = sampling.multi_round(backend, verifier, prompts, problems, config, step)
            batch, verdicts = got.batch, got.batch.verdicts
            num_rollouts, correct_per_prompt = batch.num_rollouts, batch.correct_per_prompt()
            t_verify = time.perf_counter()
            t_generate = t_verify - got.verify_s

            # ------------------------------------------------ 5. update the success history (c_i += #correct, n_i)
            allocator.update(got.history_ids, got.history_correct, got.history_generated)

            # ------------------------------------------------ 6. ragged group advantages (groups of size n_i)
            loss_cfg = config.method.loss
            advantages = compute_advantages(loss_cfg.advantage_estimator, batch.rewards, batch.group_ids,
                                            **loss_cfg.advantage_kwargs())

            # ------------------------------------------------ 7. policy update: mini-batches × PPO epochs, AdamW
            update_metrics = update_policy(model, optimizer, scheduler, batch, advantages, config, step=step,
                                           pad_id=pad_id) if batch.size else {}
            if hasattr(backend, "sync_weights"):
                backend.sync_weights(model)  # vLLM: push the new weights to the engine
            t_update = time.perf_counter()

            # ------------------------------------------------ 8. log, evaluate, checkpoint
            lengths = np.array([len(c.token_ids) for c in batch.completions] or [0])
            levels = [p.meta.get("level") for p in prompts]
            row = {
                **(reward_metrics(batch.rewards.numpy(), np.array([v.correct for v in verdicts], dtype=float),
                                  [v.status for v in verdicts], batch.levels, num_rollouts, correct_per_prompt)
                   if batch.size else {}),
                **(allocator.metrics(allocation, levels) if config.rollout.sampler == "none" else {
                    K.HISTORY_PROMPTS: len(allocator.history), K.ALLOC_NUM_ROLLOUTS: [int(n) for n in num_rollouts],
                    K.ALLOC_BUDGET: int(got.metrics["sampler/generated"])}),
                **got.metrics,
                **update_metrics,
                K.RESPONSE_TOKENS: int(lengths.sum()), K.RESPONSE_LENGTH: float(lengths.mean()),
                K.TRUNCATED: float(np.mean([c.finish_reason == "length" for c in batch.completions] or [0.0])),
                K.GENERATE_TIME: t_generate - t0, K.VERIFY_TIME: t_verify - t_generate, K.UPDATE_TIME: t_update - t_verify,
            }
            last = step == config.run.steps
            if eval_problems and config.run.eval_every and (step % config.run.eval_every == 0 or last):
                row.update(evaluate(backend, verifier, eval_problems, config, step=step))
            row[K.STEP_TIME] = time.perf_counter() - t0
            records.append(logger.log(step, row))
            bar.update(records[-1])
            if last or (config.run.checkpoint_every and step % config.run.checkpoint_every == 0):
                save_checkpoint(run_dir, step, model=model, tokenizer=tokenizer, optimizer=optimizer,
                                scheduler=scheduler, allocator=allocator, config_yaml=text,
                                keep=config.run.keep_checkpoints)
    finally:
        bar.close()
        logger.close()
        if owns_verifier and hasattr(verifier, "close"):
            verifier.close()
    if config.run.plots:
        from dynamo_rl.run.plots import write_plots
        write_plots(run_dir)
    return TrainResult(run_dir=run_dir, step=config.run.steps, records=records, allocator=allocator)
