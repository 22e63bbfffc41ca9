"""DynaMO with TRL on one GPU, generating with vLLM in colocate mode; ``--cpu`` tries it on a CPU in about a minute.

    pip install 'dynamo-rl[trl,vllm]'
    python examples/trl_dynamo_1gpu.py --model Qwen/Qwen2.5-Math-1.5B --data ../shared/data/dapo_math_17k.jsonl

    python examples/trl_dynamo_1gpu.py --cpu          # no vLLM, fp32, the shipped demo model on its arithmetic task

``--cpu`` changes the defaults only (every flag still wins): transformers generation instead of vLLM, fp32 instead of
bf16, no gradient checkpointing, the shipped tiny demo model (``dynamo_rl.demo.model.DEMO_ASSETS``) on the demo
arithmetic task, 4 prompts x 8 mean rollouts per step, 16 new tokens, 2 steps.

The same script runs on several GPUs under ``accelerate launch`` (see examples/trl_multi_gpu.sh): the generation batch
of ``--prompts-per-step`` prompts is split over the processes, one optimizer step per generation batch.

The dataset is a JSONL file with ``problem`` and ``answer`` (and optionally ``id``) fields; prompts use the
``qwen_math`` template of ``dynamo_rl.data``. Rewards come from math-verify. See docs/trl.md for every option.
"""

from __future__ import annotations

import argparse
import os

GPU_DEFAULTS = {"model": "Qwen/Qwen2.5-Math-1.5B", "data": None, "output_dir": "runs/trl-dynamo-1gpu",
                "prompts_per_step": 32, "mean_rollouts": 16, "micro_batch": 16, "max_steps": 500,
                "max_completion_length": 4096, "save_steps": 50}
CPU_DEFAULTS = {"model": "demo", "data": "demo", "output_dir": "runs/trl-dynamo-cpu",
                "prompts_per_step": 4, "mean_rollouts": 8, "micro_batch": 16, "max_steps": 2,
                "max_completion_length": 16, "save_steps": 2}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu", action="store_true",
                        help="CPU try-out: no vLLM, fp32, the demo model and task, tiny sizes (defaults only)")
    parser.add_argument("--model", help=f"hub id or model folder; 'demo' = the shipped tiny model "
                                        f"(default {GPU_DEFAULTS['model']}, with --cpu demo)")
    parser.add_argument("--data", help="JSONL with problem/answer fields; 'demo' = the demo arithmetic task "
                                       "(required unless --cpu, whose default is demo)")
    parser.add_argument("--output-dir")
    parser.add_argument("--method", default="dynamo", help="dynamo, grpo, no_dra, no_gc_ums, ...")
    parser.add_argument("--preset", default="official", help="official, paper or theory")
    parser.add_argument("--prompts-per-step", type=int)
    parser.add_argument("--mean-rollouts", type=int)
    parser.add_argument("--micro-batch", type=int, help="per_device_train_batch_size (rows)")
    parser.add_argument("--max-steps", type=int)
    parser.add_argument("--max-completion-length", type=int)
    parser.add_argument("--vllm-memory", type=float, default=0.35, help="vllm_gpu_memory_utilization")
    parser.add_argument("--dry-run", action="store_true", help="build and print the config, do not train")
    args = parser.parse_args()
    for name, value in (CPU_DEFAULTS if args.cpu else GPU_DEFAULTS).items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)
    if args.data is None:
        parser.error("--data is required (a JSONL file with problem/answer fields), or use --cpu for the demo task")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rows = args.prompts_per_step * args.mean_rollouts
    args.micro_batch = max(1, min(args.micro_batch, rows // world))
    if rows % (args.micro_batch * world):
        parser.error(f"prompts-per-step × mean-rollouts = {rows} must be divisible by micro-batch × processes = "
                     f"{args.micro_batch * world}")
    args.micro_steps = rows // (args.micro_batch * world)
    return args


def load_dataset(source: str):
    from dynamo_rl.adapters.trl.run import problems_to_dataset

    if source == "demo":
        from dynamo_rl.demo.task import make_problems

        return problems_to_dataset(make_problems("train", 40, seed=0))  # 200 problems, 5 difficulty levels
    from dynamo_rl.data.loading import load_problems

    return problems_to_dataset(load_problems(source))


def main() -> None:
    args = parse_args()

    from dynamo_rl.adapters.trl import DynaMOConfig, DynaMOTrainer, math_verify_reward

    gpu = not args.cpu
    config = DynaMOConfig(
        output_dir=args.output_dir,
        dynamo_method=args.method, dynamo_preset=args.preset,
        dynamo_prompt_id_column="prompt_id",
        num_generations=args.mean_rollouts,             # n̄; n_i in [n̄/2, 3n̄/2] unless dynamo_n_min/_max are given
        per_device_train_batch_size=args.micro_batch,
        steps_per_generation=args.micro_steps,          # generation batch = micro × GPUs × micro_steps rows ...
        gradient_accumulation_steps=args.micro_steps,   # ... = one optimizer step
        max_completion_length=args.max_completion_length,
        learning_rate=1e-6 if gpu else 1e-4, warmup_steps=10 if gpu else 0, lr_scheduler_type="constant_with_warmup",
        weight_decay=0.1, max_grad_norm=1.0,            # clip range, dual clip, loss type: from the method/preset
        bf16=gpu and not args.dry_run, gradient_checkpointing=gpu, use_cpu=not gpu,
        use_vllm=gpu, vllm_mode="colocate", vllm_gpu_memory_utilization=args.vllm_memory, vllm_enable_sleep_mode=gpu,
        max_steps=args.max_steps, logging_steps=1, save_steps=args.save_steps, save_total_limit=2, report_to="none",
    )
    if args.dry_run:
        print(config.method_config, config.generation_batch_size, config.gradient_accumulation_steps)
        return
    model = args.model
    if model == "demo":
        from dynamo_rl.demo.model import DEMO_ASSETS

        model = str(DEMO_ASSETS)
    trainer = DynaMOTrainer(model=model, reward_funcs=[math_verify_reward], args=config,
                            train_dataset=load_dataset(args.data))
    trainer.train()
    trainer.save_model(f"{args.output_dir}/final")
    print(f"saved {args.output_dir}/final")


if __name__ == "__main__":
    main()
