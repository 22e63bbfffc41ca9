"""MathVerifier: extraction, statuses, safety, and self-verification of every row of the six benchmarks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytest.importorskip("math_verify")

from dynamo_rl.rewards.base import VERIFIERS  # noqa: E402
from dynamo_rl.rewards.math_verifier import MathVerifier, UnterminatedBoxedError, last_boxed, last_number  # noqa: E402
from dynamo_rl.rewards.runner import VerifierPool  # noqa: E402

BENCHMARK_FILES = ("aime2024", "aime2025", "amc2023", "math500", "minerva_math", "olympiadbench")

# Rows whose gold answer, written as "\boxed{<gold>}", does not verify against itself. Every entry needs a reason
# (docs/rewards.md lists them too). A new failure, or a listed row that starts passing, fails the test.
KNOWN_GOLD_FAILURES: dict[str, str] = {}


def typical_completion(answer: str) -> str:
    return f"Let me solve this step by step. ...reasoning... The final answer is $\\boxed{{{answer}}}$."


# ---------------------------------------------------------------------------------------------------- extraction
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so $\\boxed{42}$.", "42"),
        ("\\boxed{1} then \\boxed{2}", "2"),
        ("\\boxed{\\frac{1}{\\sqrt{2}}}", "\\frac{1}{\\sqrt{2}}"),
        ("\\boxed{ {a}{b} }", "{a}{b}"),
        ("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),  # escaped braces are text, not groups
        ("the answer is \\boxed 7 indeed", "7"),
        ("\\boxed 7$", "7"),
        ("\\fbox{x+1}", "x+1"),
        ("\\boxed{3} and \\boxedfoo{4}", "3"),  # \boxedfoo is another control word
        ("no box here", None),
        ("", None),
    ],
)
def test_last_boxed(text: str, expected: str | None) -> None:
    assert last_boxed(text) == expected


@pytest.mark.parametrize("text", ["\\boxed{", "\\boxed{1} \\boxed{\\frac{1}{2}", "\\boxed{{{{1}}}"])
def test_last_boxed_unterminated_raises(text: str) -> None:
    with pytest.raises(UnterminatedBoxedError):
        last_boxed(text)


def test_last_boxed_deep_nesting_and_long_text() -> None:
    deep = "\\boxed{" + "{" * 5000 + "1" + "}" * 5000 + "}"
    assert last_boxed(deep) == "{" * 5000 + "1" + "}" * 5000
    big = "x" * 1_000_000 + "\\boxed{5}"
    assert last_boxed(big) == "5"


def test_last_number() -> None:
    assert last_number("first 3 then -12.5 and 1,000") == "1000"
    assert last_number("x2 has no standalone number") is None


# ---------------------------------------------------------------------------------------------------- verdicts
@pytest.mark.parametrize(
    ("completion", "answer", "status"),
    [
        ("... so $\\boxed{\\frac{1}{2}}$", "0.5", "correct"),
        ("$\\boxed{2\\sqrt{2}}$", "\\sqrt{8}", "correct"),
        ("$\\boxed{x^2+2x+1}$", "(x+1)^2", "correct"),
        ("$\\boxed{(1, 2)}$", "(1,2)", "correct"),
        ("$\\boxed{[0, 1)}$", "[0,1)", "correct"),
        ("$\\boxed{3}$", "4", "incorrect"),
        ("$\\boxed{\\frac{1}{3}}$", "\\frac{1}{2}", "incorrect"),
        ("$\\boxed{x^2-1}$", "x^2+1", "incorrect"),
        ("$\\boxed{(1, 3)}$", "(1,2)", "incorrect"),
        ("$\\boxed{[0, 1]}$", "[0,1)", "incorrect"),
        ("earlier \\boxed{4}, finally \\boxed{5}", "4", "incorrect"),  # only the last box counts
        ("The final answer is $\\frac{3}{4}$.", "0.75", "correct"),  # math-verify's LaTeX fallback
        ("So the answer is 42.", "42", "correct"),  # plain-number fallback
        ("I am not sure.", "42", "unparseable"),
        ("\\boxed{42} ... but wait, \\boxed{4", "42", "unparseable"),  # truncated last box is not replaced
    ],
)
def test_verdicts(completion: str, answer: str, status: str) -> None:
    verdict = MathVerifier().verify(completion, answer)
    assert verdict.status == status
    assert verdict.score == (1.0 if status == "correct" else 0.0)


def test_parsed_answer_is_reported() -> None:
    verdict = MathVerifier().verify("thus $\\boxed{\\frac{7}{3}}$", "7/3")
    assert verdict.parsed == "\\frac{7}{3}" and verdict.correct


def test_fallback_off_and_long_answer() -> None:
    assert MathVerifier(fallback=False).verify("So the answer is 42.", "42").status == "unparseable"
    long_box = "\\boxed{" + "1+" * 600 + "1}"
    assert MathVerifier(max_answer_chars=1000).verify(long_box, "601").status == "unparseable"


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="answer"):
        MathVerifier().verify("\\boxed{1}", "  ")
    with pytest.raises(ValueError, match="completion"):
        MathVerifier().verify(None, "1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout_seconds"):
        MathVerifier(timeout_seconds=0)


def test_registered() -> None:
    assert VERIFIERS.get("math") is MathVerifier


def test_nothing_is_evaluated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SymPy's parse_expr (which calls eval) is never reached, and code in a completion has no effect."""
    import math_verify.parser
    import sympy.parsing.sympy_parser

    def forbidden(*args, **kwargs):
        raise AssertionError("parse_expr must never be called on completion text")

    monkeypatch.setattr(sympy.parsing.sympy_parser, "parse_expr", forbidden)
    monkeypatch.setattr(math_verify.parser, "parse_expr", forbidden)
    marker = tmp_path / "pwned"
    payload = f"__import__('os').system('touch {marker}')"
    verifier = MathVerifier()
    for completion in (f"\\boxed{{{payload}}}", f"The answer is {payload}", f"Answer: {payload}",
                       "x = 2**10 so the answer is 1024", "\\boxed{2^{10}}"):
        verdict = verifier.verify(completion, "1024")
        assert verdict.status in ("correct", "incorrect", "unparseable")
    assert not marker.exists()


