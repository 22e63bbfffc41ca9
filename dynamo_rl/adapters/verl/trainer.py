"""``trainer.v1.trainer_mode=dynamo_sync``: verl's synchronous V1 PPO trainer with DynaMO.

:class:`DynamoPPOTrainer` subclasses ``PPOTrainerSync`` and overrides five steps (integration.md §2.6):

- ``__init__``: resolves the ``dynamo`` config section (``rollout.n`` becomes ``allocation.mean_rollouts``), refuses
  a verl config whose loss keys do not run the method's loss (:func:`~dynamo_rl.adapters.verl.settings.check_loss`),
  checks the plugin registrations, resets
  ``trainer.v1.trainer_mode`` to ``sync`` (verl compares the mode to ``"sync"`` to pick its replay buffer and the
  ``trainer.v1.sync`` sub-config; the registry lookup has already happened), and turns on
  ``actor.calculate_entropy`` so every actor update returns the current policy's entropy.
- ``_next_train_batch``: sets ``__rollout_n__`` per prompt from the success history (Σ n_i = prompts × rollout.n).
  DAPO refills and failed-group refills go through this method too, so they are allocated as well.
- ``_compute_advantage``: after verl's advantages, reads ``rm_scores`` of the scored batch from TransferQueue and
  updates the success history (one process: the driver; no rank synchronisation needed); logs the ``alloc/*`` and
  ``history/*`` metrics.
- ``_update_actor``: also asks for Σπ² when ``dynamo.sum_pi_squared`` is on, and logs the loss's ``mod/*`` metrics
  without verl's ``actor/`` prefix (the same keys as the other engines).
- ``on_init_end``: installs :func:`~dynamo_rl.adapters.verl.loss.dynamo_ppo_loss` on the actor workers.
- ``_save_checkpoint`` / ``_load_checkpoint``: the allocator state (``allocator_state.json``, the shared
  :class:`~dynamo_rl.run.allocator.RolloutAllocator` file, written atomically) in verl's ``global_step_N`` folder,
  written before verl writes its ``latest_checkpointed_iteration.txt``.
"""

from __future__ import annotations

import logging
import os
from functools import partial
from typing import Any

import numpy as np
import transfer_queue as tq
from omegaconf import open_dict
from verl.trainer.ppo.v1.trainer_base import register_trainer
from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync
from verl.utils import tensordict_utils as tu
from verl.utils.config import omega_conf_to_dataclass

from dynamo_rl.adapters.verl.allocation import VerlRolloutAllocator, stable_prompt_ids
from dynamo_rl.adapters.verl.loss import dynamo_ppo_loss
from dynamo_rl.adapters.verl.settings import SECTION, check_loss, resolve_settings

TRAINER_NAME = "dynamo_sync"
logger = logging.getLogger("dynamo_rl.adapters.verl")


def _column(batch: Any, key: str) -> list:
    """A non-tensor column of a verl batch TensorDict as a Python list (None entries when the key is absent)."""
    value = tu.get(batch, key, default=None)
    if value is None:
        return [None] * len(batch)
    return list(value.tolist()) if isinstance(value, np.ndarray) else list(value)


def batch_prompt_ids(batch: Any) -> list[str]:
    """Stable history keys of a dataloader batch (``extra_info.index``, else a hash of ``raw_prompt``)."""
    return stable_prompt_ids(_column(batch, "extra_info"), _column(batch, "raw_prompt"))


def unprefixed_mod_metrics(metrics: dict) -> dict:
    """``metrics`` without verl's ``actor/`` prefix on the core's ``mod/*`` keys (``actor/mod/x`` → ``mod/x``)."""
    prefix = "actor/mod/"
    return {(key[len("actor/"):] if key.startswith(prefix) else key): value for key, value in metrics.items()}


def assign_rollout_counts(batch: Any, allocator: VerlRolloutAllocator) -> np.ndarray:
    """Set ``batch["__rollout_n__"]`` (a non-tensor stack of ints, read by verl's ``AgentLoopWorkerTQ``)."""
    uids = [str(u) for u in _column(batch, "uid")]
    counts = allocator.allocate(uids, batch_prompt_ids(batch))
    tu.assign_non_tensor_stack(batch, "__rollout_n__", [int(n) for n in counts])
    return counts


