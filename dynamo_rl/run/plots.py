"""Training-dynamics plots of a run directory, from its ``metrics.jsonl`` (matplotlib, Agg backend).

* ``learning_curve.png``: training reward and accuracy per step; held-out accuracy overall and per level.
* ``dynamics.png``: token entropy and gradient norm per step (the quantities GC and UMS act on).
* ``allocation.png``: mean rollouts per prompt by difficulty level over training, with the min–max band of n_i, and
  the live variance-reduction ratio of Eq 44.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from dynamo_rl.run.metrics import read_metrics

PLOT_FILES = ("learning_curve.png", "dynamics.png", "allocation.png")


def _series(records: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    points = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
    return [p[0] for p in points], [p[1] for p in points]


def _level_keys(records: list[dict[str, Any]], pattern: str) -> list[str]:
    regex = re.compile(pattern)
    keys = {k for r in records for k in r if regex.fullmatch(k)}
    return sorted(keys, key=lambda k: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", k)])


def _level_name(key: str) -> str:
    return "L" + key.split("/")[-2] if key.split("/")[-2].isdigit() else key.split("/")[-2]


def write_plots(run_dir: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Write the three PNGs into ``out_dir`` (default ``RUN_DIR/plots``) and return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(run_dir)
    out = Path(out_dir) if out_dir is not None else Path(run_dir) / "plots"
    out.mkdir(parents=True, exist_ok=True)
    paths = []

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for key, label in (("reward/mean", "reward"), ("acc/mean", "train accuracy")):
        left.plot(*_series(records, key), label=label)
    left.set(xlabel="step", title="training batch", ylim=(-0.02, 1.02))
    left.legend()
    right.plot(*_series(records, "eval/acc"), "k-o", label="all levels", markersize=3)
    for key in _level_keys(records, r"eval/level/[^/]+/acc"):
        right.plot(*_series(records, key), "-o", label=_level_name(key), markersize=3, alpha=0.8)
    right.set(xlabel="step", title="held-out accuracy", ylim=(-0.02, 1.02))
    right.legend(fontsize=8)
    paths.append(_save(fig, out / PLOT_FILES[0]))

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot(*_series(records, "actor/entropy"))
    left.set(xlabel="step", ylabel="mean token entropy (nats)", title="entropy")
    right.plot(*_series(records, "actor/grad_norm"), label="mean")
    right.plot(*_series(records, "actor/grad_norm_max"), alpha=0.6, label="max")
    right.set(xlabel="step", ylabel="‖g‖ before clipping", title="gradient norm")
    right.legend()
    paths.append(_save(fig, out / PLOT_FILES[1]))

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    steps, low = _series(records, "alloc/num_rollouts_min")
    _, high = _series(records, "alloc/num_rollouts_max")
    if steps and len(low) == len(high):
        left.fill_between(steps, low, high, color="0.85", label="min–max n_i")
    for key in _level_keys(records, r"level/[^/]+/num_rollouts_mean"):
        left.plot(*_series(records, key), label=_level_name(key))
    left.set(xlabel="step", ylabel="rollouts per prompt", title="allocation by level")
    left.legend(fontsize=8)
    right.plot(*_series(records, "alloc/variance_reduction_ratio"))
    right.axhline(1.0, color="0.5", linestyle="--", linewidth=1)
    right.set(xlabel="step", ylabel="Var(alloc) / Var(uniform)", title="variance-reduction ratio (Eq 44)")
    paths.append(_save(fig, out / PLOT_FILES[2]))
    return paths


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
