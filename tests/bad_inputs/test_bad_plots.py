"""Bad run directories for `dynamo-rl plot` (dynamo_rl.run.plots): one clear error, never blank plots.

Each row of docs/bad_inputs.md ("Datasets, verifier, numerics, plots", area "plots") is one case here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

from dynamo_rl.run.plots import write_plots  # noqa: E402


def _missing(tmp: Path) -> tuple[Path, None]:
    return tmp / "no-such-run", None


def _empty_metrics(tmp: Path) -> tuple[Path, None]:
    (tmp / "run").mkdir()
    (tmp / "run" / "metrics.jsonl").write_text("")
    return tmp / "run", None


def _blank_lines(tmp: Path) -> tuple[Path, None]:
    (tmp / "run").mkdir()
    (tmp / "run" / "metrics.jsonl").write_text("\n\n")
    return tmp / "run", None


def _records_without_step(tmp: Path) -> tuple[Path, None]:
    (tmp / "run").mkdir()
    (tmp / "run" / "metrics.jsonl").write_text('{"reward/mean": 0.5}\n{"step": "three"}\n')
    return tmp / "run", None


def _no_metrics_file(tmp: Path) -> tuple[Path, None]:
    (tmp / "run").mkdir()
    return tmp / "run", None


def _run_dir_is_file(tmp: Path) -> tuple[Path, None]:
    (tmp / "run").write_text("x")
    return tmp / "run", None


def _output_is_file(tmp: Path) -> tuple[Path, Path]:
    (tmp / "run").mkdir()
    (tmp / "run" / "metrics.jsonl").write_text('{"step": 1, "reward/mean": 0.5}\n')
    (tmp / "out.png").write_text("x")
    return tmp / "run", tmp / "out.png"


@pytest.mark.parametrize(
    ("setup", "error", "message"),
    [
        pytest.param(_missing, FileNotFoundError, "run directory not found: {tmp}/no-such-run", id="missing-run-dir"),
        pytest.param(_empty_metrics, ValueError, "{tmp}/run/metrics.jsonl has no records yet", id="empty-metrics"),
        pytest.param(_blank_lines, ValueError, "{tmp}/run/metrics.jsonl has no records yet", id="blank-metrics"),
        pytest.param(_records_without_step, ValueError, "{tmp}/run/metrics.jsonl has no records yet",
                     id="records-without-numeric-step"),
        pytest.param(_no_metrics_file, FileNotFoundError, "no metrics.jsonl in {tmp}/run", id="no-metrics-file"),
        pytest.param(_run_dir_is_file, NotADirectoryError, "{tmp}/run is a file; expected a run directory",
                     id="run-dir-is-a-file"),
        pytest.param(_output_is_file, NotADirectoryError, "plot output {tmp}/out.png is a file; expected a directory",
                     id="output-is-a-file"),
    ],
)
def test_bad_run_directory(tmp_path: Path, setup, error: type[Exception], message: str) -> None:
    run_dir, out = setup(tmp_path)
    with pytest.raises(error) as info:
        write_plots(run_dir, out)
    assert type(info.value) is error
    assert message.format(tmp=tmp_path) in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "run" / "plots").exists()
