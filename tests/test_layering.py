"""The package's floors: ``core`` is pure (tests/core/test_import_boundary.py); ``run`` is the neutral layer every
engine shares and imports no engine; ``trainer`` (built-in engine) and ``adapters`` (TRL, verl) never import each
other. Checked on the source, lazy imports inside functions included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "dynamo_rl"

FORBIDDEN = {
    "run": ("dynamo_rl.trainer", "dynamo_rl.adapters", "dynamo_rl.train_cli", "dynamo_rl.cli"),
    "trainer": ("dynamo_rl.adapters", "dynamo_rl.train_cli", "dynamo_rl.cli"),
    "adapters": ("dynamo_rl.trainer", "dynamo_rl.train_cli", "dynamo_rl.cli"),
    "core": ("dynamo_rl.run", "dynamo_rl.trainer", "dynamo_rl.adapters", "dynamo_rl.method_config"),
}


def imports_of(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every import statement in ``path`` (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, module]) if module else ".".join(base)
            out.append((node.lineno, module))
            out += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return out


@pytest.mark.parametrize("floor", sorted(FORBIDDEN))
def test_floor_imports_nothing_above_or_beside_it(floor):
    bad = []
    for path in sorted((PACKAGE / floor).rglob("*.py")):
        for line, module in imports_of(path):
            if any(module == f or module.startswith(f + ".") for f in FORBIDDEN[floor]):
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}")
    assert not bad, "\n".join(bad)


def test_the_checker_sees_lazy_and_relative_imports(tmp_path):
    sample = PACKAGE / "trainer" / "_layering_probe.py"
    sample.write_text("def f():\n    from ..adapters import trl\n    import dynamo_rl.adapters.verl\n")
    try:
        found = [m for _, m in imports_of(sample)]
    finally:
        sample.unlink()
    assert "dynamo_rl.adapters" in found and "dynamo_rl.adapters.verl" in found
