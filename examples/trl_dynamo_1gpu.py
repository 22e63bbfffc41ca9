"""DynaMO with TRL on one GPU, generating with vLLM in colocate mode.

    pip install 'dynamo-rl[trl,vllm]'
    python examples/trl_dynamo_1gpu.py --model Qwen/Qwen2.5-Math-1.5B --data ../shared/data/dapo_math_17k.jsonl

The same script runs on several GPUs under ``accelerate launch`` (see examples/trl_multi_gpu.sh): the generation batch
of ``--prompts-per-step`` prompts is split over the processes, one optimizer step per generation batch.

The dataset is a JSONL file with ``problem`` and ``answer`` (and optionally ``id``) fields; prompts use the
``qwen_math`` template of ``dynamo_rl.data``. Rewards come from math-verify. See docs/trl.md for every option.
"""

from __future__ import annotations

import argparse
import os


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="Qwen/Qwen2.5-Math-1.5B")
    parser.add_argument("--data", required=True, help="JSONL with problem/answer fields")
    parser.add_argument("--output-dir", default="runs/trl-dynamo-1gpu")
    parser.add_argument("--method", default="dynamo", help="dynamo, grpo, no_dra, no_gc_ums, ...")
    parser.add_argument("--preset", default="official", help="official, paper or theory")
    parser.add_argument("--prompts-per-step", type=int, default=32)
    parser.add_argument("--mean-rollouts", type=int, default=16)
    parser.add_argument("--micro-batch", type=int, default=16, help="per_device_train_batch_size (rows)")
    parser.add_argument("--max-steps", type=int, default=500)
    parser.add_argument("--max-completion-length", type=int, default=4096)
    parser.add_argument("--vllm-memory", type=float, default=0.35, help="vllm_gpu_memory_utilization")
    parser.add_argument("--dry-run", action="store_true", help="build and print the config, do not train")
    args = parser.parse_args()
    world = int(os.environ.get("WORLD_SIZE", "1"))

    from dynamo_rl.adapters.trl import DynaMOConfig, DynaMOTrainer, math_verify_reward
    from dynamo_rl.adapters.trl.run import problems_to_dataset
    from dynamo_rl.data.loading import load_problems

    rows = args.prompts_per_step * args.mean_rollouts
    if rows % (args.micro_batch * world):
        parser.error(f"prompts-per-step × mean-rollouts = {rows} must be divisible by micro-batch × GPUs = "
                     f"{args.micro_batch * world}")
    micro_steps = rows // (args.micro_batch * world)
    config = DynaMOConfig(
        output_dir=args.output_dir,
        dynamo_method=args.method, dynamo_preset=args.preset,
        dynamo_n_min=args.mean_rollouts // 2, dynamo_n_max=args.mean_rollouts * 3 // 2,
        dynamo_prompt_id_column="prompt_id",
        num_generations=args.mean_rollouts,
        per_device_train_batch_size=args.micro_batch,
        steps_per_generation=micro_steps,                # generation batch = micro × GPUs × micro_steps rows ...
        gradient_accumulation_steps=micro_steps,         # ... = one optimizer step
        max_completion_length=args.max_completion_length,
        learning_rate=1e-6, warmup_steps=10, lr_scheduler_type="constant_with_warmup", weight_decay=0.1,
        max_grad_norm=1.0, epsilon=0.2, epsilon_high=0.28, delta=10.0, loss_type="dapo", beta=0.0,
        bf16=not args.dry_run, gradient_checkpointing=True,
        use_vllm=True, vllm_mode="colocate", vllm_gpu_memory_utilization=args.vllm_memory, vllm_enable_sleep_mode=True,
        max_steps=args.max_steps, logging_steps=1, save_steps=50, save_total_limit=2, report_to="none",
    )
    if args.dry_run:
        print(config.method_config, config.generation_batch_size, config.gradient_accumulation_steps)
        return
    dataset = problems_to_dataset(load_problems(args.data))
    trainer = DynaMOTrainer(model=args.model, reward_funcs=[math_verify_reward], args=config, train_dataset=dataset)
    trainer.train()
    trainer.save_model(f"{args.output_dir}/final")


if __name__ == "__main__":
    main()
