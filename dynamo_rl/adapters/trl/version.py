"""The TRL versions this adapter is written against, and a guard that fails with a clear message otherwise.

The adapter overrides private ``GRPOTrainer`` methods (``_get_train_sampler``, ``_generate_and_score_completions``,
``_calculate_rewards``, ``_get_per_token_logps_and_entropies``, ``_compute_loss``) and relies on the fused LM head's
``log_sum_sq_probs`` output, which appeared in TRL 1.15 (PR huggingface/trl#7077). Their order of use is pinned by
``tests/adapters/test_trl_adapter.py::test_modulation_weights_reach_the_loss``.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

MIN_VERSION = (1, 15)
"""Oldest supported TRL release (inclusive): the fused LM head with ``log_sum_sq_probs``."""
MAX_VERSION = (1, 17)
"""First unsupported TRL release (exclusive)."""
SUPPORTED_RANGE = ">=1.15,<1.17"


def _release(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split("+")[0].split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if digits == "" or not piece[0].isdigit():
            break
        parts.append(int(digits))
        if not piece.isdigit():  # "0rc1", "0dev" ... stop after the numeric prefix
            break
    return tuple(parts)


def check_trl_version(installed: str | None = None) -> str:
    """Return the installed TRL version; raise ``ImportError`` if TRL is missing or outside ``SUPPORTED_RANGE``."""
    if installed is None:
        try:
            installed = version("trl")
        except PackageNotFoundError as exc:
            raise ImportError(f"the TRL adapter needs trl{SUPPORTED_RANGE}: pip install 'dynamo-rl[trl]'") from exc
    release = _release(installed)
    if not (MIN_VERSION <= release[:2] < MAX_VERSION):
        raise ImportError(
            f"trl=={installed} is not supported by dynamo_rl.adapters.trl (supported: trl{SUPPORTED_RANGE}). The "
            "adapter overrides private GRPOTrainer methods whose order and signatures it checks only for this range; "
            f"install a supported version, e.g. pip install 'trl{SUPPORTED_RANGE}'."
        )
    return installed
