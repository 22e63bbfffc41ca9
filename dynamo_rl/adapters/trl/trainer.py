"""``DynaMOTrainer``: TRL's ``GRPOTrainer`` with Dynamic Rollout Allocation and gradient-aware token modulation.

Usable exactly like TRL's trainer: ``DynaMOTrainer(model=..., reward_funcs=..., args=DynaMOConfig(...),
train_dataset=...)``. What it changes (TRL 1.16 plug points, see ``docs/trl.md``):

* ``_get_train_sampler``: :class:`DynamicRepeatSampler` (prompt i repeated n_i times, Σ n_i = generation batch size).
* ``_generate_and_score_completions`` (train mode): before generation, check the rows against the allocation from
  the *current* history and re-bind them if the dataloader's look-ahead drew them from an older one; after scoring,
  recompute the advantages per ragged prompt group from the gathered rewards, and update the success history (the
  same update on every process).
* ``_generate_single_turn``: one completion per row (``num_generations=1``), so vLLM server mode, which otherwise
  de-duplicates prompts with a fixed stride, serves groups of any size.
* ``_compute_loss`` / ``_get_per_token_logps_and_entropies``: Ã (B, T) replaces the advantages after TRL computed the
  current-policy log-probs, entropies and Σπ² and before its loss reads them.
* ``_save_checkpoint`` / ``_load_optimizer_and_scheduler``: the success history travels with TRL checkpoints.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from accelerate.utils import gather_object, is_peft_model
from datasets import Dataset, IterableDataset
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from trl import GRPOTrainer

from dynamo_rl.adapters.trl.config import DynaMOConfig
from dynamo_rl.adapters.trl.group_advantages import contiguous_group_ids, trl_group_advantages
from dynamo_rl.adapters.trl.sampler import DynamicRepeatSampler
from dynamo_rl.adapters.trl.token_modulation import install_stats_capture, modulated_advantages
from dynamo_rl.core.advantages import compute_advantages
from dynamo_rl.core.groups import repeat_per_prompt
from dynamo_rl.core.shaping import entropy_advantages
from dynamo_rl.run import metric_names as K
from dynamo_rl.run.allocator import RolloutAllocator
from dynamo_rl.run.atomic import atomic_write_json
from dynamo_rl.run.checkpoint import TRL_MARKER

PROMPT_ID_COLUMN = "dynamo_prompt_id"
"""Column added to the train dataset (row index as str) when ``dynamo_prompt_id_column`` is None."""


def _prepare_train_dataset(dataset: Any, column: str | None) -> tuple[Dataset, str, list[str]]:
    if dataset is None:
        raise ValueError("DynaMOTrainer needs a train_dataset: the success history is keyed by dataset prompts "
                         "(environment-only training without a dataset is not supported)")
    if isinstance(dataset, IterableDataset):
        raise ValueError("DynaMOTrainer does not support an IterableDataset train_dataset: per-prompt rollout counts "
                         "need TRL's sampler, which only map-style datasets use. Convert it with "
                         "datasets.Dataset.from_generator or load it without streaming.")
    if not isinstance(dataset, Dataset):
        raise TypeError(f"train_dataset must be a datasets.Dataset, got {type(dataset).__name__}")
    if column is None:
        column = PROMPT_ID_COLUMN
        if column not in dataset.column_names:
            dataset = dataset.add_column(column, [str(i) for i in range(len(dataset))])
    elif column not in dataset.column_names:
        raise ValueError(f"invalid dynamo_prompt_id_column={column!r}: not a column of train_dataset "
                         f"(columns: {dataset.column_names})")
    ids = [str(v) for v in dataset[column]]
    if len(set(ids)) != len(ids):
        seen: set[str] = set()
        dup = next(i for i in ids if i in seen or seen.add(i))  # type: ignore[func-returns-value]
        raise ValueError(f"invalid dynamo_prompt_id_column={column!r}: prompt id {dup!r} appears more than once; "
                         "every row needs a unique id")
    return dataset, column, ids


class DynaMOTrainer(GRPOTrainer):
    """``GRPOTrainer`` + DynaMO. Takes the same arguments; ``args`` must be a :class:`DynaMOConfig`."""

    def __init__(self, model: Any, reward_funcs: Any = None, args: DynaMOConfig | None = None,
                 train_dataset: Any = None, *pos: Any, **kwargs: Any) -> None:
        if any(cls.__name__ == "AsyncGRPOTrainer" for cls in type(self).__mro__):
            raise TypeError("DynaMOTrainer cannot be combined with TRL's AsyncGRPOTrainer (its rollout workers close a "
                            "group after a fixed num_generations completions)")
        if args is None:
            raise ValueError("DynaMOTrainer needs args=DynaMOConfig(...)")
        if not isinstance(args, DynaMOConfig):
            raise TypeError(f"args must be a DynaMOConfig (a GRPOConfig with DynaMO options), got {type(args).__name__}")
        if kwargs.get("rollout_func") is not None:
            raise ValueError("DynaMOTrainer does not support rollout_func: supported generation paths are "
                             "transformers generate, vLLM colocate and vLLM server")
        train_dataset, self._dynamo_id_column, self._dynamo_prompt_ids = _prepare_train_dataset(
            train_dataset, args.dynamo_prompt_id_column)
        method = args.method_config
        self.dynamo_method = method
        self.dynamo_allocator = RolloutAllocator(method.allocation)
        self._dynamo_warned_no_history = False
        self._dynamo_ctx: dict[str, Any] | None = None
        self._dynamo_rewards_per_func: torch.Tensor | None = None
        self.dynamo_last_modulation = None
        self.dynamo_last_groups: tuple[list[str], list[int]] | None = None
        super().__init__(model, reward_funcs, args, train_dataset, *pos, **kwargs)
        self._dynamo_capture = None
        if method.modulation.enabled or method.loss.entropy_adv_alpha is not None:
            base = self.model.get_base_model() if is_peft_model(self.model) else self.model
            self._dynamo_capture = install_stats_capture(base, temperature=self.temperature,
                                                         cast_lm_head_to_fp32=args.cast_lm_head_to_fp32)

    # -- data -----------------------------------------------------------------------------------------------------
    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        if self._dynamo_id_column not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, self._dynamo_id_column]

    def _get_train_sampler(self, dataset: Any = None) -> DynamicRepeatSampler:
        dataset = self.train_dataset if dataset is None else dataset
        return DynamicRepeatSampler(
            dataset, self._dynamo_prompt_ids, self.dynamo_allocator,
            prompts_per_batch=self.args.generation_batch_size // self.num_generations,
            repeat_count=self.num_iterations * self.args.steps_per_generation,
            shuffle=self.shuffle_dataset, seed=self.args.seed)

    def _rebind_to_current_allocation(self, inputs: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
        """Make the rows of this generation batch follow the allocation of the current history.

        The dataloader draws a generation batch ahead of time (accelerate's one-batch look-ahead, Trainer's
        per-optimizer-step prefetch), possibly before the previous batch's rewards reached the history. Every process
        recomputes the allocation for the batch's prompts from the current (identical) history; if it differs from the
        rows received, the rows are rebuilt: each prompt n_i times, this process keeping its slice. Returns
        ``(rows, rebound)``.
        """
        local_ids = [str(row[self._dynamo_id_column]) for row in inputs]
        all_ids = gather_object(local_ids)
        _, unique, sizes = contiguous_group_ids(all_ids)
        expected = self.dynamo_allocator.allocate(unique).counts()
        if expected == sizes:
            return inputs, False
        all_rows = gather_object(inputs)
        first: dict[str, dict[str, Any]] = {}
        for row in all_rows:
            first.setdefault(str(row[self._dynamo_id_column]), row)
        expanded = [dict(first[pid]) for pid in repeat_per_prompt(unique, expected)]
        rank, local = self.accelerator.process_index, len(inputs)
        return expanded[rank * local:(rank + 1) * local], True

    # -- generation and advantages ----------------------------------------------------------------------------------
    def _generate_single_turn(self, prompt_ids: Any, images: Any, multimodal_fields: Any, num_generations: int,
                              *args: Any, **kwargs: Any) -> Any:
        if self.model.training:  # one completion per (already repeated) row: groups of any size
            num_generations = 1
        return super()._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations, *args, **kwargs)

    def _calculate_rewards(self, inputs: Any, prompts: Any, completions: Any, completion_ids_list: Any) -> torch.Tensor:
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._dynamo_rewards_per_func = rewards_per_func  # gathered over processes, (B_global, F)
        return rewards_per_func

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        if not self.model.training:
            return super()._generate_and_score_completions(inputs)
        inputs, rebound = self._rebind_to_current_allocation(inputs)
        all_ids = gather_object([str(row[self._dynamo_id_column]) for row in inputs])
        group_ids, unique, sizes = contiguous_group_ids(all_ids)
        self.dynamo_last_groups = (unique, sizes)
        allocation = self.dynamo_allocator.allocate(unique)
        alloc_metrics = self.dynamo_allocator.metrics(allocation, scalars_only=True)
        self._warn_once_without_history(allocation)

        output = super()._generate_and_score_completions(inputs)

        rewards_per_func = self._dynamo_rewards_per_func
        advantages, is_std_zero = self._group_advantages(rewards_per_func, group_ids)
        rank, local = self.accelerator.process_index, len(inputs)
        output["advantages"] = advantages[rank * local:(rank + 1) * local].to(output["advantages"])
        correct, scored = self._update_history(rewards_per_func, group_ids, unique)

        metrics = self._metrics["train"]
        metrics["frac_reward_zero_std"][-1] = is_std_zero.float().mean().item()  # super grouped by a fixed size
        logged = self._logs["advantages"]
        for offset, value in enumerate(advantages.tolist()):
            logged[len(logged) - len(all_ids) + offset] = value
        for key, value in alloc_metrics.items():
            if value is not None:
                metrics[key].append(float(value))
        metrics["alloc/rebound"].append(float(rebound))
        for key, value in _outcome_metrics(correct, scored, group_ids, len(unique)).items():
            metrics[key].append(value)
        return output

    def _group_advantages(self, rewards_per_func: torch.Tensor, group_ids: torch.Tensor) -> tuple[torch.Tensor,
                                                                                                   torch.Tensor]:
        """Advantages over the ragged groups: TRL's rule for grpo/dr_grpo (ε = ``loss.grpo_eps``, as every engine),
        ``dynamo_rl.core.advantages`` for the other estimators (on the weighted total reward)."""
        loss = self.dynamo_method.loss
        if loss.advantage_estimator in ("grpo", "dr_grpo"):
            return trl_group_advantages(rewards_per_func, self.reward_weights, group_ids,
                                        scale_rewards=self.scale_rewards,
                                        multi_objective_aggregation=self.multi_objective_aggregation,
                                        eps=loss.grpo_eps)
        total = (rewards_per_func * self.reward_weights.to(rewards_per_func).unsqueeze(0)).nansum(dim=1)
        advantages = compute_advantages(loss.advantage_estimator, total, group_ids.to(total.device),
                                        **loss.advantage_kwargs())
        return advantages, torch.zeros_like(advantages, dtype=torch.bool)

    def _warn_once_without_history(self, allocation: Any) -> None:
        if (self._dynamo_warned_no_history or self.dynamo_method.allocation.allocator == "uniform"
                or self.state.epoch is None or self.state.epoch < 1 or allocation.has_history.any()):
            return
        self._dynamo_warned_no_history = True
        import warnings

        warnings.warn(f"after an epoch no prompt of this generation batch has min_history="
                      f"{self.dynamo_method.allocation.min_history} rollouts of history: DynaMO allocates uniformly "
                      "until prompts are revisited (lower dynamo_min_history or train more epochs)", stacklevel=2)

    def _update_history(self, rewards_per_func: torch.Tensor, group_ids: torch.Tensor,
                        unique: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Count correct / scored completions per prompt from the gathered rewards (identical on every process);
        returns the per-rollout ``(correct, scored)`` flags."""
        unscorable = torch.isnan(rewards_per_func).all(dim=1)
        total = (rewards_per_func * self.reward_weights.to(rewards_per_func.device).unsqueeze(0)).nansum(dim=1)
        correct = ((total > self.args.dynamo_success_threshold) & ~unscorable).cpu().numpy()
        scored = (~unscorable).cpu().numpy()
        rollout_prompts = [unique[g] for g in group_ids.tolist()]
        self.dynamo_allocator.update_from_rollouts(rollout_prompts, correct, scored)
        return correct, scored

    # -- token modulation -------------------------------------------------------------------------------------------
    def _compute_loss(self, model: Any, inputs: dict[str, Any]) -> torch.Tensor:
        if self._dynamo_capture is None or not self.model.training:
            return super()._compute_loss(model, inputs)
        ctx = dict(inputs)  # the buffered dict is reused across iterations: never mutate it
        self._dynamo_ctx = ctx
        try:
            return super()._compute_loss(model, ctx)
        finally:
            self._dynamo_ctx = None

    def _get_per_token_logps_and_entropies(self, model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                                           logits_to_keep: int, batch_size: int | None = None,
                                           compute_entropy: bool = False, **kwargs: Any) -> Any:
        ctx = self._dynamo_ctx
        if ctx is None or not torch.is_grad_enabled():
            return super()._get_per_token_logps_and_entropies(model, input_ids, attention_mask, logits_to_keep,
                                                              batch_size, compute_entropy, **kwargs)
        self._dynamo_ctx = None  # consume: only the policy forward of this _compute_loss call is modulated
        self._dynamo_capture.active = []
        try:
            logps, entropies, aux = super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, batch_size, True, **kwargs)
            captured = self._dynamo_capture.active
        finally:
            self._dynamo_capture.active = None
        log_sum_sq = torch.cat([c[:, -logits_to_keep:] for c in captured], dim=0)
        self._apply_modulation(ctx, logps, entropies, log_sum_sq)
        return logps, (entropies if compute_entropy else None), aux

    def _reduce(self, tensor: torch.Tensor, op: str) -> torch.Tensor:
        """All-reduce across processes (identity in a single process)."""
        if self.accelerator.num_processes == 1:
            return tensor
        return self.accelerator.reduce(tensor, reduction=op)

    def _apply_modulation(self, ctx: dict[str, Any], logps: torch.Tensor, entropies: torch.Tensor,
                          log_sum_sq: torch.Tensor) -> None:
        mask = ctx["completion_mask"] if "tool_mask" not in ctx else ctx["completion_mask"] * ctx["tool_mask"]
        old = ctx.get("old_per_token_logps")
        old = logps.detach() if old is None else old
        wide = self.dynamo_method.modulation.norm_scope != "micro"
        advantages = ctx["advantages"]
        loss = self.dynamo_method.loss
        if loss.entropy_adv_alpha is not None:  # Entropy Advantages (Cheng et al.): A + min(α·H, |A|/κ), per token
            wide_adv = advantages[:, None].expand_as(entropies) if advantages.dim() == 1 else advantages
            advantages = entropy_advantages(wide_adv, entropies.detach(), alpha=loss.entropy_adv_alpha,
                                            kappa=loss.entropy_adv_kappa)
        mod = modulated_advantages(advantages, mask, logprobs=logps, old_logprobs=old, entropy=entropies,
                                   eps_low=self.epsilon_low, eps_high=self.epsilon_high,
                                   config=self.dynamo_method.modulation, reduce=self._reduce if wide else None)
        ctx["advantages"] = mod.advantages.detach()
        self.dynamo_last_modulation = mod
        self._log_modulation(mod, mask, log_sum_sq)

    def _log_modulation(self, mod: Any, mask: torch.Tensor, log_sum_sq: torch.Tensor) -> None:
        """Log the core modulation metrics (max/min/mean reduced across processes) and the mean collision Σπ²."""
        valid = mask.bool()
        names, means, maxima = [], [], []
        for name, value in mod.metrics.items():
            key = name.split("/", 1)[-1]
            tensor = torch.as_tensor(value, dtype=torch.float32, device=mask.device).mean()
            if key.endswith("_max"):
                maxima.append((f"mod/{key}", tensor, 1.0))
            elif key.endswith("_min"):
                maxima.append((f"mod/{key}", -tensor, -1.0))
            else:
                names.append(f"mod/{key}")
                means.append(tensor)
        sum_sq = (log_sum_sq.detach().float().exp() * valid).sum() / valid.sum().clamp(min=1)
        names.append("mod/sum_sq_probs_mean")
        means.append(sum_sq)
        mean_values = self._reduce(torch.stack(means), "mean").tolist()
        max_values = self._reduce(torch.stack([t for _, t, _ in maxima]), "max").tolist() if maxima else []
        metrics = self._metrics["train"]
        for name, value in zip(names, mean_values):
            metrics[name].append(value)
        for (name, _, sign), value in zip(maxima, max_values):
            metrics[name].append(sign * value)

    # -- checkpoints ------------------------------------------------------------------------------------------------
    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        super()._save_checkpoint(model, trial)
        if self.args.should_save:
            checkpoint = os.path.join(self._get_output_dir(trial=trial),
                                      f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
            self.dynamo_allocator.save(checkpoint)
            # Written last: marks the checkpoint complete for the run layer, with its step in generation batches.
            atomic_write_json(os.path.join(checkpoint, TRL_MARKER), {
                "step": self.state.global_step // self.updates_per_generation, "global_step": self.state.global_step})

    @property
    def updates_per_generation(self) -> int:
        """Optimizer steps per generation batch (a training step of the run layer)."""
        args = self.args
        return max(1, args.steps_per_generation * args.num_iterations // args.gradient_accumulation_steps)

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is not None and not self.dynamo_allocator.load(checkpoint):
            raise FileNotFoundError(f"no DynaMO allocator state in checkpoint {checkpoint!r}: resuming without it "
                                    "would restart the success history from zero")


def _outcome_metrics(correct: np.ndarray, scored: np.ndarray, group_ids: torch.Tensor,
                     num_groups: int) -> dict[str, float]:
    """``acc/mean`` and the degenerate-group shares of one generation batch (the built-in trainer's keys)."""
    gid = group_ids.cpu().numpy()
    hits = np.bincount(gid, weights=correct, minlength=num_groups)
    sizes = np.bincount(gid, weights=scored, minlength=num_groups)
    return {K.ACCURACY: float(correct[scored].mean()) if scored.any() else 0.0,
            K.GROUPS_ALL_CORRECT: float(np.mean((hits == sizes) & (sizes > 0))),
            K.GROUPS_ALL_WRONG: float(np.mean(hits == 0))}
