"""Tables of the study from its result files: pass@1 / pass@k with 95 % t intervals over seeds, per difficulty level,
paired differences (to GRPO, and to DynaMO for ablations and allocators) with p-value and minimum detectable effect
at 80 % power, sample efficiency with bootstrap intervals, the budget sweep, allocation per level, and the measured
vs analytic gradient-variance ratios.

``write_report(output, plots_dir)`` writes ``OUTPUT/summary.json``, ``OUTPUT/summary.md`` and the plots.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from experiments.stats import (
    mean_curve,
    minimum_detectable_effect,
    paired_differences,
    paired_t_pvalue,
    sample_efficiency,
    seeds_for_mde,
    t_interval,
)
from experiments.study_plan import ABLATION_ROWS, LABELS, MAIN_ROWS, SAMPLER_ROWS

CURVE_KEY = "curve/heldout"
"""Held-out accuracy from the trainer's evaluation every ``eval_every`` steps (avg@n at T = 1): the learning curve."""
TRAIN_CURVE_KEY = "curve/train"
"""Accuracy on the training pool from the same evaluations (only with ``eval_train_pool``)."""
TARGET_GAIN = 0.5
"""Sample-efficiency target: GRPO's seed-mean held-out accuracy after this fraction of its gain (start → mean of its
last 3 evaluations), a level GRPO reaches mid-run on the rising part of its curve, not at its plateau."""
MEAN_KEYS = {"live_eq44_ratio": "alloc/variance_reduction_ratio", "clipfrac": "loss/clipfrac",
             "frac_boosted": "mod/frac_boosted", "frac_damped": "mod/frac_damped",
             "compensation_mean": "mod/compensation_mean", "grad_norm": "actor/grad_norm", "entropy": "actor/entropy",
             "degenerate_groups": None, "frac_discarded": "sampler/frac_discarded", "rounds": "sampler/rounds"}
"""Per-step metrics averaged over steps and seeds in the summary (``degenerate_groups``: all-correct + all-wrong)."""

Runs = dict[tuple[str, str], list[dict[str, Any]]]


def load_results(output: Path) -> Runs:
    """``{(group, row): [result, ...]}`` sorted by seed."""
    runs: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for path in sorted((output / "results").glob("*/*/seed*.json")):
        result = json.loads(path.read_text())
        runs[(result["spec"]["group"], result["spec"]["row"])].append(result)
    return {key: sorted(items, key=lambda r: r["spec"]["seed"]) for key, items in runs.items()}


def label(row: str) -> str:
    base, at, budget = row.partition("@")
    text = LABELS.get(base, base.replace("alpha=", "α = "))
    return f"{text}, n̄ = {budget}" if at else text


def curve(result: dict[str, Any], key: str = CURVE_KEY) -> tuple[list[float], list[float]]:
    """``(rollouts, values)`` of one run at the steps where ``key`` was logged."""
    points = [(r["rollouts"], r[key]) for r in result["curve"] if r.get(key) is not None]
    return [p[0] for p in points], [p[1] for p in points]


def levels_of(results: list[dict[str, Any]]) -> list[str]:
    names = {name for r in results for name in r["final"]["levels"]}
    return sorted(names, key=lambda n: int(n[1:]) if n[1:].isdigit() else n)


