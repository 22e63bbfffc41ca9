"""Per-token statistics of the policy's next-token distribution, computed in chunks.

For temperature-scaled logits ``z = logits / T`` at each position, with ``π = softmax(z)`` and target (sampled) token
``y``, this module computes

* ``log π(y)``                                   the log-probability of the target, **differentiable** w.r.t. logits;
* ``H   = −Σ_v π_v log π_v``                     full-vocabulary entropy (Eq. (4) of DynaMO, arXiv 2602.19208);
* ``C   = Σ_v π_v²``                             collision probability, the "concentration" of Eq. (7) / App. B;
* ``S   = Σ_v π_v² (log π_v + H) = Σ_v π_v² Λ_v`` the full-vocabulary baseline of the exact first-order entropy
  change (Eq. (27); ``Λ = log π + H`` is the centred log-probability of Eq. (16)-(17)), only when requested.

All but ``log π(y)`` are detached. A position whose logits row has no finite softmax (every entry −inf, or any NaN
or +inf) would give NaN/±inf statistics that poison every reduction they enter; such positions get 0 for every
statistic and a zero gradient, and are flagged in ``TokenStats.nonfinite`` (counted by
:meth:`TokenStats.metrics` as ``stats/nonfinite_tokens``). Callers drop them from their mask. Finite rows are
computed exactly as before (bit for bit). Rows are processed ``chunk_size`` at a time; each chunk is upcast to fp32 (fp64 for
fp64 logits) and reduced with a max-shifted exponential, so the extra memory is a few chunk-sized temporaries,
independent of the number of tokens. The backward pass saves only the per-token log-partition ``log Z`` (fp32, N) and
recomputes the chunk softmax: ``∂ log π(y) / ∂ logits = (onehot(y) − π) / T``, written in the logits' dtype.

With ``m = max z``, ``e = exp(z − m)``, ``s = Σ e`` (all per row)::

    log Z = m + log s,   log π(y) = z_y − log Z,   H = log s − Σ e (z − m) / s,
    Σπ² = Σ e² / s²,     Σπ² log π = Σ e² (z − m) / s² − log s · Σπ².
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
NONFINITE_TOKENS = "stats/nonfinite_tokens"
"""Metric key: positions (in the mask) whose logits row had no finite softmax; their statistics were set to 0."""
_CHUNK_ELEMENTS = {"cpu": 1 << 21, "cuda": 1 << 24}
"""Default chunk size in elements (rows × vocabulary): 2M (8 MiB per fp32 temporary) on CPU, where small chunks stay
closer to the caches; 16M (64 MiB) on CUDA, where fewer kernel launches matter more."""


@dataclass
class TokenStats:
    """Per-token statistics, each of shape ``(...)`` (the logits' leading shape).

    ``logprobs`` carries gradient to the logits (if they require it); the rest are detached. Dtype is float32 (float64
    for float64 logits).
    """

    logprobs: torch.Tensor
    """log π(y_t | s_t) of the target token (differentiable)."""
    entropy: torch.Tensor
    """Full-vocabulary entropy H_t (Eq. 4), detached."""
    sum_sq_probs: torch.Tensor
    """Collision probability Σ_v π_v² (Eq. 7), detached."""
    sum_sq_probs_centered: torch.Tensor | None = None
    """Σ_v π_v² (log π_v + H_t) (Eq. 27 baseline), detached; ``None`` unless ``with_centered=True``."""
    nonfinite: torch.Tensor | None = None
    """Bool, True where the logits row had no finite softmax (all −inf, or a NaN / +inf entry): every statistic is 0
    there and ``logprobs`` has zero gradient. Drop these positions from the loss mask (``mask & ~nonfinite``).
    ``None`` (built by hand) means none."""

    def metrics(self, mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``{"stats/nonfinite_tokens": count}`` (0-d tensor) over the positions where ``mask`` is nonzero."""
        if self.nonfinite is None:
            return {NONFINITE_TOKENS: torch.zeros((), dtype=torch.int64, device=self.logprobs.device)}
        flagged = self.nonfinite if mask is None else self.nonfinite & (mask != 0)
        return {NONFINITE_TOKENS: flagged.sum()}


def _rowdot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise dot product of two (R, V) tensors: (R,).

    On CPU a batched matmul avoids materialising ``a * b``; on other devices the product is summed explicitly, since
    a matmul there may run in TF32 (``torch.set_float32_matmul_precision``) and lose precision.
    """
    if a.device.type == "cpu":
        return torch.bmm(a.unsqueeze(1), b.unsqueeze(2)).view(-1)
    return (a * b).sum(dim=-1)


def _default_chunk_rows(vocab: int, device: torch.device) -> int:
    return max(1, _CHUNK_ELEMENTS.get(device.type, _CHUNK_ELEMENTS["cuda"]) // max(vocab, 1))


def _chunk_forward(chunk: torch.Tensor, tgt: torch.Tensor, inv_temp: float, compute_dtype: torch.dtype,
                   with_centered: bool) -> tuple[torch.Tensor, ...]:
    """Statistics of one (R, V) chunk. Returns (logprob, log Z, H, Σπ², Σπ²Λ or None, nonfinite), each (R,).

    Rows with a non-finite result (no finite softmax) get 0 for every statistic and ``nonfinite`` True."""
    z = chunk.to(compute_dtype, copy=True)  # always a copy: the caller's logits are never modified
    if inv_temp != 1.0:
        z.mul_(inv_temp)
    m = z.amax(dim=-1, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))  # a row of all −inf stays NaN-free here
    # z ← z − m ≤ 0; −inf logits (masked vocabulary) become the most negative finite value so that e·z = 0, not NaN
    z.sub_(m).clamp_(min=torch.finfo(compute_dtype).min)
    e = torch.exp(z)
    s = e.sum(dim=-1)
    log_s = torch.log(s)
    e_z = _rowdot(e, z)
    e_e = _rowdot(e, e)
    entropy = log_s - e_z / s
    sum_sq = e_e / (s * s)
    target_shifted = z.gather(1, tgt.unsqueeze(1)).squeeze(1)
    logprob = target_shifted - log_s
    log_z = m.squeeze(1) + log_s
    centered = None
    if with_centered:
        e.mul_(e)  # e ← e², reused in place
        sum_sq_logp = _rowdot(e, z) / (s * s) - log_s * sum_sq
        centered = sum_sq_logp + entropy * sum_sq
    bad = ~(torch.isfinite(log_z) & torch.isfinite(logprob) & torch.isfinite(entropy) & torch.isfinite(sum_sq))
    if centered is not None:
        bad |= ~torch.isfinite(centered)
    zero = torch.zeros((), dtype=compute_dtype, device=chunk.device)
    logprob, entropy, sum_sq = (torch.where(bad, zero, t) for t in (logprob, entropy, sum_sq))
    if centered is not None:
        centered = torch.where(bad, zero, centered)
    return logprob, log_z, entropy, sum_sq, centered, bad


class _ChunkedTokenStats(torch.autograd.Function):
    """Chunked forward of all statistics; backward of ``log π(y)`` only, recomputing the chunk softmax."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, targets: torch.Tensor, temperature: float, chunk_rows: int,
                with_centered: bool):
        num_rows = logits.shape[0]
        compute_dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
        inv_temp = 1.0 / temperature
        outs = [torch.empty(num_rows, dtype=compute_dtype, device=logits.device) for _ in range(4)]
        logprob, log_z, entropy, sum_sq = outs
        centered = torch.empty(num_rows, dtype=compute_dtype, device=logits.device) if with_centered else None
        bad = torch.empty(num_rows, dtype=torch.bool, device=logits.device)
        for start in range(0, num_rows, chunk_rows):
            stop = min(start + chunk_rows, num_rows)
            res = _chunk_forward(logits[start:stop], targets[start:stop], inv_temp, compute_dtype, with_centered)
            logprob[start:stop], log_z[start:stop], entropy[start:stop], sum_sq[start:stop] = res[:4]
            if with_centered:
                centered[start:stop] = res[4]
            bad[start:stop] = res[5]
        ctx.save_for_backward(logits, targets, log_z, bad)
        ctx.any_bad = bool(bad.any())  # one sync per call; the backward masks only when needed
        ctx.temperature = temperature
        ctx.chunk_rows = chunk_rows
        if with_centered:
            ctx.mark_non_differentiable(entropy, sum_sq, centered, bad)
            return logprob, entropy, sum_sq, centered, bad
        ctx.mark_non_differentiable(entropy, sum_sq, bad)
        return logprob, entropy, sum_sq, bad

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_logprob, *unused_grads):
        logits, targets, log_z, bad = ctx.saved_tensors
        grad_logits = None
        if ctx.needs_input_grad[0] and grad_logprob is not None:
            inv_temp = 1.0 / ctx.temperature
            grad_logits = torch.empty_like(logits)
            scale = grad_logprob.to(log_z.dtype) * inv_temp  # (N,)
            if ctx.any_bad:  # rows without a finite softmax get a zero gradient
                scale = torch.where(bad, torch.zeros_like(scale), scale)
            for start in range(0, logits.shape[0], ctx.chunk_rows):
                stop = min(start + ctx.chunk_rows, logits.shape[0])
                p = logits[start:stop].to(log_z.dtype, copy=True)
                if inv_temp != 1.0:
                    p.mul_(inv_temp)
                p.sub_(log_z[start:stop].unsqueeze(1)).exp_()  # p ← softmax(z) of the chunk
                if ctx.any_bad:
                    p.masked_fill_(bad[start:stop].unsqueeze(1), 0.0)
                g = scale[start:stop].unsqueeze(1)
                p.mul_(g.neg())
                p.scatter_add_(1, targets[start:stop].unsqueeze(1), g)
                grad_logits[start:stop] = p
        return grad_logits, None, None, None, None


