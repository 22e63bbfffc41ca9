"""The evidence study of dynamo-rl: DynaMO vs GRPO, its ablations and the baselines on the built-in demo task.

Run ``python experiments/study.py --quick`` (smoke test) or ``python experiments/study.py --output runs/study``.
"""
