"""HFBackend on a tiny random Qwen2 with a character-level tokenizer (CPU)."""

from __future__ import annotations

import math

import pytest
import torch

from dynamo_rl.rollout import make_backend
from dynamo_rl.rollout.hf import HFBackend, truncate_at_stop
from dynamo_rl.rollout.types import SamplingParams
from tests.tiny_models import make_tiny_qwen2, make_tiny_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return make_tiny_tokenizer()


@pytest.fixture(scope="module")
def model(tokenizer):
    return make_tiny_qwen2(len(tokenizer))


@pytest.fixture()
def backend(model, tokenizer):
    return HFBackend(model, tokenizer, batch_size=4)


def test_per_prompt_counts_are_respected_and_ordered(backend):
    counts = [3, 0, 1, 4]
    out = backend.generate(["a", "bb", "ccc", "dddd"], counts, SamplingParams(max_new_tokens=4, seed=0))
    assert len(out) == sum(counts)
    assert [c.prompt_index for c in out] == [0, 0, 0, 2, 3, 3, 3, 3]
    for c in out:
        assert 1 <= len(c.token_ids) <= 4
        assert c.prompt_token_ids == backend.tokenizer(["a", "bb", "ccc", "dddd"][c.prompt_index])["input_ids"]


def test_left_padding_matches_unbatched_greedy(backend):
    params = SamplingParams(temperature=0.0, max_new_tokens=12)
    alone = backend.generate(["x+1"], [1], params)[0]
    batched = backend.generate(["a much longer prompt, padded", "x+1"], [1, 1], params)
    assert batched[1].token_ids == alone.token_ids
    assert batched[1].text == alone.text
    assert batched[0].token_ids != alone.token_ids  # the prompts really differ (the model is context-sensitive)
    assert batched[1].logprobs == pytest.approx(alone.logprobs, abs=1e-4)


def test_seed_reproducible_and_caller_rng_untouched(backend):
    params = SamplingParams(max_new_tokens=8, seed=123)
    torch.manual_seed(7)
    before = torch.get_rng_state()
    first = backend.generate(["abc", "de"], [2, 3], params)
    assert torch.equal(torch.get_rng_state(), before)
    second = backend.generate(["abc", "de"], [2, 3], params)
    assert [c.token_ids for c in first] == [c.token_ids for c in second]
    other = backend.generate(["abc", "de"], [2, 3], SamplingParams(max_new_tokens=8, seed=124))
    assert [c.token_ids for c in first] != [c.token_ids for c in other]


def test_logprobs_align_with_tokens_and_match_the_sampling_distribution(backend, model):
    params = SamplingParams(max_new_tokens=6, seed=3, temperature=0.7, top_k=5)
    out = backend.generate(["hello"], [3], params)
    for c in out:
        assert len(c.logprobs) == len(c.token_ids)
        assert all(v <= 0.0 and math.isfinite(v) for v in c.logprobs)
        # Recompute: log_softmax(top-5 of logits / 0.7) at each position.
        ids = torch.tensor([c.prompt_token_ids + c.token_ids])
        with torch.no_grad():
            logits = model(ids).logits[0, len(c.prompt_token_ids) - 1:-1] / 0.7
        kth = logits.topk(5, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
        expected = torch.log_softmax(logits, -1).gather(1, torch.tensor(c.token_ids)[:, None]).squeeze(1)
        assert c.logprobs == pytest.approx(expected.tolist(), abs=1e-4)


def test_stop_strings_truncate_text_and_tokens(backend, tokenizer):
    base = backend.generate(["q"], [1], SamplingParams(temperature=0.0, max_new_tokens=16))[0]
    assert len(base.text) >= 6
    stop = base.text[3:5]  # a string the greedy continuation is known to produce
    out = backend.generate(["q"], [1], SamplingParams(temperature=0.0, max_new_tokens=16, stop=(stop,)))[0]
    cut = base.text.find(stop) + len(stop)
    assert out.text == base.text[:cut]
    assert out.finish_reason == "stop"
    assert tokenizer.decode(out.token_ids) == out.text
    assert out.token_ids == base.token_ids[:len(out.token_ids)]
    assert len(out.logprobs) == len(out.token_ids)


def test_truncate_at_stop_uses_earliest_end():
    assert truncate_at_stop("abc</s>def###", ["###", "</s>"]) == ("abc</s>", True)
    assert truncate_at_stop("abc", ["x"]) == ("abc", False)


def test_train_mode_is_restored_and_sampling_uses_eval_mode(model, tokenizer):
    backend = HFBackend(model, tokenizer)
    params = SamplingParams(temperature=0.0, max_new_tokens=6)
    expected = backend.generate(["abc"], [1], params)[0].token_ids
    model.train()
    try:
        assert backend.generate(["abc"], [1], params)[0].token_ids == expected
        assert model.training
    finally:
        model.eval()


def test_bad_input_names_the_field(backend):
    with pytest.raises(ValueError, match="num_samples"):
        backend.generate(["a", "b"], [1], SamplingParams())
    with pytest.raises(ValueError, match="top_p"):
        backend.generate(["a"], [1], SamplingParams(top_p=0.0))
    with pytest.raises(ValueError, match=r"num_samples\[0\]"):
        backend.generate(["a"], [-1], SamplingParams())


def test_make_backend_loads_a_saved_model(tmp_path, model, tokenizer):
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded = make_backend("hf", str(tmp_path), batch_size=2, device="cpu")
    params = SamplingParams(temperature=0.0, max_new_tokens=5)
    direct = HFBackend(model, tokenizer).generate(["2+2="], [1], params)[0]
    assert loaded.generate(["2+2="], [1], params)[0].token_ids == direct.token_ids
    with pytest.raises(KeyError, match="valid names"):
        make_backend("nope", str(tmp_path))
