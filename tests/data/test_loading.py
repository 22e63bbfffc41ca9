"""load_problems / load_benchmark: local formats, hub path (mocked), stable ids, templates, malformed input."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import types
from pathlib import Path

import pytest

from dynamo_rl.data import loading
from dynamo_rl.data.benchmarks import BENCHMARKS, DATA_DIR_ENV, EVAL_BENCHMARKS, benchmark_source, load_benchmark
from dynamo_rl.data.loading import DataError, load_problems, stable_prompt_id
from dynamo_rl.data.templates import QWEN_MATH_INSTRUCTION, TEMPLATES, get_template

EXPECTED_ROWS = {"aime24": 30, "aime25": 30, "amc23": 40, "math500": 500, "minerva": 272, "olympiad": 675}


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


ROWS = [
    {"problem": "What is $1+1$?", "answer": "2", "level": 1},
    {"problem": "Compute $2 \\cdot 3$.", "answer": 6, "level": 2},
    {"problem": "Half of one?", "answer": "\\frac{1}{2}", "level": 3},
]


# ---------------------------------------------------------------------------------------------------- benchmarks
@pytest.mark.parametrize("name", EVAL_BENCHMARKS)
def test_local_benchmarks(shared_data_dir: Path, name: str) -> None:
    problems = load_benchmark(name, data_dir=shared_data_dir)
    assert len(problems) == EXPECTED_ROWS[name]
    raw = [json.loads(line) for line in (shared_data_dir / BENCHMARKS[name].filename).open(encoding="utf-8")]
    assert [p.prompt_id for p in problems] == [r["id"] for r in raw]  # the row's own id is the prompt id
    assert [p.answer for p in problems] == [r["answer"] for r in raw]
    assert all(QWEN_MATH_INSTRUCTION in p.prompt and p.problem in p.prompt for p in problems)
    assert all(p.source == name for p in problems)
    assert problems[0].meta["dataset"] == raw[0]["dataset"]


def test_data_dir_from_environment(shared_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(shared_data_dir))
    assert benchmark_source("aime25") == str(shared_data_dir / "aime2025.jsonl")
    assert len(load_benchmark("aime25", limit=5)) == 5


def test_benchmark_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="aime24, aime25"):
        load_benchmark("aime26", data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="math500.jsonl"):
        load_benchmark("math500", data_dir=tmp_path)
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    assert benchmark_source("math500") == "HuggingFaceH4/MATH-500"


def test_hub_source_uses_datasets(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def fake_load_dataset(path, name=None, split=None):
        calls.append((path, name, split))
        return [{"question": "Q1?", "answer": 27.0}, {"question": "Q2?", "answer": "5"}]

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=fake_load_dataset))
    monkeypatch.setattr(loading, "hub_unreachable", lambda: None)  # no network in tests
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    problems = load_benchmark("amc23", template=None)
    assert calls == [("math-ai/amc23", None, "test")]
    assert [p.answer for p in problems] == ["27", "5"]  # integral float answers become integer strings
    assert [p.prompt for p in problems] == ["Q1?", "Q2?"]
    assert problems[0].prompt_id == stable_prompt_id("amc23", "Q1?")
    load_problems("org/some-set", problem_field="question", split="validation", config="cfg")
    assert calls[-1] == ("org/some-set", "cfg", "validation")


# ---------------------------------------------------------------------------------------------------- formats
def test_jsonl_json_parquet_agree(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [dict(r, answer=str(r["answer"])) for r in ROWS]
    write_jsonl(tmp_path / "set.jsonl", rows)
    (tmp_path / "set.json").write_text(json.dumps(rows), encoding="utf-8")
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "set.parquet")
    loaded = [load_problems(tmp_path / f"set.{ext}") for ext in ("jsonl", "json", "parquet")]
    assert loaded[0] == loaded[1] == loaded[2]
    assert [p.answer for p in loaded[0]] == ["2", "6", "\\frac{1}{2}"]
    assert loaded[0][0].meta == {"level": 1}


def test_limit_and_dotted_fields(tmp_path: Path) -> None:
    rows = [{"prompt": [{"role": "user", "content": f"P{i}"}], "reward_model": {"ground_truth": str(i)}}
            for i in range(5)]
    path = write_jsonl(tmp_path / "nested.jsonl", rows)
    problems = load_problems(path, problem_field="prompt.0.content", answer_field="reward_model.ground_truth",
                             limit=3, template="none")
    assert [(p.problem, p.answer) for p in problems] == [("P0", "0"), ("P1", "1"), ("P2", "2")]


# ---------------------------------------------------------------------------------------------------- ids
def test_stable_ids_across_shuffles_dirs_and_processes(tmp_path: Path) -> None:
    rows = [{"problem": f"Problem number {i}", "answer": str(i)} for i in range(30)]
    a = load_problems(write_jsonl(tmp_path / "mine.jsonl", rows))
    shuffled = rows[:]
    random.Random(0).shuffle(shuffled)
    (tmp_path / "other").mkdir()
    b = load_problems(write_jsonl(tmp_path / "other" / "mine.jsonl", shuffled))
    assert {p.problem: p.prompt_id for p in a} == {p.problem: p.prompt_id for p in b}
    assert len({p.prompt_id for p in a}) == 30
    assert a[0].prompt_id.startswith("mine/")
    code = "from dynamo_rl.data.loading import stable_prompt_id; print(stable_prompt_id('mine', 'Problem number 0'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "123", "PATH": ""}, cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == a[0].prompt_id
    # a different source name gives different ids for the same text
    assert load_problems(tmp_path / "mine.jsonl", source_name="x")[0].prompt_id != a[0].prompt_id


def test_explicit_id_field(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "ids.jsonl", [{"uid": 7, "problem": "p", "answer": "1"},
                                                {"uid": "b", "problem": "q", "answer": "2"}])
    assert [p.prompt_id for p in load_problems(path, id_field="uid")] == ["7", "b"]
    dup = write_jsonl(tmp_path / "dup.jsonl", [{"id": "a", "problem": "p", "answer": "1"},
                                               {"id": "a", "problem": "q", "answer": "2"}])
    with pytest.raises(DataError, match=r"dup.jsonl: line 2: field 'id': id 'a' repeats line 1"):
        load_problems(dup)


# ---------------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("lines", "match"),
    [
        (['{"problem": "p", "answer": "1"}', '{"problem": "p2", "answer": '], r"bad.jsonl: line 2: invalid JSON"),
        (['{"problem": "p", "answer": "1"}', '{"problem": "p2"}'], r"bad.jsonl: line 2: missing field 'answer'"),
        (['{"problem": "p", "answer": "   "}'], r"bad.jsonl: line 1: field 'answer' is empty"),
        (['{"problem": "p", "answer": ["1"]}'], r"bad.jsonl: line 1: field 'answer' must be a str, int or finite"),
        (['{"problem": "p", "answer": true}'], r"line 1: field 'answer' must be"),
        (['{"problem": 5, "answer": "1"}'], r"bad.jsonl: line 1: field 'problem' must be a str"),
        (['{"problem": "", "answer": "1"}'], r"line 1: field 'problem' is empty"),
        (['["p", "1"]'], r"bad.jsonl: line 1: expected an object"),
        (['{"problem": "p", "answer": "1"}', "", '{"id": "", "problem": "q", "answer": "2"}'], r"line 3: field 'id'"),
    ],
)
def test_malformed_rows_name_file_line_and_field(tmp_path: Path, lines: list[str], match: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=match):
        load_problems(path)


def test_malformed_json_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "obj.json").write_text('{"problem": "p"}', encoding="utf-8")
    with pytest.raises(DataError, match="must hold a list"):
        load_problems(tmp_path / "obj.json")
    (tmp_path / "rows.json").write_text('[{"problem": "p", "answer": "1"}, {"problem": "q"}]', encoding="utf-8")
    with pytest.raises(DataError, match=r"rows.json: row 1: missing field 'answer'"):
        load_problems(tmp_path / "rows.json")
    with pytest.raises(FileNotFoundError, match="nothere.jsonl"):
        load_problems(tmp_path / "nothere.jsonl")
    assert issubclass(DataError, ValueError)
    with pytest.raises(ValueError, match="limit"):
        load_problems(tmp_path / "rows.json", limit=-1)


# ---------------------------------------------------------------------------------------------------- templates
class FakeChatTokenizer:
    chat_template = "{{ messages }}"

    def __init__(self) -> None:
        self.calls: list = []

    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        self.calls.append((messages, tokenize, add_generation_prompt))
        return "|".join(f"{m['role']}:{m['content']}" for m in messages) + "|assistant:"


def test_templates_plain_and_chat() -> None:
    qwen = get_template("qwen_math")
    assert qwen.plain("What is 1+1?") == (
        "<|im_start|>system\nPlease reason step by step, and put your final answer within \\boxed{}.<|im_end|>\n"
        "<|im_start|>user\nWhat is 1+1?<|im_end|>\n<|im_start|>assistant\n"
    )
    assert get_template("qwen_math_user").plain("P") == "P\n" + QWEN_MATH_INSTRUCTION
    assert get_template(None).plain("P") == "P" == get_template("none").plain("P")
    tok = FakeChatTokenizer()
    assert qwen.chat("P", tok) == f"system:{QWEN_MATH_INSTRUCTION}|user:P|assistant:"
    assert tok.calls[0][1:] == (False, True)
    assert get_template("qwen_math_user").chat("P", tok) == f"user:P\n{QWEN_MATH_INSTRUCTION}|assistant:"
    tok.chat_template = None
    with pytest.raises(ValueError, match="no chat template"):
        qwen.chat("P", tok)
    with pytest.raises(ValueError, match="none, qwen_math, qwen_math_user"):
        get_template("llama")
    assert set(TEMPLATES) == {"qwen_math", "qwen_math_user", "none"}


def test_template_braces_in_problem_are_kept() -> None:
    text = "Find $\\{x\\}$ with {problem} and {0} literally"
    assert text in get_template("qwen_math").plain(text)
    assert get_template("qwen_math_user").plain(text).startswith(text)


# ---------------------------------------------------------------------------------------------------- bad sources
def test_non_utf8_files_name_the_line_and_byte_offset(tmp_path: Path) -> None:
    good = b'{"problem": "p", "answer": "1"}\n'
    (tmp_path / "latin.jsonl").write_bytes(good + b'{"problem": "caf\xe9", "answer": "2"}\n')
    with pytest.raises(DataError, match=r"latin.jsonl: line 2: not valid UTF-8 \(byte offset 48 in the file, "
                                        r"bytes b'\\xe9'\); re-encode the file as UTF-8$"):
        load_problems(tmp_path / "latin.jsonl")
    (tmp_path / "latin.json").write_bytes(b'[{"problem": "p",\n "answer": "\xff"}]')
    with pytest.raises(DataError, match=r"latin.json: line 2: not valid UTF-8 \(byte offset 30 in the file"):
        load_problems(tmp_path / "latin.json")


def test_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "bom.jsonl").write_bytes(b'\xef\xbb\xbf{"problem": "p", "answer": "1"}\n')
    (tmp_path / "bom.json").write_bytes(b'\xef\xbb\xbf[{"problem": "p", "answer": "1"}]')
    assert [p.answer for p in load_problems(tmp_path / "bom.jsonl")] == ["1"]
    assert [p.answer for p in load_problems(tmp_path / "bom.json")] == ["1"]


@pytest.mark.parametrize(("name", "content"), [("empty.jsonl", b""), ("blank.jsonl", b"\n  \n\n"),
                                               ("empty.json", b"[]")])
def test_empty_sources_are_errors(tmp_path: Path, name: str, content: bytes) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(DataError, match=rf"{name}: no rows \(the file is empty\)"):
        load_problems(tmp_path / name)
    assert load_problems(tmp_path / name, limit=0) == []  # asking for no rows is not an error


def _no_hub(*args, **kwargs):
    raise AssertionError("a path-like source must never reach the hub")


@pytest.mark.parametrize("source", ["./missing/train.jsonl", "../missing", "~/surely-missing-dynamo-rl.parquet",
                                    "data/train.csv", "/nonexistent/set", "missing.json"])
def test_path_like_sources_never_reach_the_hub(monkeypatch: pytest.MonkeyPatch, source: str) -> None:
    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=_no_hub))
    monkeypatch.setattr(loading, "hub_unreachable", _no_hub)
    with pytest.raises(FileNotFoundError, match=r"^no such file: "):
        load_problems(source)


def test_existing_file_with_an_unsupported_suffix(tmp_path: Path) -> None:
    (tmp_path / "set.csv").write_text("problem,answer\np,1\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"set.csv: unsupported file type '.csv'; expected one of .jsonl, .json"):
        load_problems(tmp_path / "set.csv")


def test_unreachable_hub_fails_at_once_with_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=_no_hub))
    monkeypatch.setattr(loading, "hub_unreachable", lambda: "https://huggingface.co: ConnectError: no DNS")
    with pytest.raises(DataError) as info:
        load_problems("org/some-set")
    assert str(info.value) == (
        "hub dataset 'org/some-set' (config=None, split='train'): the hub is not reachable (https://huggingface.co: "
        "ConnectError: no DNS); use a local .jsonl/.json/.parquet file, or set HF_HUB_OFFLINE=1 to load a cached copy")


def test_hub_errors_become_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def bad_split(path, name=None, split=None):
        raise ValueError(f"Unknown split \"{split}\".\nShould be one of ['train'].")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=bad_split))
    monkeypatch.setattr(loading, "hub_unreachable", lambda: None)
    with pytest.raises(DataError) as info:
        load_problems("org/some-set", split="tset")
    assert str(info.value) == "hub dataset 'org/some-set' (config=None, split='tset'): ValueError: Unknown split \"tset\"."


def test_offline_hub_set_late_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    """HF_HUB_OFFLINE=1 set after `datasets` was imported: no network attempt, one line naming the source."""
    datasets = pytest.importorskip("datasets")
    from huggingface_hub import constants

    before = (constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(loading, "hub_unreachable", _no_hub)  # offline: the probe is not even tried
    with pytest.raises(DataError, match=r"^hub dataset 'dynamo-rl-test/not-cached-anywhere' \(config=None, "
                                        r"split='train'\): .*HF_HUB_OFFLINE=1 is set, so only a cached copy can load$"):
        load_problems("dynamo-rl-test/not-cached-anywhere")
    assert (constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE) == before  # restored
