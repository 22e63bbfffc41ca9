"""Built-in synthetic math tasks with verifiable ``\\boxed{}`` answers and graded difficulty.

Two families, each with five levels:

- ``arith`` (the demo task, the embedded model is warm-started on it): additions of growing length, then a
  two-digit by one-digit multiplication.
- ``modmath`` (a held-back family for the evidence study: no method was tuned on it): remainders and modular sums.

Prompts are short because the demo model reads characters: ``"Q: 23+58=? A:"``; the reference completion is
``" \\boxed{81}"`` followed by the tokenizer's end-of-sequence token.

Train and test splits are disjoint by construction: every problem instance (its text) is hashed with SHA-256 and
belongs to the test split when the hash is 0 modulo 5 (20 % of each level's instance space), to the train split
otherwise. Within a split, problems are drawn without repetition by a ``random.Random`` seeded from
``(family, split, level, seed)``, so the result is deterministic and independent of the other levels requested.
The ``prompt_id`` is the content itself (``demo/arith/L3/47+38``), stable across runs and processes.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from dynamo_rl.data.types import Problem

SPLITS: tuple[str, ...] = ("train", "test")
FAMILIES: tuple[str, ...] = ("arith", "modmath")
TEST_MODULUS = 5
"""An instance is in the test split when ``sha256(text) % TEST_MODULUS == 0``."""

Operands = tuple[int, ...]


@dataclass(frozen=True)
class Level:
    """One difficulty level: how to draw operands, how to write them, and the exact answer."""

    number: int
    description: str
    sample: Callable[[random.Random], Operands]
    render: Callable[[Operands], str]
    """The problem statement without the ``Q:``/``A:`` template, e.g. ``23+58``."""
    solve: Callable[[Operands], int]
    space: Callable[[], Iterable[Operands]] | None = None
    """All operands of the level when the space is small (drawn without repetition from it); None: rejection sampling."""


def _has_carry(a: int, b: int) -> bool:
    while a or b:
        if a % 10 + b % 10 >= 10:
            return True
        a, b = a // 10, b // 10
    return False


def _add(ops: Operands) -> int:
    return ops[0] + ops[1]


def _plus(ops: Operands) -> str:
    return f"{ops[0]}+{ops[1]}"


def _pairs(first: range, second: range, keep: Callable[[int, int], bool] = lambda a, b: True) -> list[Operands]:
    return [(a, b) for a in first for b in second if keep(a, b)]


_ONE = range(0, 10)
_TWO = range(10, 100)
_THREE = range(100, 1000)

_ARITH: tuple[Level, ...] = (
    Level(1, "one-digit addition (3+5)", lambda r: (r.randrange(10), r.randrange(10)), _plus, _add,
          lambda: _pairs(_ONE, _ONE)),
    Level(2, "two-digit + one-digit addition (47+5)", lambda r: (r.randrange(10, 100), r.randrange(10)), _plus,
          _add, lambda: _pairs(_TWO, _ONE)),
    Level(3, "two-digit addition with a carry (47+38)", lambda r: (r.randrange(10, 100), r.randrange(10, 100)), _plus,
          _add, lambda: _pairs(_TWO, _TWO, _has_carry)),
    Level(4, "three-digit addition (472+389)", lambda r: (r.randrange(100, 1000), r.randrange(100, 1000)), _plus,
          _add, None),
    Level(5, "two-digit by one-digit multiplication (47*8)", lambda r: (r.randrange(10, 100), r.randrange(2, 10)),
          lambda o: f"{o[0]}*{o[1]}", lambda o: o[0] * o[1], lambda: _pairs(_TWO, range(2, 10))),
)

_MODMATH: tuple[Level, ...] = (
    Level(1, "remainder of a one-digit number (7%3)", lambda r: (r.randrange(10), r.randrange(2, 10)),
          lambda o: f"{o[0]}%{o[1]}", lambda o: o[0] % o[1], lambda: _pairs(_ONE, range(2, 10))),
    Level(2, "remainder of a two-digit number (47%5)", lambda r: (r.randrange(10, 100), r.randrange(2, 10)),
          lambda o: f"{o[0]}%{o[1]}", lambda o: o[0] % o[1], lambda: _pairs(_TWO, range(2, 10))),
    Level(3, "modular sum of one-digit numbers ((7+8)%6)",
          lambda r: (r.randrange(10), r.randrange(10), r.randrange(2, 10)),
          lambda o: f"({o[0]}+{o[1]})%{o[2]}", lambda o: (o[0] + o[1]) % o[2],
          lambda: [(a, b, m) for a in _ONE for b in _ONE for m in range(2, 10)]),
    Level(4, "remainder of a three-digit number (472%7)", lambda r: (r.randrange(100, 1000), r.randrange(2, 10)),
          lambda o: f"{o[0]}%{o[1]}", lambda o: o[0] % o[1], lambda: _pairs(_THREE, range(2, 10))),
    Level(5, "modular sum of two-digit numbers ((47+38)%9)",
          lambda r: (r.randrange(10, 100), r.randrange(10, 100), r.randrange(2, 10)),
          lambda o: f"({o[0]}+{o[1]})%{o[2]}", lambda o: (o[0] + o[1]) % o[2], None),
)

LEVELS: dict[str, tuple[Level, ...]] = {"arith": _ARITH, "modmath": _MODMATH}
"""Levels of each family, easiest first; ``LEVELS[family][k - 1].number == k``."""


def format_prompt(statement: str) -> str:
    """The model's input for one problem statement: ``Q: 23+58=? A:``."""
    return f"Q: {statement}=? A:"


