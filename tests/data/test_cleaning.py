"""DAPO-Math-17k cleaning filters: counts on the shared file, agreement with the README rule, text fallbacks."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from dynamo_rl.data.benchmarks import load_benchmark
from dynamo_rl.data.cleaning import (
    FILTERS,
    clean_problems,
    clean_problems_by_name,
    contains_cjk,
    has_control_chars,
)
from dynamo_rl.data.types import Problem


@pytest.fixture(scope="module")
def dapo(shared_data_dir: Path) -> list[Problem]:
    return load_benchmark("dapo17k", data_dir=shared_data_dir, template=None)


def test_dapo_counts_and_readme_rule(dapo: list[Problem], shared_data_dir: Path) -> None:
    assert len(dapo) == 17_917
    kept, report = clean_problems(dapo)
    assert report.removed == {"duplicates": 627, "answer_conflicts": 11, "non_english": 3241, "text_artifacts": 36}
    assert report.input_rows == 17_917 and report.output_rows == len(kept) == 14_002
    # the README's suggested filter, evaluated on the raw file
    expected = []
    for line in (shared_data_dir / "dapo_math_17k.jsonl").open(encoding="utf-8"):
        r = json.loads(line)
        if r["duplicate_of"] is None and not r["answer_conflict"] and not r["contains_chinese"] \
                and not r["text_artifacts"]:
            expected.append(r["id"])
    assert [p.prompt_id for p in kept] == expected


def test_text_rules_agree_with_flags(dapo: list[Problem]) -> None:
    """Without the flag fields the same rules are computed from the text, with the same result."""
    stripped = [dataclasses.replace(p, meta={}) for p in dapo]
    kept_flags, report_flags = clean_problems(dapo)
    kept_text, report_text = clean_problems(stripped)
    assert report_text.removed == report_flags.removed
    assert [p.prompt_id for p in kept_text] == [p.prompt_id for p in kept_flags]


def test_each_filter_alone(dapo: list[Problem]) -> None:
    alone = {name: clean_problems_by_name(dapo, [name])[1].removed[name] for name in FILTERS}
    assert alone == {"duplicates": 627, "answer_conflicts": 22, "non_english": 3432, "text_artifacts": 36}
    kept, report = clean_problems_by_name(dapo, [])
    assert len(kept) == 17_917 and report.removed == {}


def make(text: str, answer: str, i: int) -> Problem:
    return Problem(prompt_id=str(i), problem=text, answer=answer)


def test_small_synthetic_set() -> None:
    problems = [
        make("What is 2+2?", "4", 0),
        make("What is 2+2?", "4", 1),  # duplicate
        make("Conflicted?", "1", 2),
        make("Conflicted?", "2", 3),  # same text, other answer: both copies go
        make("计算 1+1", "2", 4),  # Chinese
        make("ﬁnd x\x0cwith artefact", "3", 5),  # control character
        make("Clean one.", "5", 6),
        make("Tabs\tand\nnewlines are fine，even with a full-width comma", "6", 7),
    ]
    kept, report = clean_problems(problems)
    assert [p.prompt_id for p in kept] == ["0", "6", "7"]
    assert report.removed == {"duplicates": 2, "answer_conflicts": 1, "non_english": 1, "text_artifacts": 1}
    assert report.as_dict()["output_rows"] == 3
    kept, report = clean_problems(problems, drop_duplicates=False, drop_non_english=False)
    assert [p.prompt_id for p in kept] == ["0", "1", "4", "6", "7"]
    assert report.removed == {"answer_conflicts": 2, "text_artifacts": 1}


def test_text_predicates() -> None:
    assert contains_cjk("求 x") and contains_cjk("ひらがな") and contains_cjk("한국어")
    assert not contains_cjk("plain English，with full-width punctuation。")
    assert has_control_chars("a\x14b") and not has_control_chars("a\tb\nc")


def test_unknown_filter_name() -> None:
    with pytest.raises(ValueError, match="duplicates, answer_conflicts"):
        clean_problems_by_name([], ["dedupe"])
