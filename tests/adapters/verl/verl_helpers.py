"""Builders for the verl-adapter tests: micro-batches in the layout verl's engines hand to the loss function.

Only imported by test modules that have already skipped without verl.
"""

from __future__ import annotations

import torch
from tensordict import TensorDict
from verl.utils import tensordict_utils as tu
from verl.workers.config import ActorConfig

MODULATION = {"gradient_compensation": True, "stabilization": True, "mu_max": 1.2, "lambda_min": 0.6, "k": 50.0,
              "tau": 0.99, "entropy_change_mode": "seq_mean_baseline", "ums_min_tokens": 2}


def jagged(parts: list[torch.Tensor]) -> torch.Tensor:
    return torch.nested.as_nested_tensor(parts, layout=torch.jagged)


def actor_config(**overrides) -> ActorConfig:
    kwargs = {"strategy": "fsdp", "rollout_n": 4, "ppo_micro_batch_size_per_gpu": 1, "clip_ratio_low": 0.2,
              "clip_ratio_high": 0.28}
    kwargs.update(overrides)
    return ActorConfig(**kwargs)


class MicroBatch:
    """A micro-batch as verl's FSDP engine passes it to ``loss_function(model_output, data, dp_group)``.

    ``data`` holds jagged (nested) ``prompts``/``responses``/``response_mask``/``old_log_probs``/``advantages``/
    ``ref_log_prob`` and the non-tensor ``dp_size``/``batch_num_tokens``/``global_batch_size``; ``model_output`` holds
    jagged ``log_probs`` and ``entropy`` over the whole packed sequence (prompt + response), as the engine returns
    them; ``log_prob_values`` is the leaf tensor behind ``log_probs`` (for gradients). ``padded(...)`` gives the test's
    own padded (B, T) view of each response quantity, built independently of verl's slicing helpers.
    """

    def __init__(self, seed: int = 0, prompt_lens=(2, 3, 1, 4), response_lens=(4, 2, 5, 3),
                 advantages=(1.0, -0.5, 0.7, -1.2), masked=((0, 1),), batch_num_tokens: int | None = 14,
                 global_batch_size: int | None = 4, nested: bool = True):
        g = torch.Generator().manual_seed(seed)
        self.prompt_lens, self.response_lens = list(prompt_lens), list(response_lens)
        self.width = max(self.response_lens)
        B = len(self.prompt_lens)
        masks = [torch.ones(r, dtype=torch.int64) for r in self.response_lens]
        for row, col in masked:  # a masked token inside a response (e.g. a tool observation)
            masks[row][col] = 0
        old = [-(torch.rand(r, generator=g) * 3.0) for r in self.response_lens]
        adv = [torch.full((r,), float(a)) for r, a in zip(self.response_lens, advantages)]
        ref = [-(torch.rand(r, generator=g) * 3.0) for r in self.response_lens]
        self.rows = {"response_mask": masks, "old_log_probs": old, "advantages": adv, "ref_log_prob": ref}
        fields = {
            "prompts": jagged([torch.randint(0, 50, (p,), generator=g) for p in self.prompt_lens]),
            "responses": jagged([torch.randint(0, 50, (r,), generator=g) for r in self.response_lens]),
        }
        for key, parts in self.rows.items():
            fields[key] = jagged(parts) if nested else self._pad(parts)
        if not nested:
            fields["prompts"] = torch.nested.to_padded_tensor(fields["prompts"], 0)
            fields["responses"] = torch.nested.to_padded_tensor(fields["responses"], 0)
            width = max(self.prompt_lens) + self.width
            attention = torch.zeros(B, width, dtype=torch.int64)
            for r, (p, n) in enumerate(zip(self.prompt_lens, self.response_lens)):
                attention[r, max(self.prompt_lens) - p: max(self.prompt_lens)] = 1  # left-padded prompt
                attention[r, max(self.prompt_lens): max(self.prompt_lens) + n] = 1
            fields["attention_mask"] = attention
        self.data = TensorDict(fields, batch_size=[B])
        tu.assign_non_tensor(self.data, dp_size=1, batch_num_tokens=batch_num_tokens,
                             global_batch_size=global_batch_size)
        seq_lens = [p + r for p, r in zip(self.prompt_lens, self.response_lens)]
        offsets = torch.tensor([0, *seq_lens]).cumsum(0)
        total = int(offsets[-1])
        self.log_prob_values = (-(torch.rand(total, generator=g) * 3.0)).requires_grad_()
        self.entropy_values = torch.rand(total, generator=g) * 4.0
        self.offsets = offsets

    def _pad(self, parts: list[torch.Tensor]) -> torch.Tensor:
        out = torch.zeros(len(parts), self.width, dtype=parts[0].dtype)
        for r, part in enumerate(parts):
            out[r, : part.numel()] = part
        return out

    def model_output(self, entropy: bool = True) -> dict:
        out = {"log_probs": torch.nested.nested_tensor_from_jagged(self.log_prob_values, self.offsets)}
        if entropy:
            out["entropy"] = torch.nested.nested_tensor_from_jagged(self.entropy_values, self.offsets)
        return out

    def padded_response(self, values: torch.Tensor) -> torch.Tensor:
        """(B, T) response part of a packed per-token model output: position t of response r is predicted at
        packed index ``start_r + prompt_len_r - 1 + t`` (the usual next-token shift)."""
        out = torch.zeros(len(self.prompt_lens), self.width, dtype=values.dtype)
        for r, (p, n) in enumerate(zip(self.prompt_lens, self.response_lens)):
            start = int(self.offsets[r]) + p - 1
            out[r, :n] = values[start: start + n]
        return out

    def padded(self, key: str) -> torch.Tensor:
        return self._pad(self.rows[key])
