"""The six evaluation benchmarks of the DynaMO paper (Table 1) and DAPO-Math-17k, by short name.

With a data directory (argument ``data_dir`` or the environment variable ``DYNAMO_RL_DATA_DIR``) a short name reads
the local JSON Lines file of ``../shared/data`` (fields ``id``, ``problem``, ``answer``); without one it loads the
usual Hugging Face dataset. The hub ids and field names below are the commonly used copies; they could not be
checked from this offline environment, so each is overridable through :func:`dynamo_rl.data.loading.load_problems`.

| name | local file | hub dataset (split) | problem / answer fields |
| --- | --- | --- | --- |
| ``aime24`` | ``aime2024.jsonl`` | ``HuggingFaceH4/aime_2024`` (train) | problem / answer |
| ``aime25`` | ``aime2025.jsonl`` | ``math-ai/aime25`` (test) | problem / answer |
| ``amc23`` | ``amc2023.jsonl`` | ``math-ai/amc23`` (test) | question / answer |
| ``math500`` | ``math500.jsonl`` | ``HuggingFaceH4/MATH-500`` (test) | problem / answer (id: unique_id) |
| ``minerva`` | ``minerva_math.jsonl`` | ``math-ai/minervamath`` (test) | question / answer |
| ``olympiad`` | ``olympiadbench.jsonl`` | ``math-ai/olympiadbench`` (test) | question / answer |
| ``dapo17k`` | ``dapo_math_17k.jsonl`` | ``open-r1/DAPO-Math-17k-Processed`` (en, train) | prompt / solution |
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dynamo_rl.data.loading import load_problems
from dynamo_rl.data.templates import PromptTemplate
from dynamo_rl.data.types import Problem

DATA_DIR_ENV = "DYNAMO_RL_DATA_DIR"


@dataclass(frozen=True)
class BenchmarkSpec:
    """Where a named dataset lives locally and on the hub, and which fields hold problem, answer and id."""

    name: str
    filename: str
    hub_id: str
    hub_split: str
    problem_field: str = "problem"
    answer_field: str = "answer"
    id_field: str | None = None
    hub_config: str | None = None


BENCHMARKS: dict[str, BenchmarkSpec] = {
    s.name: s
    for s in (
        BenchmarkSpec("aime24", "aime2024.jsonl", "HuggingFaceH4/aime_2024", "train"),
        BenchmarkSpec("aime25", "aime2025.jsonl", "math-ai/aime25", "test"),
        BenchmarkSpec("amc23", "amc2023.jsonl", "math-ai/amc23", "test", problem_field="question"),
        BenchmarkSpec("math500", "math500.jsonl", "HuggingFaceH4/MATH-500", "test", id_field="unique_id"),
        BenchmarkSpec("minerva", "minerva_math.jsonl", "math-ai/minervamath", "test", problem_field="question"),
        BenchmarkSpec("olympiad", "olympiadbench.jsonl", "math-ai/olympiadbench", "test", problem_field="question"),
        BenchmarkSpec("dapo17k", "dapo_math_17k.jsonl", "open-r1/DAPO-Math-17k-Processed", "train",
                      problem_field="prompt", answer_field="solution", hub_config="en"),
    )
}
EVAL_BENCHMARKS: tuple[str, ...] = ("aime24", "aime25", "amc23", "math500", "minerva", "olympiad")
"""The six evaluation benchmarks, in the column order of the paper's Table 1."""


def get_benchmark(name: str) -> BenchmarkSpec:
    """The spec of ``name``; unknown names raise ``ValueError`` listing the valid ones."""
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; valid names: {', '.join(BENCHMARKS)}")
    return BENCHMARKS[name]


def resolve_data_dir(data_dir: str | Path | None = None) -> Path | None:
    """``data_dir``, else ``$DYNAMO_RL_DATA_DIR``, else None (load from the hub)."""
    if data_dir is None:
        env = os.environ.get(DATA_DIR_ENV)
        data_dir = env if env else None
    if data_dir is None:
        return None
    path = Path(data_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"data directory not found: {path}")
    return path


def benchmark_source(name: str, data_dir: str | Path | None = None) -> str:
    """The local file path (with a data directory) or the hub id that :func:`load_benchmark` reads."""
    spec = get_benchmark(name)
    directory = resolve_data_dir(data_dir)
    if directory is None:
        return spec.hub_id
    path = directory / spec.filename
    if not path.is_file():
        raise FileNotFoundError(f"benchmark {name!r}: expected {spec.filename} in {directory}")
    return str(path)


def load_benchmark(name: str, *, data_dir: str | Path | None = None,
                   template: str | PromptTemplate | None = "qwen_math", limit: int | None = None) -> list[Problem]:
    """Problems of the named benchmark (local file when a data directory is known, else the hub dataset)."""
    spec = get_benchmark(name)
    source = benchmark_source(name, data_dir)
    if source == spec.hub_id:
        return load_problems(source, problem_field=spec.problem_field, answer_field=spec.answer_field,
                             id_field=spec.id_field, split=spec.hub_split, config=spec.hub_config,
                             template=template, limit=limit, source_name=name)
    return load_problems(source, template=template, limit=limit, source_name=name)
