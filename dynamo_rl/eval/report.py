"""Evaluation reports: ``results.json``, ``results.csv`` and a markdown table laid out like DynaMO's Table 1.

Table layout (arXiv 2602.19208, Table 1): one row per run, benchmarks as columns with a P@1 and a P@k sub-column
each (P@1 = avg@n, P@k = unbiased pass@k for every k > 1 that was requested), then an Average column group (the
unweighted mean over benchmarks). Markdown has no spanning headers, so a sub-column is written ``AIME24 P@32``.
Values are percentages with one decimal, as in the paper.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

from dynamo_rl.eval.evaluate import EvalResults
from dynamo_rl.run.atomic import atomic_write_text

RESULTS_JSON = "results.json"
RESULTS_CSV = "results.csv"
RESULTS_MD = "results.md"

DISPLAY_NAMES = {"aime24": "AIME24", "aime25": "AIME25", "amc23": "AMC23", "math500": "MATH500",
                 "minerva": "Minerva", "olympiad": "Olympiad"}
"""Column titles of the six benchmarks (other names are shown as given)."""
BENCHMARK_ORDER = tuple(DISPLAY_NAMES)


def display_name(benchmark: str) -> str:
    return DISPLAY_NAMES.get(benchmark, benchmark)


def _ordered(names: Sequence[str]) -> list[str]:
    known = [b for b in BENCHMARK_ORDER if b in names]
    return known + [b for b in names if b not in known]


def _columns(runs: Sequence[EvalResults]) -> tuple[list[str], list[int]]:
    benchmarks: list[str] = []
    ks: set[int] = set()
    for run in runs:
        benchmarks += [b for b in run.benchmarks if b not in benchmarks]
        ks.update(k for k in run.ks if k > 1)
    return _ordered(benchmarks), sorted(ks)


def _metric_keys(ks: Sequence[int]) -> list[tuple[str, str]]:
    """(metric key, column label): P@1 is avg@n."""
    return [("avg@n", "P@1")] + [(f"pass@{k}", f"P@{k}") for k in ks]


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100.0 * value:.1f}"


def markdown_table(runs: Sequence[EvalResults], labels: Sequence[str] | None = None) -> str:
    """Table 1 layout: one row per run, ``<benchmark> P@1 | <benchmark> P@k ...`` columns, then ``Average``."""
    if not runs:
        raise ValueError("markdown_table needs at least one run")
    labels = list(labels) if labels is not None else [str(r.config.get("model", f"run {i}")) for i, r in
                                                       enumerate(runs)]
    if len(labels) != len(runs):
        raise ValueError(f"labels has {len(labels)} entries for {len(runs)} runs")
    benchmarks, ks = _columns(runs)
    metrics = _metric_keys(ks)
    header = ["Run"] + [f"{display_name(b)} {label}" for b in benchmarks for _, label in metrics]
    header += [f"Average {label}" for _, label in metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + [":---:"] * (len(header) - 1)) + "|"]
    for label, run in zip(labels, runs):
        cells = [label]
        for b in benchmarks:
            values = run.benchmarks[b].metrics() if b in run.benchmarks else {}
            cells += [_percent(values.get(key)) for key, _ in metrics]
        average = run.average
        cells += [_percent(average.get(key)) for key, _ in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def details_table(run: EvalResults) -> str:
    """Per-benchmark details: problems, n, verdict counts, mean response length, truncation rate."""
    lines = ["| Benchmark | Problems | n | correct | incorrect | unparseable | timeout | mean tokens | truncated |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for b in _ordered(list(run.benchmarks)):
        r = run.benchmarks[b]
        counts = r.status_counts
        lines.append(f"| {display_name(b)} | {r.num_problems} | {r.num_samples} | {counts.get('correct', 0)} | "
                     f"{counts.get('incorrect', 0)} | {counts.get('unparseable', 0)} | {counts.get('timeout', 0)} | "
                     f"{r.mean_response_tokens:.1f} | {100.0 * r.truncated_fraction:.1f}% |")
    return "\n".join(lines) + "\n"


def csv_text(run: EvalResults) -> str:
    """One row per benchmark plus an ``average`` row; metric values are fractions in [0, 1]."""
    keys = [key for key, _ in _metric_keys([k for k in run.ks if k > 1])]
    if 1 in run.ks:
        keys.insert(1, "pass@1")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["benchmark", "num_problems", "n", *keys, "unparseable", "timeout", "mean_response_tokens",
                     "truncated_fraction"])
    for b in _ordered(list(run.benchmarks)):
        r = run.benchmarks[b]
        values = r.metrics()
        writer.writerow([b, r.num_problems, r.num_samples, *(f"{values[k]:.6f}" for k in keys),
                         r.status_counts.get("unparseable", 0), r.status_counts.get("timeout", 0),
                         f"{r.mean_response_tokens:.2f}", f"{r.truncated_fraction:.6f}"])
    average = run.average
    writer.writerow(["average", sum(r.num_problems for r in run.benchmarks.values()), run.n,
                     *(f"{average[k]:.6f}" for k in keys), "", "", "", ""])
    return buffer.getvalue()


def write_reports(run: EvalResults, output_dir: str | Path, label: str | None = None) -> dict[str, Path]:
    """Write ``results.json``, ``results.csv`` and ``results.md`` (atomically); returns their paths."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": output_dir / RESULTS_JSON, "csv": output_dir / RESULTS_CSV, "md": output_dir / RESULTS_MD}
    atomic_write_text(paths["json"], json.dumps(run.to_dict(), indent=2, ensure_ascii=False) + "\n")
    atomic_write_text(paths["csv"], csv_text(run))
    label = label or str(run.config.get("model", output_dir.name))
    markdown = (f"# Evaluation: {label}\n\nP@1 = avg@{run.n}; P@k = unbiased pass@k from n = {run.n} samples per "
                f"problem (percent).\n\n{markdown_table([run], [label])}\n{details_table(run)}")
    atomic_write_text(paths["md"], markdown)
    return paths


def load_results(run_dir: str | Path) -> EvalResults:
    """Read ``results.json`` of a run directory (written by :func:`write_reports`)."""
    path = Path(run_dir) / RESULTS_JSON
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: is {run_dir} an evaluation output directory?")
    return EvalResults.from_dict(json.loads(path.read_text(encoding="utf-8")))


def compare(run_dirs: Sequence[str | Path], labels: Sequence[str] | None = None) -> str:
    """Side-by-side markdown table (Table 1 layout) of several evaluation runs; rows labelled by directory name."""
    if not run_dirs:
        raise ValueError("compare needs at least one run directory")
    runs = [load_results(d) for d in run_dirs]
    return markdown_table(runs, labels if labels is not None else [Path(d).name for d in run_dirs])
