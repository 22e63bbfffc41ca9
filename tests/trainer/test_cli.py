"""`dynamo-rl train` end to end with tiny settings, and `dynamo-rl plot` writing the PNGs."""

from __future__ import annotations

import json

import pytest
import torch

from dynamo_rl.cli import main
from dynamo_rl.run.metrics import read_metrics
from dynamo_rl.run.plots import PLOT_FILES


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_train_then_plot(tmp_path, capsys):
    from tests.tiny_models import save_tiny_model

    model_dir = save_tiny_model(tmp_path / "model", hidden=16)
    data = tmp_path / "problems.jsonl"
    data.write_text("".join(json.dumps({"id": f"t/{i}", "problem": f"{i}+1", "answer": str(i + 1)}) + "\n"
                            for i in range(4)))
    run_dir = tmp_path / "run"
    code = main(["train", "--model", str(model_dir), "--dataset", str(data), "--method", "grpo",
                 "--output", str(run_dir), "--set", f"data.eval_dataset={data}", "--data.template", "null",
                 "--run.steps", "2", "--run.eval_every", "1", "--run.progress", "false", "--run.plots", "false",
                 "--rollout.prompts_per_step", "2", "--rollout.max_new_tokens", "4",
                 "--allocation.mean_rollouts", "2", "--allocation.n_min", "2", "--allocation.n_max", "3",
                 "--run.device", "cpu"])
    assert code == 0
    out = capsys.readouterr().out
    assert "held-out accuracy" in out
    records = read_metrics(run_dir)
    assert [r["step"] for r in records] == [0, 1, 2]
    assert records[-1]["status/correct"] + records[-1]["status/incorrect"] + records[-1]["status/unparseable"] \
        + records[-1]["status/timeout"] == 4
    assert (run_dir / "checkpoints" / "step_000002" / "model.safetensors").exists()
    assert "method: grpo" in (run_dir / "config.yaml").read_text()

    assert main(["plot", str(run_dir)]) == 0
    for name in PLOT_FILES:
        path = run_dir / "plots" / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_bad_override_is_reported(capsys):
    assert main(["train", "--optim.lr", "-1"]) == 2
    assert "optim.lr" in capsys.readouterr().err
