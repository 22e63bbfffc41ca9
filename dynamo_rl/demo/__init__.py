"""The embedded CPU demo: a synthetic math task with graded difficulty and a tiny warm-started model.

``dynamo-rl train`` with no arguments trains :func:`load_demo_model` on :func:`make_problems` (family ``arith``);
``dynamo-rl pretrain-demo`` rebuilds the shipped model. The ``modmath`` family is held back for the evidence study.
Importing this package needs only the standard library; the model functions import ``transformers`` when called.
"""

from dynamo_rl.demo.task import FAMILIES, LEVELS, describe_levels, extract_boxed, make_problems

__all__ = ["FAMILIES", "LEVELS", "describe_levels", "extract_boxed", "make_problems", "load_demo_model",
           "DEMO_ASSETS"]


def __getattr__(name: str):
    if name in ("load_demo_model", "DEMO_ASSETS"):
        from dynamo_rl.demo import model

        return getattr(model, name)
    raise AttributeError(f"module 'dynamo_rl.demo' has no attribute {name!r}")
