"""Benchmark ``dynamo_rl.core.token_stats`` against a plain torch baseline, side by side in one run.

Both variants compute, for (N, V) logits and N targets, log π(y) + entropy and run the backward of ``logprobs.sum()``:

* ``baseline``: ``log_softmax(logits.float() / T)`` on the full tensor, ``gather`` and entropy
  ``−Σ exp(lp)·lp`` (entropy under ``no_grad``, as a detached statistic), then ``backward``;
* ``token_stats``: the chunked autograd function (also computes Σπ²; ``--with-centered`` adds Σπ²Λ).

Each variant runs in a fresh subprocess so that memory measurements do not interfere. Memory method:

* CPU: the process's peak resident set size (``resource.getrusage(RUSAGE_SELF).ru_maxrss``, a kernel high-water mark)
  after the run minus the RSS just before it (logits and targets already allocated; they are generated in small
  chunks so that set-up leaves no higher mark). This counts every allocation torch makes, but also allocator slack.
* CUDA: ``torch.cuda.max_memory_allocated()`` minus the memory allocated before the run.

"extra peak" includes the gradient w.r.t. the logits (an N×V tensor in the logits' dtype that any implementation must
return); "extra − grad" subtracts its nominal size. The goal (issue 2) is time ratio ≤ 1.0 and extra memory
≤ 1/8 of one fp32 copy of the logits.

Usage: ``python benchmarks/bench_token_stats.py [--tokens 2048] [--vocab 151936] [--dtype bf16] [--repeats 2]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time

DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_bytes() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _worker(args: argparse.Namespace) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    dtype = getattr(torch, DTYPES[args.dtype])
    device = torch.device(args.device)
    gen = torch.Generator(device="cpu").manual_seed(0)
    logits = torch.empty(args.tokens, args.vocab, dtype=dtype, device=device)
    rows = max(1, (1 << 20) // args.vocab)
    for start in range(0, args.tokens, rows):  # chunked fill: set-up must not leave a high RSS mark
        stop = min(start + rows, args.tokens)
        logits[start:stop] = (3.0 * torch.randn(stop - start, args.vocab, generator=gen)).to(device, dtype)
    targets = torch.randint(0, args.vocab, (args.tokens,), generator=gen).to(device)
    logits.requires_grad_(True)

    if args.variant == "baseline":
        def step() -> None:
            lp_full = torch.log_softmax(logits.float() / args.temperature, dim=-1)
            lp = lp_full.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
            with torch.no_grad():
                entropy = -(lp_full.exp() * lp_full).sum(-1)
            lp.sum().backward()
            del entropy
    else:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
        from dynamo_rl.core.token_stats import token_stats

        def step() -> None:
            stats = token_stats(logits, targets, temperature=args.temperature, chunk_size=args.chunk_size,
                                with_centered=args.with_centered)
            stats.logprobs.sum().backward()

    times = []
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
    else:
        before = _rss_bytes()
        if _peak_rss_bytes() > before + (64 << 20):
            print(f"warning: set-up peak RSS {_peak_rss_bytes() / 2**20:.0f} MiB exceeds current RSS "
                  f"{before / 2**20:.0f} MiB; extra memory may be under-reported", file=sys.stderr)
    for _ in range(args.repeats):
        logits.grad = None
        gc.collect()
        t0 = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else _peak_rss_bytes()
    return {"variant": args.variant, "time_s": min(times), "times_s": times, "extra_peak_bytes": peak - before,
            "grad_bytes": logits.numel() * logits.element_size(),
            "memory_method": "cuda max_memory_allocated" if device.type == "cuda" else "ru_maxrss - rss before"}


def _run_variant(variant: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", variant, "--tokens", str(args.tokens), "--vocab",
           str(args.vocab), "--dtype", args.dtype, "--repeats", str(args.repeats), "--threads", str(args.threads),
           "--device", args.device, "--temperature", str(args.temperature)]
    if args.chunk_size is not None:
        cmd += ["--chunk-size", str(args.chunk_size)]
    if args.with_centered:
        cmd.append("--with-centered")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    if out.stderr.strip():
        print(out.stderr.strip(), file=sys.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=2048, help="number of token positions N")
    parser.add_argument("--vocab", type=int, default=151_936, help="vocabulary size V (Qwen2.5: 151,936)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="bf16", help="logits dtype")
    parser.add_argument("--repeats", type=int, default=2, help="timed repetitions per variant (minimum is reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (CPU)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--chunk-size", type=int, default=None, help="token_stats chunk rows (default: automatic)")
    parser.add_argument("--with-centered", action="store_true", help="token_stats also computes Σπ²Λ")
    parser.add_argument("--worker", choices=["baseline", "token_stats"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.worker:
        args.variant = args.worker
        print(json.dumps(_worker(args)))
        return 0

    fp32_copy = args.tokens * args.vocab * 4
    print(f"token_stats benchmark: N={args.tokens} tokens, V={args.vocab}, dtype={args.dtype}, device={args.device}, "
          f"threads={args.threads}, repeats={args.repeats}, chunk_size={args.chunk_size or 'auto'}, "
          f"with_centered={args.with_centered}")
    print(f"one fp32 logits copy = {fp32_copy / 2**20:.0f} MiB; memory goal ≤ {fp32_copy / 8 / 2**20:.0f} MiB")
    results = {}
    for variant in ("baseline", "token_stats"):
        results[variant] = _run_variant(variant, args)
    mib = 2**20
    print(f"memory method: {results['baseline']['memory_method']} (fresh subprocess per variant)")
    print(f"{'variant':<12} {'time (s)':>9} {'extra peak (MiB)':>17} {'extra - grad (MiB)':>19} "
          f"{'(extra-grad)/fp32 copy':>23}")
    for name, res in results.items():
        net = res["extra_peak_bytes"] - res["grad_bytes"]
        print(f"{name:<12} {res['time_s']:>9.3f} {res['extra_peak_bytes'] / mib:>17.0f} {net / mib:>19.0f} "
              f"{net / fp32_copy:>23.3f}")
    base, ours = results["baseline"], results["token_stats"]
    time_ratio = ours["time_s"] / base["time_s"]
    mem_ratio = ours["extra_peak_bytes"] / max(base["extra_peak_bytes"], 1)
    net_ours = ours["extra_peak_bytes"] - ours["grad_bytes"]
    print(f"time ratio token_stats/baseline = {time_ratio:.3f} (goal ≤ 1.0: {'met' if time_ratio <= 1.0 else 'MISSED'})")
    print(f"extra-peak ratio token_stats/baseline = {mem_ratio:.3f}")
    print(f"token_stats extra memory beyond the logits gradient = {net_ours / fp32_copy:.3f} of one fp32 logits copy "
          f"(goal ≤ 0.125: {'met' if net_ours <= fp32_copy / 8 else 'MISSED'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
