"""dynamo-rl plot: clear errors for missing / empty runs, "no data yet" panels, distinguishable series."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

from dynamo_rl.run import plots  # noqa: E402
from dynamo_rl.run.plots import PLOT_FILES, smooth, write_plots  # noqa: E402
from dynamo_rl.run.plots_cli import run as plot_cli  # noqa: E402

DEMO_RUN = Path(__file__).resolve().parents[2] / "docs" / "demo_run"


def _write(run_dir: Path, records: list[dict]) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return run_dir


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """The figures written, by file name (captured just before they are saved and closed)."""
    captured: dict[str, object] = {}
    original = plots._save

    def capture(fig, path):
        captured[Path(path).name] = fig
        labels = [[text.get_text() for text in ax.texts] for ax in fig.axes]
        fig.no_data_texts = labels
        fig.legend_labels = [ax.get_legend_handles_labels()[1] for ax in fig.axes]
        fig.yscales = [ax.get_yscale() for ax in fig.axes]
        return original(fig, path)

    monkeypatch.setattr(plots, "_save", capture)
    return captured


def test_smooth_is_a_centred_moving_average() -> None:
    assert smooth([1.0, 2.0, 3.0, 4.0, 5.0], 3) == [1.5, 2.0, 3.0, 4.0, 4.5]
    assert smooth([1.0, 5.0], 3) == [1.0, 5.0]
    assert smooth([2.0, 4.0, 6.0], 1) == [2.0, 4.0, 6.0]


def test_missing_run_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"^run directory not found: .*nope$"):
        write_plots(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match=r"^run directory not found: .*nope$"):
        plot_cli(argparse.Namespace(run_dir=str(tmp_path / "nope"), output=None))


def test_run_directory_without_metrics_or_records(tmp_path: Path) -> None:
    (tmp_path / "bare").mkdir()
    with pytest.raises(FileNotFoundError, match=r"^no metrics.jsonl in .*bare \(is it a run directory\?\)$"):
        write_plots(tmp_path / "bare")
    _write(tmp_path / "run", [])
    with pytest.raises(ValueError, match=r"^.*run/metrics.jsonl has no records yet; plot again after the first step$"):
        write_plots(tmp_path / "run")
    assert not (tmp_path / "run" / "plots").exists()  # nothing blank was drawn
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match=r"file is a file; expected a run directory"):
        write_plots(tmp_path / "file")


def test_short_run_says_no_data_yet(tmp_path: Path, figures: dict) -> None:
    records = [{"step": 0, "eval/acc": 0.25},
               {"step": 1, "reward/mean": 0.5, "acc/mean": 0.5, "actor/entropy": 0.3, "actor/grad_norm": 1.0,
                "actor/grad_norm_max": 1.0, "alloc/num_rollouts_min": 8, "alloc/num_rollouts_max": 8,
                "alloc/variance_reduction_ratio": None}]
    paths = write_plots(_write(tmp_path / "run", records))
    assert [p.name for p in paths] == list(PLOT_FILES) and all(p.stat().st_size > 0 for p in paths)
    assert figures["allocation.png"].no_data_texts == [
        [], ["no data yet\n(alloc/variance_reduction_ratio: needs prompts with history)"]]
    assert figures["dynamics.png"].no_data_texts == [[], [], ["no data yet\n(mod/*)"]]
    assert figures["learning_curve.png"].no_data_texts == [[], [], []]
    assert figures["dynamics.png"].legend_labels[1] == ["mean = max (1 optimiser step per step)"]


def test_grad_norm_mean_and_max_are_distinguishable(tmp_path: Path, figures: dict) -> None:
    records = [{"step": s, "actor/grad_norm": 1.0 + s, "actor/grad_norm_max": 50.0 * (1 + s)} for s in range(1, 30)]
    write_plots(_write(tmp_path / "run", records), tmp_path / "out")
    dynamics = figures["dynamics.png"]
    assert dynamics.legend_labels[1] == ["mean over optimiser steps", "max over optimiser steps (smoothed)"]
    assert dynamics.yscales[1] == "log"  # the two span more than 20x
    dashed = [line for line in dynamics.axes[1].get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == 1 and dashed[0].get_label() == "max over optimiser steps (smoothed)"
    assert dynamics.no_data_texts[0] == ["no data yet\n(actor/entropy)"]


@pytest.mark.skipif(not (DEMO_RUN / "metrics.jsonl").exists(), reason="demo run not present")
def test_demo_run_has_every_panel_and_separate_reward_and_accuracy(tmp_path: Path, figures: dict) -> None:
    write_plots(DEMO_RUN, tmp_path)
    for name in PLOT_FILES:
        assert all(texts == [] for texts in figures[name].no_data_texts), name
    curve = figures["learning_curve.png"]
    assert [ax.get_ylabel() for ax in curve.axes] == ["mean reward per rollout", "fraction of rollouts correct",
                                                      "accuracy"]
    assert curve.legend_labels[2][:2] == ["all levels", "L1"]
    allocation = figures["allocation.png"]
    assert allocation.legend_labels[0] == ["min–max n_i (raw)", "L1", "L2", "L3", "L4", "L5", "mean n_i"]