@register_trainer(TRAINER_NAME)
class DynamoPPOTrainer(PPOTrainerSync):
    """verl V1 sync trainer + DynaMO (dynamic rollout allocation, modulated advantages in the actor loss)."""

    def __init__(self, config: Any) -> None:
        from dynamo_rl.adapters.verl.plugin import check_registrations

        check_registrations()
        self.dynamo = resolve_settings(config.get(SECTION, None), rollout_n=int(config.actor_rollout_ref.rollout.n))
        actor = config.actor_rollout_ref.actor
        distillation = config.get("distillation", None)
        if distillation is not None and distillation.get("enabled", False):
            raise ValueError("trainer.v1.trainer_mode=dynamo_sync does not support distillation.enabled=true: it "
                             "replaces the actor loss, which would drop verl's distillation loss")
        if self.dynamo.sum_pi_squared and config.actor_rollout_ref.model.get("use_fused_kernels", False):
            raise ValueError(f"{SECTION}.sum_pi_squared=true needs actor_rollout_ref.model.use_fused_kernels=False "
                             "(verl's fused kernels return only log-probs and entropy)")
        check_loss(self.dynamo.method, config, method_name=self.dynamo.method_name, preset=self.dynamo.preset)
        if actor.get("use_kl_loss", False) or config.algorithm.get("use_kl_in_reward", False):
            logger.warning("dynamo: a KL penalty (actor.use_kl_loss / algorithm.use_kl_in_reward) is on; it is not "
                           "part of method %r and the other engines have none", self.dynamo.method_name)
        with open_dict(config):
            config.trainer.v1.trainer_mode = "sync"
            if self.dynamo.method.modulation.enabled:
                actor.calculate_entropy = True
        self.dynamo_allocator = VerlRolloutAllocator(self.dynamo.method.allocation,
                                                     correct_threshold=self.dynamo.correct_threshold)
        super().__init__(config)
        logger.info("DynamoPPOTrainer: allocation %s, modulation %s", self.dynamo.method.allocation,
                    self.dynamo.method.modulation)

    # ------------------------------------------------------------------ allocation
    def _next_train_batch(self, num_prompts: int | None = None):
        batch = super()._next_train_batch(num_prompts)
        counts = assign_rollout_counts(batch, self.dynamo_allocator)
        logger.debug("dynamo: allocated %d rollouts to %d prompts (min %d, max %d)", int(counts.sum()), len(counts),
                     int(counts.min(initial=0)), int(counts.max(initial=0)))
        return batch

    def _compute_advantage(self, batch, metrics: dict):
        batch = super()._compute_advantage(batch, metrics)
        data = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=["rm_scores"])
        scores = data.to_padded_tensor()["rm_scores"].sum(dim=-1).float().cpu().numpy()
        metrics.update(self.dynamo_allocator.last_metrics)  # this step's allocation (made from the history before it)
        metrics.update(self.dynamo_allocator.update_from_trajectories(list(batch.keys), scores, list(batch.tags)))
        return batch

    # ------------------------------------------------------------------ loss
    def _update_actor(self, batch, metrics: dict):
        if self.dynamo.sum_pi_squared:
            batch.extra_info["calculate_sum_pi_squared"] = True
        actor_metrics: dict = {}
        batch = super()._update_actor(batch, actor_metrics)
        metrics.update(unprefixed_mod_metrics(actor_metrics))
        return batch

    def dynamo_loss_fn(self) -> partial:
        """The loss installed on the actor workers (picklable: a partial of a module-level function)."""
        actor_config = omega_conf_to_dataclass(self.config.actor_rollout_ref.actor)
        modulation = self.dynamo.modulation_kwargs() if self.dynamo.method.modulation.enabled else None
        return partial(dynamo_ppo_loss, config=actor_config, modulation=modulation)

    def on_init_end(self) -> None:
        super().on_init_end()
        self.actor_rollout_wg.set_loss_fn(self.dynamo_loss_fn())
        logger.info("DynamoPPOTrainer: installed dynamo_ppo_loss on the actor workers")

    # ------------------------------------------------------------------ checkpoints
    def _step_folder(self, step: int) -> str:
        folder = os.path.join(self.config.trainer.default_local_dir, f"global_step_{step}")
        return folder if os.path.isabs(folder) else os.path.join(os.getcwd(), folder)

    def _save_checkpoint(self) -> None:
        path = self.dynamo_allocator.save(self._step_folder(self.global_steps))
        logger.info("dynamo: saved allocator state (%d prompts) to %s", len(self.dynamo_allocator.history), path)
        super()._save_checkpoint()

    def _load_checkpoint(self) -> None:
        super()._load_checkpoint()
        if self.global_steps <= 0:
            return
        if self.config.trainer.resume_mode == "resume_path":
            folder = str(self.config.trainer.resume_from_path)
            if not os.path.isabs(folder):
                folder = os.path.join(os.getcwd(), folder)
        else:
            folder = self._step_folder(self.global_steps)
        if self.dynamo_allocator.load(folder):
            logger.info("dynamo: restored allocator state (%d prompts, %d updates) from %s",
                        len(self.dynamo_allocator.history), self.dynamo_allocator.allocator.num_updates, folder)
        else:
            logger.warning("dynamo: no allocator state in %s; allocation restarts from an empty history", folder)
