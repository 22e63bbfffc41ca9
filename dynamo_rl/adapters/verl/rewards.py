"""math-verify grading as verl's custom reward function.

Use with::

    reward.custom_reward_function.path=pkg://dynamo_rl.adapters.verl.rewards
    reward.custom_reward_function.name=compute_score

verl's reward loop calls ``compute_score(data_source=..., solution_str=..., ground_truth=..., extra_info=...)`` for
every response (in a thread pool). The answer is graded by :class:`dynamo_rl.rewards.math_verifier.MathVerifier`
(last ``\\boxed{}``, then math-verify's fallbacks) and mapped to a reward with
:func:`dynamo_rl.rewards.mapping.get_reward_mapping` (``binary`` by default: 1 correct / 0 otherwise, the paper's
R ∈ {0, 1}; pass ``reward.custom_reward_function.reward_kwargs.mapping=plus_minus`` for DAPO's ±1).

The returned dict's ``score`` is the reward; ``acc`` (1.0/0.0) and ``answer_found`` (1.0 when a final answer could be
extracted, so a model that stops writing ``\\boxed{}`` shows up) reach verl's metrics (``val-core/<data_source>/acc/
mean@n``); all values are numbers because verl averages every key. math-verify's own timeout is signal based and works only in the main thread,
so in verl's worker threads it is off (see :mod:`dynamo_rl.rewards.math_verifier`).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from dynamo_rl.rewards.mapping import RewardMapping, get_reward_mapping
from dynamo_rl.rewards.math_verifier import MathVerifier

__all__ = ["compute_score"]


@lru_cache(maxsize=8)
def _mapping(name: str) -> RewardMapping:
    return get_reward_mapping(name)


_VERIFIER = MathVerifier()


def _ground_truth(value: Any) -> str:
    if isinstance(value, (list, tuple)) and value:
        value = value[0]
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip() if value is not None else ""
    if not text:
        raise ValueError(f"ground_truth must be a non-empty answer, got {value!r}")
    return text


def compute_score(data_source: str, solution_str: str, ground_truth: Any, extra_info: dict | None = None,
                  mapping: str = "binary", **_: Any) -> dict[str, Any]:
    """Reward of one response: ``{"score": reward, "acc": 1.0 or 0.0, "answer_found": 1.0 or 0.0}``.

    ``data_source`` and ``extra_info`` are accepted for verl's signature and not used for grading.
    """
    verdict = _VERIFIER.verify(solution_str if isinstance(solution_str, str) else str(solution_str),
                               _ground_truth(ground_truth))
    return {
        "score": float(_mapping(mapping).reward(verdict)),
        "acc": 1.0 if verdict.correct else 0.0,
        "answer_found": 0.0 if verdict.status == "unparseable" else 1.0,
    }
