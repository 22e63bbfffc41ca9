"""A tqdm progress bar over training steps that shows the key metrics of the last step."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SHOWN = {"reward/mean": "reward", "eval/acc": "eval", "actor/entropy": "H", "actor/grad_norm": "|g|",
         "alloc/num_rollouts_max": "n_max", "time/step_s": "s/step"}
"""Metric key -> short label on the bar."""


class ProgressBar:
    """``update(record)`` advances one step; disabled bars do nothing (tests, ``run.progress=false``)."""

    def __init__(self, total: int, initial: int = 0, enabled: bool = True) -> None:
        self._bar = None
        self._eval = None
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, initial=initial, desc="train", unit="step", dynamic_ncols=True)

    def update(self, record: Mapping[str, Any]) -> None:
        if self._bar is None:
            return
        if record.get("eval/acc") is not None:
            self._eval = record["eval/acc"]
        shown = {label: record.get(key, self._eval if key == "eval/acc" else None) for key, label in SHOWN.items()}
        self._bar.set_postfix({k: f"{v:.3g}" for k, v in shown.items() if isinstance(v, (int, float))}, refresh=False)
        self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
