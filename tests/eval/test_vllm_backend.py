"""VLLMBackend: request mapping against a stand-in ``vllm`` module (CPU), and a real run on a GPU with vLLM."""

from __future__ import annotations

import importlib.util
import sys
import types
from dataclasses import dataclass, field

import pytest

from dynamo_rl.rollout.types import SamplingParams


@dataclass
class FakeVLLMParams:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    max_tokens: int = 16
    stop: list | None = None
    seed: int | None = None
    logprobs: int | None = None
    include_stop_str_in_output: bool = False
    skip_special_tokens: bool = True


@dataclass
class FakeLogprob:
    logprob: float


@dataclass
class FakeOutput:
    text: str
    token_ids: list
    logprobs: list
    finish_reason: str


@dataclass
class FakeRequestOutput:
    prompt_token_ids: list
    outputs: list = field(default_factory=list)


class FakeLLM:
    """Answers request i (prompt p) with n outputs "p#j" whose token ids are [j, j+1]."""

    def __init__(self, model=None, **kwargs):
        self.kwargs = kwargs
        self.calls = []
        self.rpc = []

    def generate(self, prompts, sampling_params, use_tqdm=False):
        self.calls.append((list(prompts), list(sampling_params)))
        return [FakeRequestOutput([len(p)], [
            FakeOutput(f"{p}#{j}", [j, j + 1], [{j: FakeLogprob(-0.5)}, {j + 1: FakeLogprob(-1.5)}],
                       "stop" if j == 0 else "length") for j in range(sp.n)])
            for p, sp in zip(prompts, sampling_params)]

    def collective_rpc(self, method, args=()):
        self.rpc.append((method, args))
        return [len(args[0])]

    def reset_prefix_cache(self):
        self.rpc.append(("reset_prefix_cache", ()))


@pytest.fixture()
def fake_vllm(monkeypatch):
    module = types.ModuleType("vllm")
    module.SamplingParams = FakeVLLMParams
    module.LLM = FakeLLM
    monkeypatch.setitem(sys.modules, "vllm", module)
    return module


def test_one_request_per_prompt_with_its_own_n(fake_vllm):
    from dynamo_rl.rollout.registry import make_backend

    backend = make_backend("vllm", "some/model", dtype="bfloat16")
    assert backend.llm.kwargs["logprobs_mode"] == "processed_logprobs"
    assert backend.llm.kwargs["worker_extension_cls"] == "dynamo_rl.rollout.vllm.WeightSyncExtension"
    params = SamplingParams(temperature=0.6, top_p=0.9, top_k=20, max_new_tokens=7, stop=("</s>",), seed=5)
    out = backend.generate(["a", "b", "c"], [2, 0, 3], params)
    prompts, requests = backend.llm.calls[0]
    assert len(backend.llm.calls) == 1 and prompts == ["a", "c"]
    assert [r.n for r in requests] == [2, 3]
    assert [r.seed for r in requests] == [5, 7]
    first = requests[0]
    assert (first.temperature, first.top_p, first.top_k, first.max_tokens) == (0.6, 0.9, 20, 7)
    assert first.stop == ["</s>"] and first.logprobs == 0 and first.include_stop_str_in_output
    assert [c.prompt_index for c in out] == [0, 0, 2, 2, 2]
    assert [c.text for c in out] == ["a#0", "a#1", "c#0", "c#1", "c#2"]
    assert out[1].token_ids == [1, 2] and out[1].logprobs == [-0.5, -1.5]
    assert [c.finish_reason for c in out[:2]] == ["stop", "length"]


def test_sync_weights_sends_cpu_chunks(fake_vllm):
    import torch

    from dynamo_rl.rollout.vllm import VLLMBackend

    backend = VLLMBackend(FakeLLM())
    state = {"a": torch.ones(4, 4), "b": torch.zeros(8), "c": torch.ones(2)}
    assert backend.sync_weights(state, chunk_bytes=64) == 3
    methods = [m for m, _ in backend.llm.rpc]
    assert methods == ["load_hf_weights", "load_hf_weights", "reset_prefix_cache"]
    sent = [name for _, args in backend.llm.rpc[:2] for name, _ in args[0]]
    assert sent == ["a", "b", "c"]
    with pytest.raises(ValueError, match="engine_kwargs"):
        VLLMBackend(FakeLLM(), dtype="float16")


def test_missing_vllm_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)
    from dynamo_rl.rollout.vllm import VLLMBackend

    with pytest.raises(ImportError, match=r"dynamo-rl\[vllm\]"):
        VLLMBackend("some/model")


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda_available() or importlib.util.find_spec("vllm") is None, reason="needs CUDA and vllm")
def test_real_vllm_generates_per_prompt_counts(tmp_path):
    from dynamo_rl.rollout.vllm import VLLMBackend
    from tests.tiny_models import save_tiny_model

    path = save_tiny_model(tmp_path / "tiny", hidden=256, heads=4)  # head_dim 64 suits every attention backend
    backend = VLLMBackend(str(path), gpu_memory_utilization=0.2, max_model_len=256, enforce_eager=True)
    out = backend.generate(["abc", "hello", "x"], [2, 0, 3], SamplingParams(max_new_tokens=8, seed=0))
    assert [c.prompt_index for c in out] == [0, 0, 2, 2, 2]
    for c in out:
        assert 1 <= len(c.token_ids) <= 8
        assert c.logprobs is not None and len(c.logprobs) == len(c.token_ids)
        assert all(v <= 0 for v in c.logprobs)
    again = backend.generate(["abc", "hello", "x"], [2, 0, 3], SamplingParams(max_new_tokens=8, seed=0))
    assert [c.token_ids for c in again] == [c.token_ids for c in out]
