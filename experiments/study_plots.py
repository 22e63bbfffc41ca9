"""Plots of the study (matplotlib, Agg): learning curves, allocation by difficulty level over training (paper Fig. 2),
gradient-norm and entropy dynamics GRPO vs DynaMO (Fig. 5), α sensitivity (Fig. 3), per-level accuracy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from experiments.stats import t_interval
from experiments.study_report import CURVE_KEY, TRAIN_CURVE_KEY, label

Runs = dict[tuple[str, str], list[dict[str, Any]]]


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _band(results: list[dict[str, Any]], key: str, x_key: str = "rollouts",
          smooth: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x, seed mean and 95 % t half-width of ``key`` (steps where every run logged it), moving-average smoothed."""
    per_run = []
    for r in results:
        per_run.append({rec[x_key]: rec[key] for rec in r["curve"] if rec.get(key) is not None})
    common = sorted(set.intersection(*(set(p) for p in per_run))) if per_run else []
    if not common:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    xs = np.array(common, dtype=float)
    values = np.array([[p[x] for x in common] for p in per_run], dtype=float)
    if smooth > 1 and values.shape[1] >= smooth:
        kernel = np.ones(smooth) / smooth
        values = np.array([np.convolve(v, kernel, mode="valid") for v in values])
        xs = xs[smooth - 1:]
    mean = values.mean(axis=0)
    half = np.array([t_interval(values[:, j]).half_width for j in range(values.shape[1])])
    return xs, mean, np.nan_to_num(half)


def _curves(ax: Any, runs: Runs, group: str, rows: list[str], key: str, x_key: str = "rollouts",
            smooth: int = 1, bands: tuple[str, ...] = ("grpo", "dynamo")) -> None:
    """Seed-mean curves of ``rows``; 95 % t bands only for ``bands`` (the rest would hide each other)."""
    for row in rows:
        if (group, row) not in runs:
            continue
        xs, mean, half = _band(runs[(group, row)], key, x_key, smooth)
        if not xs.size:
            continue
        line, = ax.plot(xs, mean, label=f"{label(row)} (n={len(runs[(group, row)])})")
        if row in bands:
            ax.fill_between(xs, mean - half, mean + half, color=line.get_color(), alpha=0.15)


def learning_curves(runs: Runs, summary: dict[str, Any], out: Path) -> Path:
    plt = _plt()
    panels = [("main", ["grpo", "dynamo", "dynamo_theory", "no_dra", "no_gc_ums"], "DynaMO, ablations vs GRPO"),
              ("main", ["grpo", "dynamo", "clip_higher", "entropy_loss", "fork_tokens", "entropy_adv", "clip_cov",
                        "kl_cov", "w_reinforce"], "Baselines"),
              ("family2", ["grpo", "dynamo"], "Held-back family (modmath)")]
    fig, axes = plt.subplots(2, 3, figsize=(17, 9))
    for j, (key, what) in enumerate(((CURVE_KEY, "held-out"), (TRAIN_CURVE_KEY, "training-pool"))):
        for ax, (group, rows, title) in zip(axes[j], panels):
            _curves(ax, runs, group, rows, key)
            target = summary.get(group, {}).get("target", {}).get(key)
            if target is not None:
                ax.axhline(target, color="grey", ls=":", lw=1, label="GRPO final")
            ax.set(title=f"{title}: {what}", xlabel="rollouts spent", ylabel=f"{what} accuracy (avg@n, T=1)")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    return _save(fig, out / "learning_curves.png")


def allocation(runs: Runs, out: Path) -> Path:
    """Mean rollouts per prompt of each level over training, next to that level's training success rate."""
    plt = _plt()
    rows = [r for r in ("dynamo", "dynamo_theory") if ("main", r) in runs]
    fig, axes = plt.subplots(len(rows) or 1, 2, figsize=(12, 3.8 * max(len(rows), 1)), squeeze=False)
    for i, row in enumerate(rows):
        results = runs[("main", row)]
        levels = sorted({k.split("/")[1] for r in results for rec in r["curve"] for k in rec
                         if k.startswith("level/") and k.endswith("/num_rollouts_mean")}, key=str)
        for lv in levels:
            xs, mean, _ = _band(results, f"level/{lv}/num_rollouts_mean", "step", smooth=3)
            axes[i][0].plot(xs, mean, label=f"L{lv}")
            xs, mean, _ = _band(results, f"level/{lv}/acc", "step", smooth=3)
            axes[i][1].plot(xs, mean, label=f"L{lv}")
        axes[i][0].set(title=f"{label(row)}: rollouts per prompt by level", xlabel="step", ylabel="mean n_i")
        axes[i][1].set(title=f"{label(row)}: training success rate by level", xlabel="step", ylabel="accuracy")
        axes[i][1].axhline(0.5, color="grey", ls=":", lw=1)
        for ax in axes[i]:
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    return _save(fig, out / "allocation_by_level.png")


