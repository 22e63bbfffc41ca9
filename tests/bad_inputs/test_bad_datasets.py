"""Bad data files, sources and rows (dynamo_rl.data): one line naming the file, line/row, field or value.

Each row of docs/bad_inputs.md ("Datasets, verifier, numerics, plots", area "datasets") is one case here.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from dynamo_rl.data import loading
from dynamo_rl.data.limits import check_prompt_lengths
from dynamo_rl.data.loading import DataError, load_problems
from dynamo_rl.data.types import Problem

GOOD = b'{"problem": "What is 1+1?", "answer": "2"}\n'

FILE_CASES = [
    pytest.param("set.jsonl", GOOD + b'{"problem": "caf\xe9", "answer": "2"}\n', DataError,
                 "set.jsonl: line 2: not valid UTF-8 (byte offset 59 in the file, bytes b'\\xe9')", id="non-utf8-jsonl"),
    pytest.param("set.json", b'[{"problem": "\xff", "answer": "1"}]', DataError,
                 "set.json: line 1: not valid UTF-8 (byte offset 14 in the file", id="non-utf8-json"),
    pytest.param("set.jsonl", b"", DataError, "set.jsonl: no rows (the file is empty)", id="empty-file"),
    pytest.param("set.jsonl", b"\n\n   \n", DataError, "set.jsonl: no rows (the file is empty)", id="blank-lines-only"),
    pytest.param("set.json", b"[]", DataError, "set.json: no rows (the file is empty)", id="empty-json-list"),
    pytest.param("set.jsonl", b'{"problem": "p"}\n', DataError, "set.jsonl: line 1: missing field 'answer'",
                 id="row-missing-answer"),
    pytest.param("set.jsonl", GOOD + b'{"question": "p", "answer": "1"}\n', DataError,
                 "set.jsonl: line 2: missing field 'problem' (fields: question, answer)", id="row-missing-problem"),
    pytest.param("set.jsonl", b'{"problem": "p", "answer": \n', DataError, "set.jsonl: line 1: invalid JSON",
                 id="truncated-json-line"),
    pytest.param("set.json", b'{"problem": "p", "answer": "1"}', DataError,
                 "set.json: a .json data file must hold a list of objects, got dict", id="json-not-a-list"),
    pytest.param("set.jsonl", b'{"problem": "p", "answer": ["1"]}\n', DataError,
                 "set.jsonl: line 1: field 'answer' must be a str, int or finite float, got list",
                 id="answer-is-a-list"),
    pytest.param("set.jsonl", b'{"problem": "p", "answer": NaN}\n', DataError,
                 "set.jsonl: line 1: field 'answer' must be a str, int or finite float, got float (nan)",
                 id="answer-is-nan"),
    pytest.param("set.jsonl", b'{"id": "a", "problem": "p", "answer": "1"}\n{"id": "a", "problem": "q", "answer": "2"}\n',
                 DataError, "set.jsonl: line 2: field 'id': id 'a' repeats line 1", id="duplicate-id"),
    pytest.param("set.csv", b"problem,answer\np,1\n", DataError,
                 "set.csv: unsupported file type '.csv'; expected one of .jsonl, .json, .parquet", id="csv-file"),
]


@pytest.mark.parametrize(("name", "content", "error", "message"), FILE_CASES)
def test_bad_data_file(tmp_path: Path, name: str, content: bytes, error: type[Exception], message: str) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(error) as info:
        load_problems(tmp_path / name)
    assert type(info.value) is error
    assert message in str(info.value) and "\n" not in str(info.value)


def _never(*args, **kwargs):
    raise AssertionError("must not be called")


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=_never))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    return monkeypatch


@pytest.mark.parametrize(
    ("source", "message"),
    [
        pytest.param("./missing/train.jsonl", "no such file: missing/train.jsonl", id="missing-dot-slash-path"),
        pytest.param("data/train.csv", "no such file: data/train.csv", id="missing-csv-path"),
        pytest.param("/nonexistent/dynamo-rl-set", "no such file: /nonexistent/dynamo-rl-set", id="missing-absolute"),
    ],
)
def test_missing_local_path_is_not_a_hub_lookup(no_network: pytest.MonkeyPatch, source: str, message: str) -> None:
    no_network.setattr(loading, "hub_unreachable", _never)
    with pytest.raises(FileNotFoundError) as info:
        load_problems(source)
    assert str(info.value) == message


def _unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=_never))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(loading, "hub_unreachable", lambda: "https://huggingface.co: ConnectError: [Errno -2]")


def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("datasets")  # the real library, told late that it is offline
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(loading, "hub_unreachable", _never)


@pytest.mark.parametrize(
    ("setup", "source", "start", "end"),
    [
        pytest.param(_unreachable, "org/some-set", "hub dataset 'org/some-set' (config=None, split='train'): the hub is "
                     "not reachable (https://huggingface.co: ConnectError: [Errno -2]); use a local",
                     "or set HF_HUB_OFFLINE=1 to load a cached copy", id="hub-unreachable"),
        pytest.param(_offline, "dynamo-rl-test/never-cached",
                     "hub dataset 'dynamo-rl-test/never-cached' (config=None, split='train'): ",
                     "; HF_HUB_OFFLINE=1 is set, so only a cached copy can load", id="hub-offline-not-cached"),
    ],
)
def test_hub_source_fails_fast(monkeypatch: pytest.MonkeyPatch, setup, source: str, start: str, end: str) -> None:
    setup(monkeypatch)
    with pytest.raises(DataError) as info:
        load_problems(source)
    text = str(info.value)
    assert text.startswith(start) and text.endswith(end) and "\n" not in text


class CharTokenizer:
    def get_vocab(self) -> dict[str, int]:
        return {"a": 0, "bcdefgh": 1}

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        raise AssertionError("a row this long must not be tokenized")


HUGE = Problem(prompt_id="huge", problem="x" * 50_000_000, answer="1")
LARGE = Problem(prompt_id="large", problem="x" * 200_000, answer="1")
SMALL = Problem(prompt_id="small", problem="1+1?", answer="2")


@pytest.mark.parametrize(
    ("problems", "message"),
    [
        pytest.param([SMALL, HUGE], "row 'huge': the prompt has at least 7142858 tokens (50000000 characters), over "
                                    "max_prompt_tokens=4096", id="prompt-50MB"),
        pytest.param([LARGE], "row 'large': the prompt has at least 28572 tokens (200000 characters), over "
                              "max_prompt_tokens=4096", id="prompt-200KB"),
    ],
)
def test_huge_prompt_is_refused_naming_the_row(problems: list[Problem], message: str) -> None:
    with pytest.raises(ValueError) as info:
        check_prompt_lengths(problems, CharTokenizer(), 4096, skip=False)
    assert str(info.value).startswith(message)


@pytest.mark.parametrize(
    ("problems", "kept", "skipped"),
    [pytest.param([HUGE, SMALL, LARGE], [SMALL], 2, id="prompt-too-long-skipped-and-counted")],
)
def test_huge_prompt_is_skipped_and_counted(problems: list[Problem], kept: list[Problem], skipped: int) -> None:
    assert check_prompt_lengths(problems, CharTokenizer(), 4096, skip=True) == (kept, skipped)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        pytest.param(lambda p: load_problems(p, limit=-1), ValueError,
                     "limit must be a non-negative int or None, got -1", id="limit-negative"),
        pytest.param(lambda p: load_problems(""), DataError,
                     "data source must be a file path or a hub dataset id, got ''", id="source-empty-string"),
        pytest.param(lambda p: Problem(prompt_id="", problem="p", answer="1"), ValueError,
                     "Problem prompt_id must be a non-empty str, got ''", id="problem-empty-id"),
        pytest.param(lambda p: Problem(prompt_id="x", problem="p", answer=7), ValueError,
                     "Problem 'x': answer must be a str, got int", id="problem-answer-int"),
        pytest.param(lambda p: check_prompt_lengths([SMALL], CharTokenizer(), 0, skip=True), ValueError,
                     "max_prompt_tokens must be a positive int, got 0", id="max-prompt-tokens-zero"),
    ],
)
def test_bad_data_argument(tmp_path: Path, call, error: type[Exception], message: str) -> None:
    path = tmp_path / "set.jsonl"
    path.write_bytes(GOOD)
    with pytest.raises(error) as info:
        call(path)
    assert type(info.value) is error and message in str(info.value)
