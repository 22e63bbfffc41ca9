"""The small built-in trainer: plumbing around :mod:`dynamo_rl.core` (see ``docs/training.md``).

``train(config)`` (:mod:`dynamo_rl.trainer.loop`) runs a :class:`TrainConfig` (:mod:`dynamo_rl.run.config`).
Heavy modules (transformers, the loop) are imported only when used.
"""

from __future__ import annotations

from typing import Any

from dynamo_rl.run.config import TrainConfig, load_config

__all__ = ["TrainConfig", "load_config", "train"]


def __getattr__(name: str) -> Any:
    if name == "train":
        from dynamo_rl.trainer.loop import train

        return train
    raise AttributeError(f"module 'dynamo_rl.trainer' has no attribute {name!r}")
