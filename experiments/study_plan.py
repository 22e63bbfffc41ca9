"""What the study runs: run specifications (method, preset, task family, seed, overrides) and the sizes of a run.

Every run of one study uses the same :class:`Sizes`, so all methods spend the same total rollout budget
(``steps × prompts_per_step × mean_rollouts``); DynaMO only redistributes it between prompts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

MAIN_METHODS = ("grpo", "dynamo", "dynamo_theory", "no_dra", "no_gc", "no_ums", "no_gc_ums")
"""Rows with ≥ 5 seeds in the full study: GRPO, DynaMO (official and theory presets) and the ablations."""
BASELINE_METHODS = ("clip_higher", "entropy_loss", "fork_tokens", "entropy_adv", "clip_cov", "kl_cov", "w_reinforce")
"""The other baselines (≥ 3 seeds)."""
FAMILY2_METHODS = ("grpo", "dynamo")
"""Methods run on the held-back second task family (``modmath``)."""
ALPHAS = (0.1, 0.2, 0.4, 0.6)
"""Unified modulation strength α of the sensitivity sweep (paper Fig. 3; μ_max = 1 + α, λ_min = 1 − α, τ = 0.9)."""

LABELS = {
    "grpo": "GRPO", "dynamo": "DynaMO (official)", "dynamo_theory": "DynaMO (theory)", "no_dra": "− DRA",
    "no_gc": "− GC", "no_ums": "− UMS", "no_gc_ums": "− GC & UMS", "clip_higher": "Clip-Higher",
    "entropy_loss": "Entropy Loss", "fork_tokens": "Fork Tokens", "entropy_adv": "Entropy Adv.", "clip_cov": "Clip-Cov",
    "kl_cov": "KL-Cov", "w_reinforce": "W-REINFORCE",
}
"""Display names of the rows (paper Tables 1–2 naming); α-sweep rows are labelled ``alpha=0.2`` etc."""


@dataclass(frozen=True)
class Sizes:
    """How big one training run is (identical for every method of a study)."""

    steps: int = 30
    prompts_per_step: int = 8
    mean_rollouts: int = 8
    n_min: int = 4
    n_max: int = 16
    mini_batch_prompts: int = 4
    """Prompts per PPO mini-batch: 2 optimiser steps per rollout batch, so that ratios leave 1 and clipping acts."""
    lr: float = 1e-4
    warmup_steps: int = 3
    max_new_tokens: int = 16
    train_per_level: int = 8
    """Training problems per level: few (40 in all), so each prompt is revisited every 5 steps and DRA has a
    history from the second epoch on."""
    eval_per_level: int = 32
    eval_every: int = 5
    eval_samples: int = 2
    """Samples per held-out problem at T = 1 for the learning curves (avg@n)."""
    final_samples: int = 16
    """Samples per held-out problem at T = 1 for the final pass@1 (avg@n) and pass@k."""
    final_ks: tuple[int, ...] = (1, 4, 16)
    eval_train_pool: int = 1
    """1: also evaluate the training pool (curve and final), the RL objective itself; 0: held-out only."""
    eval_seed: int = 0
    """Seed of the held-out problem set, fixed across runs so that every method is scored on the same problems."""
    pretrain_steps: int = 0
    """Warm-start steps of the second family's model (``dynamo-rl pretrain-demo --family modmath``); 0 = as many as
    the shipped demo model had (its ``demo_card.json``)."""

    @property
    def budget_per_step(self) -> int:
        return self.prompts_per_step * self.mean_rollouts

    @property
    def total_rollouts(self) -> int:
        return self.steps * self.budget_per_step


QUICK_SIZES = Sizes(steps=6, prompts_per_step=4, mean_rollouts=8, mini_batch_prompts=2, train_per_level=4,
                    eval_per_level=8, eval_every=3, eval_samples=1, final_samples=4, final_ks=(1, 4), pretrain_steps=10)


@dataclass(frozen=True)
class RunSpec:
    """One training run of the study."""

    group: str
    """``main`` (task family 1), ``family2`` (held-back family) or ``alpha`` (sensitivity sweep)."""
    row: str
    """Row name in the tables: a key of :data:`LABELS` or ``alpha=0.2``."""
    method: str
    """Method name of ``dynamo_rl.presets.METHODS``."""
    preset: str
    family: str
    seed: int
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Method-config overrides (``{"modulation": {"alpha": 0.2, "tau": 0.9}}``)."""

    @property
    def run_id(self) -> str:
        return f"{self.group}/{self.row}/seed{self.seed}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _row_method(row: str) -> tuple[str, str]:
    """``(method, preset)`` of a table row."""
    if row == "dynamo_theory":
        return "dynamo", "theory"
    return row, "official"


def build_plan(*, quick: bool, main_seeds: int = 5, baseline_seeds: int = 3, family2_seeds: int = 5,
               alpha_seeds: int = 3, family2: str = "modmath") -> list[RunSpec]:
    """All runs, ordered so that an interrupted study has balanced seeds: seed-major, main rows first."""
    if quick:
        rows = {"main": ("grpo", "dynamo", "no_dra", "clip_higher"), "family2": ("grpo", "dynamo")}
        seeds = {"main": 1, "family2": 1, "alpha": 1}
        alphas: tuple[float, ...] = (0.4,)
    else:
        rows = {"main": MAIN_METHODS + BASELINE_METHODS, "family2": FAMILY2_METHODS}
        seeds = {"main": main_seeds, "family2": family2_seeds, "alpha": alpha_seeds}
        alphas = ALPHAS
    specs: list[tuple[int, int, RunSpec]] = []
    for seed in range(max(*seeds.values(), 0 if quick else baseline_seeds)):
        for row in rows["main"]:
            limit = seeds["main"] if (row in MAIN_METHODS or quick) else baseline_seeds
            if seed < limit:
                method, preset = _row_method(row)
                specs.append((seed, 0, RunSpec("main", row, method, preset, "arith", seed)))
        for row in rows["family2"]:
            if seed < seeds["family2"]:
                method, preset = _row_method(row)
                specs.append((seed, 1, RunSpec("family2", row, method, preset, family2, seed)))
        for alpha in alphas:
            if seed < seeds["alpha"]:
                specs.append((seed, 2, RunSpec("alpha", f"alpha={alpha:g}", "dynamo", "official", "arith", seed,
                                               {"modulation": {"alpha": alpha, "tau": 0.9}})))
    specs.sort(key=lambda item: (item[0], item[1]))
    return [spec for _, _, spec in specs]
