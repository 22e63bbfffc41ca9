#!/usr/bin/env bash
# Short GPU smoke run of the dynamo-rl verl plugin: one GPU, a tiny local model, no hub access, a few minutes.
#
#   examples/verl/smoke_gpu.sh                 # defaults below; logs and a summary go to $OUT (or $WORK)
#
# Needs: one CUDA GPU, an environment with verl 0.9.1 and its rollout engine (pip install "verl[vllm]==0.9.1"),
# TransferQueue and dynamo-rl[verl] (pip install -e ".[verl]"), and flash-attn if use_remove_padding stays on.
# What it checks, in two verl runs of the real V1 trainer (Ray, FSDP, vLLM):
#   run 1 (steps 1-4): the plugin loads in the Ray processes, trainer_mode=dynamo_sync builds DynamoPPOTrainer,
#         __rollout_n__ varies per prompt once history exists, dynamo_ppo_loss runs with entropy and Σπ² from the
#         engine (mod/* metrics), alloc/* (incl. the live Eq 44 alloc/variance_reduction_ratio) and history/*
#         metrics are logged, the allocator state (allocator_state.json) is saved with the checkpoint at step 4;
#   run 2 (resume to step 6): verl resumes from global_step_4 and the allocator state is restored.
# Model: the shipped demo model (dynamo_rl/demo/assets: a 2-layer Qwen2, character tokenizer, trained to answer
# "Q: 23+58=? A:" with " \boxed{81}"), so rewards are neither all 0 nor all 1. Its head size is 16; if the vLLM
# attention backend refuses it, run with SMOKE_MODEL=random (a random Qwen2 with head size 64: rewards ~0, the
# plumbing is still exercised).
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
WORK=${WORK:-/tmp/dynamo-verl-smoke}
OUT=${OUT:-$WORK}
SMOKE_MODEL=${SMOKE_MODEL:-demo}
rm -rf "$WORK/ckpt"
mkdir -p "$WORK" "$OUT"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-4} VERL_LOGGING_LEVEL=${VERL_LOGGING_LEVEL:-INFO}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

python - "$WORK" "$SMOKE_MODEL" <<'PY'
import shutil, sys
from pathlib import Path

from dynamo_rl.adapters.verl.prepare_data import verl_rows, write_parquet
from dynamo_rl.demo.model import DEMO_ASSETS, build_model
from dynamo_rl.demo.task import make_problems
from dynamo_rl.demo.tokenizer import load_tokenizer

work, kind = Path(sys.argv[1]), sys.argv[2]
model_dir = work / "model"
shutil.rmtree(model_dir, ignore_errors=True)
tokenizer = load_tokenizer(DEMO_ASSETS)
# the demo's prompt format as a chat template, so verl's agent loop (apply_chat_template) builds "Q: ...=? A:"
tokenizer.chat_template = ("{% for m in messages %}{% if m['role'] == 'user' %}Q: {{ m['content'] }}=? A:"
                           "{% endif %}{% endfor %}")
if kind == "demo":
    shutil.copytree(DEMO_ASSETS, model_dir)
else:
    model = build_model(len(tokenizer), pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                        eos_token_id=tokenizer.eos_token_id, hidden_size=128, num_heads=2)
    model.save_pretrained(model_dir)
tokenizer.save_pretrained(model_dir)
for split, count in (("train", 16), ("test", 4)):
    problems = make_problems(split, count, seed=0)
    rows = verl_rows(problems, data_source="demo", split=split, template="none")
    write_parquet(rows, work / "data" / f"{split}.parquet")
print("model and data in", work)
PY

run() {  # $1 = total steps, $2 = log file
  python -m verl.trainer.main_ppo --config-path="$REPO/configs/verl" --config-name=dynamo_qwen2.5_math_1.5b \
    data.train_files="$WORK/data/train.parquet" data.val_files="$WORK/data/test.parquet" \
    data.train_batch_size=8 data.max_prompt_length=32 data.max_response_length=16 data.truncation=error \
    data.dataloader_num_workers=0 \
    actor_rollout_ref.model.path="$WORK/model" actor_rollout_ref.model.override_config.max_position_embeddings=64 \
    actor_rollout_ref.actor.ppo_mini_batch_size=4 actor_rollout_ref.actor.ppo_max_token_len_per_gpu=4096 \
    actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu=4096 \
    actor_rollout_ref.actor.optim.lr=1e-5 actor_rollout_ref.actor.optim.lr_warmup_steps=0 \
    actor_rollout_ref.rollout.n=4 dynamo.allocation.n_min=2 dynamo.allocation.n_max=8 dynamo.sum_pi_squared=true \
    actor_rollout_ref.rollout.tensor_model_parallel_size=1 actor_rollout_ref.rollout.gpu_memory_utilization=0.3 \
    actor_rollout_ref.rollout.max_num_seqs=256 actor_rollout_ref.rollout.max_num_batched_tokens=2048 \
    actor_rollout_ref.rollout.val_kwargs.n=2 \
    trainer.n_gpus_per_node=1 trainer.nnodes=1 trainer.total_training_steps="$1" trainer.test_freq=2 \
    trainer.save_freq=2 trainer.val_before_train=false trainer.logger=[console] \
    trainer.default_local_dir="$WORK/ckpt" trainer.experiment_name=smoke 2>&1 | tee "$2"
}

start=$(date +%s)
run 4 "$OUT/smoke_run1.log"
run 6 "$OUT/smoke_run2.log"
elapsed=$(( $(date +%s) - start ))

check() {  # $1 = description, $2 = pattern, $3 = log
  if grep -q -- "$2" "$3"; then echo "ok    $1"; else echo "FAIL  $1 (no '$2' in $(basename "$3"))"; fi
}
{
  echo "smoke run: ${elapsed}s, model=$SMOKE_MODEL"
  check "plugin loaded in Ray processes" "dynamo-rl verl plugin loaded" "$OUT/smoke_run1.log"
  check "loss installed on the actor workers" "installed dynamo_ppo_loss" "$OUT/smoke_run1.log"
  check "modulation metrics logged" "mod/factor_mean" "$OUT/smoke_run1.log"
  check "Σπ² reached the loss" "mod/sum_sq_probs_mean" "$OUT/smoke_run1.log"
  check "history updated" "history/batch_accuracy" "$OUT/smoke_run1.log"
  check "allocation metrics logged" "alloc/num_rollouts_std" "$OUT/smoke_run1.log"
  check "live Eq 44 ratio logged" "alloc/variance_reduction_ratio" "$OUT/smoke_run1.log"
  check "allocator state saved with the checkpoint" "saved allocator state" "$OUT/smoke_run1.log"
  check "allocator state restored on resume" "restored allocator state" "$OUT/smoke_run2.log"
  ls "$WORK"/ckpt/global_step_*/allocator_state.json
} | tee "$OUT/smoke_summary.txt"
! grep -q "^FAIL" "$OUT/smoke_summary.txt"
