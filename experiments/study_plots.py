"""Plots of the study (matplotlib, Agg): learning curves, paired differences per seed with the minimum detectable
effect, allocation by difficulty level (paper Fig. 2), gradient-norm and entropy dynamics with bands over seeds
(Fig. 5), the budget sweep, measured vs analytic gradient-variance ratios, per-level accuracy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from experiments.stats import t_interval
from experiments.study_report import CURVE_KEY, TARGET_GAIN, label

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
        line, = ax.plot(xs, mean, label=f"{label(row)} (n={len(runs[(group, row)])})",
                        lw=2 if row in bands else 1)
        if row in bands:
            ax.fill_between(xs, mean - half, mean + half, color=line.get_color(), alpha=0.15)


def learning_curves(runs: Runs, summary: dict[str, Any], out: Path) -> Path:
    plt = _plt()
    main_rows = [r for g, r in runs if g == "main"]
    panels = [["grpo", "dynamo", "dynamo_theory", "clip_higher"], ["grpo", "dynamo", "no_dra", "no_gc", "no_ums"],
              ["grpo", "no_dra", "dynamo", *sorted(r for r in main_rows if r.startswith("alloc_"))]]
    titles = ["GRPO, DynaMO, Clip-Higher", "Ablations", "Allocators inside DynaMO"]
    fig, axes = plt.subplots(1, 3, figsize=(18, 4.8))
    eff = (summary.get("main", {}).get("rows", {}).get("grpo") or {}).get("efficiency") or {}
    for ax, rows, title in zip(axes, panels, titles):
        _curves(ax, runs, "main", rows, CURVE_KEY)
        if eff.get("target") is not None:
            ax.axhline(eff["target"], color="grey", ls=":", lw=1,
                       label=f"target: {TARGET_GAIN:.0%} of GRPO's gain")
        ax.set(title=title, xlabel="rollouts spent", ylabel="held-out accuracy (avg@n, T=1)")
        ax.grid(alpha=0.3)
        _legend(ax, 7)
    return _save(fig, out / "learning_curves.png")


def paired_deltas(summary: dict[str, Any], out: Path) -> Path:
    """Per-seed Δ pass@1 vs GRPO of every main row: dots, the 95 % t interval and ± MDE (80 % power)."""
    plt = _plt()
    rows = [(name, row) for name, row in summary.get("main", {}).get("rows", {}).items() if row.get("vs_grpo")]
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(rows) + 2), 4.5))
    for i, (_name, row) in enumerate(rows):
        cmp = row["vs_grpo"]
        diffs = np.array(cmp["differences"]) * 100
        ax.scatter(np.full(diffs.size, i) + np.linspace(-0.15, 0.15, diffs.size), diffs, s=12, color="grey",
                   zorder=2)
        if cmp.get("half_width") is not None:
            ax.errorbar(i, cmp["mean"] * 100, yerr=cmp["half_width"] * 100, fmt="o", color="C0", capsize=5, zorder=3,
                        label="mean Δ, 95 % t interval" if i == 0 else None)
        if cmp.get("mde80") is not None:
            ax.hlines([cmp["mde80"] * 100, -cmp["mde80"] * 100], i - 0.3, i + 0.3, color="C3", ls="--", lw=1,
                      label="± MDE (80 % power)" if i == 0 else None)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(range(len(rows)), [f"{label(n).replace(', ', chr(10))}\n(n={r['n']})" for n, r in rows], fontsize=8)
    ax.set(title="Held-out pass@1 minus GRPO's, paired by seed", ylabel="Δ pass@1 (points)")
    ax.grid(alpha=0.3, axis="y")
    _legend(ax)
    return _save(fig, out / "paired_deltas.png")


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
            xs, mean, _ = _band(results, f"level/{lv}/num_rollouts_mean", "step")
            axes[i][0].plot(xs, mean, label=f"L{lv}")
            xs, mean, _ = _band(results, f"level/{lv}/acc", "step")
            axes[i][1].plot(xs, mean, label=f"L{lv}")
        axes[i][0].set(title=f"{label(row)}: rollouts per prompt by level", xlabel="rollout batch",
                       ylabel="mean n_i")
        axes[i][1].set(title=f"{label(row)}: training success rate by level", xlabel="rollout batch",
                       ylabel="accuracy")
        axes[i][1].axhline(0.5, color="grey", ls=":", lw=1)
        for ax in axes[i]:
            ax.grid(alpha=0.3)
            _legend(ax)
    return _save(fig, out / "allocation_by_level.png")


def dynamics(runs: Runs, out: Path) -> Path:
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(18, 4.2))
    rows = ["grpo", "dynamo", "no_gc", "no_ums", "clip_higher"]
    _curves(axes[0], runs, "main", rows, "actor/grad_norm", "step")
    _curves(axes[1], runs, "main", rows, "actor/entropy", "step")
    _curves(axes[2], runs, "main", rows, "loss/clipfrac", "step")
    axes[0].set(title="Gradient norm before clipping (mean over a batch's updates)", xlabel="rollout batch",
                ylabel="‖g‖")
    axes[1].set(title="Token entropy of the sampled responses", xlabel="rollout batch", ylabel="entropy (nats)")
    axes[2].set(title="PPO clip fraction (off-policy updates)", xlabel="rollout batch", ylabel="fraction of tokens")
    for ax in axes:
        ax.grid(alpha=0.3)
        _legend(ax)
    return _save(fig, out / "grad_norm_entropy.png")


def budget_sweep(summary: dict[str, Any], out: Path) -> Path:
    plt = _plt()
    main = summary.get("main", {}).get("rows", {})
    budget = summary.get("budget", {}).get("rows", {})
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    bases = sorted({r.split("@")[0] for r in budget})
    for j, base in enumerate(bases):
        points = [(8, main[base]) for _ in [0] if base in main]
        points += [(int(r.split("@")[1]), row) for r, row in budget.items() if r.split("@")[0] == base]
        points.sort(key=lambda p: p[0])
        xs = np.array([p[0] for p in points], dtype=float) * (1 + 0.03 * (j - 1))
        ys = [p[1]["pass@1"]["mean"] * 100 for p in points]
        errs = [(p[1]["pass@1"]["half_width"] or 0.0) * 100 for p in points]
        ax.errorbar(xs, ys, yerr=errs, marker="o", capsize=4, label=label(base))
    ax.set_xscale("log", base=2)
    ax.set(title="Budget sweep: held-out pass@1 vs mean rollouts per prompt", xlabel="n̄ (rollouts per prompt)",
           ylabel="held-out pass@1 (%)")
    ax.grid(alpha=0.3)
    _legend(ax)
    return _save(fig, out / "budget_sweep.png")


def variance(summary: dict[str, Any], out: Path) -> Path:
    """Per checkpoint: the measured variance ratio to uniform of the per-prompt-mean gradient (bars, 95 % bootstrap
    CI) against the analytic Eq 44 ratio (black marks); the noise-to-signal ratio of the token-mean GRPO gradient;
    the share of rollouts in zero-variance groups."""
    plt = _plt()
    results = summary.get("variance") or []
    fig, axes = plt.subplots(1, 3, figsize=(20, 5))
    if results:
        entries = results[0]["checkpoints"]
        names = list(entries[0]["allocations"])
        width = 0.8 / len(names)
        for j, name in enumerate(names):
            xs = np.arange(len(entries)) + j * width
            text = label(name) if name != "grpo" else "uniform (GRPO)"
            for ax, key in ((axes[0], "measured_ratio_prompt"), (axes[1], "relative_ratio_token")):
                values = [e["allocations"][name].get(key) or np.nan for e in entries]
                cis = [e["allocations"][name].get(f"{key}_ci") for e in entries]
                low = [v - ci[0] if ci else 0 for v, ci in zip(values, cis)]
                high = [ci[1] - v if ci else 0 for v, ci in zip(values, cis)]
                ax.bar(xs, values, width, yerr=[low, high], capsize=3, alpha=0.75, color=f"C{j}", label=text)
            axes[0].scatter(xs, [e["allocations"][name]["analytic_ratio"] for e in entries], marker="_", s=300,
                            color="black", zorder=3, label="analytic Eq 44 ratio" if j == 0 else None)
            axes[2].bar(xs, [e["allocations"][name]["zero_variance_share"] * 100 for e in entries], width,
                        color=f"C{j}", label=text)
        for ax in axes:
            ax.set_xticks(np.arange(len(entries)) + 0.4 - width / 2, [f"step {e['step']}" for e in entries])
            ax.grid(alpha=0.3, axis="y")
        for ax in axes[:2]:
            ax.axhline(1.0, color="grey", lw=0.8)
            ax.set_ylim(0, 2.0)
            ax.legend(fontsize=6, ncol=3, loc="upper center")
        axes[2].legend(fontsize=6, ncol=2, loc="upper center")
        axes[2].set_ylim(0, 45)
    axes[0].set(title="Variance ÷ uniform's: per-prompt-mean gradient (Eq 44's estimator)", ylabel="ratio")
    axes[1].set(title="Noise-to-signal tr Cov/‖E g‖² ÷ uniform's: token-mean GRPO gradient", ylabel="ratio")
    axes[2].set(title="Rollouts in zero-variance groups (no gradient)", ylabel="% of rollouts")
    return _save(fig, out / "gradient_variance.png")


def per_level(summary: dict[str, Any], out: Path) -> Path:
    plt = _plt()
    rows = [r for r in ("grpo", "dynamo", "dynamo_theory", "no_dra", "clip_higher")
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
    _legend(ax)
    return _save(fig, out / "per_level.png")


def write_plots(runs: Runs, summary: dict[str, Any], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [learning_curves(runs, summary, out), paired_deltas(summary, out), allocation(runs, out),
             dynamics(runs, out), per_level(summary, out)]
    if summary.get("budget"):
        paths.append(budget_sweep(summary, out))
    if summary.get("variance"):
        paths.append(variance(summary, out))
    return paths


def _legend(ax: Any, size: int = 8) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=size)


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