def compare(results: list[dict[str, Any]], reference: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    """Paired Δ pass@1 (t interval), its p-value and the minimum detectable effect at 80 % power."""
    if not reference:
        return None
    diffs = paired_differences({r["spec"]["seed"]: r["final"]["pass@1"] for r in results},
                               {r["spec"]["seed"]: r["final"]["pass@1"] for r in reference})
    if not diffs:
        return None
    out = t_interval(diffs).to_dict()
    mde = minimum_detectable_effect(diffs)
    out["mde80"] = None if math.isnan(mde) else mde
    out["p"] = paired_t_pvalue(diffs)
    out["significant"] = bool(out["low"] is not None and (out["low"] > 0 or out["high"] < 0))
    out["differences"] = diffs
    out["sd"] = float(np.std(diffs, ddof=1)) if len(diffs) > 1 else None
    out["seeds_for_mde_1pt"] = seeds_for_mde(out["sd"], 0.01) if out["sd"] is not None else None
    return out


def resolution_note(group: dict[str, Any], row: str = "dynamo") -> str:
    """How finely the study resolves ``row`` vs GRPO: s_d of the paired differences, MDE now, seeds for 1 point."""
    cmp = (group["rows"].get(row) or {}).get("vs_grpo")
    if not cmp or cmp.get("sd") is None:
        return ""
    need = cmp.get("seeds_for_mde_1pt")
    return (f"Resolution of {label(row)} vs GRPO: the paired differences have s_d = {cmp['sd'] * 100:.2f} points over "
            f"{cmp['n']} seeds, so the minimum detectable effect at 80 % power is {cmp['mde80'] * 100:.2f} points; "
            f"an MDE of 1 point needs {need if need is not None else '> 1000'} seeds at this s_d.\n")


def _metric(record: dict[str, Any], key: str | None) -> float | None:
    """``key`` of one step's record; ``None`` selects the degenerate-group share (all correct + all wrong)."""
    if key is None:
        return (record.get("groups/all_correct_frac") or 0.0) + (record.get("groups/all_wrong_frac") or 0.0)
    return record.get(key)


def _mean_over(records: list[dict[str, Any]], key: str | None) -> float | None:
    values = [value for rec in records if (value := _metric(rec, key)) is not None and math.isfinite(value)]
    return float(np.mean(values)) if values else None


def _mean_metric(results: list[dict[str, Any]], key: str | None) -> float | None:
    """Mean of ``key`` over the training steps (step 0 is the warm-start evaluation) of every run."""
    return _mean_over([rec for r in results for rec in r["curve"] if rec.get("step", 0) != 0], key)


WINDOW = 3
"""Batches at the start and at the end of training over which the zero-variance group shares are averaged."""


def _window_share(results: list[dict[str, Any]], key: str | None, *, end: bool) -> float | None:
    """Mean over seeds of ``key`` (None: all-correct + all-wrong) over the first or last ``WINDOW`` batches."""
    records = []
    for r in results:
        steps = [rec for rec in r["curve"] if rec.get("step", 0) > 0 and "groups/all_correct_frac" in rec]
        records += steps[-WINDOW:] if end else steps[:WINDOW]
    return _mean_over(records, key)


def summarize_row(results: list[dict[str, Any]], grpo: list[dict[str, Any]] | None,
                  dynamo: list[dict[str, Any]] | None) -> dict[str, Any]:
    """Intervals of the final metrics, paired comparisons, spending and mechanism statistics of one row."""
    ks = sorted({k for r in results for k in r["final"] if k.startswith("pass@")}, key=lambda k: int(k[5:]))
    row: dict[str, Any] = {"seeds": [r["spec"]["seed"] for r in results], "n": len(results)}
    for k in ks:
        row[k] = t_interval([r["final"][k] for r in results]).to_dict()
    row["levels"] = {name: {k: t_interval([r["final"]["levels"][name][k] for r in results
                                           if name in r["final"]["levels"]]).to_dict() for k in ks}
                     for name in levels_of(results)}
    row["vs_grpo"] = compare(results, grpo)
    row["vs_dynamo"] = compare(results, dynamo)
    gains = [r["final"]["pass@1"] - g["initial"]["pass@1"] for r in results for g in (grpo or [])
             if g["spec"]["seed"] == r["spec"]["seed"] and g.get("initial")]
    row["gain_over_start"] = t_interval(gains).to_dict() if gains else None
    trains = [r["final_train"] for r in results if r.get("final_train")]
    if trains:
        row["train_pass@1"] = t_interval([t["pass@1"] for t in trains]).to_dict()
    xs, ys = mean_curve([curve(r) for r in results])
    row["curve_final"] = float(ys[-1]) if ys.size else None
    row["rollouts_per_run"] = float(np.mean([r["total_rollouts"] for r in results]))
    row["updates_per_batch"] = results[0].get("updates_per_batch")
    for name, key in MEAN_KEYS.items():
        row[name] = _mean_metric(results, key)
    for when in ("start", "end"):
        for name, key in (("degenerate", None), ("all_correct", "groups/all_correct_frac"),
                          ("all_wrong", "groups/all_wrong_frac")):
            row[f"{name}_{when}"] = _window_share(results, key, end=when == "end")
    alloc = defaultdict(list)
    for r in results:
        for rec in r["curve"]:
            for key, value in rec.items():
                if key.startswith("level/") and key.endswith("/num_rollouts_mean") and value is not None:
                    alloc[key.split("/")[1]].append(value)
    row["mean_rollouts_per_level"] = {lv: float(np.mean(v)) for lv, v in sorted(alloc.items())}
    row["seconds_per_run"] = float(np.mean([r["seconds"]["total"] for r in results]))
    return row


def _reference(group: str, row: str, name: str) -> tuple[str, str]:
    """(group, row) of the GRPO/DynaMO reference of ``row``: same group, same budget suffix."""
    _, at, budget = row.partition("@")
    return group, f"{name}@{budget}" if at else name


def _without_grams(value: Any) -> Any:
    """A variance result without its Gram matrices (kept in the result file, too big for the summary)."""
    if isinstance(value, dict):
        return {k: _without_grams(v) for k, v in value.items() if not k.startswith("gram_")}
    if isinstance(value, list):
        return [_without_grams(v) for v in value]
    return value


def summarize(runs: Runs) -> dict[str, Any]:
    """Per group, per row summaries and sample efficiency (reference: GRPO of the same group and budget)."""
    out: dict[str, Any] = {}
    for group in sorted({g for g, _ in runs}):
        if group == "variance":
            out["variance"] = [_without_grams(r) for (g, _), items in runs.items() if g == "variance" for r in items]
            continue
        rows = {}
        for (g, row), items in runs.items():
            if g != group:
                continue
            grpo = runs.get(_reference(group, row, "grpo"))
            dynamo = runs.get(_reference(group, row, "dynamo"))
            rows[row] = summarize_row(items, grpo, dynamo)
            if grpo:
                eff = sample_efficiency({r["spec"]["seed"]: curve(r) for r in items},
                                        {r["spec"]["seed"]: curve(r) for r in grpo}, TARGET_GAIN)
                rows[row]["efficiency"] = eff.to_dict() if eff else None
        grpo = runs.get((group, "grpo"))
        initial = [r["initial"] for r in (grpo or []) if r.get("initial")]
        out[group] = {"rows": rows,
                      "initial_pass@1": t_interval([i["pass@1"] for i in initial]).to_dict() if initial else None,
                      "initial_levels": {name: float(np.mean([i["levels"][name]["pass@1"] for i in initial]))
                                         for name in (initial[0]["levels"] if initial else {})}}
    return out


# ---------------------------------------------------------------------------------------------------- formatting
def _fmt(interval: dict[str, Any] | None, scale: float = 100.0, sign: bool = False) -> str:
    if not interval or interval.get("mean") is None:
        return "–"
    mean = f"{interval['mean'] * scale:+.1f}" if sign else f"{interval['mean'] * scale:.1f}"
    if interval.get("half_width") is None:
        return mean
    return f"{mean} ± {interval['half_width'] * scale:.1f}"


def fmt_delta(cmp: dict[str, Any] | None) -> str:
    """``+0.8 ± 1.8 (n.s., MDE 2.1)`` or ``+2.4 ± 1.1 (p = 0.001)``: every "not significant" carries its MDE."""
    if not cmp or cmp.get("mean") is None:
        return "–"
    text = _fmt(cmp, sign=True)
    if cmp.get("half_width") is None:
        return text + " (1 seed)"
    if cmp.get("significant"):
        p = cmp.get("p")
        return text + (f" (p = {p:.3f})" if p is not None else " (significant)")
    mde = cmp.get("mde80")
    return text + (f" (n.s., MDE {mde * 100:.1f})" if mde is not None else " (n.s.)")


def fmt_efficiency(eff: dict[str, Any] | None, *, reference: bool = False) -> str:
    if not eff:
        return "–"
    if reference:
        if not eff.get("reference_rollouts"):
            return "–"
        share = (f", {eff['reference_rollouts'] / eff['reference_budget']:.0%} of its budget"
                 if eff.get("reference_budget") else "")
        return f"{eff['reference_rollouts']:.0f} (target {eff['target'] * 100:.1f} %{share})"
    if not eff.get("reference_rollouts"):
        return "n/a (GRPO does not improve)"
    if eff.get("rollouts") is None:
        return "not reached"
    high = "∞" if eff.get("ratio_high_infinite") else _num(eff.get("ratio_high"), ".2f")
    return (f"{eff['rollouts']:.0f} vs {eff['reference_rollouts']:.0f} = {_num(eff.get('ratio'), '.2f')}× "
            f"[{_num(eff.get('ratio_low'), '.2f')}, {high}]")


def table(group: dict[str, Any], rows: list[str], k_high: str | None = None, vs_dynamo: bool = False) -> str:
    """Markdown table laid out like the paper's Tables 1–2: methods as rows, levels and the average as columns."""
    present = [r for r in rows if r in group["rows"]]
    if not present:
        return "_no finished runs_\n"
    levels = list(group["rows"][present[0]]["levels"])
    ks = sorted({k for r in present for k in group["rows"][r] if k.startswith("pass@")}, key=lambda k: int(k[5:]))
    k_high = k_high or (ks[-1] if ks else "pass@1")
    head = ["Method", "seeds", *[f"{lv} P@1" for lv in levels], "Avg P@1", f"Avg {k_high.replace('pass', 'P')}",
            "Δ P@1 vs GRPO (paired)"] + (["Δ P@1 vs DynaMO (paired)"] if vs_dynamo else []) + [
            "rollouts to half of GRPO's gain (× GRPO's, 95 % CI)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    if group.get("initial_pass@1"):
        init = ["warm-start model (before RL)", "–", *[f"{group['initial_levels'].get(lv, float('nan')) * 100:.1f}"
                                                      for lv in levels], _fmt(group["initial_pass@1"]), ""]
        lines.append("| " + " | ".join(init + [""] * (len(head) - len(init))) + " |")
    for name in present:
        row = group["rows"][name]
        cells = [label(name), str(row["n"]), *[_fmt(row["levels"][lv]["pass@1"]) for lv in levels],
                 _fmt(row["pass@1"]), _fmt(row.get(k_high)), "–" if name == "grpo" else fmt_delta(row.get("vs_grpo"))]
        if vs_dynamo:
            cells.append("–" if name == "dynamo" else fmt_delta(row.get("vs_dynamo")))
        cells.append(fmt_efficiency(row.get("efficiency"), reference=name == "grpo"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _num(value: float | None, spec: str = ".3f", scale: float = 1.0) -> str:
    return "–" if value is None else f"{value * scale:{spec}}"


def allocator_table(group: dict[str, Any]) -> str:
    rows = [r for r in ["grpo", "no_dra", "dynamo", *sorted(r for r in group["rows"] if r.startswith("alloc_"))]
            if r in group["rows"]]
    if not any(r.startswith("alloc_") for r in rows):
        return "_no allocator rows have finished yet_\n"
    head = ["Row", "allocator", "seeds", "rollouts per run", "live Eq 44 ratio", "Avg P@1", "Δ vs GRPO", "Δ vs DynaMO"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    names = {"grpo": "uniform", "no_dra": "uniform", "dynamo": "official"}
    for name in rows:
        row = group["rows"][name]
        lines.append("| " + " | ".join([
            label(name), names.get(name, name.removeprefix("alloc_")), str(row["n"]), f"{row['rollouts_per_run']:.0f}",
            _num(row.get("live_eq44_ratio")), _fmt(row["pass@1"]),
            "–" if name == "grpo" else fmt_delta(row.get("vs_grpo")),
            "–" if name == "dynamo" else fmt_delta(row.get("vs_dynamo"))]) + " |")
    return "\n".join(lines) + "\n"


def sampler_table(group: dict[str, Any]) -> str:
    """GRPO with a multi-round sampler: what it generated, what it kept, and its accuracy against GRPO's."""
    rows = [r for r in ("grpo", *SAMPLER_ROWS) if r in group["rows"]]
    if not any(r in SAMPLER_ROWS for r in rows):
        return "_no sampler rows have finished yet_\n"
    head = ["Row", "seeds", "rollouts generated per run", "share discarded", "rounds per batch", "Avg P@1",
            "Δ vs GRPO", "rollouts to half of GRPO's gain"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in rows:
        row = group["rows"][name]
        lines.append("| " + " | ".join([
            label(name), str(row["n"]), f"{row['rollouts_per_run']:.0f}",
            _num(row.get("frac_discarded") or 0.0, ".1%"), _num(row.get("rounds") or 1.0, ".2f"),
            _fmt(row["pass@1"]), "–" if name == "grpo" else fmt_delta(row.get("vs_grpo")),
            fmt_efficiency(row.get("efficiency"), reference=name == "grpo")]) + " |")
    return "\n".join(lines) + "\n"


def budget_table(summary: dict[str, Any]) -> str:
    """P@1 per mean budget n̄ (n̄ = 8: the main group), Δ to GRPO at the same n̄."""
    main = summary.get("main", {}).get("rows", {})
    budget = summary.get("budget", {}).get("rows", {})
    if not budget:
        return ""
    bases = sorted({r.split("@")[0] for r in budget}, key=lambda b: ["grpo", "dynamo"].index(b)
                   if b in ("grpo", "dynamo") else 9)
    sizes = sorted({int(r.split("@")[1]) for r in budget} | {8})
    head = ["n̄ (bounds)", *[f"{label(b)} P@1" for b in bases], *[f"{label(b)} Δ vs GRPO" for b in bases
                                                                 if b != "grpo"],
            *[f"{label(b)} rollouts/run" for b in bases]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in sizes:
        cells_p, cells_d, cells_r = [], [], []
        for b in bases:
            row = main.get(b) if m == 8 else budget.get(f"{b}@{m}")
            cells_p.append(_fmt(row["pass@1"]) + f" (n={row['n']})" if row else "–")
            if b != "grpo":
                cells_d.append(fmt_delta(row.get("vs_grpo")) if row else "–")
            cells_r.append(f"{row['rollouts_per_run']:.0f}" if row else "–")
        lines.append("| " + " | ".join([f"{m} ([{max(2, m // 2)}, {2 * m}])", *cells_p, *cells_d, *cells_r]) + " |")
    return "\n".join(lines) + "\n"


def allocation_table(group: dict[str, Any], rows: list[str]) -> str:
    """Mean rollouts per prompt of each level over training (uniform = the mean budget)."""
    present = [r for r in rows if r in group["rows"] and group["rows"][r]["mean_rollouts_per_level"]]
    if not present:
        return ""
    levels = list(group["rows"][present[0]]["mean_rollouts_per_level"])
    lines = ["| Method | " + " | ".join(f"L{lv}" for lv in levels) + " |", "|" + "---|" * (len(levels) + 1)]
    for name in present:
        alloc = group["rows"][name]["mean_rollouts_per_level"]
        lines.append(f"| {label(name)} | " + " | ".join(f"{alloc.get(lv, float('nan')):.2f}" for lv in levels) + " |")
    return "\n".join(lines) + "\n"


def mechanism_table(group: dict[str, Any], rows: list[str]) -> str:
    """Per-step averages of the mechanism metrics (GC/UMS activity, clipping, degenerate groups, Eq 44)."""
    present = [r for r in rows if r in group["rows"]]
    if not present:
        return ""
    head = ["Method", "live Eq 44 ratio", "GC: tokens boosted", "GC: mean factor", "UMS: tokens damped",
            "clip fraction", "degenerate groups (prompts)", "‖g‖", "entropy"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in present:
        row = group["rows"][name]
        lines.append("| " + " | ".join([
            label(name), _num(row.get("live_eq44_ratio")), _num(row.get("frac_boosted"), ".1%"),
            _num(row.get("compensation_mean")), _num(row.get("frac_damped"), ".2%"), _num(row.get("clipfrac"), ".2%"),
            _num(row.get("degenerate_groups"), ".1%"), _num(row.get("grad_norm"), ".2f"),
            _num(row.get("entropy"), ".3f")]) + " |")
    return "\n".join(lines) + "\n"


def zero_variance_table(group: dict[str, Any], rows: list[str]) -> str:
    """Share of prompts whose group is all correct or all wrong, over the first and the last batches."""
    present = [r for r in rows if r in group["rows"] and group["rows"][r].get("degenerate_start") is not None]
    if not present:
        return ""
    head = ["Method", f"zero-variance groups, batches 1–{WINDOW}", "of which all correct / all wrong",
            f"zero-variance groups, last {WINDOW} batches", "of which all correct / all wrong"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in present:
        row = group["rows"][name]
        cells = [label(name)]
        for when in ("start", "end"):
            cells += [_num(row[f"degenerate_{when}"], ".1%"),
                      f"{_num(row[f'all_correct_{when}'], '.1%')} / {_num(row[f'all_wrong_{when}'], '.1%')}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _relative(stats: dict[str, Any], reference: dict[str, Any], k: str, draws: int) -> float | None:
    """Noise-to-signal ratio to uniform's from the stored variance and mean norm (older results without it)."""
    def nsr(a: dict[str, Any]) -> float:
        return a[f"variance_{k}"] / max(a[f"mean_norm_{k}"] ** 2 - a[f"variance_{k}"] / draws, 1e-300)

    try:
        return nsr(stats) / nsr(reference)
    except (KeyError, TypeError, ZeroDivisionError):
        return None


def _ratio_cell(stats: dict[str, Any], key: str, value: float | None = None) -> str:
    ci = stats.get(f"{key}_ci")
    value = stats.get(key) if value is None else value
    return _num(value) + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def variance_table(results: list[dict[str, Any]]) -> str:
    """Measured gradient-variance ratios to uniform (95 % bootstrap CI over draws) next to the analytic Eq 44 ratio."""
    if not results:
        return ""
    lines = []
    for result in results:
        lines.append(f"Checkpoints of `{result['source_run']}`; {len(result['prompts'])} training prompts, budget "
                     f"{result['budget']} rollouts, {result['draws']} independent draws per allocation. Ratios are "
                     "to uniform allocation (GRPO) at the same weights; noise-to-signal = tr Cov(g) / ‖E g‖².\n")
        head = ["step", "allocation", "rollouts", "n_i range", "rollouts in zero-variance groups",
                "analytic Eq 44 ratio", "per-prompt-mean gradient: variance ratio",
                "token-mean GRPO gradient: variance ratio", "token-mean: noise-to-signal ratio",
                "per-prompt-mean: noise-to-signal ratio"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for entry in result["checkpoints"]:
            reference = entry["allocations"].get("grpo", {})
            for name, stats in entry["allocations"].items():
                cells = [str(entry["step"]), label(name) if name != "grpo" else "uniform (GRPO)",
                         str(stats["rollouts"]), f"[{min(stats['num_rollouts'])}, {max(stats['num_rollouts'])}]",
                         _num(stats.get("zero_variance_share"), ".1%"), _num(stats.get("analytic_ratio")),
                         _ratio_cell(stats, "measured_ratio_prompt"), _ratio_cell(stats, "measured_ratio_token")]
                for k in ("token", "prompt"):
                    value = stats.get(f"relative_ratio_{k}")
                    if value is None:
                        value = _relative(stats, reference, k, result["draws"])
                    cells.append(_ratio_cell(stats, f"relative_ratio_{k}", value))
                lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def ordered_rows(rows: dict[str, Any]) -> list[str]:
    """Table order: the main rows, the ablations, the allocator rows, then any other row by name."""
    known = list(dict.fromkeys([*MAIN_ROWS, *ABLATION_ROWS]))
    return ([r for r in known if r in rows] + sorted(r for r in rows if r.startswith("alloc_"))
            + sorted(r for r in rows if r not in known and not r.startswith("alloc_")))


def markdown(summary: dict[str, Any]) -> str:
    parts = []
    main = summary.get("main")
    if main:
        extra = [r for r in main["rows"] if r not in MAIN_ROWS and r not in ABLATION_ROWS and not r.startswith(
            "alloc_")]
        parts += ["## Main comparison (Table 1 layout)\n",
                  "Δ: paired over seeds (95 % t interval); n.s. = the interval contains 0, then MDE = the minimum "
                  "detectable effect at 80 % power from the same paired differences. Last column: rollouts until "
                  "the seed-mean held-out curve first reaches the accuracy at which GRPO's seed-mean curve has made "
                  f"{TARGET_GAIN:.0%} of its gain (start → mean of its last 3 evaluations), and the ratio to GRPO's "
                  "own crossing on the same seeds (\"method vs GRPO = ratio\"; 95 % bootstrap interval over seeds, the target "
                  "recomputed in each resample).\n",
                  table(main, ["grpo", "clip_higher", *SAMPLER_ROWS, *extra, "dynamo", "dynamo_theory"]),
                  resolution_note(main),
                  "\n## Ablations (Table 2 layout)\n",
                  table(main, [*ABLATION_ROWS], vs_dynamo=True),
                  "\n## Allocators inside DynaMO\n", allocator_table(main),
                  "\n## Multi-round samplers on GRPO (same generated budget)\n", sampler_table(main),
                  "\n## Mechanism statistics over training (means over steps and seeds)\n",
                  mechanism_table(main, ordered_rows(main["rows"])),
                  f"\n## Zero-variance groups at the start and the end of training (share of prompts, mean over "
                  f"seeds of the first and last {WINDOW} batches)\n",
                  zero_variance_table(main, ordered_rows(main["rows"])),
                  "\n## Mean rollouts per prompt by level over training\n",
                  allocation_table(main, [r for r in ("grpo", "dynamo", "dynamo_theory", "no_dra", "alloc_optimal",
                                                      "alloc_variance_matched", "alloc_knapsack")])]
    parts += ["\n## Budget sweep (mean rollouts per prompt)\n",
              budget_table(summary) if "budget" in summary else "_no budget-sweep runs have finished yet_\n"]
    if summary.get("variance"):
        parts += ["\n## Gradient-estimator variance at fixed checkpoints (measured vs Eq 44)\n",
                  variance_table(summary["variance"])]
    return "\n".join(p for p in parts if p)


def write_report(output: Path, plots_dir: Path) -> list[Path]:
    from experiments.study_plots import write_plots
    from experiments.study_runs import finite, write_json_atomic

    runs = load_results(output)
    if not runs:
        print(f"[study] no results in {output / 'results'} yet")
        return []
    summary = summarize(runs)
    shas = {r.get("model_sha256") for items in runs.values() for r in items if r.get("model_sha256")}
    if len(shas) > 1:
        print(f"[study] WARNING: runs started from different model weights: {sorted(shas)}")
    summary["model_sha256"] = sorted(shas)
    write_json_atomic(output / "summary.json", finite(summary))
    text = markdown(summary)
    (output / "summary.md").write_text(text, encoding="utf-8")
    plots_dir.mkdir(parents=True, exist_ok=True)
    (plots_dir / "study_tables.md").write_text(
        f"<!-- generated by experiments/study.py from {output}; do not edit -->\n\n{text}", encoding="utf-8")
    archive = archive_results(runs, summary, output, plots_dir)
    return [output / "summary.json", output / "summary.md", plots_dir / "study_tables.md", *archive,
            *write_plots(runs, summary, plots_dir)]


def archive_results(runs: Runs, summary: dict[str, Any], output: Path, plots_dir: Path) -> list[Path]:
    """Copies next to the plots, so every number of the tables can be traced without ``runs/`` (git-ignored):
    ``summary.json``, ``results.jsonl.gz`` (every result file, one compact JSON line each; ``zcat`` to read) and
    ``plan.json``."""
    import gzip
    import shutil

    from experiments.study_runs import finite

    plots_dir.mkdir(parents=True, exist_ok=True)
    (plots_dir / "summary.json").write_text(json.dumps(finite(summary), indent=1, allow_nan=False), encoding="utf-8")
    lines = [json.dumps(finite(r), separators=(",", ":"), allow_nan=False) for items in runs.values() for r in items]
    with open(plots_dir / "results.jsonl.gz", "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        gz.write(("\n".join(lines) + "\n").encode("utf-8"))
    (plots_dir / "results.jsonl").unlink(missing_ok=True)
    paths = [plots_dir / "summary.json", plots_dir / "results.jsonl.gz"]
    if (output / "plan.json").exists():
        shutil.copy2(output / "plan.json", plots_dir / "plan.json")
        paths.append(plots_dir / "plan.json")
    return paths
