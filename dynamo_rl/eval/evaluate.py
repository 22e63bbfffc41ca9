"""Generate → verify → per-problem (n_i, c_i) → avg@n and unbiased pass@k, with a resumable sample log.

The metrics are those of DynaMO's Table 1 (arXiv 2602.19208): P@1 is avg@n (mean over problems of c_i/n_i) and P@k
is the unbiased estimator of Chen et al. (2021), ``1 − C(n−c, k)/C(n, k)`` averaged over problems
(:mod:`dynamo_rl.core.passk`). ``k`` must not exceed ``n`` (ambiguity A9: use n ≥ 32 for P@32, more is better).

Resume: problems are cut into fixed chunks of ``chunk_size`` consecutive problems per benchmark; every finished chunk
is appended to ``samples.jsonl`` (one line per sample, flushed and fsynced) before the next starts. A rerun with the
same ``output_dir`` reads the log back, keeps every problem that has all ``n`` samples, drops partial ones, and
generates only what is missing. ``config.json`` holds a fingerprint of everything that changes the samples (n,
sampling settings, chunk size, verifier, and the caller's ``run_info`` such as model, template and backend); resuming
with a different fingerprint raises instead of mixing runs. With a seed, chunk ``j`` of benchmark ``b`` is generated
with a seed derived from ``(seed, b, j)``, so a resumed run draws the same samples as an uninterrupted one (given the
same backend and batch size).
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from dynamo_rl.core.passk import avg_at_n, pass_at_k
from dynamo_rl.data.types import Problem
from dynamo_rl.rewards.base import STATUSES, Verdict, Verifier
from dynamo_rl.rollout.types import GenerationBackend, SamplingParams
from dynamo_rl.run.atomic import atomic_write_json, atomic_write_text

SAMPLES_FILE = "samples.jsonl"
CONFIG_FILE = "config.json"
DEFAULT_BENCHMARK = "problems"


@dataclass
class BenchmarkResult:
    """Metrics of one benchmark. ``problems`` lists ``{"prompt_id", "num_samples", "num_correct"}`` per problem."""

    benchmark: str
    num_problems: int
    num_samples: int
    avg_at_n: float
    pass_at_k: dict[int, float]
    status_counts: dict[str, int]
    mean_response_tokens: float
    truncated_fraction: float
    problems: list[dict[str, Any]] = field(default_factory=list)

    def metrics(self) -> dict[str, float]:
        """Flat metric dict: ``avg@n`` and ``pass@k`` for every k."""
        out = {"avg@n": self.avg_at_n}
        out.update({f"pass@{k}": v for k, v in sorted(self.pass_at_k.items())})
        return out


@dataclass
class EvalResults:
    """Per-benchmark results plus the run configuration; ``average`` is the unweighted mean over benchmarks."""

    benchmarks: dict[str, BenchmarkResult]
    n: int
    ks: list[int]
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def average(self) -> dict[str, float]:
        """Mean over benchmarks of each metric (the paper's Average column)."""
        keys: list[str] = []
        for result in self.benchmarks.values():
            keys += [k for k in result.metrics() if k not in keys]
        return {key: float(np.mean([r.metrics()[key] for r in self.benchmarks.values() if key in r.metrics()]))
                for key in keys}

    def to_dict(self) -> dict[str, Any]:
        benchmarks = {}
        for name, result in self.benchmarks.items():
            item = asdict(result)
            item["pass_at_k"] = {str(k): v for k, v in result.pass_at_k.items()}
            benchmarks[name] = item
        return {"n": self.n, "ks": list(self.ks), "average": self.average, "benchmarks": benchmarks,
                "config": self.config}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvalResults:
        benchmarks = {}
        for name, item in data["benchmarks"].items():
            item = dict(item)
            item["pass_at_k"] = {int(k): float(v) for k, v in item["pass_at_k"].items()}
            benchmarks[name] = BenchmarkResult(**item)
        return cls(benchmarks=benchmarks, n=int(data["n"]), ks=[int(k) for k in data["ks"]],
                   config=dict(data.get("config", {})))


def check_ks(ks: Sequence[int] | None, n: int) -> list[int]:
    """Validate ``n`` and ``ks`` (default ``[1, n]``); every k must satisfy 1 ≤ k ≤ n. Returns sorted unique ks."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n (samples per problem) must be a positive integer, got {n!r}")
    ks = [1, int(n)] if ks is None else list(ks)
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        if k > n:
            raise ValueError(f"k={k} exceeds n={n} samples per problem: unbiased pass@k needs n >= k "
                             f"(raise --n to at least {k}; n >= 32 is recommended for pass@32)")
    return sorted({int(k) for k in ks})


def _as_benchmarks(problems: Mapping[str, Sequence[Problem]] | Sequence[Problem]) -> dict[str, list[Problem]]:
    sets = dict(problems) if isinstance(problems, Mapping) else {DEFAULT_BENCHMARK: list(problems)}
    out: dict[str, list[Problem]] = {}
    for name, items in sets.items():
        items = list(items)
        seen: set[str] = set()
        for row, problem in enumerate(items):
            if not isinstance(problem, Problem):
                raise ValueError(f"benchmark {name!r} row {row}: expected a Problem, got {type(problem).__name__}")
            if problem.prompt_id in seen:
                raise ValueError(f"benchmark {name!r} row {row}: duplicate prompt_id {problem.prompt_id!r}")
            seen.add(problem.prompt_id)
        out[str(name)] = items
    return out


def chunk_seed(seed: int | None, benchmark: str, chunk_index: int) -> int | None:
    """Seed of one chunk, stable across processes and resumes (``None`` stays ``None``)."""
    if seed is None:
        return None
    return (int(seed) * 1_000_003 + zlib.crc32(f"{benchmark}/{chunk_index}".encode())) % (2**31 - 1)


class SampleLog:
    """``samples.jsonl`` + ``config.json`` in a run directory (see the module docstring for the resume rules)."""

    def __init__(self, output_dir: str | Path, fingerprint: dict[str, Any], *, resume: bool, n: int) -> None:
        self.dir = Path(output_dir)
        self.path = self.dir / SAMPLES_FILE
        self.dir.mkdir(parents=True, exist_ok=True)
        config_path = self.dir / CONFIG_FILE
        if resume and config_path.exists() and self.path.exists():
            stored = json.loads(config_path.read_text())
            stored = stored.get("fingerprint", stored)
            diffs = sorted(k for k in set(stored) | set(fingerprint) if stored.get(k) != fingerprint.get(k))
            if diffs:
                detail = "; ".join(f"{k}: {stored.get(k)!r} -> {fingerprint.get(k)!r}" for k in diffs)
                raise ValueError(f"{self.dir} holds samples from a different configuration ({detail}); use another "
                                 f"output directory or resume=False (--no-resume) to start over")
        if not resume and self.path.exists():
            self.path.unlink()
        atomic_write_json(config_path, {"fingerprint": fingerprint}, indent=2, ensure_ascii=False)
        self.n = n

    def load(self) -> dict[tuple[str, str], list[dict[str, Any]]]:
        """Samples of every problem that has all ``n``; rewrites the log without partial problems or lines."""
        if not self.path.exists():
            return {}
        groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        dirty = False
        with self.path.open(encoding="utf-8") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                    key = (record["benchmark"], record["prompt_id"])
                except (json.JSONDecodeError, KeyError, TypeError):
                    dirty = True  # an interrupted write: drop it
                    continue
                groups.setdefault(key, []).append(record)
        complete = {key: rows for key, rows in groups.items() if len(rows) == self.n}
        if dirty or len(complete) != len(groups):
            lines = [json.dumps(r, ensure_ascii=False) + "\n" for rows in complete.values() for r in rows]
            atomic_write_text(self.path, "".join(lines))
        return complete

    def append(self, records: Sequence[dict[str, Any]]) -> None:
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())


class _Verification:
    """In-process verification (``timeout=None``, trusted verifiers only) or a worker pool with a time limit."""

    def __init__(self, verifier: Verifier, timeout: float | None, num_workers: int | None) -> None:
        self.verifier = verifier
        self.pool = None
        if timeout is not None:
            from dynamo_rl.rewards.runner import VerifierPool

            self.pool = VerifierPool(verifier, timeout=timeout, num_workers=num_workers)

    def __call__(self, completions: list[str], answers: list[str]) -> list[Verdict]:
        from dynamo_rl.rewards.runner import verify_all

        return verify_all(self.pool if self.pool is not None else self.verifier, completions, answers)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()


def evaluate(backend: GenerationBackend, problems: Mapping[str, Sequence[Problem]] | Sequence[Problem], *, n: int,
             ks: Sequence[int] | None = None, params: SamplingParams | None = None, verifier: Verifier | None = None,
             timeout: float | None = 5.0, output_dir: str | Path | None = None, progress: bool = True,
             resume: bool = True, chunk_size: int = 8, run_info: Mapping[str, Any] | None = None,
             num_workers: int | None = None) -> EvalResults:
    """Evaluate ``backend`` on ``problems`` (``{benchmark: [Problem, ...]}`` or one list) with ``n`` samples each.

    Each problem's ``prompt`` is sent to the backend (its raw ``problem`` when ``prompt`` is empty). Verdicts come
    from ``verifier`` (default :class:`~dynamo_rl.rewards.math_verifier.MathVerifier`) in worker processes with a
    per-item ``timeout`` in seconds; ``timeout=None`` verifies in-process (trusted verifiers and tests only). With
    ``output_dir`` the samples are logged and the run resumes as described in the module docstring; the reports
    (JSON/CSV/markdown) are written there at the end. Returns the per-benchmark metrics.
    """
    ks = check_ks(ks, n)
    params = params or SamplingParams()
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if verifier is None:
        from dynamo_rl.rewards.math_verifier import MathVerifier

        verifier = MathVerifier()
    sets = _as_benchmarks(problems)
    fingerprint = {"n": int(n), "sampling": asdict(params), "chunk_size": chunk_size,
                   "verifier": type(verifier).__name__, **dict(run_info or {})}
    fingerprint = json.loads(json.dumps(fingerprint))  # tuples -> lists, so a reloaded fingerprint compares equal
    log = SampleLog(output_dir, fingerprint, resume=resume, n=n) if output_dir is not None else None
    finished = log.load() if log is not None else {}
    total = sum(len(items) for items in sets.values())
    done = sum((name, p.prompt_id) in finished for name, items in sets.items() for p in items)
    bar = _progress_bar(total, done, progress)
    verify = _Verification(verifier, timeout, num_workers)
    try:
        for name, items in sets.items():
            if bar is not None:
                bar.set_description(name)
            for start in range(0, len(items), chunk_size):
                todo = [p for p in items[start:start + chunk_size] if (name, p.prompt_id) not in finished]
                if not todo:
                    continue
                seed = chunk_seed(params.seed, name, start // chunk_size)
                records = _run_chunk(backend, todo, name, n, replace(params, seed=seed), verify)
                if log is not None:
                    log.append(records)
                for problem in todo:
                    finished[(name, problem.prompt_id)] = [r for r in records if r["prompt_id"] == problem.prompt_id]
                if bar is not None:
                    bar.update(len(todo))
    finally:
        verify.close()
        if bar is not None:
            bar.close()
    results = EvalResults(
        benchmarks={name: _benchmark_result(name, items, finished, ks) for name, items in sets.items() if items},
        n=int(n), ks=ks, config=fingerprint)
    if output_dir is not None:
        from dynamo_rl.eval.report import write_reports

        write_reports(results, output_dir)
    return results


def _progress_bar(total: int, initial: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="problem", desc="eval")


def _run_chunk(backend: GenerationBackend, todo: list[Problem], benchmark: str, n: int, params: SamplingParams,
               verify: _Verification) -> list[dict[str, Any]]:
    prompts = [p.prompt or p.problem for p in todo]
    completions = backend.generate(prompts, [n] * len(todo), params)
    if len(completions) != n * len(todo):
        raise RuntimeError(f"backend returned {len(completions)} completions for {len(todo)} prompts x n={n}")
    by_prompt: list[list[Any]] = [[] for _ in todo]
    for completion in completions:
        if not 0 <= completion.prompt_index < len(todo):
            raise RuntimeError(f"backend returned prompt_index {completion.prompt_index} for {len(todo)} prompts")
        by_prompt[completion.prompt_index].append(completion)
    flat = [(problem, index, c) for problem, group in zip(todo, by_prompt) for index, c in enumerate(group)]
    verdicts = verify([c.text for _, _, c in flat], [problem.answer for problem, _, _ in flat])
    return [{"benchmark": benchmark, "prompt_id": problem.prompt_id, "sample_index": index, "answer": problem.answer,
             "completion": c.text, "num_tokens": len(c.token_ids), "finish_reason": c.finish_reason,
             "status": verdict.status, "score": float(verdict.score), "parsed": verdict.parsed,
             "correct": verdict.status == "correct"}
            for (problem, index, c), verdict in zip(flat, verdicts)]


def _benchmark_result(name: str, items: list[Problem], finished: Mapping[tuple[str, str], list[dict[str, Any]]],
                      ks: list[int]) -> BenchmarkResult:
    rows = [finished[(name, p.prompt_id)] for p in items]
    num_samples = np.array([len(r) for r in rows], dtype=np.int64)
    num_correct = np.array([sum(bool(s["correct"]) for s in r) for r in rows], dtype=np.int64)
    samples = [s for r in rows for s in r]
    status_counts = {status: sum(s["status"] == status for s in samples) for status in STATUSES}
    return BenchmarkResult(
        benchmark=name, num_problems=len(items), num_samples=int(num_samples.max()),
        avg_at_n=avg_at_n(num_samples, num_correct),
        pass_at_k={k: float(np.mean(pass_at_k(num_samples, num_correct, k))) for k in ks},
        status_counts=status_counts,
        mean_response_tokens=float(np.mean([s["num_tokens"] for s in samples])),
        truncated_fraction=float(np.mean([s["finish_reason"] == "length" for s in samples])),
        problems=[{"prompt_id": p.prompt_id, "num_samples": int(a), "num_correct": int(c)}
                  for p, a, c in zip(items, num_samples, num_correct)])