def format_completion(answer: str) -> str:
    """The reference completion (without the end-of-sequence token): `` \\boxed{81}``."""
    return f" \\boxed{{{answer}}}"


_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")


def extract_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` in ``text`` (no nested braces), stripped; None when there is none.

    This is the exact-match grader the warm start uses to measure accuracy; training and evaluation of the demo use
    the project's MathVerifier, which agrees on this task (tests/demo/test_task.py checks it).
    """
    found = _BOXED.findall(text)
    return found[-1].strip() if found else None


def is_correct(completion: str, answer: str) -> bool:
    """Exact match of the last boxed content against the reference answer."""
    return extract_boxed(completion) == answer


def split_of(statement: str) -> str:
    """``test`` for 1 in 5 instances (by a SHA-256 hash of the statement), ``train`` otherwise."""
    digest = int.from_bytes(hashlib.sha256(statement.encode()).digest()[:8], "big")
    return "test" if digest % TEST_MODULUS == 0 else "train"


def _rng(family: str, split: str, level: int, seed: int) -> random.Random:
    key = hashlib.sha256(f"{family}/{split}/L{level}/{seed}".encode()).digest()
    return random.Random(int.from_bytes(key[:8], "big"))


def _draw(level: Level, split: str, count: int, rng: random.Random) -> list[Operands]:
    if level.space is not None:
        space = [ops for ops in level.space() if split_of(level.render(ops)) == split]
        rng.shuffle(space)
        return space[:count]
    chosen: dict[str, Operands] = {}
    tries = 0
    while len(chosen) < count:
        tries += 1
        if tries > 50 * count + 1000:
            raise ValueError(f"num_per_level={count} is more than level {level.number} can provide for split={split!r}")
        ops = level.sample(rng)
        text = level.render(ops)
        if text not in chosen and split_of(text) == split:
            chosen[text] = ops
    return list(chosen.values())


def _check_levels(family: str, levels: Sequence[int] | None) -> list[Level]:
    if family not in LEVELS:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    table = LEVELS[family]
    if levels is None:
        return list(table)
    picked = []
    for k in levels:
        if not isinstance(k, int) or not 1 <= k <= len(table):
            raise ValueError(f"levels must hold integers in 1..{len(table)} for family {family!r}, got {k!r}")
        picked.append(table[k - 1])
    return picked


def make_problems(split: str, num_per_level: int, seed: int = 0, levels: Sequence[int] | None = None,
                  family: str = "arith") -> list[Problem]:
    """Up to ``num_per_level`` distinct problems of each requested level, level by level.

    Levels whose instance space in ``split`` is smaller than ``num_per_level`` (one-digit addition has 100
    instances, about 20 in the test split) return all of their instances. ``meta`` holds ``level``,
    ``family`` and ``completion`` (the reference completion, used by the supervised warm start).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not isinstance(num_per_level, int) or num_per_level < 0:
        raise ValueError(f"num_per_level must be a non-negative integer, got {num_per_level!r}")
    problems: list[Problem] = []
    for level in _check_levels(family, levels):
        for ops in _draw(level, split, num_per_level, _rng(family, split, level.number, seed)):
            statement = level.render(ops)
            answer = str(level.solve(ops))
            problems.append(Problem(
                prompt_id=f"demo/{family}/L{level.number}/{statement}",
                problem=statement,
                answer=answer,
                prompt=format_prompt(statement),
                source=f"demo/{family}",
                meta={"level": level.number, "family": family, "completion": format_completion(answer)},
            ))
    return problems


def describe_levels(family: str = "arith") -> list[str]:
    """One line per level, for ``--help`` texts and docs."""
    return [f"L{level.number}: {level.description}" for level in _check_levels(family, None)]
