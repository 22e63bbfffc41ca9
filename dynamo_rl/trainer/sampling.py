"""How the built-in trainer gets one step's verified rollouts: one-shot (generate n_i per prompt from the allocation,
then verify) or a multi-round sampler of :mod:`dynamo_rl.rollout.multiround` (``rollout.sampler``):

* ``dapo``: DAPO dynamic sampling: groups of n̄ rollouts for the step's prompts, then for further prompts drawn from
  the training set, keeping only groups with mixed outcomes until the step has ``prompts_per_step`` of them (at most
  ``rollout.sampler_max_rounds`` rounds);
* ``adaptive``: adaptive early stopping (Reinforce-Ada "balanced"): rounds of ``rollout.sampler_round_size``
  rollouts per prompt until it has a correct and an incorrect one or ``allocation.n_max`` rollouts, within the
  step's budget M·n̄.

Every generated rollout counts: the success history gets all of them (discarded ones included) and the ``sampler/*``
metrics report what was generated, kept and discarded. Each round is seeded from ``(run.seed, step, round)``.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from dynamo_rl.data.types import Problem
from dynamo_rl.rewards.mapping import map_rewards
from dynamo_rl.rewards.runner import verify_all
from dynamo_rl.rollout.types import SamplingParams
from dynamo_rl.run.config import TrainConfig
from dynamo_rl.trainer.batch import RolloutBatch

SAMPLERS = ("none", "dapo", "adaptive")


@dataclass
class StepRollouts:
    """A step's training batch (verified) and what the success history learns from the step."""

    batch: RolloutBatch
    history_ids: list[str]
    history_correct: np.ndarray
    history_generated: np.ndarray
    metrics: dict[str, Any]
    generate_s: float = 0.0
    verify_s: float = 0.0


@dataclass
class _Rollout:
    completion: Any
    verdict: Any

    @property
    def correct(self) -> bool:
        return bool(self.verdict.correct)


def sampling_params(config: TrainConfig, step: int, round_index: int = 0) -> SamplingParams:
    return SamplingParams(temperature=config.rollout.temperature, top_p=config.rollout.top_p,
                          top_k=config.rollout.top_k, max_new_tokens=config.rollout.max_new_tokens,
                          seed=config.run.seed * 1_000_003 + step + 7_919 * round_index)


def one_shot(backend: Any, verifier: Any, prompts: list[Problem], num_rollouts: np.ndarray, config: TrainConfig,
             step: int) -> StepRollouts:
    """n_i rollouts of every prompt in one ``generate`` call, each verified against its own prompt's answer."""
    t0 = time.perf_counter()
    completions = backend.generate([p.prompt or p.problem for p in prompts], num_rollouts.tolist(),
                                   sampling_params(config, step))
    batch = RolloutBatch.from_completions(prompts, num_rollouts, completions)  # per-prompt fields × n_i
    t1 = time.perf_counter()
    verdicts = verify_all(verifier, batch.texts, batch.answers)
    batch = batch.with_verdicts(verdicts, map_rewards(verdicts, "binary"))
    return StepRollouts(batch, [p.prompt_id for p in prompts], batch.correct_per_prompt(),
                        np.asarray(num_rollouts), {}, generate_s=t1 - t0, verify_s=time.perf_counter() - t1)


def multi_round(backend: Any, verifier: Any, prompts: list[Problem], pool: list[Problem], config: TrainConfig,
                step: int) -> StepRollouts:
    """The step's rollouts from the sampler named by ``rollout.sampler`` (see the module docstring)."""
    from dynamo_rl.rollout.multiround import adaptive_early_stopping, dapo_dynamic_sampling

    rollout, alloc = config.rollout, config.method.allocation
    candidates = list(prompts)
    if rollout.sampler == "dapo":  # refill prompts: the rest of the pool in a (seed, step) order
        chosen = {p.prompt_id for p in prompts}
        order = np.random.default_rng([config.run.seed, step, 11]).permutation(len(pool))
        candidates += [pool[i] for i in order if pool[i].prompt_id not in chosen]
    rounds = [0]
    seconds = [0.0, 0.0]

    def sample_fn(requests: list[tuple[int, int]]) -> list[list[_Rollout]]:
        texts = [candidates[i].prompt or candidates[i].problem for i, _ in requests]
        counts = [n for _, n in requests]
        t0 = time.perf_counter()
        completions = backend.generate(texts, counts, sampling_params(config, step, rounds[0]))
        t1 = time.perf_counter()
        rounds[0] += 1
        answers = [candidates[i].answer for (i, n) in requests for _ in range(n)]
        verdicts = verify_all(verifier, [c.text for c in completions], answers)
        seconds[0] += t1 - t0
        seconds[1] += time.perf_counter() - t1
        out: list[list[_Rollout]] = [[] for _ in requests]
        for completion, verdict in zip(completions, verdicts):
            out[completion.prompt_index].append(_Rollout(completion, verdict))
        return out

    budget = rollout.sampler_budget
    if rollout.sampler == "dapo":
        result = dapo_dynamic_sampling(sample_fn, iter(range(len(candidates))), group_size=alloc.mean_rollouts,
                                       batch_prompts=len(prompts), target_prompts=len(prompts),
                                       max_rounds=rollout.sampler_max_rounds, budget=budget)
    else:
        result = adaptive_early_stopping(sample_fn, list(range(len(prompts))), round_size=rollout.sampler_round_size,
                                         n_max=alloc.n_max, max_rounds=rollout.sampler_max_rounds,
                                         budget=budget if budget is not None else len(prompts) * alloc.mean_rollouts)
    kept = [i for i in sorted(result.kept) if result.kept[i]]
    if not kept:  # nothing usable this step: train on nothing, but keep every rollout in the history
        kept_problems, counts, completions, verdicts = [], [], [], []
    else:
        kept_problems = [candidates[i] for i in kept]
        counts = [len(result.kept[i]) for i in kept]
        completions = [dataclasses.replace(r.completion, prompt_index=j) for j, i in enumerate(kept)
                       for r in result.kept[i]]
        verdicts = [r.verdict for i in kept for r in result.kept[i]]
    batch = RolloutBatch.from_completions(kept_problems, counts, completions)
    batch = batch.with_verdicts(verdicts, map_rewards(verdicts, "binary"))
    sampled = sorted(result.num_generated)
    metrics = {f"sampler/{k}": v for k, v in result.metrics().items()}
    return StepRollouts(batch, [candidates[i].prompt_id for i in sampled],
                        np.array([result.num_correct[i] for i in sampled], dtype=float),
                        np.array([result.num_generated[i] for i in sampled], dtype=float), metrics,
                        generate_s=seconds[0], verify_s=seconds[1])
