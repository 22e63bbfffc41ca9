"""``dynamo-rl eval``: P@1 (avg@n) and unbiased pass@k on the six math benchmarks, or ``--compare`` finished runs.

Examples::

    dynamo-rl eval --model Qwen/Qwen2.5-Math-7B --benchmarks aime24,math500 --n 32 --k 1,8,32 --backend vllm
    dynamo-rl eval --model ./ckpt --data-dir ../shared/data --limit 20 --n 4 --k 1,4 --output runs/eval/quick
    dynamo-rl eval --compare runs/eval/grpo runs/eval/dynamo
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

TEMPLATE_ALIASES = {"qwen25-math": "qwen_math", "qwen25-math-user": "qwen_math_user"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_argument_group("what to evaluate")
    what.add_argument("--model", help="model directory or hub id")
    what.add_argument("--benchmarks", default="aime24,aime25,amc23,math500,minerva,olympiad",
                      help="comma-separated short names (aime24, aime25, amc23, math500, minerva, olympiad) or local "
                           ".jsonl/.json/.parquet files of problems")
    what.add_argument("--data-dir", default=None,
                      help="directory with the benchmark .jsonl files (default: $DYNAMO_RL_DATA_DIR, else the hub)")
    what.add_argument("--limit", type=int, default=None, help="evaluate only the first N problems of each benchmark")
    what.add_argument("--template", default="qwen_math",
                      help="prompt template: qwen_math (alias qwen25-math), qwen_math_user, none")
    what.add_argument("--chat", action="store_true",
                      help="render the template with the tokenizer's chat template instead of the plain form")

    metrics = parser.add_argument_group("metrics")
    metrics.add_argument("--n", type=int, default=32, help="samples per problem (n >= every k; n >= 32 recommended)")
    metrics.add_argument("--k", default=None, help="comma-separated k values for pass@k (default: 1,n)")

    sampling = parser.add_argument_group("sampling")
    sampling.add_argument("--temperature", type=float, default=1.0, help="0 = greedy (the paper uses 1.0)")
    sampling.add_argument("--top-p", type=float, default=1.0)
    sampling.add_argument("--top-k", type=int, default=-1, help="-1 disables top-k")
    sampling.add_argument("--max-new-tokens", type=int, default=8192, help="response length limit (paper: 8192)")
    sampling.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    sampling.add_argument("--seed", type=int, default=0, help="sampling seed (-1: unseeded)")

    engine = parser.add_argument_group("backend")
    engine.add_argument("--backend", choices=("hf", "vllm"), default="hf", help="generation backend")
    engine.add_argument("--batch-size", type=int, default=16, help="rows per model.generate call (hf)")
    engine.add_argument("--device", default=None, help="hf device (default: cuda when available)")
    engine.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16"))
    engine.add_argument("--tensor-parallel-size", type=int, default=1, help="vllm")
    engine.add_argument("--gpu-memory-utilization", type=float, default=0.9, help="vllm")
    engine.add_argument("--chunk-size", type=int, default=None,
                        help="problems per generate call and per resume checkpoint (default: 8 for hf, 64 for vllm)")

    run_group = parser.add_argument_group("output")
    run_group.add_argument("--output", default=None, help="output directory (default: eval_runs/<model name>)")
    run_group.add_argument("--no-resume", action="store_true", help="discard samples already in --output")
    run_group.add_argument("--timeout", type=float, default=5.0, help="verification time limit per sample (s)")
    run_group.add_argument("--workers", type=int, default=None, help="verifier worker processes")
    run_group.add_argument("--no-progress", action="store_true", help="no progress bar")
    run_group.add_argument("--compare", nargs="+", metavar="RUN_DIR",
                           help="print a side-by-side table of finished runs and exit")


def parse_ks(text: str | None, n: int) -> list[int]:
    """``"1,8,32"`` → ``[1, 8, 32]``, checked against ``n`` (k > n names the value)."""
    from dynamo_rl.eval.evaluate import check_ks

    if n < 1:
        raise ValueError(f"--n must be >= 1 (samples per problem), got {n}")
    if text is None:
        return check_ks(None, n)
    try:
        ks = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--k must be comma-separated integers, got {text!r}") from None
    if not ks:
        raise ValueError(f"--k must list at least one value, got {text!r}")
    try:
        return check_ks(ks, n)
    except ValueError as err:
        raise ValueError(f"--k {text}: {err}") from None


def _default_output(model: str) -> Path:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(model.rstrip("/")).name or model) or "model"
    return Path("eval_runs") / name


def _load_problems(args: argparse.Namespace, tokenizer: Any) -> dict[str, list[Any]]:
    from dynamo_rl.data.benchmarks import EVAL_BENCHMARKS, load_benchmark
    from dynamo_rl.data.templates import get_template

    names = [b.strip() for b in args.benchmarks.split(",") if b.strip()]
    if not names:
        raise ValueError(f"--benchmarks is empty: choose from {', '.join(EVAL_BENCHMARKS)}")
    for name in names:
        _check_benchmark(name)
    template = get_template(TEMPLATE_ALIASES.get(args.template, args.template))
    problems = {}
    for name in names:
        if _is_file(name):
            from dynamo_rl.data.loading import load_problems

            items = list(load_problems(name, template=template, limit=args.limit))
            name = Path(name).stem
        else:
            items = load_benchmark(name, data_dir=args.data_dir, template=template, limit=args.limit)
        if args.chat:
            items = [replace(p, prompt=template.chat(p.problem, tokenizer)) for p in items]
        problems[name] = items
    return problems


def _tokenizer_for_chat(args: argparse.Namespace, backend: Any) -> Any:
    if not args.chat:
        return None
    tokenizer = getattr(backend, "tokenizer", None)
    if tokenizer is None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.model)
    return tokenizer


def _make_backend(args: argparse.Namespace) -> Any:
    from dynamo_rl.rollout.registry import make_backend

    if args.backend == "hf":
        return make_backend("hf", args.model, batch_size=args.batch_size, device=args.device, dtype=args.dtype)
    return make_backend("vllm", args.model, dtype=args.dtype, tensor_parallel_size=args.tensor_parallel_size,
                        gpu_memory_utilization=args.gpu_memory_utilization,
                        seed=0 if args.seed < 0 else args.seed)


def _validate(args: argparse.Namespace) -> list[int]:
    """Every check that needs no model: each failure is a ``ValueError`` naming the flag and what is valid."""
    import math

    if not args.model:
        raise ValueError("--model is required (or use --compare RUN_DIR ...)")
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    if args.chunk_size is not None and args.chunk_size < 1:
        raise ValueError(f"--chunk-size must be >= 1, got {args.chunk_size}")
    if not args.timeout > 0 or not math.isfinite(args.timeout):
        raise ValueError(f"--timeout must be a finite number of seconds > 0, got {args.timeout}")
    for flag, value in (("--temperature", args.temperature), ("--top-p", args.top_p),
                        ("--gpu-memory-utilization", args.gpu_memory_utilization)):
        if not math.isfinite(value):
            raise ValueError(f"{flag} must be a finite number, got {value}")
    if not 0 < args.gpu_memory_utilization <= 1:
        raise ValueError(f"--gpu-memory-utilization must be in (0, 1], got {args.gpu_memory_utilization}")
    for flag, value in (("--batch-size", args.batch_size), ("--tensor-parallel-size", args.tensor_parallel_size)):
        if value < 1:
            raise ValueError(f"{flag} must be >= 1, got {value}")
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be >= 1 (or left out: one per CPU, at most 8), got {args.workers}")
    _check_device(args.device)
    from dynamo_rl.data.templates import get_template

    get_template(TEMPLATE_ALIASES.get(args.template, args.template))  # an unknown name lists the valid ones
    from dynamo_rl.data.benchmarks import EVAL_BENCHMARKS

    names = [b.strip() for b in args.benchmarks.split(",") if b.strip()]
    if not names:
        raise ValueError(f"--benchmarks is empty: choose from {', '.join(EVAL_BENCHMARKS)}")
    for name in names:
        _check_benchmark(name)  # unknown names fail before the model is loaded
    output = Path(args.output) if args.output else _default_output(args.model)
    if output.exists() and not output.is_dir():
        raise ValueError(f"--output {output}: a file is there, expected a directory")
    if any(parent.exists() and not parent.is_dir() for parent in output.parents):
        raise ValueError(f"--output {output}: a parent of it is a file, expected a directory")
    from dynamo_rl.rollout.hf import validate_params
    from dynamo_rl.rollout.types import SamplingParams

    validate_params(SamplingParams(temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
                                   max_new_tokens=args.max_new_tokens, stop=tuple(args.stop)))
    ks = parse_ks(args.k, args.n)
    from dynamo_rl.run.loading import model_source

    model_source(args.model)  # a missing folder or unreachable hub id fails before anything loads
    return ks


def _check_device(device: str | None) -> None:
    """``--device``: a torch device string; ``cuda`` only where CUDA is available."""
    if device is None:
        return
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(f"--device {device!r} is not a device; use cpu, cuda or cuda:N") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: CUDA is not available on this machine (use cpu, or leave --device out)")
    if parsed.type == "cuda" and parsed.index is not None and parsed.index >= torch.cuda.device_count():
        raise ValueError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")


def _is_file(name: str) -> bool:
    return Path(name).suffix in (".jsonl", ".json", ".parquet") or Path(name).is_file()


def _check_benchmark(name: str) -> None:
    """A benchmark short name or a local JSONL/JSON/Parquet file of problems (``problem`` and ``answer`` fields)."""
    from dynamo_rl.data.benchmarks import BENCHMARKS

    if _is_file(name):
        if not Path(name).is_file():
            raise ValueError(f"--benchmarks: no such file {name!r}")
        return
    if name not in BENCHMARKS:
        raise ValueError(f"--benchmarks: unknown benchmark {name!r}; valid names: {', '.join(BENCHMARKS)}, or a "
                         ".jsonl/.json/.parquet file")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def run(args: argparse.Namespace) -> int:
    from dynamo_rl.eval.report import compare

    try:
        if args.compare:
            print(compare(args.compare), end="")
            return 0
        ks = _validate(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2

    from dynamo_rl.eval.evaluate import evaluate
    from dynamo_rl.eval.report import RESULTS_MD, details_table, markdown_table
    from dynamo_rl.rollout.types import SamplingParams

    try:
        params = SamplingParams(temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
                                max_new_tokens=args.max_new_tokens, stop=tuple(args.stop),
                                seed=None if args.seed < 0 else args.seed)
        from dynamo_rl.rollout.hf import validate_params

        validate_params(params)
        backend = _make_backend(args)
        problems = _load_problems(args, _tokenizer_for_chat(args, backend))
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    output = Path(args.output) if args.output else _default_output(args.model)
    run_info = {"model": args.model, "backend": args.backend, "template": args.template, "chat": bool(args.chat),
                "dtype": args.dtype}
    chunk_size = args.chunk_size or (8 if args.backend == "hf" else 64)
    try:
        results = evaluate(backend, problems, n=args.n, ks=ks, params=params, timeout=args.timeout,
                           output_dir=output, progress=not args.no_progress, resume=not args.no_resume,
                           chunk_size=chunk_size, run_info=run_info, num_workers=args.workers)
    except ValueError as exc:  # e.g. resuming a directory written with other settings
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    print(markdown_table([results], [args.model]), end="")
    print()
    print(details_table(results), end="")
    print(f"\nwrote {output / RESULTS_MD} (+ results.json, results.csv, samples.jsonl)")
    return 0
