"""Checks made before anything expensive (model weights, generation), for every engine: the output directory, the
device, the model source, the training data against the budget, prompt lengths against the model's context, and
what a resume continues from. Each failure is one :class:`PreflightError` naming the field, file or value.
"""

from __future__ import annotations

import importlib.util
import os
import uuid
import warnings
from pathlib import Path

from dynamo_rl.run.checkpoint import folder_step, incomplete_checkpoints, latest_checkpoint, list_checkpoints
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
    for path in incomplete_checkpoints(run_dir):
        if (folder_step(path) or 0) > step:  # e.g. a torn state.json: say so rather than silently going back
            warnings.warn(f"ignoring checkpoint {path}: its state marker (state.json / dynamo_state.json) is missing "
                          f"or unreadable; resuming from {found[-1][1].name}", stacklevel=2)
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
    """Every prompt fits :func:`~dynamo_rl.run.loading.prompt_token_limit` (``data.max_prompt_tokens`` and the model's
    context minus ``rollout.max_new_tokens``), or is skipped and counted when ``data.skip_long_prompts`` is set; the
    training problems left must still fill a step. Linear in the text, never a hang (``dynamo_rl.data.limits``)."""
    import warnings

    from dynamo_rl.run.loading import (
        _train_problems,
        load_eval_problems,
        load_tokenizer,
        prompt_token_limit,
        within_prompt_limit,
    )

    limit, why = prompt_token_limit(config)
    if limit is None:
        return
    tokenizer = load_tokenizer(config)
    for name, problems in (("data.dataset", _train_problems(config)), ("data.eval_dataset",
                                                                      load_eval_problems(config))):
        try:
            kept, skipped = within_prompt_limit(config, problems, tokenizer, name)
        except ValueError as err:
            raise PreflightError(str(err)) from None
        if skipped:
            warnings.warn(f"{name}: {skipped} prompt(s) over the length limit ({why}) will be left out "
                          f"(data.skip_long_prompts); {len(kept)} remain", stacklevel=2)
        if name == "data.dataset" and len(kept) < config.rollout.prompts_per_step:
            raise PreflightError(f"invalid rollout.prompts_per_step={config.rollout.prompts_per_step}: only "
                                 f"{len(kept)} training prompt(s) fit the length limit ({why})")


OPTIONAL_PACKAGES = (("rollout.backend", "vllm", "vllm", "pip install 'dynamo-rl[vllm]' (needs a CUDA GPU), or "
                     "rollout.backend=hf"),
                     ("run.tensorboard", True, "tensorboard", "pip install tensorboard, or run.tensorboard=false"),
                     ("run.wandb", True, "wandb", "pip install wandb, or run.wandb=false"))
"""(field, value, package, what to do): a value that needs a package, checked before the model loads."""


def check_packages(config: TrainConfig) -> None:
    """Packages that the chosen options need are installed (instead of failing after the model has loaded)."""
    for key, value, package, remedy in OPTIONAL_PACKAGES:
        section, name = key.split(".")
        if getattr(getattr(config, section), name) == value and importlib.util.find_spec(package) is None:
            raise PreflightError(f"invalid {key}={value!r}: the {package} package is not installed ({remedy})")


def check_workers(config: TrainConfig) -> None:
    """Thread and verifier-process counts a machine can hold (a thousand processes never finish starting)."""
    cpus = os.cpu_count() or 1
    for key, value in (("run.threads", config.run.threads), ("run.num_verifier_workers",
                                                             config.run.num_verifier_workers)):
        if value and value > cpus * 4:
            raise PreflightError(f"invalid {key}={value}: this machine has {cpus} CPUs (at most {cpus * 4})")


def check_run(config: TrainConfig, *, resume: bool) -> int:
    """Every preflight check; returns the step the run starts from."""
    from dynamo_rl.run.loading import model_source, resolve_device

    run_dir = Path(config.run.output_dir)
    check_output_dir(run_dir)
    start = check_resume(config, resume)
    resolve_device(config.run.device)
    check_workers(config)
    check_packages(config)
    model_source(config.data.model)
    check_data(config)
    check_prompt_lengths(config)
    return start
