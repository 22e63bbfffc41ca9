"""The mechanism measured directly: variance of the policy-gradient estimator under each rollout allocation.

At fixed checkpoints of one GRPO training run (the warm start, the middle and the end), for a fixed set of training
prompts and the same weights:

1. ``variance_probe_samples`` rollouts per prompt estimate its success rate p_i, σ_i = √(p_i(1 − p_i));
   16 further rollouts per prompt are the *history* the allocators see (as DRA would after two visits);
2. every allocation (uniform = GRPO, DynaMO official, theory, and the core library's other allocators) splits the
   budget ``variance_prompts × mean_rollouts`` from that history;
3. ``variance_draws`` independent rollout draws per allocation (fresh samples, same weights) give one gradient each
   of the GRPO surrogate at ratio 1 (group-normalised advantages, clipping inactive), over **all** 113 k parameters:
   ``token``: −Σ_{i,j,t} A_ij ∇log π(y_ijt) / Σ tokens (the trainer's token-mean loss) and ``prompt``: the mean over
   prompts of each group's token-mean gradient (the per-prompt average that Eq 44 is about);
4. the estimator variance tr Cov(g) over the draws and its ratio to uniform's, plus the scale-free noise-to-signal
   ratio tr Cov(g) / ‖E g‖² relative to uniform's (95 % bootstrap intervals over draws; the Gram matrices of the
   draws are stored, so any other statistic can be recomputed), next to the analytic Eq 44 ratio Σσ_i²/n_i ÷ Σσ_i²/n̄ (``dynamo_rl.core.allocation.variance_reduction_ratio``,
   rescaled to uniform at the full budget when an allocator spends less), and the share of rollouts that fall in
   zero-variance groups (all correct or all wrong: zero advantage, no gradient).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from experiments.study_plan import RunSpec, Sizes, available_allocators, row_spec

HISTORY_SAMPLES = 16
"""Rollouts per prompt of the history the allocators see at each checkpoint."""
BOOTSTRAP = 2000
"""Bootstrap resamples (over draws) of each variance ratio's interval."""


def allocation_rows() -> list[str]:
    """Rows whose allocation is measured: uniform (GRPO), DynaMO official and theory, the available allocators."""
    return ["grpo", "dynamo", "dynamo_theory", *(f"alloc_{a}" for a in available_allocators(quiet=True))]


def _logprob_sums(model: Any, prompt_ids: list[int], responses: list[list[int]], pad_id: int) -> tuple[Any, Any]:
    """Per-sequence Σ_t log π(y_t) (differentiable) and token counts for one prompt's responses."""
    import torch

    from dynamo_rl.trainer.batch import pad_tokens

    tokens = pad_tokens([prompt_ids] * len(responses), responses, pad_id)
    width, length = tokens.prompt_width, tokens.targets.shape[1]
    logits = model(tokens.input_ids, attention_mask=tokens.attention_mask,
                   position_ids=tokens.position_ids).logits[:, width - 1:width - 1 + length]
    logp = torch.log_softmax(logits.float(), dim=-1).gather(-1, tokens.targets.unsqueeze(-1)).squeeze(-1)
    mask = tokens.response_mask.float()
    return (logp * mask).sum(dim=1), mask.sum(dim=1)


def _flat_grad(model: Any) -> np.ndarray:
    return np.concatenate([(p.grad.detach().reshape(-1).numpy() if p.grad is not None
                            else np.zeros(p.numel(), dtype=np.float32)) for p in model.parameters()])


def gradient_draw(model: Any, tokenizer: Any, backend: Any, verifier: Any, problems: list[Any], counts: np.ndarray,
                  params: Any, pad_id: int) -> dict[str, Any]:
    """One rollout draw under ``counts``: token-mean and prompt-mean GRPO gradients (flattened) and group stats."""
    import torch

    from dynamo_rl.core.advantages import compute_advantages

    completions = backend.generate([p.prompt or p.problem for p in problems], counts.tolist(), params)
    rewards = torch.tensor([verifier.verify(c.text, problems[c.prompt_index].answer).score for c in completions])
    groups = torch.tensor([c.prompt_index for c in completions])
    advantages = compute_advantages("grpo", rewards, groups, eps=1e-6)
    dim = sum(p.numel() for p in model.parameters())
    token_sum = np.zeros(dim, dtype=np.float64)
    prompt_sum = np.zeros(dim, dtype=np.float64)
    total_tokens = 0.0
    zero_variance_rollouts = 0
    prompt_ids_all = [tokenizer(p.prompt or p.problem)["input_ids"] for p in problems]
    for i in range(len(problems)):
        rows = (groups == i).nonzero().flatten().tolist()
        if not rows:
            continue
        responses = [list(completions[r].token_ids) or [pad_id] for r in rows]
        tokens_i = float(sum(max(len(completions[r].token_ids), 1) for r in rows))
        total_tokens += tokens_i
        group_rewards = rewards[rows]
        if bool((group_rewards == group_rewards[0]).all()):
            zero_variance_rollouts += len(rows)
            continue  # zero advantages: no gradient from this group
        model.zero_grad(set_to_none=True)
        seq_logp, _ = _logprob_sums(model, prompt_ids_all[i], responses, pad_id)
        (advantages[rows].float() * seq_logp).sum().backward()
        g = _flat_grad(model).astype(np.float64)
        token_sum += g
        prompt_sum += g / tokens_i
    model.zero_grad(set_to_none=True)
    return {"token": -token_sum / max(total_tokens, 1.0), "prompt": -prompt_sum / len(problems),
            "zero_variance_share": zero_variance_rollouts / max(len(completions), 1),
            "rollouts": len(completions), "reward_mean": float(rewards.mean()) if len(rewards) else 0.0}


