"""The run layer every engine shares (built-in trainer, TRL adapter, verl plugin): run config, problem and model
loading, the stateful rollout allocator, metric names and the metrics log, the run directory and its checkpoints,
atomic writes and plots. It imports ``core``, ``data``, ``demo``, ``rewards`` and ``method_config``; never
``trainer`` or ``adapters`` (``tests/core/test_import_boundary.py``).
"""
