"""One fixed scenario for the three engines' parity tests (built-in trainer, TRL adapter, verl plugin).

:mod:`tests.parity.scenario` is pure torch + dynamo_rl, importable in every test environment (no TRL, no verl).
"""