def trace_variance(gram: np.ndarray, weights: np.ndarray | None = None) -> float:
    """tr Cov of R vectors from their Gram matrix K (R × R), optionally with bootstrap multiplicities ``weights``:
    (Σ w_r K_rr − wᵀKw / R) / (R − 1)."""
    r = gram.shape[0]
    w = np.ones(r) if weights is None else weights
    return float((w @ np.diag(gram) - w @ gram @ w / r) / (r - 1))


def signal(gram: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Unbiased ‖E g‖² from the Gram matrix: ‖ḡ‖² − tr Cov / R (``weights``: bootstrap multiplicities)."""
    r = gram.shape[0]
    w = np.ones(r) if weights is None else weights
    return float(w @ gram @ w / (r * r)) - trace_variance(gram, weights) / r


def noise_to_signal(gram: np.ndarray, weights: np.ndarray | None = None) -> float:
    """tr Cov(g) / ‖E g‖²: the estimator's variance relative to its squared mean (scale-free, so allocations whose
    token-mean gradients have different sizes compare fairly). NaN when the estimated signal is not positive."""
    sig = signal(gram, weights)
    return trace_variance(gram, weights) / sig if sig > 0 else float("nan")


def _ratio(a: float, b: float) -> float | None:
    """a / b, None when b is 0 or either is not finite (e.g. no gradient at all in every draw)."""
    return a / b if b != 0 and np.isfinite(a) and np.isfinite(b) else None


def _success_counts(backend: Any, verifier: Any, problems: list[Any], samples: int, params: Any) -> np.ndarray:
    completions = backend.generate([p.prompt or p.problem for p in problems], [samples] * len(problems), params)
    correct = np.zeros(len(problems), dtype=np.int64)
    for c in completions:
        correct[c.prompt_index] += int(verifier.verify(c.text, problems[c.prompt_index].answer).correct)
    return correct


def measure_variance(spec_dict: dict[str, Any], sizes_dict: dict[str, Any], output: str,
                     model_path: str | None) -> dict[str, Any]:
    """Measure at every checkpoint of ``spec.after`` (plus the warm start) and write ``results/variance/...json``."""
    import tempfile

    import torch
    from safetensors.torch import load_model as load_weights

    from dynamo_rl.core.allocation import allocate_rollouts, variance_reduction_ratio
    from dynamo_rl.demo.model import load_model
    from dynamo_rl.demo.task import make_problems
    from dynamo_rl.rewards.math_verifier import MathVerifier
    from dynamo_rl.rollout.hf import HFBackend
    from dynamo_rl.rollout.types import SamplingParams
    from dynamo_rl.run.config import config_from_dict
    from experiments.study_runs import (
        finite,
        load_sizes,
        result_path,
        start_model_dir,
        train_config_dict,
        write_json_atomic,
    )

    torch.set_num_threads(1)
    start = time.perf_counter()
    spec = RunSpec(**spec_dict)
    sizes: Sizes = load_sizes(sizes_dict)
    out = Path(output)
    folder = start_model_dir(out, spec.family, model_path)
    model, tokenizer = load_model(folder, "cpu")
    start_state = {k: v.clone() for k, v in model.state_dict().items()}
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    problems = make_problems("train", sizes.train_per_level, seed=spec.seed, family=spec.family)
    rng = np.random.default_rng([spec.seed, 4242])
    chosen = sorted(rng.choice(len(problems), size=min(sizes.variance_prompts, len(problems)), replace=False).tolist())
    probe = [problems[i] for i in chosen]
    with tempfile.TemporaryDirectory() as tmp:
        configs = {name: config_from_dict(train_config_dict(row_spec("variance", name, spec.seed), sizes, Path(tmp)))
                   for name in allocation_rows()}
    budget = len(probe) * sizes.mean_rollouts
    backend = HFBackend(model, tokenizer, batch_size=128)
    verifier = MathVerifier()
    checkpoints: list[tuple[int, Path | None]] = [(0, None)]
    if spec.after:
        for path in sorted((out / "checkpoints" / spec.after).glob("step_*")):
            checkpoints.append((int(path.name.split("_")[1]), path / "model.safetensors"))
    levels = [p.meta.get("level") for p in probe]
    result: dict[str, Any] = {"spec": spec.to_dict(), "run_id": spec.run_id, "sizes": sizes_dict,
                              "source_run": spec.after, "prompts": [p.prompt_id for p in probe], "levels": levels,
                              "budget": budget, "draws": sizes.variance_draws, "checkpoints": []}
    for step, weights in checkpoints:
        if weights is None:
            model.load_state_dict(start_state)
        else:
            load_weights(model, str(weights))
        seed = 7919 * spec.seed + 104_729 * step
        sampling = SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=sizes.max_new_tokens, seed=seed)
        correct = _success_counts(backend, verifier, probe, sizes.variance_probe_samples, sampling)
        p = correct / sizes.variance_probe_samples
        sigma = np.sqrt(p * (1 - p))
        history = _success_counts(backend, verifier, probe, HISTORY_SAMPLES,
                                  SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=sizes.max_new_tokens,
                                                 seed=seed + 1))
        entry: dict[str, Any] = {"step": step, "success_rate": p.tolist(), "history_correct": history.tolist(),
                                 "allocations": {}}
        grams: dict[str, dict[str, np.ndarray]] = {}
        for name, config in configs.items():
            kwargs = config.method.allocation.core_kwargs()
            counts = allocate_rollouts(history, np.full(len(probe), HISTORY_SAMPLES), budget=budget,
                                       **kwargs).num_rollouts.astype(np.int64)
            spent = int(counts.sum())
            analytic = (variance_reduction_ratio(sigma, counts) * budget / spent) if spent else float("nan")
            vectors: dict[str, list[np.ndarray]] = {"token": [], "prompt": []}
            shares, rewards = [], []
            for draw in range(sizes.variance_draws):
                params = SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=sizes.max_new_tokens,
                                        seed=seed + 1000 + draw)
                g = gradient_draw(model, tokenizer, backend, verifier, probe, counts, params, pad_id)
                vectors["token"].append(g["token"])
                vectors["prompt"].append(g["prompt"])
                shares.append(g["zero_variance_share"])
                rewards.append(g["reward_mean"])
            grams[name] = {k: np.stack(v) @ np.stack(v).T for k, v in vectors.items()}
            entry["allocations"][name] = {
                "num_rollouts": counts.tolist(), "rollouts": spent, "analytic_ratio": analytic,
                "zero_variance_share": float(np.mean(shares)), "reward_mean": float(np.mean(rewards)),
                **{f"variance_{k}": trace_variance(grams[name][k]) for k in vectors},
                **{f"mean_norm_{k}": float(np.linalg.norm(np.mean(v, axis=0))) for k, v in vectors.items()},
                **{f"noise_to_signal_{k}": noise_to_signal(grams[name][k]) for k in vectors},
                **{f"gram_{k}": grams[name][k].tolist() for k in vectors},
            }
        boot = np.random.default_rng([spec.seed, step, 17])
        reference = grams["grpo"]
        r = sizes.variance_draws
        for name, stats in entry["allocations"].items():
            for k in ("token", "prompt"):
                base = trace_variance(reference[k])
                stats[f"measured_ratio_{k}"] = stats[f"variance_{k}"] / base if base > 0 else None
                stats[f"relative_ratio_{k}"] = _ratio(noise_to_signal(grams[name][k]), noise_to_signal(reference[k]))
                if name == "grpo" or base <= 0:
                    continue
                ratios, relative = [], []
                for _ in range(BOOTSTRAP):
                    w_a = np.bincount(boot.integers(0, r, r), minlength=r).astype(float)
                    w_b = np.bincount(boot.integers(0, r, r), minlength=r).astype(float)
                    ratios.append(trace_variance(grams[name][k], w_a) / max(trace_variance(reference[k], w_b),
                                                                             1e-300))
                    relative.append(_ratio(noise_to_signal(grams[name][k], w_a), noise_to_signal(reference[k], w_b)))
                stats[f"measured_ratio_{k}_ci"] = [float(np.percentile(ratios, 2.5)),
                                                   float(np.percentile(ratios, 97.5))]
                relative = [v for v in relative if v is not None]
                stats[f"relative_ratio_{k}_ci"] = ([float(np.percentile(relative, 2.5)),
                                                    float(np.percentile(relative, 97.5))] if relative else None)
        result["checkpoints"].append(entry)
    result["seconds"] = {"total": time.perf_counter() - start}
    write_json_atomic(result_path(out, spec), finite(result))
    return {"run_id": spec.run_id, "seconds": result["seconds"]["total"]}