# ---------------------------------------------------------------------------------------------------- benchmarks
def _load_rows(data_dir: Path) -> dict[str, list[dict]]:
    return {name: [json.loads(line) for line in (data_dir / f"{name}.jsonl").open(encoding="utf-8")]
            for name in BENCHMARK_FILES}


@pytest.fixture(scope="module")
def sweep_pool():
    # generous limits: this checks grading, not speed (a loaded CI machine must not turn rows into timeouts)
    with VerifierPool(MathVerifier(timeout_seconds=30), num_workers=2, timeout=90.0) as pool:
        yield pool


def test_every_benchmark_gold_verifies_correct(shared_data_dir: Path, sweep_pool: VerifierPool) -> None:
    rows = _load_rows(shared_data_dir)
    failures: dict[str, str] = {}
    rates = {}
    for name, items in rows.items():
        answers = [r["answer"] for r in items]
        verdicts = sweep_pool.verify([typical_completion(a) for a in answers], answers)
        rates[name] = sum(v.correct for v in verdicts) / len(items)
        failures.update({r["id"]: v.status for r, v in zip(items, verdicts) if not v.correct})
    total = sum(len(v) for v in rows.values())
    assert total == 1547
    overall = 1 - len(failures) / total
    print("self-verification rates:", {k: round(v, 4) for k, v in rates.items()}, "overall", round(overall, 4))
    assert overall >= 0.99, failures
    unexpected = {k: v for k, v in failures.items() if k not in KNOWN_GOLD_FAILURES}
    assert not unexpected, f"new self-verification failures: {unexpected}"
    fixed = set(KNOWN_GOLD_FAILURES) - set(failures)
    assert not fixed, f"listed exceptions now pass; remove them from KNOWN_GOLD_FAILURES and the docs: {fixed}"


def test_integer_golds_plus_one_verify_incorrect(shared_data_dir: Path, sweep_pool: VerifierPool) -> None:
    rows = [r for items in _load_rows(shared_data_dir).values() for r in items if re.fullmatch(r"-?\d+", r["answer"])]
    assert len(rows) > 500
    answers = [r["answer"] for r in rows]
    verdicts = sweep_pool.verify([typical_completion(str(int(a) + 1)) for a in answers], answers)
    wrong = {r["id"]: v.status for r, v in zip(rows, verdicts) if v.status != "incorrect"}
    assert not wrong
