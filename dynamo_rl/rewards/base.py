"""Verifier interface: a structured verdict, never a bare string or bool."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from dynamo_rl.core.registry import Registry

Status = Literal["correct", "incorrect", "unparseable", "timeout"]
STATUSES: tuple[Status, ...] = ("correct", "incorrect", "unparseable", "timeout")


@dataclass(frozen=True)
class Verdict:
    """Outcome of verifying one completion against one reference answer.

    ``score`` is 1.0 for correct and 0.0 otherwise (the reward mapping happens later, see ``rewards.mapping``);
    ``parsed`` is the extracted final answer as text (None when nothing could be extracted).
    """

    score: float
    status: Status
    parsed: str | None = None

    @property
    def correct(self) -> bool:
        return self.status == "correct"


class Verifier(Protocol):
    """Anything that turns (completion, reference answer) into a :class:`Verdict`."""

    def verify(self, completion: str, answer: str) -> Verdict: ...


VERIFIERS: Registry[type] = Registry("verifier")
"""Verifier classes by name (``math`` -> :class:`~dynamo_rl.rewards.math_verifier.MathVerifier`)."""
