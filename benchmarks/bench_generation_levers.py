"""What is left to make a study run faster without changing a single sample: each exact lever, side by side.

After the verification fast path, a study run is the model's own work: generation (``transformers.generate`` of
the demo model, 128 rows at a time) and the policy update. This script measures, on the demo model and one thread,
the levers that would keep every sampled token and log-probability bit-identical, and checks that they do:

1. ``inference_mode``: ``HFBackend.generate`` inside ``torch.inference_mode()`` instead of ``no_grad`` alone;
2. a lean sampling loop: the model's own ``forward`` driven by a hand-written loop that replays what
   ``generate`` does for multinomial sampling (the same model inputs — position ids from the mask,
   ``logits_to_keep=1`` — then per-step logits → softmax → multinomial, EOS padding); it reports whether the tokens
   and the sampling log-probabilities are identical (what ``generate`` passes changes between ``transformers``
   releases, and a wrapper with another signature changes it too: that is what makes such a loop fragile);
3. a lean forward: the Llama decoder written out op by op (same kernels, same order) instead of the
   ``transformers`` modules, for one prefill and 16 decode steps.

It prints the time of each, the ratio to the baseline, and whether the outputs are bitwise identical. Lever 3 is a
private copy of one architecture's modelling code, which this project does not ship (see docs/results.md, "Verification
fast path and study speed"); it is here only to bound what such a copy could gain.

    python benchmarks/bench_generation_levers.py [--repeats 6]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

import torch
import torch.nn.functional as F


def _demo() -> tuple[Any, Any, list[str]]:
    from dynamo_rl.demo.model import DEMO_ASSETS, load_model
    from dynamo_rl.demo.task import make_problems

    model, tokenizer = load_model(DEMO_ASSETS, "cpu")
    model.eval()
    prompts = [p.prompt or p.problem for p in make_problems("test", 64, seed=0, family="arith")]
    return model, tokenizer, prompts


def _median_pair(first, second, repeats: int) -> tuple[float, float]:
    """Median seconds of two callables, alternated so that drift of the machine's load hits both."""
    a, b = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        first()
        t1 = time.perf_counter()
        second()
        a.append(t1 - t0)
        b.append(time.perf_counter() - t1)
    return statistics.median(a), statistics.median(b)


def _line(what: str, base: float, lever: float, same: bool | str) -> None:
    verdict = same if isinstance(same, str) else "bit-identical" if same else "DIFFERENT"
    print(f"{what:<56} baseline {base:8.4f} s   lever {lever:8.4f} s   speed-up {base / lever:5.2f}x   {verdict}")


def bench_inference_mode(model: Any, tokenizer: Any, prompts: list[str], repeats: int) -> None:
    from dynamo_rl.rollout.hf import HFBackend
    from dynamo_rl.rollout.types import SamplingParams

    backend = HFBackend(model, tokenizer, batch_size=128)
    params = SamplingParams(temperature=1.0, max_new_tokens=16, seed=3)
    counts = [4] * len(prompts)
    outputs: dict[str, Any] = {}

    def plain() -> None:
        outputs["plain"] = backend.generate(prompts, counts, params)

    def inference() -> None:
        with torch.inference_mode():
            outputs["inference"] = backend.generate(prompts, counts, params)

    base, lever = _median_pair(plain, inference, repeats)
    same = all(a.token_ids == b.token_ids and a.logprobs == b.logprobs
               for a, b in zip(outputs["plain"], outputs["inference"]))
    _line(f"1. generate {len(prompts) * 4} rows under inference_mode", base, lever, same)


