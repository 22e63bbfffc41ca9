"""Generation backends: n_i completions per prompt (``hf`` = transformers, ``vllm`` = the optional extra)."""

from dynamo_rl.rollout.registry import BACKENDS, make_backend
from dynamo_rl.rollout.types import Completion, GenerationBackend, SamplingParams

__all__ = ["BACKENDS", "Completion", "GenerationBackend", "SamplingParams", "make_backend"]
