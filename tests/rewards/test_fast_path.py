"""The plain-integer fast path gives exactly math-verify's verdicts (score, status and extracted text).

Every pair below is verified twice: by ``MathVerifier()`` (fast path on) and by ``MathVerifier(fast_path=False)``
(math-verify only); the verdicts must be equal. The pairs are the gold answers of ``/work/shared/data/*.jsonl``
written as ``\\boxed{gold}`` and perturbed (±1, sign, leading zeros, ``12.``, spaces, thousands separators, percent,
no box, several boxes, unterminated box, Unicode digits), the demo task's answers, and random integers up to
``MAX_DIGITS`` digits. The full data set (2,990 distinct gold answers, ≈ 90 s) is marked slow; an unmarked subset runs
in a few seconds.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

pytest.importorskip("math_verify")

from dynamo_rl.rewards.fast_path import MAX_DIGITS, integer_verdict, plain_integer  # noqa: E402
from dynamo_rl.rewards.math_verifier import MathVerifier  # noqa: E402

FAST = MathVerifier()
REFERENCE = MathVerifier(fast_path=False)


def gold_answers(data: Path, files: list[str] | None = None) -> list[str]:
    """Unique gold answers of the data files (all of ``data/*.jsonl`` by default), in file order."""
    paths = sorted(data.glob("*.jsonl")) if files is None else [data / f"{name}.jsonl" for name in files]
    seen: dict[str, None] = {}
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                seen.setdefault(json.loads(line)["answer"], None)
    return list(seen)


def variants(gold: str) -> list[tuple[str, str]]:
    """(completion, gold answer) pairs around one gold: the gold itself boxed, and perturbations of integer golds."""
    pairs = [(f"\\boxed{{{gold}}}", gold), (f"The final answer is $\\boxed{{{gold}}}$.", gold)]
    value = plain_integer(gold.strip())
    if value is None:
        return pairs
    g = gold.strip()
    completions = [
        f"\\boxed{{{value + 1}}}", f"\\boxed{{{value - 1}}}", f"\\boxed{{{-value}}}", f"\\boxed{{ {g} }}",
        f"\\boxed{{{g}.}}", f"\\boxed{{{g}.0}}", f"\\boxed{{0{g}}}", f"\\boxed{{00{g}}}", f"\\boxed{{+{g}}}",
        f"{g}", f"The answer is {g}.", f"\\boxed{{{value * 100}}}", f"\\boxed{{{g}\\%}}", f"\\boxed{{{g},000}}",
        f"\\boxed{{{g[:1]} {g[1:]}}}" if len(g) > 1 else f"\\boxed{{{g} }}", f"\\fbox{{{g}}}",
        f"\\boxed{{{value + 1}}} so \\boxed{{{g}}}", f"\\boxed{{{g}}} so \\boxed{{{value + 1}}}", f"\\boxed{{{g}",
        f"\\boxed{{{g}}} \\boxed{{{g}", f"\\boxed {g}", f"\\boxed{{{'٣' * len(g)}}}", f"\\boxed{{{g}}}}}",
    ]
    pairs += [(c, gold) for c in completions]
    pairs += [(f"\\boxed{{{g}}}", answer) for answer in (f" {g} ", f"0{g}", f"{g}.", f"+{g}", f"{value + 1}")]
    return pairs


def assert_identical(pairs: list[tuple[str, str]]) -> int:
    """Both verifiers agree on every pair; returns how many pairs the fast path decided itself."""
    decided = 0
    mismatches = []
    for completion, answer in pairs:
        fast, reference = FAST.verify(completion, answer), REFERENCE.verify(completion, answer)
        if FAST._fast_verdict(completion, answer) is not None:
            decided += 1
        if fast != reference:
            mismatches.append((completion, answer, fast, reference))
    assert not mismatches, f"{len(mismatches)} verdicts differ, first: {mismatches[:5]}"
    return decided


def test_plain_integer_accepts_only_ascii_integers():
    assert plain_integer("12") == 12 and plain_integer("-007") == -7 and plain_integer("-0") == 0
    for text in ("", "-", "+5", "1,000", "12.", "1 2", " 12", "٣", "１２", "1e3", "0x1f", "9" * (MAX_DIGITS + 1)):
        assert plain_integer(text) is None, text
    assert plain_integer("9" * MAX_DIGITS) == int("9" * MAX_DIGITS)


def test_integer_verdict_cases():
    assert integer_verdict("12", " 12\n").status == "correct"
    assert integer_verdict("012", "12").parsed == "012"
    assert integer_verdict("13", "12").status == "incorrect"
    assert integer_verdict(None, "12") is None
    assert integer_verdict("12", "\\frac{1}{2}") is None
    assert integer_verdict("1/2", "12") is None


def test_fast_path_is_identical_on_a_subset_of_the_data(shared_data_dir):
    golds = (gold_answers(shared_data_dir, ["aime2024", "aime2025", "amc2023"])
             + gold_answers(shared_data_dir, ["math500"])[:120])
    pairs = [pair for gold in golds for pair in variants(gold)]
    decided = assert_identical(pairs)
    assert decided >= 500  # the comparison is not vacuous: the fast path decided these itself


def test_fast_path_is_identical_on_demo_answers_and_random_integers():
    from dynamo_rl.demo.task import make_problems

    rng = random.Random(0)
    pairs = []
    for problem in make_problems("train", 6, seed=0) + make_problems("test", 6, seed=0):
        pairs += [(f" \\boxed{{{problem.answer}}}", problem.answer),
                  (f" \\boxed{{{int(problem.answer) + 1}}}", problem.answer), (" \\boxed{", problem.answer)]
    for _ in range(60):
        digits = rng.randint(1, MAX_DIGITS)
        a = rng.randrange(10 ** (digits - 1), 10**digits) * rng.choice((1, -1))
        pairs += [(f"\\boxed{{{a}}}", str(a)), (f"\\boxed{{{a + 1}}}", str(a)), (f"\\boxed{{{a}}}", str(a - 1)),
                  (f"\\boxed{{{str(a).replace('-', '-00') if a < 0 else '00' + str(a)}}}", str(a))]
    pairs.append((f"\\boxed{{{'9' * (MAX_DIGITS + 1)}}}", "9" * (MAX_DIGITS + 1)))  # beyond MAX_DIGITS: math-verify
    assert assert_identical(pairs) >= 250


@pytest.mark.slow
def test_fast_path_is_identical_on_every_gold_answer(shared_data_dir):
    golds = gold_answers(shared_data_dir)
    assert len(golds) > 2000
    pairs = [pair for gold in golds for pair in variants(gold)]
    decided = assert_identical(pairs)
    assert decided >= 20_000
