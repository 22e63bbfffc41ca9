#!/usr/bin/env bash
# DynaMO on verl at the paper's scale (Table 3): Qwen2.5-Math-7B on one node of 8x 80 GB GPUs.
#
#   examples/verl/run_dynamo_qwen2.5_math_7b.sh [extra Hydra overrides...]
#   MODEL=qwen2.5_math_1.5b examples/verl/run_dynamo_qwen2.5_math_7b.sh        # 1 node
#   MODEL=qwen3_14b examples/verl/run_dynamo_qwen2.5_math_7b.sh                # 2 nodes: start `ray start` on both first
#   METHOD=grpo SEED=2 examples/verl/run_dynamo_qwen2.5_math_7b.sh           # GRPO baseline, another seed
#   PRESET=paper examples/verl/run_dynamo_qwen2.5_math_7b.sh +dynamo.modulation.norm_scope=micro
# The clip ranges, policy loss, aggregation, entropy bonus and advantage estimator are verl's own keys; the trainer
# refuses to start when they do not run METHOD's loss. This script passes the keys METHOD/PRESET need, as printed by
# `python -m dynamo_rl.adapters.verl.settings METHOD PRESET` (grpo: clip_ratio_high=0.2; dr_grpo: seq-mean-token-sum-norm
# with L_max = data.max_response_length). Methods verl cannot run (fork_tokens, entropy_adv, w_reinforce; the theory
# preset) are refused there with the list of those it can.
#
# Needs the model weights (hub id in configs/verl/dynamo_<MODEL>.yaml, or MODEL_PATH), verl 0.9.1 with vLLM
# (pip install "verl[vllm]==0.9.1" "dynamo-rl[verl]" TransferQueue), and the data written once by
# `dynamo-rl prepare-verl` (done below if missing). Expected cost: docs/verl.md ("Paper-scale run").
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
MODEL=${MODEL:-qwen2.5_math_7b}
METHOD=${METHOD:-dynamo}
PRESET=${PRESET:-official}
SEED=${SEED:-0}
DATA=${DATA:-$HOME/data/dynamo-rl-verl}
CKPT=${CKPT:-$REPO/checkpoints/verl/${MODEL}_${METHOD}_seed${SEED}}
BENCHMARKS=(aime24 aime25 amc23 math500 minerva olympiad)

if [ ! -f "$DATA/train.parquet" ]; then
  # local JSONL files when DYNAMO_RL_DATA_DIR is set (e.g. ../shared/data), the hub otherwise
  dynamo-rl prepare-verl --output-dir "$DATA" ${DYNAMO_RL_DATA_DIR:+--data-dir "$DYNAMO_RL_DATA_DIR"}
fi
VAL=""
for b in "${BENCHMARKS[@]}"; do VAL+="${VAL:+,}$DATA/$b.parquet"; done

# the verl loss keys of METHOD under PRESET (one Hydra override per line); fails for a method verl cannot run
LOSS_KEYS=$(python -m dynamo_rl.adapters.verl.settings "$METHOD" "$PRESET")
mapfile -t LOSS_OVERRIDES <<< "$LOSS_KEYS"

# Qwen2.5-Math's config says max_position_embeddings=4096 < 2048 + 8192 (see the model config file's comment)
export VLLM_ALLOW_LONG_MAX_MODEL_LEN=1
export VERL_LOGGING_LEVEL=${VERL_LOGGING_LEVEL:-INFO}

python -m verl.trainer.main_ppo --config-path="$REPO/configs/verl" --config-name="dynamo_${MODEL}" \
  data.train_files="$DATA/train.parquet" data.val_files="[$VAL]" data.seed="$SEED" \
  actor_rollout_ref.rollout.seed="$SEED" \
  ${MODEL_PATH:+actor_rollout_ref.model.path="$MODEL_PATH"} \
  dynamo.method="$METHOD" dynamo.preset="$PRESET" "${LOSS_OVERRIDES[@]}" \
  trainer.experiment_name="${MODEL}_${METHOD}_seed${SEED}" trainer.default_local_dir="$CKPT" \
  "$@"
