"""Generation backends by name (``hf``, ``vllm``): ``make_backend(name, model, ...)``."""

from __future__ import annotations

from typing import Any

from dynamo_rl.core.registry import Registry
from dynamo_rl.rollout.types import GenerationBackend

BACKENDS: Registry[Any] = Registry("generation backend")

TORCH_DTYPES = ("auto", "float32", "bfloat16", "float16")


@BACKENDS.register("hf")
def make_hf_backend(model: Any, tokenizer: Any = None, *, batch_size: int = 16, device: str | None = None,
                    dtype: str = "auto", trust_remote_code: bool = False) -> GenerationBackend:
    """:class:`~dynamo_rl.rollout.hf.HFBackend` from a model object or a path / hub id (loaded with ``transformers``).

    ``device=None`` picks CUDA when available; ``dtype`` is used only when loading from a path.
    """
    import torch

    from dynamo_rl.rollout.hf import HFBackend

    if isinstance(model, str):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if dtype not in TORCH_DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(TORCH_DTYPES)}, got {dtype!r}")
        torch_dtype = dtype if dtype == "auto" else getattr(torch, dtype)
        tokenizer = tokenizer if tokenizer is not None else AutoTokenizer.from_pretrained(
            model, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(model, dtype=torch_dtype, trust_remote_code=trust_remote_code)
        model.eval()
    if tokenizer is None:
        raise ValueError("tokenizer is required when model is a model object, not a path")
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return HFBackend(model, tokenizer, batch_size=batch_size, device=device)


@BACKENDS.register("vllm")
def make_vllm_backend(model: Any, tokenizer: Any = None, **engine_kwargs: Any) -> GenerationBackend:
    """:class:`~dynamo_rl.rollout.vllm.VLLMBackend` from a path / hub id or an existing ``vllm.LLM``.

    ``tokenizer`` is accepted for a uniform signature and must be None or a path (vLLM loads its own).
    """
    from dynamo_rl.rollout.vllm import VLLMBackend

    if tokenizer is not None:
        if not isinstance(tokenizer, str):
            raise ValueError("the vllm backend loads its own tokenizer; pass tokenizer as a path or not at all")
        engine_kwargs.setdefault("tokenizer", tokenizer)
    return VLLMBackend(model, **engine_kwargs)


def make_backend(name: str, model: Any, tokenizer: Any = None, **kwargs: Any) -> GenerationBackend:
    """Build the backend registered as ``name`` (``hf`` or ``vllm``); unknown names list the valid ones."""
    return BACKENDS.get(name)(model, tokenizer, **kwargs)
