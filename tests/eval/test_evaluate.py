"""evaluate() with a scripted backend whose completions are known: exact metrics, resume, reports, compare."""

from __future__ import annotations

import csv
import json
from math import comb

import pytest

from dynamo_rl.data.types import Problem
from dynamo_rl.eval.evaluate import SAMPLES_FILE, EvalResults, check_ks, evaluate
from dynamo_rl.eval.report import compare, load_results, markdown_table
from dynamo_rl.rewards.base import Verdict
from dynamo_rl.rollout.types import Completion, SamplingParams


class ExactVerifier:
    """Correct iff the completion's last token equals the answer; "?" is unparseable (picklable, in-process)."""

    def verify(self, completion: str, answer: str) -> Verdict:
        parsed = completion.split()[-1]
        if parsed == "?":
            return Verdict(0.0, "unparseable", None)
        return Verdict(1.0, "correct", parsed) if parsed == answer else Verdict(0.0, "incorrect", parsed)


class ScriptedBackend:
    """Returns, for a prompt ``"P<id>"``, sample ``j`` = ``script[id][j]``; records every generate call."""

    def __init__(self, script: dict[str, list[str]], fail_after: int | None = None) -> None:
        self.script = script
        self.calls: list[list[str]] = []
        self.seeds: list[int | None] = []
        self.fail_after = fail_after

    def generate(self, prompts, num_samples, params):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        self.calls.append(list(prompts))
        self.seeds.append(params.seed)
        out = []
        for i, (prompt, count) in enumerate(zip(prompts, num_samples)):
            texts = self.script[prompt[1:]]
            assert count == len(texts)
            out += [Completion(prompt_index=i, text=t, token_ids=list(range(len(t))),
                               finish_reason="length" if t.endswith("...") else "stop") for t in texts]
        return out


N = 4
# answer "7" everywhere. Correct counts per problem: a1 → 4, a2 → 1, a3 → 0 ; b1 → 2, b2 → 3
SCRIPT = {
    "a1": ["so 7", "so 7", "so 7", "so 7"],
    "a2": ["so 7", "so 6", "so ?", "so 5 ..."],
    "a3": ["so 1", "so 2", "so 3", "so ?"],
    "b1": ["7", "7", "1", "2"],
    "b2": ["7", "7", "7", "8"],
}
CORRECT = {"a1": 4, "a2": 1, "a3": 0, "b1": 2, "b2": 3}


def problems():
    def make(pid):
        return Problem(prompt_id=pid, problem=f"problem {pid}", answer="7", prompt=f"P{pid}")

    return {"aime24": [make("a1"), make("a2"), make("a3")], "math500": [make("b1"), make("b2")]}


def pass_k(n, c, k):
    return 1.0 - comb(n - c, k) / comb(n, k)


def run(tmp_path=None, backend=None, **kw):
    backend = backend or ScriptedBackend(SCRIPT)
    kw.setdefault("ks", [1, 2, 4])
    return evaluate(backend, problems(), n=N, params=SamplingParams(seed=0), verifier=ExactVerifier(),
                    timeout=None, output_dir=tmp_path, progress=False, chunk_size=2, **kw), backend


def test_metrics_match_hand_computation():
    results, _ = run()
    a = results.benchmarks["aime24"]
    assert a.avg_at_n == pytest.approx((4 / 4 + 1 / 4 + 0 / 4) / 3)
    assert a.pass_at_k[1] == pytest.approx(a.avg_at_n)
    # pass@2: a1 → 1, a2 → 1 − C(3,2)/C(4,2) = 1/2, a3 → 0
    assert a.pass_at_k[2] == pytest.approx((1 + 0.5 + 0) / 3)
    assert a.pass_at_k[4] == pytest.approx(2 / 3)
    b = results.benchmarks["math500"]
    assert b.avg_at_n == pytest.approx((2 / 4 + 3 / 4) / 2)
    assert b.pass_at_k[2] == pytest.approx((pass_k(4, 2, 2) + pass_k(4, 3, 2)) / 2)
    assert a.status_counts == {"correct": 5, "incorrect": 5, "unparseable": 2, "timeout": 0}
    assert a.truncated_fraction == pytest.approx(1 / 12)
    assert a.mean_response_tokens == pytest.approx(sum(len(t) for k in ("a1", "a2", "a3") for t in SCRIPT[k]) / 12)
    assert [p["num_correct"] for p in a.problems] == [CORRECT["a1"], CORRECT["a2"], CORRECT["a3"]]
    assert results.average["pass@2"] == pytest.approx((a.pass_at_k[2] + b.pass_at_k[2]) / 2)


