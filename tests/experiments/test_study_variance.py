"""The gradient-variance measurement of the study (experiments/study_variance.py): the variance formula and the
gradient of one draw against an independent full-batch computation of the same GRPO surrogate."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.study_variance import gradient_draw, trace_variance


def test_trace_variance_matches_numpy_and_bootstrap_weights():
    rng = np.random.default_rng(0)
    g = rng.normal(size=(7, 5))
    gram = g @ g.T
    assert trace_variance(gram) == pytest.approx(float(np.var(g, axis=0, ddof=1).sum()))
    # multiplicities w = a resample that repeats rows: same as the variance of the repeated rows
    w = np.array([2, 0, 1, 1, 0, 3, 0], dtype=float)
    repeated = np.repeat(g, w.astype(int), axis=0)
    assert trace_variance(gram, w) == pytest.approx(float(np.var(repeated, axis=0, ddof=1).sum()))


class _FixedBackend:
    """Returns the same hand-written completions for every call (prompt by prompt, as backends must)."""

    def __init__(self, tokenizer, texts_per_prompt):
        from dynamo_rl.rollout.types import Completion

        self.completions = [Completion(prompt_index=i, text=t, token_ids=tokenizer(t, add_special_tokens=False)
                                       ["input_ids"]) for i, texts in enumerate(texts_per_prompt) for t in texts]

    def generate(self, prompts, num_samples, params):
        assert [sum(c.prompt_index == i for c in self.completions) for i in range(len(prompts))] == list(num_samples)
        return list(self.completions)


def test_gradient_draw_equals_the_full_batch_grpo_surrogate():
    import torch

    from dynamo_rl.core.advantages import compute_advantages
    from dynamo_rl.demo.model import DEMO_ASSETS, load_model
    from dynamo_rl.demo.task import make_problems
    from dynamo_rl.rewards.math_verifier import MathVerifier
    from dynamo_rl.trainer.batch import pad_tokens

    torch.manual_seed(0)
    model, tokenizer = load_model(DEMO_ASSETS, "cpu")
    problems = make_problems("train", 1, seed=0)[:3]
    right = [f" \\boxed{{{p.answer}}}" for p in problems]
    texts = [[right[0], " \\boxed{1}", right[0]], [" \\boxed{7}", " \\boxed{8}"], [right[2], " \\boxed{0}"]]
    backend = _FixedBackend(tokenizer, texts)
    counts = np.array([3, 2, 2])
    pad = tokenizer.pad_token_id
    out = gradient_draw(model, tokenizer, backend, MathVerifier(), problems, counts, None, pad)
    assert out["zero_variance_share"] == pytest.approx(2 / 7)  # prompt 1: both wrong
    # independent computation: one padded batch of all 7 sequences, token-mean loss −Σ A·log π / Σ tokens
    comps = backend.completions
    rewards = torch.tensor([MathVerifier().verify(c.text, problems[c.prompt_index].answer).score for c in comps])
    groups = torch.tensor([c.prompt_index for c in comps])
    adv = compute_advantages("grpo", rewards, groups, eps=1e-6)
    prompts = [tokenizer(problems[c.prompt_index].prompt or problems[c.prompt_index].problem)["input_ids"]
               for c in comps]
    tokens = pad_tokens(prompts, [c.token_ids for c in comps], pad)
    width, length = tokens.prompt_width, tokens.targets.shape[1]
    model.zero_grad()
    logits = model(tokens.input_ids, attention_mask=tokens.attention_mask,
                   position_ids=tokens.position_ids).logits[:, width - 1:width - 1 + length]
    logp = torch.log_softmax(logits.float(), -1).gather(-1, tokens.targets.unsqueeze(-1)).squeeze(-1)
    mask = tokens.response_mask.float()
    loss = -(adv[:, None] * logp * mask).sum() / mask.sum()
    loss.backward()
    expected = np.concatenate([p.grad.reshape(-1).numpy() for p in model.parameters()])
    assert np.abs(expected).max() > 0
    np.testing.assert_allclose(out["token"], expected, rtol=2e-4, atol=1e-7)


def test_signal_and_noise_to_signal_from_the_gram_matrix():
    from experiments.study_variance import noise_to_signal, signal

    rng = np.random.default_rng(1)
    g = rng.normal(size=(9, 4)) + np.array([3.0, 0.0, -1.0, 2.0])
    gram = g @ g.T
    var = float(np.var(g, axis=0, ddof=1).sum())
    assert signal(gram) == pytest.approx(float(np.sum(g.mean(axis=0) ** 2)) - var / 9)
    assert noise_to_signal(gram) == pytest.approx(var / signal(gram))
