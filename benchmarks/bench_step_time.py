"""Step time of `dynamo` versus `grpo` on the same rollout batch and the same tiny model, side by side.

The paper reports negligible overhead for DynaMO; the goal here is a ratio ≤ 1.03. Both methods run the identical
policy update (forward, token statistics, loss, backward, AdamW) on one fixed batch with non-uniform groups, from the
same initial weights; `dynamo` adds the allocation from history and the GC/UMS modulation. Generation and
verification are the same for both methods and excluded (they would only dilute the ratio). Repeats alternate the
two methods so drift of the machine's load hits both equally; the median is reported.

    python benchmarks/bench_step_time.py [--repeats 15] [--hidden 256] [--layers 4] [--batch 128] [--length 128]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from dynamo_rl.core.allocation import allocate_rollouts
from dynamo_rl.core.history import SuccessHistory
from dynamo_rl.data.types import Problem
from dynamo_rl.rewards.base import Verdict
from dynamo_rl.rollout.types import Completion
from dynamo_rl.run.config_files import load_config
from dynamo_rl.trainer.batch import RolloutBatch
from dynamo_rl.trainer.setup import make_optimizer
from dynamo_rl.trainer.update import update_policy


def build(args: argparse.Namespace):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=3 * args.hidden,
                         num_hidden_layers=args.layers, num_attention_heads=4, num_key_value_heads=4,
                         max_position_embeddings=4 * args.length, tie_word_embeddings=True, pad_token_id=0)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(config).eval()
    rng = np.random.default_rng(0)
    prompts = args.batch // 8
    num_rollouts = rng.integers(4, 13, size=prompts)
    num_rollouts[-1] += args.batch - num_rollouts.sum()  # Σ n_i = batch, non-uniform groups
    problems = [Problem(prompt_id=f"p{i}", problem=str(i), answer="1") for i in range(prompts)]
    completions, verdicts = [], []
    for i, n in enumerate(num_rollouts):
        for _ in range(n):
            length = int(rng.integers(args.length // 2, args.length + 1))
            completions.append(Completion(prompt_index=i, text="", token_ids=rng.integers(1, args.vocab, length).tolist(),
                                          prompt_token_ids=rng.integers(1, args.vocab, 32).tolist()))
            ok = bool(rng.random() < 0.5)
            verdicts.append(Verdict(float(ok), "correct" if ok else "incorrect"))
    batch = RolloutBatch.from_completions(problems, num_rollouts, completions)
    batch = batch.with_verdicts(verdicts, [v.score for v in verdicts])
    history = SuccessHistory()
    history.update([p.prompt_id for p in problems], rng.integers(0, 9, size=prompts), np.full(prompts, 8))
    return model, batch, history


def one_step(method: str, model, state, batch, history, args) -> float:
    config = load_config(None, [("method", method), ("optim.lr", 1e-4), ("optim.micro_batch_size", args.micro),
                                ("rollout.max_new_tokens", args.length), ("optim.warmup_steps", 0),
                                ("rollout.prompts_per_step", len(batch.problems)), ("allocation.mean_rollouts", 8),
                                ("allocation.n_min", 4), ("allocation.n_max", 12)])
    model.load_state_dict(state)
    optimizer, scheduler = make_optimizer(config, model)
    from dynamo_rl.core.advantages import compute_advantages

    start = time.perf_counter()
    counts = history.counts([p.prompt_id for p in batch.problems])
    allocate_rollouts(*counts, budget=config.budget, **config.method.allocation.core_kwargs())
    advantages = compute_advantages("grpo", batch.rewards, batch.group_ids)
    update_policy(model, optimizer, scheduler, batch, advantages, config, step=1, pad_id=0)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=128, help="sequences per step")
    parser.add_argument("--length", type=int, default=128, help="max response tokens")
    parser.add_argument("--micro", type=int, default=32, help="micro-batch size")
    args = parser.parse_args()
    model, batch, history = build(args)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    times: dict[str, list[float]] = {"grpo": [], "dynamo": []}
    one_step("grpo", model, state, batch, history, args)  # warm-up
    for _ in range(args.repeats):
        for method in ("grpo", "dynamo"):
            times[method].append(one_step(method, model, state, batch, history, args))
    grpo, dynamo = statistics.median(times["grpo"]), statistics.median(times["dynamo"])
    print(f"model: Qwen2 hidden={args.hidden} layers={args.layers} vocab={args.vocab}; batch {batch.size} sequences "
          f"in {len(batch.problems)} groups, ≤{args.length} response tokens; torch threads {torch.get_num_threads()}")
    print(f"{'method':<8} {'median s/step':>14} {'min':>8} {'max':>8}")
    for method, values in times.items():
        print(f"{method:<8} {statistics.median(values):>14.4f} {min(values):>8.4f} {max(values):>8.4f}")
    print(f"ratio dynamo/grpo = {dynamo / grpo:.4f} (goal ≤ 1.03)")


if __name__ == "__main__":
    main()