def dynamics(runs: Runs, out: Path) -> Path:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    rows = ["grpo", "dynamo", "no_gc_ums", "dynamo_theory"]
    _curves(axes[0], runs, "main", rows, "actor/grad_norm", "step", smooth=3)
    _curves(axes[1], runs, "main", rows, "actor/entropy", "step", smooth=3)
    axes[0].set(title="Gradient norm (before clipping)", xlabel="step", ylabel="‖g‖")
    axes[1].set(title="Token entropy of the sampled responses", xlabel="step", ylabel="entropy (nats)")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, out / "grad_norm_entropy.png")


def alpha_sweep(runs: Runs, summary: dict[str, Any], out: Path) -> Path:
    plt = _plt()
    points = []
    if "main" in summary and "no_gc_ums" in summary["main"]["rows"]:
        points.append((0.0, summary["main"]["rows"]["no_gc_ums"]["pass@1"]))
    for row, stats in summary.get("alpha", {}).get("rows", {}).items():
        points.append((float(row.split("=")[1]), stats["pass@1"]))
    points.sort()
    fig, ax = plt.subplots(figsize=(6, 4))
    if points:
        xs = [p[0] for p in points]
        ys = [p[1]["mean"] * 100 for p in points]
        errs = [(p[1]["half_width"] or 0.0) * 100 for p in points]
        ax.errorbar(xs, ys, yerr=errs, marker="o", capsize=4, label="DynaMO, unified α (α = 0: no modulation)")
    for row, style in (("grpo", ":"), ("dynamo", "--")):
        stats = summary.get("main", {}).get("rows", {}).get(row)
        if stats:
            ax.axhline(stats["pass@1"]["mean"] * 100, ls=style, color="grey",
                       label=f"{label(row)}" + (" (μ_max 1.2, λ_min 0.6)" if row == "dynamo" else ""))
    ax.set(title="Sensitivity to the modulation strength α", xlabel="α", ylabel="held-out pass@1 (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out / "alpha_sweep.png")


def per_level(summary: dict[str, Any], out: Path) -> Path:
    plt = _plt()
    rows = [r for r in ("grpo", "dynamo", "dynamo_theory", "no_dra", "no_gc_ums")
            if r in summary.get("main", {}).get("rows", {})]
    fig, ax = plt.subplots(figsize=(9, 4))
    if rows:
        levels = list(summary["main"]["rows"][rows[0]]["levels"])
        width = 0.8 / len(rows)
        for i, row in enumerate(rows):
            stats = summary["main"]["rows"][row]["levels"]
            ys = [stats[lv]["pass@1"]["mean"] * 100 for lv in levels]
            errs = [(stats[lv]["pass@1"]["half_width"] or 0.0) * 100 for lv in levels]
            ax.bar(np.arange(len(levels)) + i * width, ys, width, yerr=errs, capsize=2, label=label(row))
        initial = summary["main"].get("initial_levels") or {}
        if initial:
            centers = np.arange(len(levels)) + 0.4 - width / 2
            ax.scatter(centers, [initial.get(lv, np.nan) * 100 for lv in levels], marker="_", s=2500, color="black",
                       zorder=3, label="warm start (before RL)")
        ax.set_xticks(np.arange(len(levels)) + 0.4 - width / 2, levels)
    ax.set(title="Held-out pass@1 by difficulty level", ylabel="pass@1 (%)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    return _save(fig, out / "per_level.png")


def write_plots(runs: Runs, summary: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    return [learning_curves(runs, summary, out), allocation(runs, out), dynamics(runs, out),
            alpha_sweep(runs, summary, out), per_level(summary, out)]


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
