"""check_prompt_lengths: exact counts in range, huge rows measured without tokenizing, refuse or skip."""

from __future__ import annotations

import pytest

from dynamo_rl.data.limits import check_prompt_lengths
from dynamo_rl.data.types import Problem


class CountingTokenizer:
    """One token per whitespace-separated word; vocabulary entries of at most 6 characters."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def get_vocab(self) -> dict[str, int]:
        return {"a": 0, "bb": 1, "word12": 2}

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        assert add_special_tokens is False
        self.calls.append(len(text))
        return {"input_ids": [0] * len(text.split())}


def _problem(pid: str, text: str) -> Problem:
    return Problem(prompt_id=pid, problem="raw " + pid, answer="1", prompt=text)


def test_short_rows_are_not_tokenized_and_kept_in_order() -> None:
    tok = CountingTokenizer()
    problems = [_problem("a", "x y"), _problem("b", "p q r")]
    assert check_prompt_lengths(problems, tok, 16, skip=False) == (problems, 0)
    assert tok.calls == []  # 3 and 5 bytes + 2 ≤ 16: certainly short


def test_rows_in_between_are_tokenized_exactly() -> None:
    tok = CountingTokenizer()
    fits, too_long = _problem("fits", "ab " * 10), _problem("long", "ab " * 11)  # 10 and 11 words, 30/33 chars
    assert check_prompt_lengths([fits], tok, 10, skip=False) == ([fits], 0)
    with pytest.raises(ValueError, match=r"^row 'long': the prompt has 11 tokens \(33 characters\), over "
                                         r"max_prompt_tokens=10; shorten or remove the row"):
        check_prompt_lengths([fits, too_long], tok, 10, skip=False)
    assert check_prompt_lengths([fits, too_long, fits], tok, 10, skip=True) == ([fits, fits], 1)


@pytest.mark.parametrize("size", [200_000, 50_000_000])
def test_huge_rows_are_refused_without_tokenizing(size: int) -> None:
    tok = CountingTokenizer()
    huge = _problem("huge", "x" * size)
    with pytest.raises(ValueError, match=rf"^row 'huge': the prompt has at least {-(-size // 6)} tokens "
                                         rf"\({size} characters\), over max_prompt_tokens=4096"):
        check_prompt_lengths([_problem("ok", "fine"), huge], tok, 4096, skip=False)
    kept, skipped = check_prompt_lengths([huge, _problem("ok", "fine")], tok, 4096, skip=True)
    assert [p.prompt_id for p in kept] == ["ok"] and skipped == 1
    assert tok.calls == []


def test_raw_problem_is_measured_when_there_is_no_prompt() -> None:
    bare = Problem(prompt_id="bare", problem="w " * 50, answer="1")
    with pytest.raises(ValueError, match=r"row 'bare': the prompt has 50 tokens"):
        check_prompt_lengths([bare], CountingTokenizer(), 20, skip=False)


def test_real_tokenizer_and_multibyte_text() -> None:
    pytest.importorskip("transformers")
    from dynamo_rl.demo.tokenizer import build_tokenizer

    tok = build_tokenizer()
    problems = [_problem("ascii", "1+1=?"), _problem("big", "9" * 200_000)]
    with pytest.raises(ValueError, match=r"row 'big': the prompt has at least 40000 tokens \(200000 characters\)"):
        check_prompt_lengths(problems, tok, 64, skip=False)
    # 30 two-byte characters: the byte-level demo tokenizer gives one <unk> per byte, 60 tokens: over 40, within 64
    accented = _problem("accented", "é" * 30)
    with pytest.raises(ValueError, match=r"row 'accented': the prompt has 60 tokens \(30 characters\)"):
        check_prompt_lengths([accented], tok, 40, skip=False)
    assert check_prompt_lengths([accented], tok, 64, skip=False) == ([accented], 0)


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        (([], CountingTokenizer(), 0), ValueError, r"max_prompt_tokens must be a positive int, got 0"),
        (([], CountingTokenizer(), True), ValueError, r"max_prompt_tokens must be a positive int, got True"),
        (([], "tok", 5), ValueError, r"tokenizer must be callable"),
        ((["text"], CountingTokenizer(), 5), ValueError, r"problems\[0\] must be a Problem, got str"),
    ],
)
def test_bad_arguments(args: tuple, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        check_prompt_lengths(*args, skip=False)
