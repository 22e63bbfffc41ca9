#!/usr/bin/env bash
# DynaMO with TRL on several GPUs: accelerate launch + DeepSpeed ZeRO-3, vLLM colocated on every GPU.
#
#   NUM_GPUS=8 MODEL=Qwen/Qwen2.5-Math-7B DATA=../shared/data/dapo_math_17k.jsonl bash examples/trl_multi_gpu.sh
#
# Every process builds the same sampler and the same success history (updated from gathered rewards), so all ranks
# agree on the per-prompt rollout counts; prompt groups may straddle ranks (advantages use the gathered rewards).
# Extra arguments go to examples/trl_dynamo_1gpu.py (e.g. --method grpo, --preset paper, --max-steps 2000).
set -euo pipefail
NUM_GPUS="${NUM_GPUS:-8}"
MODEL="${MODEL:-Qwen/Qwen2.5-Math-7B}"
DATA="${DATA:?set DATA to a JSONL file with problem/answer fields}"
OUT="${OUT:-runs/trl-dynamo-${NUM_GPUS}gpu}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# 128 prompts × 16 mean rollouts = 2048 rows per step = 16 rows × NUM_GPUS × (2048 / (16 × NUM_GPUS)) micro-steps.
accelerate launch --config_file "$HERE/accelerate/deepspeed_zero3.yaml" --num_processes "$NUM_GPUS" \
  "$HERE/trl_dynamo_1gpu.py" \
  --model "$MODEL" --data "$DATA" --output-dir "$OUT" \
  --prompts-per-step 128 --mean-rollouts 16 --micro-batch 16 --max-completion-length 8192 --vllm-memory 0.3 \
  "$@"
