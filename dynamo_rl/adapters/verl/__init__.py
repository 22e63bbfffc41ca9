"""DynaMO on verl 0.9.x (V1 trainer, Ray, FSDP/Megatron, vLLM/SGLang) as a plugin, without forking verl.

Installed with ``pip install "dynamo-rl[verl]"``; verl loads :mod:`dynamo_rl.adapters.verl.plugin` through the
``verl.plugins`` entry point on ``import verl`` in every process. Modules:

- :mod:`~dynamo_rl.adapters.verl.plugin` — the entry point: registers ``dynamo_grpo`` and ``dynamo_sync``.
- :mod:`~dynamo_rl.adapters.verl.trainer` — ``DynamoPPOTrainer`` (``trainer.v1.trainer_mode=dynamo_sync``).
- :mod:`~dynamo_rl.adapters.verl.loss` — ``dynamo_ppo_loss`` (modulated advantages, then verl's ``ppo_loss``).
- :mod:`~dynamo_rl.adapters.verl.allocation` — prompt ids and uid bookkeeping around the shared
  :class:`~dynamo_rl.run.allocator.RolloutAllocator` (no verl import).
- :mod:`~dynamo_rl.adapters.verl.settings` — the ``dynamo:`` config section and the verl keys a method's loss needs
  (no verl import).
- :mod:`~dynamo_rl.adapters.verl.rewards` — ``compute_score`` for ``reward.custom_reward_function``.
- :mod:`~dynamo_rl.adapters.verl.prepare_data` — ``dynamo-rl prepare-verl`` (parquet files for verl).

This package imports nothing from verl itself; see docs/verl.md.
"""

SUPPORTED_VERL = ">=0.9.1,<0.10"
