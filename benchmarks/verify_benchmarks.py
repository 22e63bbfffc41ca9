"""Self-verification of the six benchmarks: does MathVerifier accept each gold answer written as a model would?

For every row, the completion ``"<reasoning> The final answer is $\\boxed{<gold>}$."`` must verify ``correct``;
a wrong answer (``gold + 1`` for integer golds, ``<gold>+1`` otherwise) must not. Prints one table row per benchmark
(rows, correct, rate, wrong-answer rejections, seconds) and every failure with its status.

    python benchmarks/verify_benchmarks.py --data-dir ../shared/data --workers 2
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

from dynamo_rl.data.benchmarks import EVAL_BENCHMARKS, load_benchmark
from dynamo_rl.rewards.mapping import status_counts
from dynamo_rl.rewards.math_verifier import MathVerifier
from dynamo_rl.rewards.runner import VerifierPool

INTEGER_RE = re.compile(r"-?\d+")


def typical_completion(answer: str) -> str:
    """A completion as a model writes it: some reasoning, then the boxed final answer."""
    return f"Let me work through this step by step. ...reasoning... The final answer is $\\boxed{{{answer}}}$."


def wrong_answer(answer: str) -> str:
    """``gold + 1`` for an integer gold; otherwise the expression ``<gold>+1``."""
    return str(int(answer) + 1) if INTEGER_RE.fullmatch(answer) else f"{answer}+1"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "data"),
                        help="directory with aime2024.jsonl, ... (default ../shared/data beside the repo)")
    parser.add_argument("--workers", type=int, default=2, help="verifier worker processes")
    parser.add_argument("--timeout", type=float, default=5.0, help="per-item limit of the pool in seconds (the "
                        "verify_batch default)")
    parser.add_argument("--verifier-timeout", type=int, default=3, help="math-verify's own limit per parse and "
                        "comparison in seconds (the MathVerifier default)")
    parser.add_argument("--benchmarks", default=",".join(EVAL_BENCHMARKS), help="comma-separated short names")
    args = parser.parse_args(argv)

    verifier = MathVerifier(timeout_seconds=args.verifier_timeout)
    rows = []
    failures = []
    total_n = total_ok = 0
    with VerifierPool(verifier, num_workers=args.workers, timeout=args.timeout) as pool:
        pool.verify(["\\boxed{1}"] * args.workers, ["1"] * args.workers)  # start-up outside the timings
        for name in args.benchmarks.split(","):
            problems = load_benchmark(name, data_dir=args.data_dir, template=None)
            answers = [p.answer for p in problems]
            start = time.perf_counter()
            good = pool.verify([typical_completion(a) for a in answers], answers)
            bad = pool.verify([typical_completion(wrong_answer(a)) for a in answers], answers)
            seconds = time.perf_counter() - start
            ok = sum(v.correct for v in good)
            rejected = sum(not v.correct for v in bad)
            total_n += len(problems)
            total_ok += ok
            counts = status_counts(bad)
            rows.append((name, len(problems), ok, ok / len(problems), rejected, counts, seconds))
            for p, g, b in zip(problems, good, bad):
                if not g.correct:
                    failures.append((p.prompt_id, "gold", g.status, p.answer))
                if b.correct:
                    failures.append((p.prompt_id, "wrong", b.status, wrong_answer(p.answer)))
        print(f"pool: {pool.num_timeouts} items killed at the {args.timeout} s limit, {pool.num_crashes} crashes")

    print("| benchmark | rows | gold verified correct | rate | wrong answer rejected | wrong: incorrect / "
          "unparseable / timeout | seconds (both passes) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, n, ok, rate, rejected, counts, seconds in rows:
        print(f"| {name} | {n} | {ok} | {100 * rate:.2f}% | {rejected}/{n} | {counts['incorrect']} / "
              f"{counts['unparseable']} / {counts['timeout']} | {seconds:.1f} |")
    print(f"| **all** | {total_n} | {total_ok} | {100 * total_ok / max(total_n, 1):.2f}% | | | |")
    print(f"\nfailures ({len(failures)}):")
    for prompt_id, kind, status, answer in failures:
        print(f"  {prompt_id}  [{kind} answer -> {status}]  {answer!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
