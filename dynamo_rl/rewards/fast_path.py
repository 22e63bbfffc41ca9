"""An exact shortcut of :class:`~dynamo_rl.rewards.math_verifier.MathVerifier` for plain-integer answers.

Most verifications in RLVR on competition math (DAPO-Math-17k, AIME, AMC: integer answers) and on the built-in demo
task compare a boxed integer with an integer gold answer. math-verify parses both through its LaTeX grammar
(≈ 2–3 ms per completion on one CPU core); deciding that case directly takes microseconds.

When it applies (:func:`integer_verdict` returns a verdict, otherwise None and math-verify decides):

* the content of the completion's last ``\\boxed{...}`` (as extracted by
  :func:`~dynamo_rl.rewards.math_verifier.last_boxed`, already stripped) is a *plain integer*: an optional ``-`` and
  1–:data:`MAX_DIGITS` ASCII digits, nothing else (no ``+``, spaces, commas, dots, Unicode digits);
* the gold answer, stripped of surrounding whitespace, is a plain integer in the same sense.

The verdict is then ``correct`` iff both integers are equal (``int("012") == 12``, ``-0 == 0``), with the boxed
content as ``parsed``: exactly what the math-verify path returns. Why: math-verify parses ``\\boxed{<digits>}`` into
``[Integer(value), "<digits>"]`` (leading zeros dropped, ``-0`` is ``Zero``) for both sides; an
``Integer``/``Integer`` pair is equal iff the values are (``sympy_numeric_eq``: integer comparison), a ``str``/``str``
pair iff the strings are (which implies equal values), and a mixed pair never. ``tests/rewards/test_fast_path.py``
checks the identity against math-verify on every gold answer of ``/work/shared/data`` and on perturbed answers
(±1, leading zeros, ``12.``, spaces, no box, large and negative numbers); ``benchmarks/bench_verify.py`` measures
the speed-up.

Not covered by design (math-verify decides): commas (``1,000``), signs ``+5``, decimals, LaTeX, any non-integer gold.
The only behavioural difference is under pathological load: math-verify's 3 s ``signal.alarm`` could fire on an
integer comparison and give ``timeout``; the shortcut never times out.
"""

from __future__ import annotations

import re

from dynamo_rl.rewards.base import Verdict

MAX_DIGITS = 50
"""Longest integer decided here (the identity test covers random integers up to this length)."""

_PLAIN_INTEGER = re.compile(rf"-?[0-9]{{1,{MAX_DIGITS}}}")


def plain_integer(text: str) -> int | None:
    """``int(text)`` when ``text`` is exactly an optional ``-`` and 1–:data:`MAX_DIGITS` ASCII digits, else None."""
    if _PLAIN_INTEGER.fullmatch(text) is None:
        return None
    return int(text)


def integer_verdict(boxed: str | None, answer: str) -> Verdict | None:
    """The verdict for a completion whose last ``\\boxed{}`` holds ``boxed`` (stripped; None: no boxed answer)
    against the gold ``answer``, when both are plain integers; None when math-verify must decide."""
    if boxed is None:
        return None
    predicted = plain_integer(boxed)
    if predicted is None:
        return None
    gold = plain_integer(answer.strip())
    if gold is None:
        return None
    return Verdict(1.0, "correct", boxed) if predicted == gold else Verdict(0.0, "incorrect", boxed)
