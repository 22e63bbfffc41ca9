"""The built-in synthetic tasks: deterministic, disjoint splits, correct answers, every level present."""

from __future__ import annotations

import re

import pytest

from dynamo_rl.demo.task import FAMILIES, LEVELS, extract_boxed, is_correct, make_problems, split_of


def _evaluate(statement: str) -> int:
    """Independent reference: parse the statement with a regex and compute it."""
    if match := re.fullmatch(r"(\d+)\+(\d+)", statement):
        return int(match[1]) + int(match[2])
    if match := re.fullmatch(r"(\d+)\*(\d+)", statement):
        return int(match[1]) * int(match[2])
    if match := re.fullmatch(r"(\d+)%(\d+)", statement):
        return int(match[1]) % int(match[2])
    if match := re.fullmatch(r"\((\d+)\+(\d+)\)%(\d+)", statement):
        return (int(match[1]) + int(match[2])) % int(match[3])
    raise AssertionError(f"unexpected statement {statement!r}")


@pytest.mark.parametrize("family", FAMILIES)
def test_deterministic_by_seed_and_seed_matters(family):
    first = make_problems("train", 30, seed=3, family=family)
    assert first == make_problems("train", 30, seed=3, family=family)
    assert first != make_problems("train", 30, seed=4, family=family)


@pytest.mark.parametrize("family", FAMILIES)
def test_splits_are_disjoint_and_every_level_present(family):
    train = make_problems("train", 400, seed=0, family=family)
    test = make_problems("test", 400, seed=1, family=family)
    assert {p.problem for p in train}.isdisjoint({p.problem for p in test})
    for problems in (train, test):
        assert {p.meta["level"] for p in problems} == {level.number for level in LEVELS[family]}
        ids = [p.prompt_id for p in problems]
        assert len(ids) == len(set(ids))
    assert all(split_of(p.problem) == "train" for p in train)
    assert all(split_of(p.problem) == "test" for p in test)
    # the test split holds about a fifth of each large level
    assert 0.1 < len(make_problems("test", 10_000, levels=[1], family=family)) / 100 < 0.35


@pytest.mark.parametrize("family", FAMILIES)
def test_answers_prompts_and_reference_completions(family):
    for problem in make_problems("test", 50, seed=0, family=family):
        assert problem.answer == str(_evaluate(problem.problem))
        assert problem.prompt == f"Q: {problem.problem}=? A:"
        assert problem.prompt_id == f"demo/{family}/L{problem.meta['level']}/{problem.problem}"
        assert extract_boxed(problem.meta["completion"]) == problem.answer
        assert len(problem.prompt) + len(problem.meta["completion"]) <= 30


def test_level_contents():
    by_level = {}
    for problem in make_problems("train", 200, seed=0):
        by_level.setdefault(problem.meta["level"], []).append(problem.problem)
    assert all(re.fullmatch(r"\d\+\d", s) for s in by_level[1])
    assert all(re.fullmatch(r"\d\d\+\d", s) for s in by_level[2])
    for statement in by_level[3]:  # two-digit additions that all carry
        a, b = map(int, statement.split("+"))
        assert 10 <= a < 100 and 10 <= b < 100 and (a % 10 + b % 10 >= 10 or a // 10 + b // 10 >= 10)
    assert all(re.fullmatch(r"\d{3}\+\d{3}", s) for s in by_level[4])
    assert all(re.fullmatch(r"\d\d\*[2-9]", s) for s in by_level[5])


def test_small_levels_return_all_their_instances_and_levels_filter():
    every = make_problems("train", 10_000, seed=0, levels=[1])
    assert len(every) == len({p.problem for p in every}) == sum(split_of(f"{a}+{b}") == "train"
                                                                 for a in range(10) for b in range(10))
    assert {p.meta["level"] for p in make_problems("test", 5, levels=[2, 4])} == {2, 4}


def test_exact_match_grader():
    assert extract_boxed(r" \boxed{12} then \boxed{ 81 }") == "81"
    assert extract_boxed("81") is None
    assert is_correct(r" \boxed{81}", "81") and not is_correct(r" \boxed{18}", "81")


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"split": "valid", "num_per_level": 3}, "split"),
    ({"split": "train", "num_per_level": -1}, "num_per_level"),
    ({"split": "train", "num_per_level": 3, "levels": [0]}, "levels"),
    ({"split": "train", "num_per_level": 3, "family": "chess"}, "family"),
])
def test_bad_arguments_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        make_problems(**kwargs)


def test_math_verifier_agrees_with_exact_match():
    math_verifier = pytest.importorskip("dynamo_rl.rewards.math_verifier")
    verifier = math_verifier.MathVerifier()
    for problem in make_problems("test", 4, seed=0) + make_problems("test", 4, seed=0, family="modmath"):
        wrong = str(int(problem.answer) + 1)
        assert verifier.verify(problem.meta["completion"], problem.answer).correct
        assert not verifier.verify(f" \\boxed{{{wrong}}}", problem.answer).correct


def test_carry_dropped_answers_of_the_warm_start_noise():
    from dynamo_rl.demo.pretrain import carry_dropped

    assert carry_dropped("47+38") == "75"  # 7+8 -> 5 (carry dropped), 4+3 -> 7
    assert carry_dropped("7+8") == "5"
    assert carry_dropped("472+389") == "751"
    assert carry_dropped("41+5") is None  # no carry: the noisy answer would equal the true one
    assert carry_dropped("47*8") is None  # not an addition
