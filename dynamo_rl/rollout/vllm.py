"""vLLM generation backend (the ``vllm`` extra, vLLM ≥ 0.10): one ``SamplingParams(n=n_i)`` per prompt, one call.

``VLLMBackend(model_path_or_llm, **engine_kwargs)`` wraps a ``vllm.LLM`` (built here from a path / hub id, or passed
in). Every prompt ``i`` with ``n_i > 0`` becomes one request with ``SamplingParams(n=n_i, logprobs=0, ...)``; all
requests go to a single ``llm.generate`` call, so vLLM batches them freely.

Log-probabilities: ``logprobs=0`` returns the log-probability of each sampled token. Engines built here default to
``logprobs_mode="processed_logprobs"`` where the installed vLLM has it (≥ 0.10.2), i.e. the values after temperature and the other logit
processors, matching what :class:`~dynamo_rl.rollout.hf.HFBackend` records; vLLM's own default
(``raw_logprobs``) gives the model's temperature-1 log-probabilities instead. Pass ``logprobs_mode=...`` to change it.

Stop strings are kept in the text (``include_stop_str_in_output=True``), as in every backend. Seeds: with
``params.seed`` set, request ``i`` gets seed ``seed + i`` (vLLM seeds each request's own generator).

Weight sync for training (:meth:`VLLMBackend.sync_weights`): the documented path of vLLM ≥ 0.10 is a *worker
extension* (engine argument ``worker_extension_cls``) whose methods run on every worker through
``LLM.collective_rpc(method_name, args=...)``. Engines built here install :class:`WeightSyncExtension`, whose
``load_hf_weights(named_tensors)`` calls the model's ``load_weights`` (which maps Hugging Face parameter names onto
vLLM's fused layers). Tensors travel as CPU copies in chunks of about ``chunk_bytes``; the prefix cache is reset
afterwards. This reaches the model without touching ``llm.llm_engine.model_executor.driver_worker``, whose layout
changes between versions. For multi-node or very large models use verl or TRL's NCCL weight transfer instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from dynamo_rl.rollout.hf import expand_rows, validate_params
from dynamo_rl.rollout.types import Completion, SamplingParams

EXTENSION_CLASS = "dynamo_rl.rollout.vllm.WeightSyncExtension"


def import_vllm() -> Any:
    """Import ``vllm`` or raise an ImportError that names the extra to install."""
    try:
        import vllm
    except ImportError as exc:
        raise ImportError("the vllm backend needs vLLM >= 0.10: pip install 'dynamo-rl[vllm]' (needs a CUDA GPU), "
                          "or use --backend hf") from exc
    return vllm


class WeightSyncExtension:
    """Mixed into every vLLM worker (``worker_extension_cls``); called through ``LLM.collective_rpc``."""

    def load_hf_weights(self, named_tensors: list[tuple[str, Any]]) -> int:
        """Load ``(hf_name, tensor)`` pairs into the worker's model; returns how many were given."""
        model = self.model_runner.model  # type: ignore[attr-defined]  # provided by the vLLM worker
        device = next(model.parameters()).device
        model.load_weights([(name, tensor.to(device)) for name, tensor in named_tensors])
        return len(named_tensors)


def _engine_accepts(name: str) -> bool:
    """Whether ``vllm.engine.arg_utils.EngineArgs`` has the field ``name`` (True when that cannot be checked)."""
    import dataclasses

    try:
        from vllm.engine.arg_utils import EngineArgs
    except ImportError:
        return True
    return name in {f.name for f in dataclasses.fields(EngineArgs)}


def vllm_sampling_params(params: SamplingParams, n: int, seed: int | None, sampling_cls: Any) -> Any:
    """The ``vllm.SamplingParams`` of one request with ``n`` samples."""
    return sampling_cls(
        n=n, temperature=params.temperature, top_p=params.top_p, top_k=params.top_k,
        max_tokens=params.max_new_tokens, stop=list(params.stop) or None, seed=seed, logprobs=0,
        include_stop_str_in_output=True, skip_special_tokens=True,
    )


def _sampled_logprobs(output: Any) -> list[float] | None:
    entries = getattr(output, "logprobs", None)
    if entries is None:
        return None
    values = []
    for token, entry in zip(output.token_ids, entries):
        chosen = entry[token]
        values.append(float(getattr(chosen, "logprob", chosen)))
    return values


class VLLMBackend:
    """Generate with vLLM. ``model_path_or_llm`` is a path / hub id (an ``LLM`` is built with ``engine_kwargs``)
    or an existing ``vllm.LLM``."""

    def __init__(self, model_path_or_llm: Any, **engine_kwargs: Any) -> None:
        vllm = import_vllm()
        self._sampling_cls = vllm.SamplingParams
        if isinstance(model_path_or_llm, str):
            engine_kwargs.setdefault("worker_extension_cls", EXTENSION_CLASS)
            if _engine_accepts("logprobs_mode"):  # vLLM >= 0.10.2; older versions return raw log-probs
                engine_kwargs.setdefault("logprobs_mode", "processed_logprobs")
            self.llm = vllm.LLM(model=model_path_or_llm, **engine_kwargs)
        else:
            if engine_kwargs:
                raise ValueError(f"engine_kwargs {sorted(engine_kwargs)} given with an existing LLM; they only apply "
                                 "when the backend builds the engine from a path")
            self.llm = model_path_or_llm

    def generate(self, prompts: Sequence[str], num_samples: Sequence[int],
                 params: SamplingParams) -> list[Completion]:
        validate_params(params)
        expand_rows(num_samples, len(prompts))  # validates the counts
        active = [i for i, count in enumerate(num_samples) if count > 0]
        if not active:
            return []
        requests = [vllm_sampling_params(params, int(num_samples[i]),
                                         None if params.seed is None else params.seed + i, self._sampling_cls)
                    for i in active]
        outputs = self.llm.generate([prompts[i] for i in active], requests, use_tqdm=False)
        completions: list[Completion] = []
        for prompt_index, request_output in zip(active, outputs):
            prompt_ids = list(getattr(request_output, "prompt_token_ids", None) or [])
            for output in request_output.outputs:
                completions.append(Completion(
                    prompt_index=prompt_index, text=output.text, token_ids=list(output.token_ids),
                    logprobs=_sampled_logprobs(output),
                    finish_reason="stop" if output.finish_reason == "stop" else "length",
                    prompt_token_ids=prompt_ids,
                ))
        return completions

    def sync_weights(self, model_or_state: Any, *, chunk_bytes: int = 256 * 2**20) -> int:
        """Copy a Hugging Face model's (or state dict's) weights into the engine; returns the tensors sent.

        Needs an engine built with :class:`WeightSyncExtension` (automatic when this backend built it).
        """
        state = model_or_state.state_dict() if hasattr(model_or_state, "state_dict") else dict(model_or_state)
        sent = 0
        for chunk in _chunks(state.items(), chunk_bytes):
            self.llm.collective_rpc("load_hf_weights", args=(chunk,))
            sent += len(chunk)
        self.llm.reset_prefix_cache()
        return sent


def _chunks(items: Iterable[tuple[str, Any]], chunk_bytes: int) -> Iterable[list[tuple[str, Any]]]:
    chunk: list[tuple[str, Any]] = []
    size = 0
    for name, tensor in items:
        tensor = tensor.detach().to("cpu").contiguous()
        chunk.append((name, tensor))
        size += tensor.numel() * tensor.element_size()
        if size >= chunk_bytes:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk
