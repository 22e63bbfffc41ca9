"""Checks made before anything expensive (model weights, generation), for every engine: the output directory, the
device, the model source, the training data against the budget, prompt lengths against the model's context, and
what a resume continues from. Each failure is one :class:`PreflightError` naming the field, file or value.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from dynamo_rl.run.checkpoint import latest_checkpoint, list_checkpoints
from dynamo_rl.run.config import TrainConfig


class PreflightError(ValueError):
    """A run that cannot start as configured; the message names what to change."""


def check_output_dir(run_dir: Path) -> None:
    """The run directory can be created and written (a probe file is written and removed)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise PreflightError(f"invalid run.output_dir={str(run_dir)!r}: a file is there, expected a directory")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / f".write-test-{uuid.uuid4().hex}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise PreflightError(f"invalid run.output_dir={str(run_dir)!r}: cannot write there ({err.strerror})") from None


def check_resume(config: TrainConfig, resume: bool) -> int:
    """The step a run starts from: 0 for a fresh run (whose directory must not hold a run yet), else the newest
    checkpoint's step, which must be below ``run.steps``."""
    run_dir = Path(config.run.output_dir)
    if not resume:
        checkpoint = latest_checkpoint(run_dir)
        if checkpoint is not None:
            raise PreflightError(f"{run_dir} already holds a run (checkpoint {checkpoint.name}); continue it with "
                                 f"--resume {run_dir} or choose another --output")
        return 0
    found = list_checkpoints(run_dir)
    if not found:
        raise PreflightError(f"--resume {run_dir}: no complete checkpoint in {run_dir / 'checkpoints'}")
    step = found[-1][0]
    if config.run.steps <= step:
        raise PreflightError(f"--resume {run_dir}: the run is at step {step} already and run.steps={config.run.steps}; "
                             f"pass --run.steps N with N > {step} to train further")
    return step


def check_data(config: TrainConfig) -> int:
    """The training problems exist, are not empty, and fill a step (``rollout.prompts_per_step`` distinct prompts).
    Returns their number."""
    from dynamo_rl.run.loading import load_train_problems

    problems = load_train_problems(config)
    if not problems:
        raise PreflightError(f"invalid data.dataset={config.data.dataset!r}: no training problems")
    per_step = config.rollout.prompts_per_step
    if len(problems) < per_step:
        raise PreflightError(f"invalid rollout.prompts_per_step={per_step}: data.dataset has only {len(problems)} "
                             f"problem(s); a step needs {per_step} distinct prompts (lower prompts_per_step)")
    return len(problems)


def check_prompt_lengths(config: TrainConfig) -> None:
    """The longest prompt plus ``rollout.max_new_tokens`` fits the model's context (``max_position_embeddings``)."""
    from dynamo_rl.run.loading import context_length, load_eval_problems, load_tokenizer, load_train_problems

    limit = context_length(config)
    if limit is None:
        return
    budget = limit - config.rollout.max_new_tokens
    if budget < 1:
        raise PreflightError(f"invalid rollout.max_new_tokens={config.rollout.max_new_tokens}: the model's context "
                             f"is {limit} tokens")
    tokenizer = load_tokenizer(config)
    longest_token = max((len(token) for token in tokenizer.get_vocab()), default=1) or 1
    for name, problems in (("data.dataset", load_train_problems(config)), ("data.eval_dataset",
                                                                          load_eval_problems(config))):
        for problem in problems:
            text = problem.prompt or problem.problem
            if len(text) <= budget:  # no tokenizer makes more tokens than characters (+ specials, checked below)
                continue
            at_least = -(-len(text) // longest_token)  # no token is longer than the longest vocabulary entry
            length = at_least if at_least > budget else len(tokenizer(text, add_special_tokens=False)["input_ids"])
            if length > budget:
                raise PreflightError(
                    f"{name} row {problem.prompt_id!r}: the prompt has {'at least ' if at_least > budget else ''}{length} "
                    f"tokens ({len(text)} characters), but the model's context of "
                    f"{limit} leaves {budget} after rollout.max_new_tokens={config.rollout.max_new_tokens}; remove "
                    "or shorten the row, or lower rollout.max_new_tokens")


def check_run(config: TrainConfig, *, resume: bool) -> int:
    """Every preflight check; returns the step the run starts from."""
    from dynamo_rl.run.loading import model_source, resolve_device

    run_dir = Path(config.run.output_dir)
    check_output_dir(run_dir)
    start = check_resume(config, resume)
    resolve_device(config.run.device)
    model_source(config.data.model)
    check_data(config)
    check_prompt_lengths(config)
    if config.run.threads and config.run.threads > (os.cpu_count() or 1) * 4:
        raise PreflightError(f"invalid run.threads={config.run.threads}: this machine has {os.cpu_count()} CPUs")
    return start
