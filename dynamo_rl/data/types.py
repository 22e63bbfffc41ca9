"""The record every dataset loader yields."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One problem with a verifiable answer.

    ``prompt_id`` is stable across runs, shuffles and processes (the key of the allocator's success history);
    ``prompt`` is the text given to the model (template applied), ``problem`` the raw statement.
    """

    prompt_id: str
    problem: str
    answer: str
    prompt: str = ""
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
