"""Verifiable rewards: structured verdicts, math-verify grading, batch verification with time limits, reward maps.

Pure Python (no torch). ``math-verify`` is imported only when a :class:`MathVerifier` verifies something.
"""

from dynamo_rl.rewards.base import STATUSES, VERIFIERS, Status, Verdict, Verifier
from dynamo_rl.rewards.mapping import (
    REWARD_MAPPINGS,
    RewardMapping,
    get_reward_mapping,
    map_rewards,
    status_counts,
    status_fractions,
)
from dynamo_rl.rewards.math_verifier import MathVerifier, last_boxed
from dynamo_rl.rewards.runner import VerifierPool, verify_batch

__all__ = [
    "MathVerifier",
    "REWARD_MAPPINGS",
    "RewardMapping",
    "STATUSES",
    "Status",
    "VERIFIERS",
    "Verdict",
    "Verifier",
    "VerifierPool",
    "get_reward_mapping",
    "last_boxed",
    "map_rewards",
    "status_counts",
    "status_fractions",
    "verify_batch",
]
