"""Multi-round rollout samplers: DAPO dynamic sampling and adaptive early stopping (plumbing, no model code).

Both are driven by one callback, so any engine can plug in its generator and verifier::

    sample_fn(requests: list[tuple[int, int]]) -> list[list[R]]

For each request ``(prompt index, count)`` it generates ``count`` rollouts of that prompt and returns them (one list
per request, in request order); each rollout has a boolean attribute ``.correct``. A sampler returns a
:class:`SamplingResult`: the kept rollouts per prompt index (in generation order), every rollout generated (kept or
discarded, all of them count against the budget), the rounds and per-prompt counts for the success history.

* :func:`dapo_dynamic_sampling` (DAPO, Yu et al. 2025, arXiv 2503.14476): generate groups of ``group_size`` for a
  batch of new prompts per round, keep only groups with 0 < #correct < group_size, refill until ``target_prompts``
  groups are kept.
* :func:`adaptive_early_stopping` (Reinforce-Ada, Xiong et al. 2025, arXiv 2510.04996, "balanced" exit rule): sample
  every prompt in rounds of ``round_size`` and stop a prompt once it has ≥ ``min_correct`` correct and
  ≥ ``min_incorrect`` incorrect rollouts, or ``n_max`` rollouts; optionally down-sample to balanced groups.

Choices are documented in ``docs/allocators.md`` and ``docs/implementation_details.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = ["SampleFn", "SamplingResult", "adaptive_early_stopping", "balanced_subset", "dapo_dynamic_sampling"]


R = TypeVar("R")
SampleFn = Callable[[list[tuple[int, int]]], list[list[Any]]]
"""``sample_fn(requests) -> rollouts``: for each (prompt index, count), ``count`` rollouts with a ``.correct``."""


@dataclass
class SamplingResult(Generic[R]):
    """Output of a multi-round sampler."""

    kept: dict[int, list[R]]
    """Prompt index → kept rollouts, in generation order (prompts with nothing kept are absent)."""
    generated: int
    """Rollouts generated, kept and discarded (what the sampler spent)."""
    discarded: int
    """Rollouts generated but not kept (= generated − Σ kept)."""
    rounds: int
    """Calls made to ``sample_fn``."""
    num_generated: dict[int, int]
    """Prompt index → rollouts generated for it (every prompt that was sampled, kept or not)."""
    num_correct: dict[int, int]
    """Prompt index → correct rollouts among those generated (for the success history: c_i += , n_i += )."""
    stop_reason: str
    """``target_reached``, ``all_stopped``, ``max_rounds``, ``budget`` or ``prompts_exhausted``."""
    budget: int | None = None
    """The budget that was given (None: unlimited)."""
    extra: dict[str, float] = field(default_factory=dict)
    """Sampler-specific counters (see each sampler)."""

    @property
    def num_kept(self) -> int:
        return sum(len(v) for v in self.kept.values())

    def metrics(self) -> dict[str, float]:
        """Scalars for logging (prefix them with e.g. ``sampling/``)."""
        prompts = len(self.num_generated)
        kept = self.num_kept
        mixed = sum(1 for v in self.kept.values() if 0 < sum(bool(r.correct) for r in v) < len(v))
        out = {
            "generated": float(self.generated),
            "kept": float(kept),
            "discarded": float(self.discarded),
            "frac_discarded": self.discarded / self.generated if self.generated else 0.0,
            "rounds": float(self.rounds),
            "prompts_sampled": float(prompts),
            "prompts_kept": float(len(self.kept)),
            "frac_kept_groups_mixed": mixed / len(self.kept) if self.kept else 0.0,
            "rollouts_per_prompt": self.generated / prompts if prompts else 0.0,
        }
        if self.budget is not None:
            out["budget"] = float(self.budget)
            out["budget_used"] = self.generated / self.budget if self.budget else 0.0
        out.update({k: float(v) for k, v in self.extra.items()})
        return out


def _positive_int(name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}={value!r} must be an integer ≥ {minimum}")
    return value


def _call(sample_fn: SampleFn, requests: list[tuple[int, int]]) -> list[list[Any]]:
    """Run one round and check that every request got exactly its count of rollouts with a ``.correct``."""
    out = sample_fn(requests)
    if len(out) != len(requests):
        raise ValueError(f"sample_fn returned {len(out)} lists for {len(requests)} requests")
    for (prompt, count), got in zip(requests, out):
        if len(got) != count:
            raise ValueError(f"sample_fn returned {len(got)} rollouts for prompt {prompt}, {count} were requested")
        for r in got:
            if not hasattr(r, "correct"):
                raise ValueError(f"rollout {r!r} of prompt {prompt} has no .correct attribute")
    return out


def balanced_subset(rollouts: Sequence[Any], size: int) -> list[Any]:
    """At most ``size`` rollouts, as balanced as possible (Reinforce-Ada's down-sampling): ⌊size/2⌋ correct and the
    rest incorrect where available, topped up from whichever outcome has more; earliest-generated first; the subset
    is returned in generation order."""
    pos = [i for i, r in enumerate(rollouts) if r.correct]
    neg = [i for i, r in enumerate(rollouts) if not r.correct]
    take_pos = min(size // 2, len(pos))
    take_neg = min(size - take_pos, len(neg))
    take_pos = min(len(pos), size - take_neg)
    chosen = sorted(pos[:take_pos] + neg[:take_neg])
    return [rollouts[i] for i in chosen]


# ------------------------------------------------------------------------------------------------ DAPO sampling
def dapo_dynamic_sampling(
    sample_fn: SampleFn,
    prompts: Iterable[int],
    *,
    group_size: int,
    batch_prompts: int,
    target_prompts: int,
    max_rounds: int = 10,
    budget: int | None = None,
) -> SamplingResult[Any]:
    """DAPO dynamic sampling (Yu et al. 2025, arXiv 2503.14476; verl recipe ``filter_groups``).

    Each round draws the next ``batch_prompts`` prompt indices from ``prompts`` (an iterator, consumed only as far as
    needed, or a list; an index already sampled in this call is skipped and counted in ``skipped_repeats``) and
    generates ``group_size`` rollouts for each. Groups with 0 < #correct < group_size are
    kept until ``target_prompts`` are; degenerate groups (all correct or all wrong) and mixed groups beyond the target
    are discarded. Stops when the target is reached, after ``max_rounds`` rounds (the verl recipe raises there; this
    returns the groups kept so far), when ``prompts`` runs out, or when the ``budget`` (rollouts generated, discarded
    ones included) cannot pay for one more group; a round is shrunk to the groups the budget still pays for.

    ``extra``: ``degenerate_groups``, ``surplus_groups``, ``groups_generated``, ``skipped_repeats``.
    """
    group_size = _positive_int("group_size", group_size, 2)
    batch_prompts = _positive_int("batch_prompts", batch_prompts)
    target_prompts = _positive_int("target_prompts", target_prompts)
    max_rounds = _positive_int("max_rounds", max_rounds)
    if budget is not None:
        budget = _positive_int("budget", budget, 0)
    source = iter(prompts)
    kept: dict[int, list[Any]] = {}
    num_generated: dict[int, int] = {}
    num_correct: dict[int, int] = {}
    generated = rounds = degenerate = surplus = skipped = 0
    stop = "max_rounds"
    while True:
        if rounds >= max_rounds:
            stop = "max_rounds"
            break
        room = batch_prompts if budget is None else min(batch_prompts, (budget - generated) // group_size)
        if room <= 0:
            stop = "budget"
            break
        batch: list[int] = []
        drawn = set()
        for prompt in source:
            if prompt in num_generated or prompt in drawn:  # a repeat (e.g. the next epoch): sampled once per call
                skipped += 1
                continue
            batch.append(prompt)
            drawn.add(prompt)
            if len(batch) == room:
                break
        if not batch:
            stop = "prompts_exhausted"
            break
        out = _call(sample_fn, [(p, group_size) for p in batch])
        rounds += 1
        generated += group_size * len(batch)
        for prompt, group in zip(batch, out):
            k = sum(bool(r.correct) for r in group)
            num_generated[prompt] = group_size
            num_correct[prompt] = k
            if not 0 < k < group_size:
                degenerate += 1
            elif len(kept) < target_prompts:
                kept[prompt] = list(group)
            else:
                surplus += 1
        if len(kept) >= target_prompts:
            stop = "target_reached"
            break
        if len(batch) < room:
            stop = "prompts_exhausted"
            break
    kept_total = sum(len(v) for v in kept.values())
    return SamplingResult(kept=kept, generated=generated, discarded=generated - kept_total, rounds=rounds,
                          num_generated=num_generated, num_correct=num_correct, stop_reason=stop, budget=budget,
                          extra={"degenerate_groups": degenerate, "surplus_groups": surplus,
                                 "groups_generated": len(num_generated), "skipped_repeats": skipped})


# ------------------------------------------------------------------------------------- adaptive early stopping
def adaptive_early_stopping(
    sample_fn: SampleFn,
    prompts: Sequence[int],
    *,
    round_size: int,
    n_max: int,
    budget: int | None = None,
    max_rounds: int | None = None,
    min_correct: int = 1,
    min_incorrect: int = 1,
    group_size: int | None = None,
    stop_rule: Callable[[int, int], bool] | None = None,
) -> SamplingResult[Any]:
    """Adaptive early stopping (Reinforce-Ada, Xiong et al. 2025, arXiv 2510.04996, "balanced" exit rule).

    Every prompt of ``prompts`` (distinct indices) is active at first. Each round asks for
    min(``round_size``, ``n_max`` − generated) rollouts of every active prompt; a prompt stops once it has
    ≥ ``min_correct`` correct and ≥ ``min_incorrect`` incorrect rollouts (or once ``stop_rule(correct, generated)``
    is true, when given: a hook for other exit rules), or has ``n_max`` rollouts. The official code's balanced rule
    is ``min_correct = group_size // 2``, ``min_incorrect = group_size − group_size // 2``; the paper's minimal rule
    (and the default here) is 1 and 1.

    ``budget``: total rollouts generated never exceed it; when a round's requests would, the remaining budget is
    spread over the active prompts as evenly as possible (the earliest prompts get the odd units) and sampling stops
    after that round. ``max_rounds``: optional cap on rounds.

    ``group_size``: if given, each prompt keeps a balanced subset of at most ``group_size`` rollouts
    (:func:`balanced_subset`) and the rest are discarded; otherwise every rollout is kept. Prompts that never got both
    outcomes are kept too (their group has zero GRPO advantage), as the official fallback does.

    ``extra``: ``prompts_mixed`` (prompts with both outcomes), ``prompts_capped`` (stopped at n_max without both).
    """
    round_size = _positive_int("round_size", round_size)
    n_max = _positive_int("n_max", n_max)
    min_correct = _positive_int("min_correct", min_correct, 0)
    min_incorrect = _positive_int("min_incorrect", min_incorrect, 0)
    if budget is not None:
        budget = _positive_int("budget", budget, 0)
    if max_rounds is not None:
        max_rounds = _positive_int("max_rounds", max_rounds)
    if group_size is not None:
        group_size = _positive_int("group_size", group_size)
    order = list(prompts)
    if len(set(order)) != len(order):
        raise ValueError("prompts must be distinct prompt indices")
    pool: dict[int, list[Any]] = {p: [] for p in order}
    correct: dict[int, int] = {p: 0 for p in order}

    def done(p: int) -> bool:
        n, k = len(pool[p]), correct[p]
        if n >= n_max:
            return True
        if stop_rule is not None:
            return bool(stop_rule(k, n))
        return k >= min_correct and n - k >= min_incorrect

    active = [p for p in order if not done(p)]
    generated = rounds = 0
    stop = "all_stopped"
    while active:
        if max_rounds is not None and rounds >= max_rounds:
            stop = "max_rounds"
            break
        want = [min(round_size, n_max - len(pool[p])) for p in active]
        left = None if budget is None else budget - generated
        if left is not None and left <= 0:
            stop = "budget"
            break
        if left is not None and sum(want) > left:
            want = _spread_evenly(want, left)
        requests = [(p, w) for p, w in zip(active, want) if w > 0]
        out = _call(sample_fn, requests)
        rounds += 1
        for (p, _), got in zip(requests, out):
            pool[p].extend(got)
            correct[p] += sum(bool(r.correct) for r in got)
            generated += len(got)
        active = [p for p in active if not done(p)]
        if active and budget is not None and generated >= budget:
            stop = "budget"
            break
    kept: dict[int, list[Any]] = {}
    for p in order:
        if pool[p]:
            kept[p] = pool[p] if group_size is None else balanced_subset(pool[p], group_size)
    kept_total = sum(len(v) for v in kept.values())
    mixed = sum(1 for p in order if 0 < correct[p] < len(pool[p]))
    capped = sum(1 for p in order if len(pool[p]) >= n_max and not 0 < correct[p] < len(pool[p]))
    return SamplingResult(kept=kept, generated=generated, discarded=generated - kept_total, rounds=rounds,
                          num_generated={p: len(pool[p]) for p in order if pool[p]},
                          num_correct={p: correct[p] for p in order if pool[p]}, stop_reason=stop, budget=budget,
                          extra={"prompts_mixed": mixed, "prompts_capped": capped})


def _spread_evenly(want: list[int], amount: int) -> list[int]:
    """Counts 0 ≤ c_i ≤ want_i with Σ c = min(amount, Σ want), as equal as possible; odd units to the earliest."""
    out = [0] * len(want)
    left = amount
    while left > 0:
        open_ = [i for i, w in enumerate(want) if out[i] < w]
        if not open_:
            break
        share = max(left // len(open_), 1)
        for i in open_:
            add = min(share, want[i] - out[i], left)
            out[i] += add
            left -= add
            if left == 0:
                break
    return out
