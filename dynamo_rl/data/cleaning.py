"""Cleaning filters for DAPO-Math-17k (``../shared/data/README.md``), each a named option that counts its removals.

Filters run in this order; each counts the rows *it* removed that no earlier filter removed:

1. ``duplicates``: later copies of an identical problem text (the README's ``duplicate_of`` is not null);
2. ``answer_conflicts``: every row whose problem text appears with more than one answer (``answer_conflict``);
3. ``non_english``: rows containing CJK characters (``contains_chinese``);
4. ``text_artifacts``: rows with control characters other than newline and tab (``text_artifacts``).

All four on is the README's "suggested filter for clean English training". A row's flag fields (kept in
``Problem.meta`` by the loader) are used when present; otherwise the same rule is computed from the text, so the
filters also work on other datasets (and a test checks that both agree on the shared file).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from dynamo_rl.data.types import Problem

FILTERS: tuple[str, ...] = ("duplicates", "answer_conflicts", "non_english", "text_artifacts")

_CJK_RE = re.compile(r"[\u2e80-\u2fdf\u3040-\u30ff\u3100-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
"""Ideographs, radicals, kana, bopomofo and hangul; CJK punctuation and full-width forms alone do not count."""
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass
class CleaningReport:
    """Rows in, rows removed per filter (in the order applied), rows out."""

    input_rows: int
    removed: dict[str, int] = field(default_factory=dict)
    output_rows: int = 0

    def as_dict(self) -> dict[str, object]:
        return {"input_rows": self.input_rows, "removed": dict(self.removed), "output_rows": self.output_rows}


def _duplicate_mask(problems: Sequence[Problem]) -> list[bool]:
    if all("duplicate_of" in p.meta for p in problems):
        return [p.meta["duplicate_of"] is not None for p in problems]
    seen: set[str] = set()
    mask = []
    for p in problems:
        mask.append(p.problem in seen)
        seen.add(p.problem)
    return mask


def _conflict_mask(problems: Sequence[Problem]) -> list[bool]:
    if all(isinstance(p.meta.get("answer_conflict"), bool) for p in problems):
        return [p.meta["answer_conflict"] for p in problems]
    answers: dict[str, set[str]] = defaultdict(set)
    for p in problems:
        answers[p.problem].add(p.answer.strip())
    return [len(answers[p.problem]) > 1 for p in problems]


def _non_english_mask(problems: Sequence[Problem]) -> list[bool]:
    return [bool(p.meta["contains_chinese"]) if isinstance(p.meta.get("contains_chinese"), bool)
            else contains_cjk(p.problem) for p in problems]


def _artifact_mask(problems: Sequence[Problem]) -> list[bool]:
    return [bool(p.meta["text_artifacts"]) if isinstance(p.meta.get("text_artifacts"), bool)
            else has_control_chars(p.problem) for p in problems]


def contains_cjk(text: str) -> bool:
    """True if ``text`` holds a CJK ideograph, radical, kana, bopomofo or hangul syllable."""
    return _CJK_RE.search(text) is not None


def has_control_chars(text: str) -> bool:
    """True if ``text`` holds a control character other than newline and tab."""
    return _CONTROL_RE.search(text) is not None


_MASKS: dict[str, Callable[[Sequence[Problem]], list[bool]]] = {
    "duplicates": _duplicate_mask,
    "answer_conflicts": _conflict_mask,
    "non_english": _non_english_mask,
    "text_artifacts": _artifact_mask,
}


def clean_problems(problems: Sequence[Problem], *, drop_duplicates: bool = True, drop_answer_conflicts: bool = True,
                   drop_non_english: bool = True, drop_text_artifacts: bool = True
                   ) -> tuple[list[Problem], CleaningReport]:
    """Apply the enabled filters in the documented order; returns the kept problems and the counts.

    Every rule is evaluated on the whole input (an answer conflict exists between copies, so it must be seen before
    duplicates are dropped); a filter's count is the rows it drops that no earlier filter dropped.
    """
    enabled = {"duplicates": drop_duplicates, "answer_conflicts": drop_answer_conflicts,
               "non_english": drop_non_english, "text_artifacts": drop_text_artifacts}
    report = CleaningReport(input_rows=len(problems))
    dropped = [False] * len(problems)
    for name in FILTERS:
        if not enabled[name]:
            continue
        mask = _MASKS[name](problems)
        report.removed[name] = sum(1 for d, m in zip(dropped, mask) if m and not d)
        dropped = [d or m for d, m in zip(dropped, mask)]
    kept = [p for p, d in zip(problems, dropped) if not d]
    report.output_rows = len(kept)
    return kept, report


def clean_problems_by_name(problems: Sequence[Problem], filters: Sequence[str] = FILTERS
                           ) -> tuple[list[Problem], CleaningReport]:
    """:func:`clean_problems` with the filters given by name (e.g. from a CLI ``--filters`` option)."""
    unknown = [f for f in filters if f not in FILTERS]
    if unknown:
        raise ValueError(f"unknown cleaning filter(s) {unknown}; valid names: {', '.join(FILTERS)}")
    return clean_problems(problems, drop_duplicates="duplicates" in filters,
                          drop_answer_conflicts="answer_conflicts" in filters,
                          drop_non_english="non_english" in filters, drop_text_artifacts="text_artifacts" in filters)
