"""The run directory and its checkpoints, the same for every engine.

``RUN_DIR/`` holds ``config.yaml`` (what ran, :func:`dynamo_rl.run.config_files.config_yaml`), ``metrics.jsonl``
(:mod:`dynamo_rl.run.metrics`), ``plots/`` and ``checkpoints/``. Every checkpoint folder is a Hugging Face model
folder (``config.json``, ``model.safetensors``, tokenizer files), so ``AutoModelForCausalLM.from_pretrained``,
``AutoTokenizer.from_pretrained`` and ``dynamo-rl eval --model`` load it, plus the allocator state
(``allocator_state.json``, :mod:`dynamo_rl.run.allocator`) and the engine's own resume state:

* built-in trainer, ``checkpoints/step_000010/``: ``optimizer.pt``, ``scheduler.pt``, ``rng.pt``, ``config.yaml``
  and ``state.json`` (``{"step": 10}``), written last. The folder is written under a temporary name, every file
  fsynced, then renamed into place, so a kill at any moment leaves the previous checkpoints intact;
* TRL, ``checkpoints/checkpoint-<optimizer step>/``: TRL's own files, then ``dynamo_state.json`` (``{"step": ...}``
  in training steps), written last by the adapter.

A folder without its last-written marker is incomplete and ignored. :func:`restore_latest` falls back to the newest
intact checkpoint, with a warning, when the latest one cannot be read.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dynamo_rl.run.atomic import atomic_write_text, fsync_dir, fsync_file

CHECKPOINTS = "checkpoints"
LATEST = "latest"
STEP_PREFIX = "step_"
BUILTIN_MARKER = "state.json"
TRL_MARKER = "dynamo_state.json"
_NAME = re.compile(r"^(?:step_(\d+)|checkpoint-(\d+))$")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read (missing or corrupt file); the message names the folder and file."""


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_pretrained(model: torch.nn.Module, tokenizer: Any, directory: Path) -> None:
    """The Hugging Face part of a checkpoint: weights, model config and tokenizer."""
    model.save_pretrained(str(directory), safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(str(directory))


def save_checkpoint(run_dir: str | Path, step: int, *, model: torch.nn.Module, tokenizer: Any,
                    optimizer: torch.optim.Optimizer, scheduler: Any, allocator: Any, config_yaml: str,
                    keep: int = 2, extra: dict[str, Any] | None = None) -> Path:
    """Write the built-in trainer's checkpoint of ``step`` atomically and return its folder."""
    root = Path(run_dir) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    name = f"{STEP_PREFIX}{step:06d}"
    tmp = root / f".tmp-{name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_pretrained(model, tokenizer, tmp)
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    torch.save(rng_state(), tmp / "rng.pt")
    allocator.save(tmp)
    (tmp / "config.yaml").write_text(config_yaml, encoding="utf-8")
    (tmp / BUILTIN_MARKER).write_text(json.dumps({"step": step, **(extra or {})}), encoding="utf-8")
    for path in tmp.iterdir():
        if path.is_file():
            fsync_file(path)
    fsync_dir(tmp)
    final = root / name
    if final.exists():  # re-writing the same step after a resume
        shutil.rmtree(final)
    os.replace(tmp, final)
    fsync_dir(root)
    atomic_write_text(root / LATEST, name + "\n")
    _prune(root, keep)
    return final


def _prune(root: Path, keep: int) -> None:
    steps = [path for _, path in list_checkpoints(root.parent)]
    for path in steps[:-keep]:
        shutil.rmtree(path, ignore_errors=True)
    for path in root.iterdir():
        if path.name.startswith(".tmp-") and not path.name.endswith(f"-{os.getpid()}"):
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


def checkpoint_step(path: Path) -> int | None:
    """The training step of a complete checkpoint folder (from its marker), or None if it is incomplete."""
    for marker in (BUILTIN_MARKER, TRL_MARKER):
        file = path / marker
        if file.is_file():
            try:
                return int(json.loads(file.read_text(encoding="utf-8"))["step"])
            except (ValueError, KeyError, TypeError, OSError):
                return None
    return None


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """``(step, folder)`` of every complete checkpoint of a run, oldest first (built-in and TRL folders alike)."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        if path.is_dir() and _NAME.match(path.name):
            step = checkpoint_step(path)
            if step is not None:
                found.append((step, path))
    return sorted(found)


def incomplete_checkpoints(run_dir: str | Path) -> list[Path]:
    """Checkpoint folders of a run (by name) without a readable marker: a write that never finished or a torn
    ``state.json`` / ``dynamo_state.json``. :func:`list_checkpoints` skips them."""
    root = Path(run_dir) / CHECKPOINTS
    if not root.is_dir():
        return []
    return sorted(path for path in root.iterdir()
                  if path.is_dir() and _NAME.match(path.name) and checkpoint_step(path) is None)


def folder_step(path: Path) -> int | None:
    """The step in a checkpoint folder's name (``step_000010`` -> 10, ``checkpoint-8`` -> 8), or None."""
    match = _NAME.match(path.name)
    return int(match.group(1) or match.group(2)) if match else None


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint folder of a run, or None."""
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


def load_weights(model: torch.nn.Module, directory: Path) -> None:
    """Load ``model.safetensors`` of ``directory`` into ``model`` in place (tied weights may be absent)."""
    from safetensors.torch import load_file

    file = directory / "model.safetensors"
    if not file.is_file():
        raise CheckpointError(f"checkpoint {directory}: model.safetensors is missing")
    device = next(model.parameters()).device
    try:
        state = load_file(str(file), device=str(device))
    except Exception as err:  # safetensors raises its own error types for torn files
        raise CheckpointError(f"checkpoint {directory}: model.safetensors cannot be read ({type(err).__name__})") \
            from None
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = {name for name in missing if name.endswith("lm_head.weight") and getattr(model.config, "tie_word_embeddings",
                                                                                    False)}
    if unexpected or set(missing) - tied:
        raise CheckpointError(f"checkpoint {directory}: weights do not match the model (missing "
                              f"{sorted(set(missing) - tied)[:3]}, unexpected {sorted(unexpected)[:3]})")
    if tied and hasattr(model, "tie_weights"):
        model.tie_weights()


def _torch_load(path: Path, **kwargs: Any) -> Any:
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path.parent}: {path.name} is missing")
    try:
        return torch.load(path, weights_only=False, **kwargs)
    except Exception as err:  # pickle / zip errors of a torn file
        raise CheckpointError(f"checkpoint {path.parent}: {path.name} cannot be read ({type(err).__name__})") from None


@dataclass
class LoadedCheckpoint:
    step: int
    path: Path
    extra: dict[str, Any]


def load_checkpoint(path: str | Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                    allocator: Any, restore_rng: bool = True) -> LoadedCheckpoint:
    """Restore model, optimiser, scheduler, allocator and RNG states in place from a built-in checkpoint. Reads every
    file before changing anything that a failed read would leave half-restored (the model is re-loaded by the
    fallback)."""
    path = Path(path)
    try:
        state = json.loads((path / BUILTIN_MARKER).read_text(encoding="utf-8"))
        step = int(state.pop("step"))
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"checkpoint {path}: {BUILTIN_MARKER} cannot be read ({type(err).__name__})") from None
    device = next(model.parameters()).device
    optimizer_state = _torch_load(path / "optimizer.pt", map_location=device)
    scheduler_state = _torch_load(path / "scheduler.pt")
    rng = _torch_load(path / "rng.pt") if restore_rng else None
    from dynamo_rl.run.allocator import AllocatorStateError, find_state_file, read_state_file

    state_file = find_state_file(path)
    if state_file is None:
        raise CheckpointError(f"checkpoint {path}: allocator_state.json is missing")
    try:
        allocator_state = read_state_file(state_file)
    except AllocatorStateError as err:
        raise CheckpointError(str(err)) from None
    load_weights(model, path)
    for name, target, value in (("optimizer.pt", optimizer, optimizer_state), ("scheduler.pt", scheduler,
                                                                               scheduler_state)):
        try:
            target.load_state_dict(value)
        except (ValueError, KeyError, TypeError, IndexError, RuntimeError) as err:  # a readable file of another run
            raise CheckpointError(f"checkpoint {path}: {name} does not fit this run ({type(err).__name__}: "
                                  f"{_short(err)})") from None
    try:
        allocator.load_state_dict(allocator_state, source=str(state_file))
    except AllocatorStateError as err:
        raise CheckpointError(str(err)) from None
    except (KeyError, TypeError, ValueError) as err:  # a JSON object with the right header but broken content
        raise CheckpointError(f"checkpoint {path}: {state_file.name} is not a valid allocator state "
                              f"({type(err).__name__}: {_short(err)})") from None
    if rng is not None:
        try:
            set_rng_state(rng)
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise CheckpointError(f"checkpoint {path}: rng.pt is not a random-number state ({type(err).__name__})") \
                from None
    return LoadedCheckpoint(step=step, path=path, extra=state)


def _short(err: BaseException) -> str:
    return " ".join(str(err).split())[:160]


def restore_latest(run_dir: str | Path, load: Callable[[Path], LoadedCheckpoint]) -> LoadedCheckpoint | None:
    """Load the newest checkpoint with ``load(path)``; when it is corrupt, warn and fall back to the next newest.
    Returns None when the run has no checkpoint; raises :class:`CheckpointError` when none of them can be read."""
    found = list_checkpoints(run_dir)
    errors = []
    for _, path in reversed(found):
        try:
            loaded = load(path)
        except CheckpointError as err:
            errors.append(str(err))
            continue
        for error in errors:  # warned only once a fallback loaded; when none does, the one error says it all
            warnings.warn(f"{error}; resuming from the older checkpoint {path.name} instead", stacklevel=2)
        return loaded
    if errors:
        raise CheckpointError(f"no readable checkpoint in {Path(run_dir) / CHECKPOINTS} ({len(errors)} tried): "
                              + "; ".join(errors))
    return None
