"""Tests for dynamo_rl.core.token_stats (Eq 4, Eq 7, Eq 27 baseline; App. B identities)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dynamo_rl.core.token_stats import TokenStats, token_stats


def _loop_reference(logits: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0):
    """Slow float64 oracle: one position at a time, straight from the definitions."""
    flat = logits.detach().double().reshape(-1, logits.shape[-1])
    tg = targets.reshape(-1)
    out = {"logprobs": [], "entropy": [], "sum_sq_probs": [], "centered": []}
    for row, y in zip(flat, tg):
        z = row / temperature
        zmax = max(z.tolist())
        probs = [math.exp(v - zmax) for v in z.tolist()]
        total = sum(probs)
        probs = [p / total for p in probs]
        logp = [math.log(p) if p > 0 else -math.inf for p in probs]
        ent = -sum(p * lp for p, lp in zip(probs, logp) if p > 0)
        out["logprobs"].append(logp[int(y)])
        out["entropy"].append(ent)
        out["sum_sq_probs"].append(sum(p * p for p in probs))
        out["centered"].append(sum(p * p * (lp + ent) for p, lp in zip(probs, logp) if p > 0))
    shape = targets.shape
    return {k: torch.tensor(v, dtype=torch.float64).reshape(shape) for k, v in out.items()}


@pytest.mark.parametrize("temperature", [1.0, 0.6, 1.7])
@pytest.mark.parametrize("chunk_size", [None, 1, 3])
def test_matches_loop_reference_any_leading_shape(temperature: float, chunk_size: int | None) -> None:
    gen = torch.Generator().manual_seed(1)
    logits = 3.0 * torch.randn(2, 3, 4, 17, generator=gen)
    targets = torch.randint(0, 17, (2, 3, 4), generator=gen)
    stats = token_stats(logits, targets, temperature=temperature, chunk_size=chunk_size, with_centered=True)
    ref = _loop_reference(logits, targets, temperature)
    assert isinstance(stats, TokenStats)
    for field_name, key in (("logprobs", "logprobs"), ("entropy", "entropy"), ("sum_sq_probs", "sum_sq_probs"),
                            ("sum_sq_probs_centered", "centered")):
        got = getattr(stats, field_name)
        assert got.shape == (2, 3, 4) and got.dtype == torch.float32
        torch.testing.assert_close(got.double(), ref[key], atol=2e-5, rtol=1e-5)
    assert token_stats(logits, targets).sum_sq_probs_centered is None


def test_chunked_equals_unchunked_forward_and_backward() -> None:
    gen = torch.Generator().manual_seed(2)
    base = 4.0 * torch.randn(37, 101, generator=gen)
    targets = torch.randint(0, 101, (37,), generator=gen)
    results = []
    for chunk in (None, 1, 5, 37, 1000):
        logits = base.clone().requires_grad_(True)
        stats = token_stats(logits, targets, chunk_size=chunk, with_centered=True)
        weights = torch.linspace(-1, 2, 37)
        (stats.logprobs * weights).sum().backward()
        results.append((stats, logits.grad))
    ref_stats, ref_grad = results[0]
    for stats, grad in results[1:]:
        for name in ("logprobs", "entropy", "sum_sq_probs", "sum_sq_probs_centered"):
            torch.testing.assert_close(getattr(stats, name), getattr(ref_stats, name), atol=1e-6, rtol=1e-6)
        torch.testing.assert_close(grad, ref_grad, atol=1e-7, rtol=1e-6)


def test_gradcheck_float64_against_log_softmax() -> None:
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(2, 3, 7, dtype=torch.float64, generator=gen, requires_grad=True)
    targets = torch.randint(0, 7, (2, 3), generator=gen)

    def fn(x: torch.Tensor) -> torch.Tensor:
        return token_stats(x, targets, temperature=0.8, chunk_size=3).logprobs

    assert torch.autograd.gradcheck(fn, (logits,))
    # and the same gradient as autograd through log_softmax + gather
    weights = torch.randn(2, 3, dtype=torch.float64, generator=gen)
    (grad_ours,) = torch.autograd.grad((fn(logits) * weights).sum(), logits)
    ref = torch.log_softmax(logits / 0.8, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    (grad_ref,) = torch.autograd.grad((ref * weights).sum(), logits)
    torch.testing.assert_close(grad_ours, grad_ref, atol=1e-12, rtol=1e-10)


def test_only_logprobs_carry_gradient_and_inputs_untouched() -> None:
    logits = torch.randn(6, 11, requires_grad=True)
    before = logits.detach().clone()
    stats = token_stats(logits, torch.randint(0, 11, (6,)), chunk_size=2, with_centered=True)
    assert stats.logprobs.requires_grad
    for name in ("entropy", "sum_sq_probs", "sum_sq_probs_centered"):
        assert not getattr(stats, name).requires_grad, name
    assert torch.equal(logits.detach(), before)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_logits(dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(4)
    logits32 = 2.0 * torch.randn(8, 3000, generator=gen)
    logits = logits32.to(dtype).requires_grad_(True)
    targets = torch.randint(0, 3000, (8,), generator=gen)
    stats = token_stats(logits, targets, chunk_size=3, with_centered=True)
    ref = _loop_reference(logits.detach().float(), targets)  # same rounded inputs, float64 oracle
    assert stats.entropy.dtype == torch.float32
    torch.testing.assert_close(stats.entropy.double(), ref["entropy"], atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(stats.logprobs.detach().double(), ref["logprobs"], atol=1e-4, rtol=1e-5)
    stats.logprobs.sum().backward()
    assert logits.grad.dtype == dtype
    x = logits.detach().float().requires_grad_(True)
    torch.log_softmax(x, -1).gather(-1, targets[:, None]).sum().backward()
    torch.testing.assert_close(logits.grad.float(), x.grad, atol=1e-2, rtol=1e-2)


def test_masked_vocabulary_entries_give_finite_statistics() -> None:
    logits = torch.randn(3, 10)
    logits[:, 7:] = float("-inf")
    targets = torch.tensor([0, 3, 6])
    stats = token_stats(logits, targets, with_centered=True)
    ref = _loop_reference(logits[:, :7], targets)
    torch.testing.assert_close(stats.entropy.double(), ref["entropy"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(stats.sum_sq_probs_centered.double(), ref["centered"], atol=1e-5, rtol=1e-5)


def test_collision_probability_identities_app_b() -> None:
    """E_a‖e_a − π‖² = 1 − Σπ² ≤ 1 − e^{−H} (Eq 7 / App. B), and ‖e_a − π‖² = 1 − 2π_a + Σπ²."""
    gen = torch.Generator().manual_seed(5)
    for vocab in (2, 5, 49):
        scale = torch.rand(200, 1, dtype=torch.float64, generator=gen) * 8
        logits = scale * torch.randn(200, vocab, dtype=torch.float64, generator=gen)
        targets = torch.randint(0, vocab, (200,), generator=gen)
        stats = token_stats(logits, targets)
        probs = torch.softmax(logits, -1)
        eye = torch.eye(vocab, dtype=torch.float64)
        sq_norms = ((eye.unsqueeze(0) - probs.unsqueeze(1)) ** 2).sum(-1)  # (N, a)
        expected = (probs * sq_norms).sum(-1)
        torch.testing.assert_close(expected, 1 - stats.sum_sq_probs, atol=1e-12, rtol=1e-10)
        assert torch.all(1 - stats.sum_sq_probs <= 1 - torch.exp(-stats.entropy) + 1e-12)
        per_action = sq_norms.gather(1, targets[:, None]).squeeze(1)
        torch.testing.assert_close(per_action, 1 - 2 * stats.logprobs.exp() + stats.sum_sq_probs)


def test_first_order_entropy_change_matches_finite_difference() -> None:
    """ΔH ≈ −η ξ (π_a Λ_a − Σπ²Λ) for the logit step Δz = η ξ (e_a − π) (Eq 27; spec §2.4)."""
    rng = np.random.default_rng(6)
    rel_errors = []
    eta = 1e-4
    for _ in range(300):
        vocab = int(rng.integers(2, 50))
        z = torch.tensor(rng.normal(size=vocab) * rng.uniform(0.2, 5.0), dtype=torch.float64)
        probs = torch.softmax(z, -1)
        action = int(rng.choice(vocab, p=probs.numpy() / probs.numpy().sum()))
        xi = float(rng.normal())
        stats = token_stats(z[None], torch.tensor([action]), with_centered=True)
        predicted = -eta * xi * (stats.logprobs.exp() * (stats.logprobs + stats.entropy) - stats.sum_sq_probs_centered)
        step = eta * xi * (torch.nn.functional.one_hot(torch.tensor(action), vocab).double() - probs)
        new = token_stats((z + step)[None], torch.tensor([action]))
        true = new.entropy - stats.entropy
        if abs(float(true)) > 1e-13:
            rel_errors.append(abs(float(predicted) - float(true)) / abs(float(true)))
    assert len(rel_errors) > 250
    assert float(np.median(rel_errors)) < 1e-3


def test_per_sample_entropy_change_has_zero_mean() -> None:
    """E_{a∼π}[π_aΛ_a − Σπ²Λ] = 0."""
    gen = torch.Generator().manual_seed(7)
    vocab = 13
    z = 2.0 * torch.randn(vocab, dtype=torch.float64, generator=gen)
    rows = z.expand(vocab, vocab)
    stats = token_stats(rows, torch.arange(vocab), with_centered=True)
    probs = torch.softmax(z, -1)
    per_action = stats.logprobs.exp() * (stats.logprobs + stats.entropy) - stats.sum_sq_probs_centered
    assert abs(float((probs * per_action).sum())) < 1e-14
    assert float(per_action.abs().max()) > 1e-3  # non-trivial terms that cancel


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"logits": torch.randn(3, 5).long(), "targets": torch.zeros(3, dtype=torch.long)}, "logits"),
        ({"logits": torch.randn(3, 5), "targets": torch.zeros(3)}, "targets"),
        ({"logits": torch.randn(3, 5), "targets": torch.zeros(4, dtype=torch.long)}, "targets shape"),
        ({"logits": torch.randn(3, 5), "targets": torch.full((3,), 5)}, "targets must lie"),
        ({"logits": torch.randn(3, 5), "targets": torch.zeros(3, dtype=torch.long), "temperature": 0.0},
         "temperature"),
        ({"logits": torch.randn(3, 5), "targets": torch.zeros(3, dtype=torch.long), "chunk_size": 0}, "chunk_size"),
    ],
)
def test_bad_input_raises_naming_the_argument(kwargs: dict, match: str) -> None:
    logits, targets = kwargs.pop("logits"), kwargs.pop("targets")
    with pytest.raises(ValueError, match=match):
        token_stats(logits, targets, **kwargs)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    gen = torch.Generator().manual_seed(8)
    logits = (3.0 * torch.randn(9, 257, generator=gen)).bfloat16()
    targets = torch.randint(0, 257, (9,), generator=gen)
    results = []
    for device in ("cpu", "cuda"):
        x = logits.to(device).requires_grad_(True)
        stats = token_stats(x, targets.to(device), chunk_size=4, with_centered=True)
        stats.logprobs.sum().backward()
        results.append((stats, x.grad))
    (cpu, cpu_grad), (gpu, gpu_grad) = results
    for name in ("logprobs", "entropy", "sum_sq_probs", "sum_sq_probs_centered"):
        torch.testing.assert_close(getattr(gpu, name).detach().cpu(), getattr(cpu, name).detach(), atol=1e-4,
                                   rtol=1e-4)
    assert gpu_grad.dtype == torch.bfloat16
    torch.testing.assert_close(gpu_grad.float().cpu(), cpu_grad.float(), atol=1e-2, rtol=1e-2)


# ---------------------------------------------------------------- non-finite logits rows
@pytest.mark.parametrize("with_centered", [False, True])
def test_rows_without_finite_softmax_are_zeroed_flagged_and_get_no_gradient(with_centered: bool) -> None:
    gen = torch.Generator().manual_seed(21)
    base = 3.0 * torch.randn(6, 13, generator=gen)
    targets = torch.randint(0, 13, (6,), generator=gen)
    logits = base.clone()
    logits[1] = float("-inf")  # every entry masked
    logits[3, 5] = float("nan")
    logits[4, 0] = float("inf")
    logits.requires_grad_(True)
    stats = token_stats(logits, targets, chunk_size=4, with_centered=with_centered)
    assert stats.nonfinite.tolist() == [False, True, False, True, True, False]
    good = torch.tensor([0, 2, 5])
    ref_logits = base[good].clone().requires_grad_(True)
    ref = token_stats(ref_logits, targets[good], chunk_size=4, with_centered=with_centered)
    names = ["logprobs", "entropy", "sum_sq_probs"] + (["sum_sq_probs_centered"] if with_centered else [])
    for name in names:
        value = getattr(stats, name).detach()
        assert torch.equal(value[good], getattr(ref, name).detach()), name  # finite rows: unchanged, bit for bit
        assert value[[1, 3, 4]].tolist() == [0.0, 0.0, 0.0], name
    weights = torch.linspace(1, 2, 6)
    (stats.logprobs * weights).sum().backward()
    (ref.logprobs * weights[good]).sum().backward()
    assert torch.isfinite(logits.grad).all()
    assert torch.equal(logits.grad[[1, 3, 4]], torch.zeros(3, 13))
    assert torch.equal(logits.grad[good], ref_logits.grad)
    assert not stats.nonfinite.requires_grad
    assert {k: int(v) for k, v in stats.metrics().items()} == {"stats/nonfinite_tokens": 3}
    mask = torch.tensor([1, 1, 1, 0, 1, 1])  # padding positions are not counted
    assert {k: int(v) for k, v in stats.metrics(mask).items()} == {"stats/nonfinite_tokens": 2}


def test_finite_rows_report_no_nonfinite_tokens() -> None:
    stats = token_stats(torch.randn(2, 3, 7), torch.zeros(2, 3, dtype=torch.long))
    assert stats.nonfinite.shape == (2, 3) and not stats.nonfinite.any()
    assert int(stats.metrics()["stats/nonfinite_tokens"]) == 0
    hand_made = TokenStats(logprobs=torch.zeros(2), entropy=torch.zeros(2), sum_sq_probs=torch.zeros(2))
    assert int(hand_made.metrics()["stats/nonfinite_tokens"]) == 0
