"""What every engine needs before training, built from a :class:`~dynamo_rl.run.config.TrainConfig`: the device, the
policy and its tokenizer, the training and held-out problems. Used by the built-in trainer and the TRL adapter alike.

The policy is ``data.model``: ``demo`` (the tiny model shipped in the package), a local folder (any
``from_pretrained`` folder, e.g. a dynamo-rl checkpoint) or a hub id. A local-looking path that does not exist is
reported at once, never sent to the hub; a hub id that is neither cached nor reachable fails within seconds.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from dynamo_rl.data.types import Problem
from dynamo_rl.run.config import TrainConfig


class ModelSourceError(ValueError):
    """``data.model`` names nothing that can be loaded; the message says what was tried."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("invalid run.device='cuda': CUDA is not available on this machine (use cpu or auto)")
    return torch.device(name)


def looks_local(source: str) -> bool:
    """A path rather than a hub id: starts with ``/``, ``.`` or ``~``, or has more than one ``/``."""
    return source.startswith(("/", ".", "~")) or source.count("/") > 1 or os.sep in source and os.sep != "/"


def model_source(source: str) -> str:
    """``demo``, an existing local folder, or a hub id that is cached or reachable; else :class:`ModelSourceError`.

    Hub ids are checked with a 5-second timeout (``HF_HUB_OFFLINE=1`` allows only cached ones)."""
    if source == "demo":
        return source
    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelSourceError(f"invalid data.model={source!r}: a file, expected a model folder (with "
                                   "config.json), a hub id or 'demo'")
        if not (path / "config.json").is_file():
            raise ModelSourceError(f"invalid data.model={source!r}: the folder has no config.json (not a "
                                   "from_pretrained model folder)")
        return str(path)
    if looks_local(source):
        raise ModelSourceError(f"invalid data.model={source!r}: no such folder")
    return _check_hub(source)


def _check_hub(repo_id: str) -> str:
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # an id the hub client rejects (bad characters)
        raise ModelSourceError(f"invalid data.model={repo_id!r}: neither a local folder nor a valid hub id") from None
    if isinstance(cached, str):
        return repo_id
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes"):
        raise ModelSourceError(f"invalid data.model={repo_id!r}: not a local folder and not in the hub cache "
                               "(HF_HUB_OFFLINE is set)")
    from huggingface_hub import HfApi

    try:
        HfApi().model_info(repo_id, timeout=5)
    except Exception as err:
        raise ModelSourceError(f"invalid data.model={repo_id!r}: not a local folder, not in the hub cache, and the "
                               f"hub did not answer ({type(err).__name__})") from None
    return repo_id


def load_tokenizer(config: TrainConfig) -> Any:
    """The policy's tokenizer alone (left padding, a pad token), without loading the weights."""
    source = model_source(config.data.model)
    if source == "demo":
        from dynamo_rl.demo.model import DEMO_ASSETS

        source = str(DEMO_ASSETS)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def context_length(config: TrainConfig) -> int | None:
    """The policy's maximum sequence length (``max_position_embeddings`` of its config), if it has one."""
    source = model_source(config.data.model)
    if source == "demo":
        from dynamo_rl.demo.model import DEMO_ASSETS

        source = str(DEMO_ASSETS)
    from transformers import AutoConfig

    value = getattr(AutoConfig.from_pretrained(source), "max_position_embeddings", None)
    return int(value) if isinstance(value, int) else None


