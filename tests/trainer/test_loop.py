"""Tier-2 end to end: a few training steps on a tiny random Qwen2 built in code."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dynamo_rl.run.metric_names import TIME_KEYS
from tests.trainer.tiny_run import run_tiny, tiny_config, tiny_policy, tiny_problems


def _strip_times(records):
    return [{k: v for k, v in r.items() if k not in TIME_KEYS} for r in records]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_dynamo_steps_change_every_parameter_and_update_history(tmp_path):
    before = {name: p.detach().clone() for name, p in tiny_policy()[0].named_parameters()}
    result, model, spy = run_tiny(tiny_config(tmp_path / "a", steps=3), spy=True)

    assert len(result.records) == 3
    for record in result.records:
        assert np.isfinite(record["actor/loss"]) and np.isfinite(record["actor/grad_norm"])
        assert sum(record["alloc/num_rollouts"]) == 2 * 3  # budget = prompts × mean rollouts
    assert any(len(set(r["alloc/num_rollouts"])) > 1 for r in result.records)  # DRA made a non-uniform allocation
    unchanged = [name for name, p in model.named_parameters() if torch.equal(p.detach(), before[name])]
    assert unchanged == []

    # History counts grew by exactly the allocated n_i of every step the prompt appeared in.
    expected: dict[str, int] = {}
    by_text = {p.prompt: p.prompt_id for p in tiny_problems()}
    for prompts, counts in spy.calls:
        for prompt, n in zip(prompts, counts):
            expected[by_text[prompt]] = expected.get(by_text[prompt], 0) + n
    ids = sorted(expected)
    _, total = result.allocator.history.counts(ids)
    assert total.tolist() == [expected[i] for i in ids]
    assert [c for _, c in spy.calls] == [r["alloc/num_rollouts"] for r in result.records]


def test_same_seed_is_bit_identical(tmp_path):
    first, model_a, _ = run_tiny(tiny_config(tmp_path / "a", steps=2))
    second, model_b, _ = run_tiny(tiny_config(tmp_path / "b", steps=2))
    assert _strip_times(first.records) == _strip_times(second.records)
    for (name, a), (_, b) in zip(model_a.named_parameters(), model_b.named_parameters()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("method,overrides", [
    ("grpo", {}),
    ("dynamo", {"modulation.norm_scope": "mini", "optim.mini_batch_prompts": 1, "optim.micro_batch_size": 2}),
    ("dynamo", {"modulation.entropy_change_mode": "exact", "modulation.norm_scope": "global", "optim.ppo_epochs": 2}),
    ("entropy_loss", {}),
])
def test_methods_and_update_schedules_run(tmp_path, method, overrides):
    result, _, _ = run_tiny(tiny_config(tmp_path / "m", steps=2, method=method, **overrides))
    last = result.records[-1]
    assert np.isfinite(last["actor/loss"])
    steps_per_batch = overrides.get("optim.ppo_epochs", 1) * (2 if overrides.get("optim.mini_batch_prompts") else 1)
    assert last["actor/optimizer_steps"] == steps_per_batch
    if method == "grpo":
        assert all(r["alloc/num_rollouts"] == [3, 3] for r in result.records)


def test_evaluation_per_level_is_logged(tmp_path):
    config = tiny_config(tmp_path / "e", steps=1, **{"run.eval_every": 1})
    result, _, _ = run_tiny(config, eval_problems=tiny_problems())
    assert result.records[0]["step"] == 0 and "eval/acc" in result.records[0]
    assert {"eval/level/1/acc", "eval/level/2/acc"} <= set(result.records[-1])


def test_non_finite_loss_stops_with_step_and_quantity_and_keeps_last_checkpoint(tmp_path):
    from dynamo_rl.rollout.hf import HFBackend
    from dynamo_rl.run.checkpoint import latest_checkpoint
    from dynamo_rl.trainer.loop import train
    from dynamo_rl.trainer.update import NonFiniteError
    from tests.trainer.tiny_run import ParityVerifier

    model, tokenizer = tiny_policy()
    inner = HFBackend(model, tokenizer, batch_size=8)

    class PoisonAtStep3:
        calls = 0

        def generate(self, prompts, num_samples, params):
            completions = inner.generate(prompts, num_samples, params)
            self.calls += 1
            if self.calls == 3:  # corrupt the policy after sampling step 3
                with torch.no_grad():
                    model.model.norm.weight.fill_(float("nan"))
            return completions

    config = tiny_config(tmp_path, steps=4, **{"run.checkpoint_every": 2})
    with pytest.raises(NonFiniteError, match="non-finite (loss|gradient norm) .* at step 3"):
        train(config, model=model, tokenizer=tokenizer, problems=tiny_problems(), eval_problems=[],
              backend=PoisonAtStep3(), verifier=ParityVerifier())
    assert latest_checkpoint(tmp_path).name == "step_000002"