def _left_padded(tokenizer: Any, prompts: list[str], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    encoded = [tokenizer(p)["input_ids"] for p in prompts]
    width = max(map(len, encoded))
    ids = torch.full((len(prompts), width), pad, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, tokens in enumerate(encoded):
        ids[row, width - len(tokens):] = torch.tensor(tokens)
        mask[row, width - len(tokens):] = 1
    return ids, mask


@torch.no_grad()
def _lean_sample(model: Any, ids: torch.Tensor, mask: torch.Tensor, max_new: int, eos: torch.Tensor,
                 pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Multinomial sampling at T = 1 with the inputs ``generate`` (transformers 5) gives the model: position ids from
    the attention mask (0 on padding), ``logits_to_keep=1``, and no mask at all when nothing is padded."""
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    rows = ids.shape[0]
    unfinished = torch.ones(rows, dtype=torch.long)
    positions = (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)
    padded = not bool((mask == 1).all())
    inputs = ids
    logprobs = []
    for _ in range(max_new):
        out = model(input_ids=inputs.clone(), cache=cache,
                    position_ids=positions[:, -inputs.shape[1]:].clone(),
                    attention_mask=mask if padded else None, logits_to_keep=1, use_cache=True, return_dict=True)
        logits = out.logits[:, -1].to(copy=True, dtype=torch.float32)
        log_softmax = torch.log_softmax(logits, dim=-1)
        tokens = torch.multinomial(F.softmax(logits, dim=-1), num_samples=1).squeeze(1)
        tokens = tokens * unfinished + pad * (1 - unfinished)
        logprobs.append(log_softmax.gather(1, tokens[:, None]).squeeze(1))
        ids = torch.cat([ids, tokens[:, None]], dim=-1)
        inputs = ids[:, -1:]
        positions = torch.cat([positions, positions[:, -1:] + 1], dim=-1)
        mask = torch.cat([mask, mask.new_ones((rows, 1))], dim=-1)
        unfinished = unfinished & ~torch.isin(tokens, eos)
        if unfinished.max() == 0:
            break
    return ids, torch.stack(logprobs, dim=1)


def bench_lean_loop(model: Any, tokenizer: Any, prompts: list[str], repeats: int) -> None:
    from dynamo_rl.rollout.hf import HFBackend
    from dynamo_rl.rollout.types import SamplingParams

    rows = prompts[:128]
    backend = HFBackend(model, tokenizer, batch_size=128)
    params = SamplingParams(temperature=1.0, max_new_tokens=16, seed=3)
    ids, mask = _left_padded(tokenizer, rows, backend.pad_token_id)
    eos = torch.tensor(backend.eos_token_ids)
    outputs: dict[str, Any] = {}

    def generate() -> None:
        outputs["generate"] = backend.generate(rows, [1] * len(rows), params)

    def lean() -> None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(3)
            outputs["lean"] = _lean_sample(model, ids, mask, 16, eos, backend.pad_token_id)

    base, lever = _median_pair(generate, lean, repeats)
    tokens, logprobs = outputs["lean"]
    width = ids.shape[1]
    same_tokens = all(c.token_ids == tokens[r, width:width + len(c.token_ids)].tolist()
                      for r, c in enumerate(outputs["generate"]))
    gap = max(abs(a - b) for r, c in enumerate(outputs["generate"])
              for a, b in zip(c.logprobs, logprobs[r, :len(c.logprobs)].tolist()))
    verdict = (f"tokens {'bit-identical' if same_tokens else 'DIFFERENT'}, log-probs "
               f"{'bit-identical' if gap == 0 else f'max |diff| {gap:.1e}'}")
    _line("2. 128 rows x 16 tokens: lean sampling loop", base, lever, verdict)


def _rms(x: torch.Tensor, module: Any) -> torch.Tensor:
    dtype = x.dtype
    x = x.to(torch.float32)
    x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + module.variance_epsilon)
    return module.weight * x.to(dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _lean_forward(model: Any, ids: torch.Tensor, cache: Any, mask2d: torch.Tensor, past: int) -> torch.Tensor:
    """The Llama decoder of ``transformers`` 5, op by op (no GQA, no biases in the MLP; the demo model's case)."""
    from transformers.masking_utils import create_causal_mask

    inner = model.model
    hidden = inner.embed_tokens(ids)
    positions = torch.arange(past, past + ids.shape[1]).unsqueeze(0)
    mask = create_causal_mask(config=model.config, inputs_embeds=hidden, attention_mask=mask2d, cache=cache,
                              position_ids=positions)
    cos, sin = inner.rotary_emb(hidden, positions)
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    rows, length = ids.shape
    for index, layer in enumerate(inner.layers):
        attn = layer.self_attn
        residual, x = hidden, _rms(hidden, layer.input_layernorm)
        shape = (rows, length, -1, attn.head_dim)
        q = F.linear(x, attn.q_proj.weight, attn.q_proj.bias).view(shape).transpose(1, 2)
        k = F.linear(x, attn.k_proj.weight, attn.k_proj.bias).view(shape).transpose(1, 2)
        v = F.linear(x, attn.v_proj.weight, attn.v_proj.bias).view(shape).transpose(1, 2)
        q, k = q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin
        k, v = cache.layers[index].update(k, v)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.0, scale=attn.scaling,
                                             is_causal=mask is None and length > 1)
        out = out.transpose(1, 2).contiguous().reshape(rows, length, -1).contiguous()
        hidden = residual + F.linear(out, attn.o_proj.weight, attn.o_proj.bias)
        residual, x = hidden, _rms(hidden, layer.post_attention_layernorm)
        mlp = layer.mlp
        hidden = residual + F.linear(F.silu(F.linear(x, mlp.gate_proj.weight)) * F.linear(x, mlp.up_proj.weight),
                                     mlp.down_proj.weight)
    return F.linear(_rms(hidden, inner.norm), model.lm_head.weight)


def bench_lean_forward(model: Any, repeats: int) -> None:
    from transformers import DynamicCache

    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(3, model.config.vocab_size, (128, 14), generator=generator)
    mask = torch.ones(128, 14, dtype=torch.long)
    mask[:5, :3] = 0  # some left padding, as in a real batch
    steps = [ids[:, i % 14:i % 14 + 1] for i in range(16)]
    outputs: dict[str, list[torch.Tensor]] = {}

    @torch.no_grad()
    def run(lean: bool) -> None:
        cache, current, logits = DynamicCache(config=model.config), mask, []
        call = (lambda x, m, past: _lean_forward(model, x, cache, m, past)) if lean else (
            lambda x, m, past: model(input_ids=x, cache=cache, attention_mask=m, use_cache=True).logits)
        logits.append(call(ids, current, 0))
        for i, token in enumerate(steps):
            current = torch.cat([current, current.new_ones((128, 1))], dim=-1)
            logits.append(call(token, current, 14 + i))
        outputs["lean" if lean else "hf"] = logits

    base, lever = _median_pair(lambda: run(False), lambda: run(True), repeats)
    same = all(torch.equal(a, b) for a, b in zip(outputs["hf"], outputs["lean"]))
    _line("3. prefill + 16 decode forwards, 128 rows: lean forward", base, lever, same)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=6)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    model, tokenizer, prompts = _demo()
    print(f"demo model ({model.config.model_type}, hidden {model.config.hidden_size}, "
          f"{model.config.num_hidden_layers} layers), 1 thread, median of {args.repeats} alternating repeats")
    bench_inference_mode(model, tokenizer, prompts, args.repeats)
    bench_lean_loop(model, tokenizer, prompts, args.repeats)
    bench_lean_forward(model, args.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