def test_k_larger_than_n_names_the_value():
    with pytest.raises(ValueError, match="k=8 exceeds n=4"):
        check_ks([1, 8], 4)
    with pytest.raises(ValueError, match="k=8"):
        run(ks=[1, 8])
    assert check_ks(None, 32) == [1, 32]


def test_resume_skips_finished_problems(tmp_path):
    # Chunks of 2 problems: aime24 = [a1, a2], [a3]; math500 = [b1, b2]. Interrupt before the third chunk.
    interrupted = ScriptedBackend(SCRIPT, fail_after=2)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, backend=interrupted)
    lines = (tmp_path / SAMPLES_FILE).read_text().splitlines()
    assert len(lines) == 3 * N
    with (tmp_path / SAMPLES_FILE).open("a") as handle:  # a torn last line from a crash mid-write
        handle.write('{"benchmark": "math500", "prompt_')
    resumed, backend = run(tmp_path)
    assert backend.calls == [["Pb1", "Pb2"]]
    fresh, fresh_backend = run()
    # Chunk seeds depend on (seed, benchmark, chunk) only: the resumed chunk got the seed it has in a fresh run.
    assert len(set(fresh_backend.seeds)) == 3
    assert interrupted.seeds + backend.seeds == fresh_backend.seeds
    assert resumed.to_dict()["benchmarks"] == fresh.to_dict()["benchmarks"]
    records = [json.loads(line) for line in (tmp_path / SAMPLES_FILE).read_text().splitlines()]
    assert len(records) == 5 * N
    assert {(r["benchmark"], r["prompt_id"]) for r in records} == {
        ("aime24", "a1"), ("aime24", "a2"), ("aime24", "a3"), ("math500", "b1"), ("math500", "b2")}
    # Everything finished: a rerun generates nothing.
    _, again = run(tmp_path)
    assert again.calls == []


def test_resume_refuses_a_different_configuration(tmp_path):
    run(tmp_path)
    with pytest.raises(ValueError, match="different configuration.*n"):
        evaluate(ScriptedBackend({k: v + v for k, v in SCRIPT.items()}), problems(), n=2 * N, ks=[1],
                 verifier=ExactVerifier(), timeout=None, output_dir=tmp_path, progress=False, chunk_size=2,
                 params=SamplingParams(seed=0))
    _, backend = run(tmp_path, resume=False)  # --no-resume starts over
    assert len(backend.calls) == 3


def test_reports_json_csv_markdown_and_compare(tmp_path):
    results, _ = run(tmp_path / "run_a", run_info={"model": "tiny-a"})
    loaded = load_results(tmp_path / "run_a")
    assert isinstance(loaded, EvalResults)
    assert loaded.to_dict() == json.loads(json.dumps(results.to_dict()))
    rows = list(csv.DictReader((tmp_path / "run_a" / "results.csv").open()))
    assert [r["benchmark"] for r in rows] == ["aime24", "math500", "average"]
    assert float(rows[0]["pass@2"]) == pytest.approx(0.5, abs=1e-6)
    assert float(rows[0]["avg@n"]) == pytest.approx(5 / 12, abs=1e-6)
    assert rows[0]["unparseable"] == "2"
    assert float(rows[2]["avg@n"]) == pytest.approx(results.average["avg@n"], abs=1e-6)
    md = (tmp_path / "run_a" / "results.md").read_text()
    header = "| Run | AIME24 P@1 | AIME24 P@2 | AIME24 P@4 | MATH500 P@1 | MATH500 P@2 | MATH500 P@4 | Average P@1 |"
    assert header in md
    # aime24 P@1 = 41.7, P@2 = 50.0, P@4 = 66.7; math500 P@1 = 62.5
    assert "| tiny-a | 41.7 | 50.0 | 66.7 | 62.5 |" in md

    other = ScriptedBackend({k: ["7"] * N for k in SCRIPT})
    run(tmp_path / "run_b", backend=other, ks=[1, 4])
    table = compare([tmp_path / "run_a", tmp_path / "run_b"])
    lines = table.splitlines()
    assert lines[0].startswith("| Run | AIME24 P@1 | AIME24 P@2 | AIME24 P@4 |")
    assert lines[2].startswith("| run_a | 41.7 | 50.0 | 66.7 |")
    assert lines[3].startswith("| run_b | 100.0 | – | 100.0 |")  # run_b has no pass@2
    with pytest.raises(FileNotFoundError, match="results.json"):
        compare([tmp_path / "missing"])
    assert markdown_table([loaded], ["x"]).count("\n") == 3


def test_bad_problems_are_rejected():
    twice = [Problem("p", "x", "1", "Pp"), Problem("p", "y", "2", "Pq")]
    with pytest.raises(ValueError, match="duplicate prompt_id 'p'"):
        evaluate(ScriptedBackend({}), twice, n=1, verifier=ExactVerifier(), timeout=None, progress=False)
