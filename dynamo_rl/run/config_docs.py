"""Help text of the run config, read from the attribute docstrings of its dataclasses (``dynamo-rl train
--help-all``, the generated ``DynaMOConfig`` fields of the TRL adapter)."""

from __future__ import annotations

import ast
import inspect
import textwrap

from dynamo_rl.run.config import SECTIONS


def field_docs(cls: type) -> dict[str, str]:
    """Attribute docstrings of a dataclass (the string literal right after each annotated field)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, following in zip(body, body[1:] + [None]):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if (isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
                    and isinstance(following.value.value, str)):
                docs[node.target.id] = " ".join(following.value.value.split())
    return docs


def section_docs() -> dict[str, tuple[str, dict[str, str]]]:
    """``{section: (class docstring, {field: docstring})}`` for every config section."""
    return {name: ((cls.__doc__ or "").strip(), field_docs(cls)) for name, cls in SECTIONS.items()}
