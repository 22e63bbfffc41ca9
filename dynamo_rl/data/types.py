"""The record every dataset loader yields."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One problem with a verifiable answer.

    ``prompt_id`` is stable across runs, shuffles and processes (the key of the allocator's success history);
    ``prompt`` is the text given to the model (template applied), ``problem`` the raw statement. A field of the wrong
    type (or an empty ``prompt_id``) raises ``ValueError`` naming the field and the prompt id.
    """

    prompt_id: str
    problem: str
    answer: str
    prompt: str = ""
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.prompt_id, str) or not self.prompt_id:
            raise ValueError(f"Problem prompt_id must be a non-empty str, got {self.prompt_id!r:.80}")
        for name in ("problem", "answer", "prompt", "source"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise ValueError(f"Problem {self.prompt_id!r}: {name} must be a str, got {type(value).__name__}")
        if not isinstance(self.meta, dict):
            raise ValueError(f"Problem {self.prompt_id!r}: meta must be a dict, got {type(self.meta).__name__}")