def load_policy(config: TrainConfig) -> tuple[Any, Any]:
    """``(model, tokenizer)`` of ``data.model`` in eval mode (no dropout: the sampling policy and the differentiated
    policy must be the same function)."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own progress bar shows the run; no per-load bars
    device = resolve_device(config.run.device)
    source = model_source(config.data.model)
    if source == "demo":
        from dynamo_rl.demo.model import DEMO_ASSETS

        source = str(DEMO_ASSETS)
    dtype = torch.bfloat16 if config.run.dtype == "bfloat16" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype).to(device)
    model.eval()
    return model, load_tokenizer(config)


def _load_source(source: str, template: str | None, limit: int | None) -> list[Problem]:
    """A benchmark short name (``math500``, ``dapo17k``, ...: the local file under ``$DYNAMO_RL_DATA_DIR`` when set,
    else the hub), a local file or a hub id."""
    from dynamo_rl.data.benchmarks import BENCHMARKS, load_benchmark
    from dynamo_rl.data.loading import load_problems

    kwargs = {"template": template} if template else {}
    if source in BENCHMARKS:
        return list(load_benchmark(source, limit=limit, **kwargs))
    return list(load_problems(source, limit=limit, **kwargs))


def prompt_token_limit(config: TrainConfig) -> tuple[int | None, str]:
    """The longest allowed prompt in tokens and where the limit comes from: ``data.max_prompt_tokens`` and/or the
    model's context minus ``rollout.max_new_tokens`` (the smaller wins); ``(None, "")`` when neither applies."""
    limits = []
    if config.data.max_prompt_tokens is not None:
        limits.append((config.data.max_prompt_tokens, f"data.max_prompt_tokens={config.data.max_prompt_tokens}"))
    context = context_length(config)
    if context is not None:
        limits.append((context - config.rollout.max_new_tokens, f"the model's context of {context} leaves "
                       f"{context - config.rollout.max_new_tokens} after rollout.max_new_tokens="
                       f"{config.rollout.max_new_tokens}"))
    return min(limits) if limits else (None, "")


def within_prompt_limit(config: TrainConfig, problems: list[Problem], tokenizer: Any,
                        field_name: str) -> tuple[list[Problem], int]:
    """``(kept problems, number skipped)``: prompts over :func:`prompt_token_limit` are refused (``ValueError``
    naming ``field_name``, the row and both lengths) or, with ``data.skip_long_prompts``, left out and counted."""
    from dynamo_rl.data.limits import check_prompt_lengths

    limit, why = prompt_token_limit(config)
    if limit is None:
        return problems, 0
    if limit < 1:
        raise ValueError(f"invalid rollout.max_new_tokens={config.rollout.max_new_tokens}: {why}")
    try:
        return check_prompt_lengths(problems, tokenizer, limit, skip=config.data.skip_long_prompts)
    except ValueError as err:
        import re

        found = re.match(r"(row .+?: the prompt has .+? tokens \(\d+ characters\))", str(err))
        if found is None:
            raise
        raise ValueError(f"{field_name} {found.group(1)}, but {why}; remove or shorten the row, lower "
                         "rollout.max_new_tokens, or set data.skip_long_prompts=true") from None


def load_train_problems(config: TrainConfig, tokenizer: Any = None) -> list[Problem]:
    """The training problems; with ``tokenizer``, prompts over the length limit are refused or skipped (counted in
    a warning) as :func:`within_prompt_limit` says."""
    problems = _train_problems(config)
    if tokenizer is not None:
        problems, skipped = within_prompt_limit(config, problems, tokenizer, "data.dataset")
        if skipped:
            import warnings

            warnings.warn(f"data.skip_long_prompts: left out {skipped} training prompt(s) over the length limit "
                          f"({prompt_token_limit(config)[1]}); {len(problems)} remain", stacklevel=2)
    return problems


def _train_problems(config: TrainConfig) -> list[Problem]:
    data = config.data
    if data.dataset == "demo":
        from dynamo_rl.demo.task import make_problems

        problems = make_problems("train", data.demo_train_per_level, seed=config.run.seed)
    else:
        problems = _load_source(data.dataset, data.template, data.max_problems)
    return list(problems[:data.max_problems] if data.max_problems else problems)


def load_eval_problems(config: TrainConfig) -> list[Problem]:
    data = config.data
    if data.eval_dataset is None and data.dataset != "demo":
        return []
    if data.eval_dataset in (None, "demo"):
        from dynamo_rl.demo.task import make_problems

        return make_problems("test", data.demo_eval_per_level, seed=config.run.seed)
    return _load_source(data.eval_dataset, data.template, None)
