"""``transformers`` generation backend: batched ``model.generate`` with left padding and per-prompt sample counts.

Sampling log-probabilities
    Each returned ``logprobs[t]`` is the log-probability of the sampled token under the distribution it was actually
    drawn from: the model's logits after temperature, top-k and top-p (``log_softmax`` of the final processed scores).
    They are recorded during generation by a logits processor that runs after our own temperature/top-k/top-p
    warpers, keeping only one ``(batch, vocab)`` tensor alive (``output_scores`` would keep all ``T`` of them). Tokens
    removed by top-k/top-p are never sampled, so every value is finite and ≤ 0. With ``temperature == 0`` (greedy) the
    values are the model's log-probabilities at temperature 1 of the arg-max token.

Settings
    :class:`~dynamo_rl.rollout.types.SamplingParams` is authoritative: the model's ``generation_config`` sampling
    settings (top-k 50, repetition penalty, ...) are overridden so samples come from the policy itself. EOS is the
    union of the tokenizer's EOS and the model's ``generation_config.eos_token_id``.

Model mode
    Generation runs in eval mode (no dropout) under ``torch.no_grad``; the model's train/eval mode is restored after.

Seeds
    With ``params.seed`` set, generation runs inside ``torch.random.fork_rng`` seeded with it, so the caller's global
    RNG state is left exactly as it was and the same call (same prompts, counts, batch size) gives the same samples.
    Results depend on how rows are batched, so a different ``batch_size`` gives different (equally valid) samples.
    With ``seed=None`` the global RNG is used (and advanced).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from dynamo_rl.rollout.types import Completion, SamplingParams


def expand_rows(num_samples: Sequence[int], num_prompts: int) -> list[int]:
    """Prompt index of every output row: prompt ``i`` repeated ``num_samples[i]`` times, in prompt order."""
    if len(num_samples) != num_prompts:
        raise ValueError(f"num_samples has {len(num_samples)} entries but there are {num_prompts} prompts")
    rows: list[int] = []
    for index, count in enumerate(num_samples):
        if int(count) != count or count < 0:
            raise ValueError(f"num_samples[{index}] must be a non-negative integer, got {count!r}")
        rows.extend([index] * int(count))
    return rows


def validate_params(params: SamplingParams) -> None:
    """Raise ``ValueError`` naming the field for out-of-range sampling settings."""
    if params.temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {params.temperature}")
    if not 0.0 < params.top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {params.top_p}")
    if params.top_k == 0 or params.top_k < -1:
        raise ValueError(f"top_k must be -1 (disabled) or >= 1, got {params.top_k}")
    if params.max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1, got {params.max_new_tokens}")
    if any(not s for s in params.stop):
        raise ValueError(f"stop strings must be non-empty, got {params.stop!r}")


def truncate_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` right after the earliest occurrence of any stop string (the stop string is kept)."""
    best = -1
    for s in stop:
        position = text.find(s)
        if position >= 0 and (best < 0 or position + len(s) < best):
            best = position + len(s)
    return (text[:best], True) if best >= 0 else (text, False)


class _SampledLogprobRecorder:
    """Logits processor placed last: records ``log_softmax`` of the final scores and, one step later, gathers the
    log-probability of the token that was sampled from them (the new last column of ``input_ids``)."""

    def __init__(self) -> None:
        self.previous: torch.Tensor | None = None
        self.values: list[torch.Tensor] = []

    def _gather(self, input_ids: torch.LongTensor) -> None:
        if self.previous is not None:
            self.values.append(self.previous.gather(1, input_ids[:, -1:]).squeeze(1).float().cpu())

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self._gather(input_ids)
        self.previous = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def finish(self, sequences: torch.LongTensor) -> torch.Tensor:
        """``(batch, steps)`` sampled-token log-probabilities once generation returned ``sequences``."""
        self._gather(sequences)
        self.previous = None
        if not self.values:
            return torch.zeros(sequences.shape[0], 0)
        return torch.stack(self.values, dim=1)


