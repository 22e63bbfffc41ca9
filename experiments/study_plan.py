"""What the study runs: rows (method + preset + dotted config overrides), run specifications and the sizes of a run.

A **row** is one line of a table: a method of ``dynamo_rl.presets.METHODS``, a preset and dotted overrides of the
trainer config (``{"allocation.allocator": "optimal"}``). Rows are looked up by name in :data:`ROWS`; any method name
of ``dynamo_rl.presets.METHODS`` is a row too, and ``--row NAME=METHOD[:PRESET][,SECTION.FIELD=VALUE...]`` on the
command line defines a new one, so a method added to the library later (say a multi-round sampler) joins the study
without a code change here.

Every run of one study uses the same :class:`Sizes`, so all rows of a group spend the same rollout budget
(``steps × prompts_per_step × mean_rollouts``); DRA only redistributes it between prompts (``variance_matched`` may
spend less, which the tables report).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

CORE_ROWS = ("grpo", "dynamo")
"""The comparison the study is sized for (``--core-seeds``, 16 in the full study)."""
SAMPLER_ROWS = ("dapo", "adaptive")
"""GRPO with a multi-round sampler (DAPO dynamic sampling, adaptive early stopping) at the same generated budget."""
MAIN_ROWS = ("grpo", "dynamo", "dynamo_theory", "no_dra", "no_gc", "no_ums", "clip_higher", *SAMPLER_ROWS)
"""Rows of Tables 1–2: GRPO, DynaMO (official, theory), the ablations, Clip-Higher and the samplers
(``--main-seeds``, ≥ 8)."""
ABLATION_ROWS = ("dynamo", "no_dra", "no_gc", "no_ums", "no_gc_ums", "grpo")
ALLOCATORS = ("optimal", "variance_matched", "knapsack")
"""Allocators compared inside DynaMO (official preset, only the allocator replaced) when the core library has them."""
BUDGETS = (4, 8, 16)
"""Mean rollouts per prompt of the budget sweep; bounds [n̄/2, 2n̄] (8 is the main group itself)."""
BUDGET_ROWS = ("grpo", "dynamo", "alloc_variance_matched")

LABELS = {
    "grpo": "GRPO", "dynamo": "DynaMO (official)", "dynamo_theory": "DynaMO (theory)", "no_dra": "− DRA",
    "no_gc": "− GC", "no_ums": "− UMS", "no_gc_ums": "− GC & UMS", "clip_higher": "Clip-Higher",
    "entropy_loss": "Entropy Loss", "fork_tokens": "Fork Tokens", "entropy_adv": "Entropy Adv.", "clip_cov": "Clip-Cov",
    "kl_cov": "KL-Cov", "w_reinforce": "W-REINFORCE", "alloc_optimal": "DynaMO, optimal allocator",
    "alloc_variance_matched": "DynaMO, variance-matched allocator", "alloc_knapsack": "DynaMO, knapsack allocator",
    "dapo": "GRPO + DAPO dynamic sampling", "adaptive": "GRPO + adaptive early stopping",
}
"""Display names (paper Tables 1–2 naming); other rows are shown by name."""


@dataclass(frozen=True)
class Row:
    """A table row: how to configure the trainer for it."""

    method: str
    preset: str = "official"
    overrides: dict[str, Any] = field(default_factory=dict)
    """Dotted trainer-config overrides, ``{"allocation.allocator": "optimal", "loss.eps_high": 0.28}``."""


ROWS: dict[str, Row] = {
    "dynamo_theory": Row("dynamo", "theory"),
    # Eq 44's optimum needs σ weights (P^0.5) and none of the official code's weight heuristics.
    "alloc_optimal": Row("dynamo", "official", {"allocation.allocator": "optimal", "allocation.proxy_power": 0.5,
                                                "allocation.weight_floor": None,
                                                "allocation.mastery_threshold": None,
                                                "allocation.tie_breaker": 0.0}),
    "alloc_variance_matched": Row("dynamo", "official", {"allocation.allocator": "variance_matched"}),
    "alloc_knapsack": Row("dynamo", "official", {"allocation.allocator": "knapsack"}),
    # Multi-round samplers on the GRPO backbone (the harness caps their generated rollouts at the same budget).
    "dapo": Row("grpo", "official", {"rollout.sampler": "dapo"}),
    "adaptive": Row("grpo", "official", {"rollout.sampler": "adaptive"}),
}
"""Rows that are not simply a method name under the official preset."""


def parse_value(text: str) -> Any:
    """A YAML scalar (``0.2`` → float, ``true`` → bool, ``null`` → None, else the string)."""
    import yaml

    return yaml.safe_load(text) if text.strip() else ""


def define_row(text: str) -> tuple[str, Row]:
    """``"NAME=METHOD[:PRESET][,SECTION.FIELD=VALUE...]"`` → (name, row); raises ValueError naming what is wrong."""
    name, sep, body = text.partition("=")
    name = name.strip()
    if not sep or not name or not body or "/" in name or "," in name:
        raise ValueError(f"invalid --row {text!r}: expected NAME=METHOD[:PRESET][,SECTION.FIELD=VALUE...]")
    head, *items = body.split(",")
    method, _, preset = head.partition(":")
    overrides = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or key.count(".") != 1:
            raise ValueError(f"invalid override {item!r} in --row {text!r}: expected SECTION.FIELD=VALUE")
        overrides[key.strip()] = parse_value(value)
    return name, Row(method.strip(), preset.strip() or "official", overrides)


def resolve_row(name: str, extra: dict[str, Row] | None = None) -> Row:
    """The row called ``name``: defined on the command line, in :data:`ROWS`, or a method name (official preset).
    A budget-sweep name ``ROW@N`` is ROW with n̄ = N and bounds [N/2, 2N]."""
    base, at, budget = name.partition("@")
    if at:
        row = resolve_row(base, extra)
        return dataclasses.replace(row, overrides={**row.overrides, **budget_overrides(int(budget))})
    if extra and name in extra:
        return extra[name]
    if name in ROWS:
        return ROWS[name]
    from dynamo_rl.presets import METHODS

    if name in METHODS:
        return Row(name)
    raise KeyError(f"unknown row {name!r}: not in experiments.study_plan.ROWS nor dynamo_rl.presets.METHODS; define it "
                   f"with --row {name}=METHOD[:PRESET][,SECTION.FIELD=VALUE...]")


def budget_overrides(mean_rollouts: int) -> dict[str, Any]:
    """n̄ = ``mean_rollouts`` with bounds [max(2, n̄/2), 2n̄] (the demo regime's [4, 16] at n̄ = 8)."""
    return {"allocation.mean_rollouts": mean_rollouts, "allocation.n_min": max(2, mean_rollouts // 2),
            "allocation.n_max": 2 * mean_rollouts}


def available_allocators(wanted: tuple[str, ...] = ALLOCATORS, *, quiet: bool = False) -> list[str]:
    """The allocators of ``wanted`` that ``dynamo_rl.core.allocation`` knows (its ``ALLOCATOR_NAMES``, else its
    registry); a printed note for each one it does not know yet."""
    from dynamo_rl.core import allocation

    names = getattr(allocation, "ALLOCATOR_NAMES", None)
    known = set(names) if names is not None else set(allocation.ALLOCATORS.names())
    missing = [name for name in wanted if name not in known]
    if missing and not quiet:
        print(f"[study] note: allocator(s) {', '.join(missing)} not in dynamo_rl.core.allocation yet; their rows are "
              f"skipped (rerun the same command once they exist: finished runs are kept)", flush=True)
    return [name for name in wanted if name in known]


@dataclass(frozen=True)
class Sizes:
    """How big one training run is (identical for every row of a study). Defaults: the paper's regime on the demo
    task (study 3): several off-policy PPO updates per rollout batch."""

    steps: int = 24
    """Rollout batches per run (24 × 512 = 12,288 rollouts, 384 optimiser steps)."""
    prompts_per_step: int = 64
    mean_rollouts: int = 8
    n_min: int = 4
    n_max: int = 16
    mini_batch_prompts: int = 4
    """Prompts per PPO mini-batch: 64 / 4 = 16 optimiser steps per rollout batch, the paper's ratio (512 / 32)."""
    lr: float = 5e-5
    warmup_steps: int = 10
    """Warm-up in optimiser steps (paper: 10)."""
    max_new_tokens: int = 16
    train_per_level: int = 40
    """Training problems per level (200 in all): each prompt is revisited about every 3 rollout batches, so DRA has a
    history from the fourth batch on."""
    eval_per_level: int = 64
    """Held-out problems per level (L1 has only 20 in the test split): 276 problems."""
    eval_every: int = 2
    eval_samples: int = 4
    """Samples per held-out problem at T = 1 for the learning curves (avg@n)."""
    final_samples: int = 32
    """Samples per held-out problem at T = 1 for the final pass@1 (avg@n) and pass@k."""
    final_ks: tuple[int, ...] = (1, 4, 16)
    eval_train_pool: int = 0
    """1: also evaluate the training pool (curve and final); 0: held-out only."""
    eval_seed: int = 0
    """Seed of the held-out problem set, fixed across runs so that every method is scored on the same problems."""
    variance_prompts: int = 32
    """Mechanism measurement: training prompts whose gradient variance is measured at each checkpoint."""
    variance_draws: int = 24
    """Independent rollout draws per allocation and checkpoint."""
    variance_probe_samples: int = 64
    """Rollouts per prompt that estimate its success rate p (σ = √(p(1−p)) of Eq 44) at each checkpoint."""

    @property
    def budget_per_step(self) -> int:
        return self.prompts_per_step * self.mean_rollouts

    @property
    def total_rollouts(self) -> int:
        return self.steps * self.budget_per_step

    @property
    def updates_per_batch(self) -> int:
        return -(-self.prompts_per_step // self.mini_batch_prompts)


QUICK_SIZES = Sizes(steps=4, prompts_per_step=8, mean_rollouts=8, mini_batch_prompts=2, warmup_steps=2,
                    train_per_level=4, eval_per_level=8, eval_every=2, eval_samples=1, final_samples=4,
                    final_ks=(1, 4), variance_prompts=8, variance_draws=4, variance_probe_samples=8)


@dataclass(frozen=True)
class RunSpec:
    """One unit of work of the study: a training run, or (``kind="variance"``) the gradient-variance measurement on
    the checkpoints of the training run ``after``."""

    group: str
    """``main`` (Tables 1–2 and allocators), ``budget`` (budget sweep) or ``variance`` (mechanism)."""
    row: str
    method: str
    preset: str
    seed: int
    overrides: dict[str, Any] = field(default_factory=dict)
    """Dotted trainer-config overrides of the row."""
    family: str = "arith"
    kind: str = "train"
    keep_checkpoints: bool = False
    """Keep the policy weights at step 0, the middle and the end (for the variance measurement)."""
    after: str | None = None
    """Run id this unit needs finished first."""

    @property
    def run_id(self) -> str:
        return f"{self.group}/{self.row}/seed{self.seed}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def row_spec(group: str, name: str, seed: int, extra: dict[str, Row] | None = None, **kwargs: Any) -> RunSpec:
    row = resolve_row(name, extra)
    return RunSpec(group, name, row.method, row.preset, seed, dict(row.overrides), **kwargs)


@dataclass(frozen=True)
class PlanOptions:
    core_seeds: int = 16
    main_seeds: int = 8
    budget_seeds: int = 8
    rows: tuple[str, ...] = MAIN_ROWS
    extra_rows: dict[str, Row] = field(default_factory=dict)
    """Rows defined on the command line (``--row``), added to the main group."""
    allocators: tuple[str, ...] = ALLOCATORS
    budgets: tuple[int, ...] = BUDGETS
    budget_rows: tuple[str, ...] = BUDGET_ROWS
    variance: bool = True


QUICK_OPTIONS = PlanOptions(core_seeds=1, main_seeds=1, budget_seeds=1, rows=("grpo", "dynamo", "no_dra",
                                                                             "clip_higher"),
                            allocators=("optimal",), budgets=(4,), budget_rows=("grpo", "dynamo"))


def build_plan(options: PlanOptions, *, quiet: bool = False) -> list[RunSpec]:
    """All units, ordered so that an interrupted study has balanced seeds: seed-major, main rows first, then the
    allocator rows, the budget sweep, and the variance measurement right after the run it reads."""
    allocators = available_allocators(options.allocators, quiet=quiet)
    main_rows = list(dict.fromkeys([*options.rows, *options.extra_rows, *(f"alloc_{a}" for a in allocators)]))
    budget_rows = [r for r in options.budget_rows if not r.startswith("alloc_") or r[6:] in allocators]
    specs: list[tuple[int, int, RunSpec]] = []
    seeds = max(options.core_seeds, options.main_seeds, options.budget_seeds)
    for seed in range(seeds):
        for name in main_rows:
            if seed < (options.core_seeds if name in CORE_ROWS else options.main_seeds):
                keep = options.variance and seed == 0 and name == "grpo"
                specs.append((seed, 0, row_spec("main", name, seed, options.extra_rows, keep_checkpoints=keep)))
                if keep:
                    specs.append((seed, 0, RunSpec("variance", "grpo", "grpo", "official", seed, kind="variance",
                                                   after=f"main/grpo/seed{seed}")))
        for budget in options.budgets:
            if budget == 8 or seed >= options.budget_seeds:
                continue
            for name in budget_rows:
                specs.append((seed, 1, row_spec("budget", f"{name}@{budget}", seed, options.extra_rows)))
    specs.sort(key=lambda item: (item[0], item[1]))
    return [spec for _, _, spec in specs]
