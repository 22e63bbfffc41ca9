"""Training-dynamics plots of a run directory, from its ``metrics.jsonl`` (matplotlib, Agg backend).

* ``learning_curve.png``: training reward and training accuracy per step (separate panels, so one cannot hide the
  other), and held-out accuracy overall and per level.
* ``dynamics.png``: token entropy, gradient norm (mean solid, max dashed; log scale when they span > 20×) and the
  mean GC / UMS modulation factors per step.
* ``allocation.png``: mean rollouts per prompt by difficulty level over training, with the min–max band of n_i, and
  the live variance-reduction ratio of Eq 44.

Noisy per-step series are drawn raw (faint) with a centred moving average on top (window about 1/20 of the run,
at most 25 steps). Legends sit outside the data (to the right of the panel). A panel whose metric has no value yet
(a short run, a method without modulation, the variance ratio before any prompt has history) says "no data yet".
A missing run directory is ``FileNotFoundError``; a ``metrics.jsonl`` with no records is ``ValueError``.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from dynamo_rl.run.metrics import read_metrics

PLOT_FILES = ("learning_curve.png", "dynamics.png", "allocation.png")
_MAX_WINDOW = 25
_LOG_SPAN = 20.0


def _series(records: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """``(steps, values)`` of the records that hold a finite number for ``key`` (null and non-numbers skipped)."""
    steps, values = [], []
    for record in records:
        step, value = record.get("step"), record.get(key)
        if _number(step) and _number(value):
            steps.append(float(step))
            values.append(float(value))
    return steps, values


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def smooth(values: list[float], window: int) -> list[float]:
    """Centred moving average (the window shrinks at the ends, so there is no lag and no padding)."""
    if window <= 1 or len(values) < 3:
        return list(values)
    half = window // 2
    prefix = [0.0]
    for value in values:
        prefix.append(prefix[-1] + value)
    out = []
    for i in range(len(values)):
        lo, hi = max(0, i - half), min(len(values), i + half + 1)
        out.append((prefix[hi] - prefix[lo]) / (hi - lo))
    return out


def _window(num_points: int) -> int:
    return max(1, min(_MAX_WINDOW, num_points // 20))


def _smoothing_note(num_points: int) -> str:
    window = _window(num_points)
    return "raw (too few steps to smooth)" if window == 1 else f"moving average ({window} steps)"


def _level_keys(records: list[dict[str, Any]], pattern: str) -> list[str]:
    regex = re.compile(pattern)
    keys = {k for r in records for k in r if regex.fullmatch(k)}
    return sorted(keys, key=lambda k: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", k)])


def _level_name(key: str) -> str:
    return "L" + key.split("/")[-2] if key.split("/")[-2].isdigit() else key.split("/")[-2]


def _no_data(ax: Any, what: str) -> None:
    ax.text(0.5, 0.5, f"no data yet\n({what})", transform=ax.transAxes, ha="center", va="center", color="0.45",
            fontsize=11)
    ax.set_xticks([])
    ax.set_yticks([])


def _plot_smoothed(ax: Any, steps: list[float], values: list[float], *, color: Any, label: str,
                   linestyle: str = "-", raw: bool = True, raw_alpha: float = 0.25, linewidth: float = 1.8) -> None:
    if raw:
        ax.plot(steps, values, color=color, alpha=raw_alpha, linewidth=0.8, linestyle=linestyle)
    ax.plot(steps, smooth(values, _window(len(values))), color=color, linewidth=linewidth, linestyle=linestyle,
            label=label)


def _legend_outside(ax: Any, **kwargs: Any) -> None:
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize=8, frameon=False, **kwargs)


def load_records(run_dir: str | Path) -> list[dict[str, Any]]:
    """The records of ``RUN_DIR/metrics.jsonl``; one clear error when the directory, the file or the records are
    missing."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise FileNotFoundError(f"run directory not found: {run_dir}")
    if not run_dir.is_dir():
        raise NotADirectoryError(f"{run_dir} is a file; expected a run directory holding metrics.jsonl")
    if not (run_dir / "metrics.jsonl").is_file():
        raise FileNotFoundError(f"no metrics.jsonl in {run_dir} (is it a run directory?)")
    records = [r for r in read_metrics(run_dir) if isinstance(r, dict) and _number(r.get("step"))]
    if not records:
        raise ValueError(f"{run_dir / 'metrics.jsonl'} has no records yet; plot again after the first step")
    return records


