"""RolloutBatch: per-prompt fields expanded by n_i (the official trainer's bug, method-spec §3.5), padding, mini-batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dynamo_rl.core.advantages import compute_advantages
from dynamo_rl.core.groups import repeat_per_prompt
from dynamo_rl.data.types import Problem
from dynamo_rl.rewards.base import Verdict
from dynamo_rl.rewards.runner import verify_all
from dynamo_rl.rollout.types import Completion
from dynamo_rl.trainer.batch import (
    RolloutBatch,
    mini_batches,
    pad_tokens,
    token_batch,
)


class ExactVerifier:
    """Correct iff the completion is exactly ``\\boxed{answer}``."""

    def verify(self, completion: str, answer: str) -> Verdict:
        ok = completion == f"\\boxed{{{answer}}}"
        return Verdict(float(ok), "correct" if ok else "incorrect", completion)


def _problems() -> list[Problem]:
    return [Problem(prompt_id=f"p{i}", problem=f"q{i}", answer=str(10 * (i + 1)), prompt=f"Q{i}",
                    meta={"level": i + 1}) for i in range(3)]


def _completions(problems: list[Problem], num_rollouts: list[int], correct_pattern: list[list[bool]]) -> list[Completion]:
    """Every response answers its OWN prompt's question, right or wrong as in ``correct_pattern[i][j]``."""
    out = []
    for i, (problem, n) in enumerate(zip(problems, num_rollouts)):
        for j in range(n):
            answer = problem.answer if correct_pattern[i][j] else "-1"
            out.append(Completion(prompt_index=i, text=f"\\boxed{{{answer}}}", token_ids=[5] * (j + 1),
                                  finish_reason="stop", prompt_token_ids=[1] * (i + 2)))
    return out


def test_repeat_per_prompt_uses_each_count():
    assert repeat_per_prompt(["a", "b", "c"], [1, 3, 2]) == ["a", "b", "b", "b", "c", "c"]
    assert repeat_per_prompt(["a", "b"], [0, 2]) == ["b", "b"]
    with pytest.raises(ValueError, match="num_rollouts has 1 entries for 2 prompts"):
        repeat_per_prompt(["a", "b"], [1])


def test_non_uniform_allocation_grades_each_response_against_its_own_answer():
    problems = _problems()
    num_rollouts = [2, 5, 3]  # non-uniform: the case the authors' trainer gets wrong
    pattern = [[True, False], [True, True, True, True, True], [False, True, False]]
    batch = RolloutBatch.from_completions(problems, num_rollouts, _completions(problems, num_rollouts, pattern))

    assert batch.size == 10
    assert batch.prompt_ids == ["p0"] * 2 + ["p1"] * 5 + ["p2"] * 3
    assert batch.answers == ["10"] * 2 + ["20"] * 5 + ["30"] * 3
    assert batch.levels == [1] * 2 + [2] * 5 + [3] * 3
    assert batch.group_ids.tolist() == [0, 0, 1, 1, 1, 1, 1, 2, 2, 2]

    verdicts = verify_all(ExactVerifier(), batch.texts, batch.answers)
    batch = batch.with_verdicts(verdicts, [v.score for v in verdicts])
    expected = [float(x) for row in pattern for x in row]
    assert batch.rewards.tolist() == expected
    assert batch.correct_per_prompt().tolist() == [1, 5, 1]

    # Siblings share a group: the all-correct prompt gets zero advantage, the mixed ones are centred per group.
    adv = compute_advantages("grpo", batch.rewards, batch.group_ids)
    assert torch.allclose(adv[2:7], torch.zeros(5))
    for lo, hi in ((0, 2), (7, 10)):
        assert abs(float(adv[lo:hi].sum())) < 1e-5 and float(adv[lo:hi].abs().sum()) > 0

    # The official trainer's metadata expansion (uniform repeat by the mean n) would mis-grade these responses.
    uniform_answers = [p.answer for p in problems for _ in range(round(np.mean(num_rollouts)))][:batch.size]
    paired = len(uniform_answers)  # 3 × 3 = 9 answers for 10 responses
    wrong = [v.score for v in verify_all(ExactVerifier(), batch.texts[:paired], uniform_answers)]
    assert wrong != expected[:paired]


def test_completions_out_of_order_are_rejected():
    problems = _problems()
    completions = _completions(problems, [2, 1, 1], [[True, True], [True], [True]])
    completions[0], completions[2] = completions[2], completions[0]
    with pytest.raises(ValueError, match="prompt_index"):
        RolloutBatch.from_completions(problems, [2, 1, 1], completions)
    with pytest.raises(ValueError, match="3 completions for Σ n_i = 4"):
        RolloutBatch.from_completions(problems, [2, 1, 1], completions[:3])


def test_pad_tokens_layout():
    tokens = pad_tokens([[7, 8], [9]], [[1, 2, 3], [4]], pad_id=0)
    assert tokens.prompt_width == 2
    assert tokens.input_ids.tolist() == [[7, 8, 1, 2, 3], [0, 9, 4, 0, 0]]
    assert tokens.attention_mask.tolist() == [[1, 1, 1, 1, 1], [0, 1, 1, 0, 0]]
    assert tokens.position_ids.tolist() == [[0, 1, 2, 3, 4], [0, 0, 1, 1, 1]]
    assert tokens.targets.tolist() == [[1, 2, 3], [4, 0, 0]]
    assert tokens.response_mask.tolist() == [[True, True, True], [True, False, False]]


def test_token_batch_rows_and_mini_batches_keep_groups_whole():
    problems = _problems()
    num_rollouts = [2, 5, 3]
    batch = RolloutBatch.from_completions(
        problems, num_rollouts, _completions(problems, num_rollouts, [[True] * 2, [True] * 5, [True] * 3]))
    sub = token_batch(batch, [2, 9], pad_id=0)
    assert sub.prompt_width == 4 and sub.targets.shape == (2, 3)
    minis = mini_batches(np.array(num_rollouts), 2, np.random.default_rng(0))
    rows = np.concatenate(minis)
    assert sorted(rows.tolist()) == list(range(10))
    for mini in minis:
        groups = batch.group_ids[torch.as_tensor(mini)]
        for g in groups.unique().tolist():
            assert int((groups == g).sum()) == num_rollouts[g]  # a group never straddles two mini-batches
    assert [m.tolist() for m in mini_batches(np.array(num_rollouts), None)] == [list(range(10))]
