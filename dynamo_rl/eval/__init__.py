"""Evaluation: avg@n (P@1) and unbiased pass@k on math benchmarks, resumable, with Table-1-style reports."""

from dynamo_rl.eval.evaluate import BenchmarkResult, EvalResults, check_ks, evaluate
from dynamo_rl.eval.report import compare, load_results, markdown_table, write_reports

__all__ = ["BenchmarkResult", "EvalResults", "check_ks", "compare", "evaluate", "load_results", "markdown_table",
           "write_reports"]
