"""DynaMO on HuggingFace TRL: ``DynaMOConfig`` (a ``GRPOConfig``) and ``DynaMOTrainer`` (a ``GRPOTrainer``).

    from dynamo_rl.adapters.trl import DynaMOConfig, DynaMOTrainer, math_verify_reward

    trainer = DynaMOTrainer(model="Qwen/Qwen2.5-Math-1.5B", reward_funcs=[math_verify_reward],
                            args=DynaMOConfig(output_dir="out", num_generations=16), train_dataset=dataset)
    trainer.train()

Supported TRL versions: ``>=1.15,<1.17`` (checked on import). See ``docs/trl.md``.
"""

from dynamo_rl.adapters.trl.version import SUPPORTED_RANGE, check_trl_version

check_trl_version()

from dynamo_rl.adapters.trl.config import DynaMOConfig  # noqa: E402
from dynamo_rl.adapters.trl.rewards import make_math_verify_reward, math_verify_reward  # noqa: E402
from dynamo_rl.adapters.trl.run import run_trl, trl_config_from_train_config  # noqa: E402
from dynamo_rl.adapters.trl.trainer import DynaMOTrainer  # noqa: E402

__all__ = ["SUPPORTED_RANGE", "DynaMOConfig", "DynaMOTrainer", "check_trl_version", "make_math_verify_reward",
           "math_verify_reward", "run_trl", "trl_config_from_train_config"]