class _StopOnStrings:
    """Per-row stopping criterion: a row is done once the tail of its generated text contains a stop string."""

    def __init__(self, tokenizer: Any, stop: Sequence[str], prompt_length: int) -> None:
        self.tokenizer = tokenizer
        self.stop = tuple(stop)
        self.prompt_length = prompt_length
        # A stop string of s characters spans at most s tokens when tokens decode to >= 1 character; the margin
        # covers byte-level tokens that decode to partial characters.
        self.window = max(len(s) for s in self.stop) + 8

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        tails = input_ids[:, max(self.prompt_length, input_ids.shape[1] - self.window):].tolist()
        texts = self.tokenizer.batch_decode(tails, skip_special_tokens=True)
        done = [any(s in text for s in self.stop) for text in texts]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class HFBackend:
    """Generate with a ``transformers`` causal LM (CPU or GPU).

    ``generate(prompts, num_samples, params)`` repeats prompt ``i`` ``num_samples[i]`` times, chunks the rows into
    batches of ``batch_size`` (left-padded), and returns the completions prompt by prompt. Each completion holds the
    response token ids (no prompt, no padding; EOS included when generated; cut after the token that completes a stop
    string), the decoded text (special tokens skipped; cut right after the first stop string) and the sampling
    log-probabilities (see the module docstring).
    """

    def __init__(self, model: Any, tokenizer: Any, *, batch_size: int = 16, device: str | torch.device | None = None,
                 add_special_tokens: bool = True) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.add_special_tokens = add_special_tokens
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        if device is not None:
            self.model.to(self.device)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if pad is None:
            raise ValueError("tokenizer has neither pad_token_id nor eos_token_id; set one before generating")
        self.pad_token_id = int(pad)
        self.eos_token_ids = self._eos_ids()

    def _eos_ids(self) -> list[int]:
        ids: list[int] = []
        generation_config = getattr(self.model, "generation_config", None)
        configured = getattr(generation_config, "eos_token_id", None)
        for value in ([configured] if isinstance(configured, int) else list(configured or [])):
            ids.append(int(value))
        if self.tokenizer.eos_token_id is not None:
            ids.append(int(self.tokenizer.eos_token_id))
        return sorted(set(ids))

    def generate(self, prompts: Sequence[str], num_samples: Sequence[int],
                 params: SamplingParams) -> list[Completion]:
        validate_params(params)
        rows = expand_rows(num_samples, len(prompts))
        encoded = [self.tokenizer(p, add_special_tokens=self.add_special_tokens)["input_ids"] for p in prompts]
        for index, ids in enumerate(encoded):
            if not ids:
                raise ValueError(f"prompts[{index}] encodes to zero tokens")
        completions: list[Completion] = []
        if not rows:
            return completions
        was_training = self.model.training
        self.model.eval()  # no dropout while sampling; the caller's mode is restored below
        try:
            if params.seed is None:
                self._generate_rows(rows, encoded, params, completions)
            else:
                devices = [self.device] if self.device.type == "cuda" else []
                with torch.random.fork_rng(devices=devices):
                    torch.manual_seed(params.seed)
                    self._generate_rows(rows, encoded, params, completions)
        finally:
            self.model.train(was_training)
        return completions

    def _generate_rows(self, rows: list[int], encoded: list[list[int]], params: SamplingParams,
                       out: list[Completion]) -> None:
        for start in range(0, len(rows), self.batch_size):
            out.extend(self._generate_batch(rows[start:start + self.batch_size], encoded, params))

    def _generation_kwargs(self, params: SamplingParams) -> tuple[dict[str, Any], list[Any]]:
        from transformers import GenerationConfig, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

        greedy = params.temperature == 0
        warpers: list[Any] = []
        if not greedy:
            if params.temperature != 1.0:
                warpers.append(TemperatureLogitsWarper(params.temperature))
            if params.top_k > 0:
                warpers.append(TopKLogitsWarper(top_k=params.top_k))
            if params.top_p < 1.0:
                warpers.append(TopPLogitsWarper(top_p=params.top_p))
        # Our warpers run as custom processors so the recorder can follow them; generate adds none of its own.
        # (Greedy decoding applies no warpers, so leaving top-k/top-p/temperature unset is exact there.)
        sampling = {"temperature": 1.0, "top_k": 0, "top_p": 1.0, "min_p": None, "typical_p": 1.0} if not greedy else {}
        config = GenerationConfig(
            do_sample=not greedy, **sampling,
            repetition_penalty=1.0, no_repeat_ngram_size=0, num_beams=1, num_return_sequences=1, use_cache=True,
            max_new_tokens=params.max_new_tokens, pad_token_id=self.pad_token_id, eos_token_id=self.eos_token_ids,
            return_dict_in_generate=True, output_scores=False,
        )
        return {"generation_config": config}, warpers

    @torch.no_grad()
    def _generate_batch(self, rows: list[int], encoded: list[list[int]], params: SamplingParams) -> list[Completion]:
        from transformers import LogitsProcessorList, StoppingCriteriaList

        width = max(len(encoded[i]) for i in rows)
        input_ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, prompt_index in enumerate(rows):
            ids = encoded[prompt_index]
            input_ids[r, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
            attention_mask[r, width - len(ids):] = 1
        kwargs, warpers = self._generation_kwargs(params)
        recorder = _SampledLogprobRecorder()
        criteria = StoppingCriteriaList([_StopOnStrings(self.tokenizer, params.stop, width)] if params.stop else [])
        output = self.model.generate(
            input_ids=input_ids.to(self.device), attention_mask=attention_mask.to(self.device),
            logits_processor=LogitsProcessorList([*warpers, recorder]), stopping_criteria=criteria, **kwargs,
        )
        sequences = output.sequences
        logprobs = recorder.finish(sequences)
        new_tokens = sequences[:, width:].cpu()
        return [self._completion(rows[r], encoded[rows[r]], new_tokens[r].tolist(), logprobs[r].tolist(), params)
                for r in range(len(rows))]

    def _completion(self, prompt_index: int, prompt_ids: list[int], tokens: list[int], logprobs: list[float],
                    params: SamplingParams) -> Completion:
        finish_reason = "length"
        eos = set(self.eos_token_ids)
        for t, token in enumerate(tokens):
            if token in eos:
                tokens, finish_reason = tokens[:t + 1], "stop"
                break
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        if params.stop:
            text, stopped = truncate_at_stop(text, params.stop)
            if stopped:
                finish_reason = "stop"
                tokens = tokens[:self._stop_token_count(tokens, params.stop)]
        return Completion(prompt_index=prompt_index, text=text, token_ids=tokens, logprobs=logprobs[:len(tokens)],
                          finish_reason=finish_reason, prompt_token_ids=list(prompt_ids))

    def _stop_token_count(self, tokens: list[int], stop: Sequence[str]) -> int:
        """Smallest prefix length whose decoded text contains a stop string (binary search; decoding is monotone)."""
        low, high = 1, len(tokens)
        while low < high:
            middle = (low + high) // 2
            if truncate_at_stop(self.tokenizer.decode(tokens[:middle], skip_special_tokens=True), stop)[1]:
                high = middle
            else:
                low = middle + 1
        return high
