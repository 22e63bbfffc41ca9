"""Verifier interface: a structured verdict, never a bare string or bool."""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real
from typing import Any, Literal, Protocol

from dynamo_rl.core.registry import Registry

Status = Literal["correct", "incorrect", "unparseable", "timeout"]
STATUSES: tuple[Status, ...] = ("correct", "incorrect", "unparseable", "timeout")


@dataclass(frozen=True)
class Verdict:
    """Outcome of verifying one completion against one reference answer.

    ``score`` is 1.0 for correct and 0.0 otherwise (the reward mapping happens later, see ``rewards.mapping``);
    ``parsed`` is the extracted final answer as text (None when nothing could be extracted). A verdict is checked
    when it is made: an unknown ``status``, a non-finite or non-numeric ``score`` or a non-str ``parsed`` raise
    ``ValueError`` naming the field, so a bad verdict can never reach a reward.
    """

    score: float
    status: Status
    parsed: str | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"Verdict status must be one of {', '.join(STATUSES)}, got {self.status!r}")
        if isinstance(self.score, bool) or not isinstance(self.score, Real) or not math.isfinite(self.score):
            raise ValueError(f"Verdict score must be a finite number, got {self.score!r}")
        if self.parsed is not None and not isinstance(self.parsed, str):
            raise ValueError(f"Verdict parsed must be a str or None, got {type(self.parsed).__name__}")

    @property
    def correct(self) -> bool:
        return self.status == "correct"


class Verifier(Protocol):
    """Anything that turns (completion, reference answer) into a :class:`Verdict`."""

    def verify(self, completion: str, answer: str) -> Verdict: ...


def check_verdict(value: Any, verifier: Any, index: int | None = None) -> Verdict:
    """``value`` if it is a :class:`Verdict`; else ``TypeError`` naming the verifier, the item and the returned type."""
    if isinstance(value, Verdict):
        return value
    item = "" if index is None else f" for item {index}"
    raise TypeError(f"verifier {type(verifier).__name__}.verify returned {type(value).__name__}{item}, expected a "
                    f"dynamo_rl.rewards.base.Verdict(score, status, parsed)")


VERIFIERS: Registry[type] = Registry("verifier")
"""Verifier classes by name (``math`` -> :class:`~dynamo_rl.rewards.math_verifier.MathVerifier`)."""
