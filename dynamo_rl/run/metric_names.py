"""Metric keys: one namespace for the same quantity in every engine (built-in trainer, TRL adapter, verl plugin).

Every key is defined in ``docs/metrics.md``. Engines may log their native keys beside these (TRL's ``reward``,
verl's ``actor/pg_loss``...), but a quantity that dynamo-rl computes is logged under the name below everywhere.
Modulation and loss keys come from :mod:`dynamo_rl.core` as ``mod/*`` and are logged as they come.
"""

STEP = "step"
# Rewards and verification
REWARD_MEAN = "reward/mean"
REWARD_STD = "reward/std"
ACCURACY = "acc/mean"
STATUS = "status/{}"  # correct / incorrect / unparseable / timeout counts
GROUPS_ALL_CORRECT = "groups/all_correct_frac"
GROUPS_ALL_WRONG = "groups/all_wrong_frac"
# Policy update
LOSS = "actor/loss"
ENTROPY = "actor/entropy"
GRAD_NORM = "actor/grad_norm"
LR = "actor/lr"
OPTIMIZER_STEPS = "actor/optimizer_steps"
# Allocation
ALLOC_BUDGET = "alloc/budget"
ALLOC_BUDGET_REQUESTED = "alloc/budget_requested"
ALLOC_ROLLOUTS_SAVED = "alloc/rollouts_saved"
ALLOC_MIN = "alloc/num_rollouts_min"
ALLOC_MAX = "alloc/num_rollouts_max"
ALLOC_MEAN = "alloc/num_rollouts_mean"
ALLOC_STD = "alloc/num_rollouts_std"
ALLOC_AT_N_MIN = "alloc/frac_at_n_min"
ALLOC_AT_N_MAX = "alloc/frac_at_n_max"
ALLOC_HISTOGRAM = "alloc/histogram"
ALLOC_NUM_ROLLOUTS = "alloc/num_rollouts"
ALLOC_WITH_HISTORY = "alloc/frac_with_history"
ALLOC_VARIANCE_RATIO = "alloc/variance_reduction_ratio"
ALLOC_VARIANCE_RATIO_CONFIGURED = "alloc/variance_ratio_vs_configured_budget"
HISTORY_PROMPTS = "history/num_prompts"
LEVEL_ROLLOUTS = "level/{}/rollouts"
LEVEL_NUM_ROLLOUTS_MEAN = "level/{}/num_rollouts_mean"
LEVEL_ACCURACY = "level/{}/acc"
# Tokens and time
RESPONSE_TOKENS = "tokens/response_total"
RESPONSE_LENGTH = "tokens/response_length_mean"
TRUNCATED = "tokens/truncated_frac"
STEP_TIME = "time/step_s"
GENERATE_TIME = "time/generate_s"
VERIFY_TIME = "time/verify_s"
UPDATE_TIME = "time/update_s"
# Held-out evaluation
EVAL_ACCURACY = "eval/acc"
EVAL_LEVEL_ACCURACY = "eval/level/{}/acc"
EVAL_TIME = "eval/time_s"

TIME_KEYS = (STEP_TIME, GENERATE_TIME, VERIFY_TIME, UPDATE_TIME, EVAL_TIME)
"""Wall-clock keys: the only ones that differ between two runs with the same seed."""
