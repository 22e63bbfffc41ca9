"""``dynamo-rl prepare-verl`` output and the math-verify reward function for verl."""

from __future__ import annotations

import json

import pytest

pq = pytest.importorskip("pyarrow.parquet")
pytest.importorskip("math_verify")

from dynamo_rl.adapters.verl.rewards import compute_score  # noqa: E402
from dynamo_rl.cli import main  # noqa: E402
from dynamo_rl.data.benchmarks import load_benchmark  # noqa: E402


def test_prepare_verl_writes_verl_rows_with_stable_ids(tmp_path, shared_data_dir, capsys):
    out = tmp_path / "verl"
    assert main(["prepare-verl", "--output-dir", str(out), "--data-dir", str(shared_data_dir), "--limit", "40",
                 "--benchmarks", "aime24,math500"]) == 0
    printed = capsys.readouterr().out
    assert "reward.custom_reward_function.path=pkg://dynamo_rl.adapters.verl.rewards" in printed
    train = pq.read_table(out / "train.parquet").to_pylist()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["cleaning"]["input_rows"] == 40 and len(train) == manifest["cleaning"]["output_rows"] > 0
    row = train[0]
    assert set(row) == {"data_source", "prompt", "ability", "reward_model", "extra_info"}
    assert row["data_source"] == "dapo17k" and row["ability"] == "math"
    assert [m["role"] for m in row["prompt"]] == ["system", "user"] and "\\boxed{}" in row["prompt"][0]["content"]
    assert row["reward_model"]["style"] == "rule"
    ids = [r["extra_info"]["index"] for r in train]
    assert len(set(ids)) == len(ids)
    expected = {p.prompt_id: p for p in load_benchmark("dapo17k", data_dir=shared_data_dir, template=None, limit=40)}
    for r in train:
        problem = expected[r["extra_info"]["index"]]
        assert r["prompt"][1]["content"] == problem.problem and r["reward_model"]["ground_truth"] == problem.answer
        assert r["extra_info"]["split"] == "train"
    aime = pq.read_table(out / "aime24.parquet").to_pylist()
    assert len(aime) == 30 and {r["data_source"] for r in aime} == {"aime24"}
    assert {r["extra_info"]["split"] for r in aime} == {"test"}
    assert not (out / "amc23.parquet").exists()


def test_no_clean_keeps_every_row(tmp_path, shared_data_dir):
    out = tmp_path / "raw"
    assert main(["prepare-verl", "--output-dir", str(out), "--data-dir", str(shared_data_dir), "--limit", "25",
                 "--benchmarks", "", "--filters", ""]) == 0
    assert pq.read_metadata(out / "train.parquet").num_rows == 25
    assert "cleaning" not in json.loads((out / "manifest.json").read_text())


def test_compute_score_grades_with_math_verify():
    right = compute_score("aime24", "so the answer is \\boxed{\\frac{1}{2}}", "0.5")
    assert right == {"score": 1.0, "acc": 1.0, "answer_found": 1.0}
    wrong = compute_score("aime24", "\\boxed{3}", "4", extra_info={"index": "x"})
    assert wrong == {"score": 0.0, "acc": 0.0, "answer_found": 1.0}
    assert compute_score("aime24", "I give up", "4")["answer_found"] == 0.0
    assert compute_score("aime24", "\\boxed{3}", "4", mapping="plus_minus")["score"] == -1.0
    assert compute_score("aime24", "\\boxed{204}", 204.0)["score"] == 1.0  # numeric ground truth from parquet
    with pytest.raises(ValueError, match="ground_truth"):
        compute_score("aime24", "\\boxed{1}", "")


def test_verl_loads_the_reward_function_by_its_pkg_path():
    pytest.importorskip("verl.utils.import_utils")
    from verl.utils.import_utils import load_extern_object

    fn = load_extern_object("pkg://dynamo_rl.adapters.verl.rewards", "compute_score")
    assert fn("math500", "\\boxed{2}", "2")["score"] == 1.0
