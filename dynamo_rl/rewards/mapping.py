"""Reward mappings: verdicts -> scalar rewards, and per-status counts for logging.

A verdict is ``correct`` or not; ``unparseable`` and ``timeout`` get the same reward as ``incorrect`` (a completion
that gives no checkable answer is not rewarded) but are counted separately by :func:`status_counts`, so a run can
see whether its model stopped writing ``\\boxed{}`` answers or its verifier started timing out.

Built-in mappings (registry :data:`REWARD_MAPPINGS`):

- ``binary`` (default): correct 1, otherwise 0 (the paper's ``R(o) ∈ {0, 1}``).
- ``plus_minus``: correct +1, otherwise -1 (DAPO's score; affine-equivalent to ``binary`` under std-normalised GRPO).
- ``w_reinforce``: correct λ, otherwise -1 (W-REINFORCE, Zhu et al. 2025, arXiv 2506.01347; λ = 0.1 there).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from dynamo_rl.core.registry import Registry
from dynamo_rl.rewards.base import STATUSES, Verdict


@dataclass(frozen=True)
class RewardMapping:
    """Reward ``correct`` for a correct verdict and ``incorrect`` for every other status."""

    correct: float = 1.0
    incorrect: float = 0.0

    def __post_init__(self) -> None:
        if not self.correct > self.incorrect:
            raise ValueError(f"the correct reward must exceed the incorrect one, got correct={self.correct!r}, "
                             f"incorrect={self.incorrect!r}")

    def reward(self, verdict: Verdict) -> float:
        return self.correct if verdict.status == "correct" else self.incorrect

    def __call__(self, verdicts: Iterable[Verdict]) -> list[float]:
        return [self.reward(v) for v in verdicts]


REWARD_MAPPINGS: Registry = Registry("reward mapping")


@REWARD_MAPPINGS.register("binary")
def binary() -> RewardMapping:
    """Correct 1, otherwise 0."""
    return RewardMapping(1.0, 0.0)


@REWARD_MAPPINGS.register("plus_minus")
def plus_minus() -> RewardMapping:
    """Correct +1, otherwise -1."""
    return RewardMapping(1.0, -1.0)


@REWARD_MAPPINGS.register("w_reinforce")
def w_reinforce(lam: float = 0.1) -> RewardMapping:
    """Correct ``lam`` (λ), otherwise -1 (W-REINFORCE); λ must be > -1."""
    return RewardMapping(float(lam), -1.0)


def get_reward_mapping(name: str = "binary", **kwargs: float) -> RewardMapping:
    """The mapping registered as ``name`` (``binary``, ``plus_minus``, ``w_reinforce``; ``lam=`` for the last)."""
    factory = REWARD_MAPPINGS.get(name)
    try:
        return factory(**kwargs)
    except TypeError as exc:
        raise ValueError(f"reward mapping {name!r} does not accept {sorted(kwargs)}: {exc}") from None


def map_rewards(verdicts: Sequence[Verdict], mapping: str | RewardMapping = "binary", **kwargs: float) -> list[float]:
    """Rewards for ``verdicts`` under ``mapping`` (a name or a :class:`RewardMapping`)."""
    if isinstance(mapping, str):
        mapping = get_reward_mapping(mapping, **kwargs)
    elif kwargs:
        raise ValueError(f"keyword arguments {sorted(kwargs)} only apply to a mapping given by name")
    return mapping(verdicts)


def status_counts(verdicts: Iterable[Verdict]) -> dict[str, int]:
    """Number of verdicts per status; every status of :data:`~dynamo_rl.rewards.base.STATUSES` is a key."""
    counts = dict.fromkeys(STATUSES, 0)
    for verdict in verdicts:
        if verdict.status not in counts:
            raise ValueError(f"unknown verdict status {verdict.status!r}; valid: {', '.join(STATUSES)}")
        counts[verdict.status] += 1
    return counts


def status_fractions(verdicts: Sequence[Verdict]) -> dict[str, float]:
    """Fraction of verdicts per status (all zeros for an empty list), e.g. for ``reward/unparseable_frac``."""
    counts = status_counts(verdicts)
    total = max(len(verdicts), 1)
    return {status: count / total for status, count in counts.items()}
