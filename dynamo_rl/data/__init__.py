"""Problems with verifiable answers: loading (local files, hub), named benchmarks, cleaning filters, templates."""

from dynamo_rl.data.benchmarks import BENCHMARKS, EVAL_BENCHMARKS, BenchmarkSpec, get_benchmark, load_benchmark
from dynamo_rl.data.cleaning import FILTERS, CleaningReport, clean_problems, clean_problems_by_name
from dynamo_rl.data.loading import DataError, load_problems, stable_prompt_id
from dynamo_rl.data.templates import QWEN_MATH_INSTRUCTION, TEMPLATES, PromptTemplate, get_template
from dynamo_rl.data.types import Problem

__all__ = [
    "BENCHMARKS",
    "BenchmarkSpec",
    "CleaningReport",
    "DataError",
    "EVAL_BENCHMARKS",
    "FILTERS",
    "Problem",
    "PromptTemplate",
    "QWEN_MATH_INSTRUCTION",
    "TEMPLATES",
    "clean_problems",
    "clean_problems_by_name",
    "get_benchmark",
    "get_template",
    "load_benchmark",
    "load_problems",
    "stable_prompt_id",
]
