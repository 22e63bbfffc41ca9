"""dynamo-rl: DynaMO (arXiv 2602.19208) for reinforcement learning from verifiable rewards.

The pure math lives in :mod:`dynamo_rl.core`; everything else is plumbing around it.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
