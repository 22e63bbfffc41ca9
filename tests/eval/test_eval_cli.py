"""End-to-end ``dynamo-rl eval`` on CPU: a tiny random model on 3 problems of two benchmarks."""

from __future__ import annotations

import csv
import json

import pytest

from dynamo_rl.cli import main
from tests.tiny_models import save_tiny_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny_model"))


def test_eval_cli_end_to_end_and_compare(model_dir, shared_data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["eval", "--model", str(model_dir), "--benchmarks", "aime24,math500", "--data-dir", str(shared_data_dir),
            "--limit", "3", "--n", "2", "--k", "1,2", "--max-new-tokens", "6", "--output", str(out),
            "--template", "qwen25-math", "--chat", "--no-progress", "--seed", "1", "--workers", "1"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| Run | AIME24 P@1 | AIME24 P@2 | MATH500 P@1 | MATH500 P@2 | Average P@1 | Average P@2 |" in printed

    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 2 * 3 * 2
    assert {s["benchmark"] for s in samples} == {"aime24", "math500"}
    for s in samples:
        assert 1 <= s["num_tokens"] <= 6
        assert s["status"] in ("correct", "incorrect", "unparseable", "timeout")
    results = json.loads((out / "results.json").read_text())
    assert results["n"] == 2 and results["ks"] == [1, 2]
    for name in ("aime24", "math500"):
        bench = results["benchmarks"][name]
        assert bench["num_problems"] == 3
        assert sum(bench["status_counts"].values()) == 6
        correct = sum(s["correct"] for s in samples if s["benchmark"] == name)
        assert bench["avg_at_n"] == pytest.approx(correct / 6)
    assert results["config"]["chat"] is True
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [r["benchmark"] for r in rows] == ["aime24", "math500", "average"]

    # Resume: everything is finished, so the rerun reuses the log (same samples, same numbers).
    assert main(argv) == 0
    assert json.loads((out / "results.json").read_text()) == results
    assert len((out / "samples.jsonl").read_text().splitlines()) == 12

    capsys.readouterr()
    assert main(["eval", "--compare", str(out), str(out)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert len(table) == 4 and table[2].startswith("| run |")


def test_eval_cli_errors_name_the_value(model_dir, capsys):
    assert main(["eval", "--model", str(model_dir), "--n", "4", "--k", "1,8"]) == 2
    assert "k=8 exceeds n=4" in capsys.readouterr().err
    assert main(["eval", "--n", "4"]) == 2
    assert "--model is required" in capsys.readouterr().err
    assert main(["eval", "--model", str(model_dir), "--benchmarks", "gsm8k", "--n", "1",
                 "--max-new-tokens", "2"]) == 2
    assert "unknown benchmark 'gsm8k'" in capsys.readouterr().err