def token_stats(logits: torch.Tensor, targets: torch.Tensor, *, temperature: float = 1.0,
                chunk_size: int | None = None, with_centered: bool = False) -> TokenStats:
    """Log-probability of the targets, entropy (Eq. 4), collision probability (Eq. 7) and, optionally, Σπ²Λ (Eq. 27).

    Implements Eq. (4), (7) and the full-vocabulary baseline of Eq. (27) of DynaMO, arXiv 2602.19208.

    Args:
        logits: ``(..., V)`` float16 / bfloat16 / float32 / float64 raw logits (divided by ``temperature`` here).
        targets: ``(...)`` integer token ids in ``[0, V)``, same leading shape as ``logits``.
        temperature: sampling temperature T > 0; statistics are those of ``softmax(logits / T)``.
        chunk_size: rows (tokens) per chunk; ``None`` picks ≈2M elements per chunk on CPU (8 MiB per fp32
            temporary) and ≈16M on CUDA (64 MiB).
        with_centered: also compute ``Σ_v π_v² (log π_v + H)`` (needed by the ``exact`` entropy-change mode).

    Returns:
        :class:`TokenStats` with fields of shape ``(...)``, float32 (float64 for float64 logits), and the bool
        ``nonfinite`` flags (positions without a finite softmax: statistics 0, gradient 0). Only ``logprobs``
        is differentiable; its gradient w.r.t. logits is ``(onehot − π)/T`` in the logits' dtype, recomputed chunk by
        chunk from a saved fp32 ``log Z`` (no N×V tensor is saved for backward).
    """
    if not isinstance(logits, torch.Tensor) or not isinstance(targets, torch.Tensor):
        raise ValueError(f"logits and targets must be tensors, got {type(logits).__name__}, {type(targets).__name__}")
    if logits.dim() < 1 or logits.shape[-1] < 1:
        raise ValueError(f"logits must have shape (..., V) with V ≥ 1, got {tuple(logits.shape)}")
    if logits.dtype not in _FLOAT_DTYPES:
        raise ValueError(f"logits must be float16/bfloat16/float32/float64, got dtype {logits.dtype}")
    if targets.dtype.is_floating_point or targets.dtype.is_complex or targets.dtype == torch.bool:
        raise ValueError(f"targets must be an integer tensor, got dtype {targets.dtype}")
    if tuple(targets.shape) != tuple(logits.shape[:-1]):
        raise ValueError(f"targets shape {tuple(targets.shape)} must equal logits.shape[:-1] = "
                         f"{tuple(logits.shape[:-1])}")
    if targets.device != logits.device:
        raise ValueError(f"targets device {targets.device} != logits device {logits.device}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not 0 < temperature < float("inf"):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive int or None, got {chunk_size!r}")
    vocab = logits.shape[-1]
    if targets.device.type == "cpu" and targets.numel() > 0:  # a range check costs no device sync on CPU
        lo, hi = int(targets.min()), int(targets.max())
        if lo < 0 or hi >= vocab:
            raise ValueError(f"targets must lie in [0, V={vocab}), got values in [{lo}, {hi}]")
    lead = tuple(logits.shape[:-1])
    flat_logits = logits.reshape(-1, vocab)
    flat_targets = targets.reshape(-1).long()
    chunk_rows = chunk_size if chunk_size is not None else _default_chunk_rows(vocab, logits.device)
    outs = _ChunkedTokenStats.apply(flat_logits, flat_targets, float(temperature), chunk_rows, with_centered)
    outs = [o.view(lead) for o in outs]
    return TokenStats(logprobs=outs[0], entropy=outs[1], sum_sq_probs=outs[2],
                      sum_sq_probs_centered=outs[3] if with_centered else None, nonfinite=outs[-1])