def write_plots(run_dir: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Write the three PNGs into ``out_dir`` (default ``RUN_DIR/plots``) and return their paths."""
    import matplotlib

    matplotlib.use("Agg")

    records = load_records(run_dir)
    out = Path(out_dir) if out_dir is not None else Path(run_dir) / "plots"
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"plot output {out} is a file; expected a directory")
    out.mkdir(parents=True, exist_ok=True)
    return [_learning_curve(records, out / PLOT_FILES[0]), _dynamics(records, out / PLOT_FILES[1]),
            _allocation(records, out / PLOT_FILES[2])]


def _learning_curve(records: list[dict[str, Any]], path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.4))
    for ax, key, title, ylabel, color in (
        (axes[0], "reward/mean", "training reward", "mean reward per rollout", "C0"),
        (axes[1], "acc/mean", "training accuracy", "fraction of rollouts correct", "C1"),
    ):
        steps, values = _series(records, key)
        if steps:
            _plot_smoothed(ax, steps, values, color=color, label=_smoothing_note(len(values)))
            ax.set(xlabel="step", ylabel=ylabel, title=title)
            if key == "acc/mean":
                ax.set_ylim(-0.02, 1.02)
            ax.legend(loc="best", fontsize=8)
        else:
            ax.set_title(title)
            _no_data(ax, key)
    ax = axes[2]
    steps, values = _series(records, "eval/acc")
    levels = _level_keys(records, r"eval/level/[^/]+/acc")
    if steps or any(_series(records, k)[0] for k in levels):
        if steps:
            ax.plot(steps, values, "k-o", label="all levels", markersize=3, linewidth=2)
        for key in levels:
            ax.plot(*_series(records, key), "-o", label=_level_name(key), markersize=3, alpha=0.8)
        ax.set(xlabel="step", ylabel="accuracy", title="held-out accuracy", ylim=(-0.02, 1.02))
        _legend_outside(ax)
    else:
        ax.set_title("held-out accuracy")
        _no_data(ax, "eval/acc")
    return _save(fig, path)


def _dynamics(records: list[dict[str, Any]], path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.4))
    ax = axes[0]
    steps, values = _series(records, "actor/entropy")
    if steps:
        _plot_smoothed(ax, steps, values, color="C2", label="mean token entropy")
        ax.set(xlabel="step", ylabel="nats", title="policy entropy")
        ax.legend(loc="best", fontsize=8)
    else:
        ax.set_title("policy entropy")
        _no_data(ax, "actor/entropy")

    ax = axes[1]
    mean_steps, mean_values = _series(records, "actor/grad_norm")
    max_steps, max_values = _series(records, "actor/grad_norm_max")
    if mean_steps or max_steps:
        if (mean_steps, mean_values) == (max_steps, max_values):  # one optimiser step per step: one line, said so
            _plot_smoothed(ax, mean_steps, mean_values, color="C0", label="mean = max (1 optimiser step per step)")
        else:
            if mean_steps:
                _plot_smoothed(ax, mean_steps, mean_values, color="C0", label="mean over optimiser steps")
            if max_steps:
                _plot_smoothed(ax, max_steps, max_values, color="C3", linestyle="--", raw=False,
                               label="max over optimiser steps (smoothed)")
        positive = [v for v in mean_values + max_values if v > 0]
        if positive and max(positive) / min(positive) > _LOG_SPAN:
            ax.set_yscale("log")
        ax.set(xlabel="step", ylabel="‖g‖ before clipping", title="gradient norm")
        ax.legend(loc="best", fontsize=8)
    else:
        ax.set_title("gradient norm")
        _no_data(ax, "actor/grad_norm")

    ax = axes[2]
    drawn = False
    for key, label, color, style in (("mod/compensation_mean", "GC factor f (mean)", "C1", "-"),
                                     ("mod/stabilization_mean", "UMS factor g (mean)", "C4", "-"),
                                     ("mod/factor_mean", "f·g (mean)", "k", "--")):
        steps, values = _series(records, key)
        if steps:
            _plot_smoothed(ax, steps, values, color=color, label=label, linestyle=style,
                           raw=key != "mod/factor_mean", linewidth=1.8 if style == "-" else 1.0)
            drawn = True
    ax.set_title("advantage modulation")
    if drawn:
        ax.axhline(1.0, color="0.5", linestyle=":", linewidth=1)
        ax.set(xlabel="step", ylabel="factor")
        _legend_outside(ax)
    else:
        _no_data(ax, "mod/*")
    return _save(fig, path)


def _allocation(records: list[dict[str, Any]], path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 4.4))
    band_steps, low = _series(records, "alloc/num_rollouts_min")
    high_steps, high = _series(records, "alloc/num_rollouts_max")
    levels = [k for k in _level_keys(records, r"level/[^/]+/num_rollouts_mean") if _series(records, k)[0]]
    left.set_title("allocation by level")
    if band_steps or levels:
        if band_steps and band_steps == high_steps:
            left.fill_between(band_steps, low, high, color="0.93", linewidth=0, label="min–max n_i (raw)")
        for index, key in enumerate(levels):
            steps, values = _series(records, key)
            _plot_smoothed(left, steps, values, color=f"C{index % 10}", label=_level_name(key), raw_alpha=0.12)
        mean_steps, mean_values = _series(records, "alloc/num_rollouts_mean")
        if mean_steps:
            left.plot(mean_steps, mean_values, color="0.3", linestyle=":", linewidth=1, label="mean n_i")
        left.set(xlabel="step", ylabel="rollouts per prompt (n_i)")
        _legend_outside(left, title=_smoothing_note(len(band_steps or records)), title_fontsize=8)
    else:
        _no_data(left, "alloc/num_rollouts_*")

    steps, values = _series(records, "alloc/variance_reduction_ratio")
    right.set_title("variance-reduction ratio (Eq 44)")
    if steps:
        _plot_smoothed(right, steps, values, color="C0", label=_smoothing_note(len(values)))
        right.axhline(1.0, color="0.5", linestyle="--", linewidth=1, label="uniform allocation")
        right.set(xlabel="step", ylabel="Var(alloc) / Var(uniform)")
        right.legend(loc="best", fontsize=8)
    else:
        _no_data(right, "alloc/variance_reduction_ratio: needs prompts with history")
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    for ax in fig.axes:
        if ax.get_xlabel() == "step":
            low, high = ax.get_xlim()
            if high - low < 2:  # a single step (one evaluation): a readable range around it, not ±0.05
                middle = round((low + high) / 2)
                ax.set_xlim(middle - 1, middle + 1)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
