"""``DynamicRepeatSampler``: TRL's ``RepeatSampler`` with a per-prompt repeat count from the rollout allocator.

TRL's ``RepeatSampler`` draws ``P = generation_batch_size // num_generations`` prompts per generation batch from a
seeded permutation and emits each ``num_generations`` times in a row; every process builds the same sampler and
accelerate hands each process its slice of the index stream. This sampler draws the *same* prompts in the same order
(same generator, same chunking, same ``__len__``) and emits prompt i ``n_i`` times in a row, with n_i from
:meth:`RolloutAllocator.allocate` (Σ n_i = P·num_generations = generation_batch_size, n_i ≥ n_min ≥ 2). Since every
process holds an identical allocator (updated from gathered rewards), every process emits the identical stream.

**Look-ahead.** accelerate's ``DataLoaderShard`` fetches one batch ahead of the one being trained on. A generation
batch is emitted ``R = steps_per_generation × num_iterations`` times (TRL uses only the first copy). When R ≥ 2, the
sampler reaches the next chunk only after the current chunk's rewards have updated the history, so the allocation is
fresh. When R = 1 the next chunk is allocated while the current chunk is still being generated, i.e. from a history
one generation batch old. The trainer detects this (it recomputes the allocation from the current history when the
generation batch arrives and compares) and re-binds the rows to the fresh allocation; see
``DynaMOTrainer._rebind_to_current_allocation`` and ``docs/trl.md``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence, Sized

import torch
from torch.utils.data import Sampler

from dynamo_rl.core.groups import repeat_per_prompt
from dynamo_rl.run.allocator import RolloutAllocator


class DynamicRepeatSampler(Sampler[int]):
    """Yield each drawn prompt index n_i times contiguously; chunk = one generation batch, re-emitted ``repeat_count``
    times. ``prompt_ids[index]`` is the history key of dataset row ``index``."""

    def __init__(self, data_source: Sized, prompt_ids: Sequence[str], allocator: RolloutAllocator,
                 prompts_per_batch: int, repeat_count: int = 1, shuffle: bool = True, seed: int | None = None) -> None:
        if len(prompt_ids) != len(data_source):
            raise ValueError(f"prompt_ids has {len(prompt_ids)} entries but the dataset has {len(data_source)} rows")
        if prompts_per_batch < 1:
            raise ValueError(f"invalid prompts_per_batch={prompts_per_batch!r}: must be ≥ 1")
        if repeat_count < 1:
            raise ValueError(f"invalid repeat_count={repeat_count!r}: must be ≥ 1")
        self.data_source = data_source
        self.prompt_ids = list(prompt_ids)
        self.allocator = allocator
        self.prompts_per_batch = prompts_per_batch
        self.repeat_count = repeat_count
        self.num_samples = len(data_source)
        self.shuffle = shuffle
        self.seed = seed
        if shuffle:  # same generator handling as trl.trainer.utils.RepeatSampler, so the prompt order is identical
            self.generator = torch.Generator()
            if seed is not None:
                self.generator.manual_seed(seed)
        self.last_allocation: tuple[list[int], list[int]] | None = None
        """(dataset indices, counts) of the chunk most recently emitted (for tests and logging)."""

    def set_epoch(self, epoch: int) -> None:
        """Put the generator where ``RepeatSampler``'s would be at the start of ``epoch`` (one permutation per epoch).

        accelerate calls this before every epoch. In an uninterrupted run it changes nothing; on resume it makes the
        prompt order of the resumed epoch match the uninterrupted run (``RepeatSampler`` restarts from the seed).
        """
        if not self.shuffle or self.seed is None:
            return
        self.generator.manual_seed(self.seed)
        for _ in range(int(epoch)):
            torch.randperm(self.num_samples, generator=self.generator)

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            indexes = torch.randperm(self.num_samples, generator=self.generator).tolist()
        else:
            indexes = list(range(self.num_samples))
        size = self.prompts_per_batch
        chunks = [indexes[i:i + size] for i in range(0, len(indexes), size)]
        for chunk in (c for c in chunks if len(c) == size):
            counts = self.allocator.allocate([self.prompt_ids[i] for i in chunk]).counts()
            self.last_allocation = (chunk, counts)
            for _ in range(self.repeat_count):
                yield from repeat_per_prompt(chunk, counts)

    def __len__(self) -> int:
        # Σ n_i is fixed per chunk, so the length equals RepeatSampler's: step counting and LR schedules are unchanged.
        rollouts = self.allocator.config.mean_rollouts
        return (self.num_samples // self.prompts_per_batch) * self.prompts_per_batch * rollouts * self.repeat_count
