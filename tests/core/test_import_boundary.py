"""dynamo_rl.core imports only torch, numpy and the standard library."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import dynamo_rl.core

FORBIDDEN = ("transformers", "trl", "verl", "vllm", "datasets", "math_verify", "wandb", "accelerate", "yaml",
             "scipy", "dynamo_rl.method_config", "dynamo_rl.presets", "dynamo_rl.trainer.objective")


def _core_modules() -> list[str]:
    return sorted(f"dynamo_rl.core.{m.name}" for m in pkgutil.iter_modules([str(Path(dynamo_rl.core.__file__).parent)]))


def test_core_has_the_expected_modules():
    names = set(_core_modules())
    for required in ("registry", "groups", "advantages", "losses", "shaping", "aggregation", "passk"):
        assert f"dynamo_rl.core.{required}" in names


def test_core_imports_no_framework():
    modules = ["dynamo_rl.core", *_core_modules()]
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"bad = sorted(m for m in sys.modules if any(m == f or m.startswith(f + '.') for f in {FORBIDDEN!r}))\n"
        "print('BAD:' + ','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            cwd=Path(dynamo_rl.core.__file__).resolve().parents[2])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "BAD:", result.stdout
