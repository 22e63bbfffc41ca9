"""Non-finite numbers in token statistics, modulation and advantages: exact masking counts or exact errors.

Each row of docs/bad_inputs.md ("Datasets, verifier, numerics, plots", area "numerics") is one case here.
"""

from __future__ import annotations

import pytest
import torch

from dynamo_rl.core.advantages import compute_advantages
from dynamo_rl.core.modulation import modulate_advantages
from dynamo_rl.core.token_stats import token_stats
from dynamo_rl.method_config import ModulationConfig

NAN, INF = float("nan"), float("inf")


def _logits_with(row: int, value: float, *, whole_row: bool) -> torch.Tensor:
    logits = torch.randn(4, 9, generator=torch.Generator().manual_seed(0))
    if whole_row:
        logits[row] = value
    else:
        logits[row, 3] = value
    return logits


@pytest.mark.parametrize(
    ("logits", "flagged"),
    [
        pytest.param(_logits_with(1, -INF, whole_row=True), [1], id="token-stats-row-all-minus-inf"),
        pytest.param(_logits_with(2, NAN, whole_row=False), [2], id="token-stats-one-nan-logit"),
        pytest.param(_logits_with(0, INF, whole_row=False), [0], id="token-stats-one-plus-inf-logit"),
        pytest.param(_logits_with(3, -INF, whole_row=False), [], id="token-stats-one-minus-inf-logit-is-fine"),
    ],
)
def test_token_stats_masks_rows_without_a_finite_softmax(logits: torch.Tensor, flagged: list[int]) -> None:
    logits.requires_grad_(True)
    stats = token_stats(logits, torch.tensor([0, 1, 2, 4]), with_centered=True)
    assert torch.nonzero(stats.nonfinite).flatten().tolist() == flagged
    assert int(stats.metrics()["stats/nonfinite_tokens"]) == len(flagged)
    for name in ("logprobs", "entropy", "sum_sq_probs", "sum_sq_probs_centered"):
        value = getattr(stats, name).detach()
        assert torch.isfinite(value).all(), name
        assert value[flagged].tolist() == [0.0] * len(flagged), name
    stats.logprobs.sum().backward()
    assert torch.isfinite(logits.grad).all()


def _batch():
    gen = torch.Generator().manual_seed(3)
    logits = 2.0 * torch.randn(3, 6, 11, generator=gen)
    stats = token_stats(logits, torch.randint(0, 11, (3, 6), generator=gen))
    inputs = {"logprobs": stats.logprobs.detach().clone(), "old_logprobs": stats.logprobs.detach() - 0.05,
              "entropy": stats.entropy.clone()}
    return torch.tensor([1.0, -0.5, 0.7]), torch.ones(3, 6, dtype=torch.bool), inputs


@pytest.mark.parametrize(
    ("field", "value", "count"),
    [
        pytest.param("entropy", NAN, 1, id="modulation-nan-entropy"),
        pytest.param("entropy", INF, 1, id="modulation-inf-entropy"),
        pytest.param("logprobs", -INF, 1, id="modulation-minus-inf-logprob"),
        pytest.param("old_logprobs", NAN, 1, id="modulation-nan-old-logprob"),
    ],
)
def test_modulation_leaves_out_nonfinite_tokens(field: str, value: float, count: int) -> None:
    adv, mask, inputs = _batch()
    inputs[field][0, 2] = value
    out = modulate_advantages(adv, mask, **inputs, eps_low=0.2, eps_high=0.28, **ModulationConfig().core_kwargs())
    assert float(out.metrics["mod/nonfinite_tokens"]) == count
    assert torch.isfinite(out.advantages).all()
    assert (float(out.compensation[0, 2]), float(out.stabilization[0, 2])) == (1.0, 1.0)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        pytest.param(lambda: compute_advantages("grpo", torch.tensor([1.0, 0.0, NAN, 1.0]), torch.tensor([0, 0, 1, 1])),
                     ValueError, "rewards must be finite, got non-finite values at rows [2] (rewards[2] = nan)",
                     id="advantages-nan-reward"),
        pytest.param(lambda: compute_advantages("rloo", torch.tensor([INF, 0.0]), torch.tensor([0, 0])),
                     ValueError, "non-finite values at rows [0] (rewards[0] = inf)", id="advantages-inf-reward"),
        pytest.param(lambda: token_stats(torch.randn(2, 5), torch.zeros(2, dtype=torch.long), temperature=INF),
                     ValueError, "temperature must be a finite number > 0, got inf", id="token-stats-temperature-inf"),
        pytest.param(lambda: token_stats(torch.randn(2, 5), torch.zeros(2, dtype=torch.long), temperature=NAN),
                     ValueError, "temperature must be a finite number > 0, got nan", id="token-stats-temperature-nan"),
    ],
)
def test_bad_numeric_argument(call, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        call()
    assert message in str(info.value) and "\n" not in str(info.value)
