"""Atomic checkpoints of a training run: everything needed to continue exactly.

Layout of ``RUN_DIR/checkpoints/step_000010/``::

    model.safetensors   policy weights (safetensors ``save_model``: tied weights handled)
    optimizer.pt        AdamW state
    scheduler.pt        learning-rate scheduler state
    rng.pt              python / numpy / torch (and CUDA) RNG states
    history.json        SuccessHistory.state_dict()
    config.yaml         the fully resolved TrainConfig
    state.json          {"step": ...} (written last inside the temp dir)

A checkpoint is written into ``checkpoints/.tmp-step_000010-<pid>``, every file fsynced, then the directory is
renamed into place with ``os.replace`` and ``checkpoints/latest`` (a one-line file naming it) is replaced atomically.
A crash at any point leaves the previous checkpoint and ``latest`` untouched; leftover temp dirs are ignored and
removed by the next successful write. Only the ``keep`` most recent checkpoints are kept.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

LATEST = "latest"
STEP_PREFIX = "step_"


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # directories cannot be opened on some platforms (Windows)
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


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


def save_checkpoint(run_dir: str | Path, step: int, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any, history_state: dict[str, Any], config_yaml: str, keep: int = 2,
                    extra: dict[str, Any] | None = None) -> Path:
    """Write the checkpoint of ``step`` atomically and return its directory."""
    from safetensors.torch import save_model

    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    name = f"{STEP_PREFIX}{step:06d}"
    tmp = root / f".tmp-{name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_model(model, str(tmp / "model.safetensors"))
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    torch.save(rng_state(), tmp / "rng.pt")
    (tmp / "history.json").write_text(json.dumps(history_state), encoding="utf-8")
    (tmp / "config.yaml").write_text(config_yaml, encoding="utf-8")
    (tmp / "state.json").write_text(json.dumps({"step": step, **(extra or {})}), encoding="utf-8")
    for path in tmp.iterdir():
        _fsync_file(path)
    _fsync_dir(tmp)
    final = root / name
    if final.exists():  # re-writing the same step after a resume: move the old one aside first
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(root)
    _atomic_write_text(root / LATEST, name + "\n")
    _prune(root, keep)
    return final


def _prune(root: Path, keep: int) -> None:
    latest = (root / LATEST).read_text(encoding="utf-8").strip()
    steps = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(STEP_PREFIX))
    for path in steps[:-keep]:
        if path.name != latest:
            shutil.rmtree(path, ignore_errors=True)
    for path in root.iterdir():
        if path.name.startswith(".tmp-") and not path.name.endswith(f"-{os.getpid()}"):
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The last complete checkpoint of a run directory, or None."""
    root = Path(run_dir) / "checkpoints"
    pointer = root / LATEST
    if not pointer.exists():
        return None
    path = root / pointer.read_text(encoding="utf-8").strip()
    if not (path / "state.json").exists():
        raise FileNotFoundError(f"checkpoint pointer {pointer} names {path.name}, which is incomplete or missing")
    return path


@dataclass
class LoadedCheckpoint:
    step: int
    history_state: dict[str, Any]
    path: Path
    extra: dict[str, Any]


def load_checkpoint(path: str | Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any, restore_rng: bool = True) -> LoadedCheckpoint:
    """Restore model, optimiser, scheduler and RNG states in place; return the step and the history state."""
    from safetensors.torch import load_model

    path = Path(path)
    device = next(model.parameters()).device
    load_model(model, str(path / "model.safetensors"), device=str(device))
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location=device, weights_only=False))
    scheduler.load_state_dict(torch.load(path / "scheduler.pt", weights_only=False))
    if restore_rng:
        set_rng_state(torch.load(path / "rng.pt", weights_only=False))
    state = json.loads((path / "state.json").read_text(encoding="utf-8"))
    history = json.loads((path / "history.json").read_text(encoding="utf-8"))
    step = int(state.pop("step"))
    return LoadedCheckpoint(step=step, history_state=history, path=path, extra=state)
