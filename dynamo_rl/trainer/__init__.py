"""The built-in single-machine engine: plumbing around :mod:`dynamo_rl.core` (see ``docs/training.md``).

``dynamo_rl.trainer.loop.train(config)`` runs a :class:`~dynamo_rl.run.config.TrainConfig`; the config, loading,
allocator, metrics and checkpoints it uses live in :mod:`dynamo_rl.run`, shared with the other engines.
"""
