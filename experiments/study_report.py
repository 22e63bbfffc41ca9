"""Tables of the study from its result files: pass@1 / pass@k with 95 % t intervals over seeds, per difficulty level,
paired differences to GRPO, rollouts needed to reach GRPO's final accuracy, allocation per level.

``write_report(output, plots_dir)`` writes ``OUTPUT/summary.json``, ``OUTPUT/summary.md`` and the plots.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from experiments.stats import mean_curve, paired_difference, rollouts_to_target, t_interval
from experiments.study_plan import BASELINE_METHODS, LABELS, MAIN_METHODS

CURVE_KEY = "curve/heldout"
"""Held-out accuracy from the trainer's evaluation every ``eval_every`` steps (avg@n at T = 1): the learning curve."""
TARGET_POINTS = 2
"""GRPO's final accuracy (the rollouts-to-target goal) is the mean of its last this many evaluations."""
TRAIN_CURVE_KEY = "curve/train"
"""Accuracy on the training pool from the same evaluations (the quantity RL optimises)."""


def load_results(output: Path) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """``{(group, row): [result, ...]}`` sorted by seed."""
    runs: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for path in sorted((output / "results").glob("*/*/seed*.json")):
        result = json.loads(path.read_text())
        runs[(result["spec"]["group"], result["spec"]["row"])].append(result)
    return {key: sorted(items, key=lambda r: r["spec"]["seed"]) for key, items in runs.items()}


def label(row: str) -> str:
    return LABELS.get(row, row.replace("alpha=", "α = "))


def curve(result: dict[str, Any], key: str = CURVE_KEY) -> tuple[list[float], list[float]]:
    """``(rollouts, values)`` of one run at the steps where ``key`` was logged."""
    points = [(r["rollouts"], r[key]) for r in result["curve"] if r.get(key) is not None]
    return [p[0] for p in points], [p[1] for p in points]


def levels_of(results: list[dict[str, Any]]) -> list[str]:
    names = {name for r in results for name in r["final"]["levels"]}
    return sorted(names, key=lambda n: int(n[1:]) if n[1:].isdigit() else n)


def summarize_row(results: list[dict[str, Any]], grpo: list[dict[str, Any]] | None,
                  target: dict[str, float] | None, grpo_total: float | None) -> dict[str, Any]:
    """Intervals of the final metrics, paired Δ to GRPO, and rollouts-to-target of the seed-mean curve."""
    ks = sorted({k for r in results for k in r["final"] if k.startswith("pass@")}, key=lambda k: int(k[5:]))
    seeds = {r["spec"]["seed"]: r for r in results}
    row: dict[str, Any] = {"seeds": sorted(seeds), "n": len(results)}
    for k in ks:
        row[k] = t_interval([r["final"][k] for r in results]).to_dict()
    row["levels"] = {name: {k: t_interval([r["final"]["levels"][name][k] for r in results
                                           if name in r["final"]["levels"]]).to_dict() for k in ks}
                     for name in levels_of(results)}
    if grpo:
        grpo_by_seed = {r["spec"]["seed"]: r["final"]["pass@1"] for r in grpo}
        row["delta_pass@1"] = paired_difference({s: r["final"]["pass@1"] for s, r in seeds.items()},
                                                grpo_by_seed).to_dict()
    trains = [r["final_train"] for r in results if r.get("final_train")]
    if trains:
        row["train_pass@1"] = t_interval([t["pass@1"] for t in trains]).to_dict()
    for suffix, key in (("", CURVE_KEY), ("_train", TRAIN_CURVE_KEY)):
        xs, ys = mean_curve([curve(r, key) for r in results])
        row["curve_final" + suffix] = float(ys[-1]) if ys.size else None
        goal = (target or {}).get(key)
        if goal is not None and np.isnan(goal):
            row["ratio_to_grpo" + suffix] = "n/a"
        elif goal is not None and xs.size:
            needed = rollouts_to_target(xs, ys, goal)
            row["rollouts_to_target" + suffix] = needed
            row["ratio_to_grpo" + suffix] = needed / grpo_total if needed is not None and grpo_total else None
    alloc = defaultdict(list)
    for r in results:
        for rec in r["curve"]:
            for key, value in rec.items():
                if key.startswith("level/") and key.endswith("/num_rollouts_mean") and value is not None:
                    alloc[key.split("/")[1]].append(value)
    row["mean_rollouts_per_level"] = {lv: float(np.mean(v)) for lv, v in sorted(alloc.items())}
    row["seconds_per_run"] = float(np.mean([r["seconds"]["total"] for r in results]))
    return row


def summarize(runs: dict[tuple[str, str], list[dict[str, Any]]]) -> dict[str, Any]:
    """Per group, per row summaries; GRPO of the same group (α sweep: of ``main``) is the reference."""
    out: dict[str, Any] = {}
    for group in sorted({g for g, _ in runs}):
        ref_group = "main" if group == "alpha" else group
        grpo = runs.get((ref_group, "grpo"))
        target: dict[str, float] = {}
        grpo_total = None
        if grpo:
            for key in (CURVE_KEY, TRAIN_CURVE_KEY):
                _, ys = mean_curve([curve(r, key) for r in grpo])
                if ys.size >= 2:
                    # GRPO's final accuracy: mean of its last two evaluations (seed mean), less noisy than the last;
                    # NaN when it is not above the warm start (then "rollouts to reach it" means nothing).
                    final = float(np.mean(ys[-TARGET_POINTS:]))
                    target[key] = final if final > ys[0] else float("nan")
            grpo_total = float(np.mean([r["total_rollouts"] for r in grpo]))
        rows = {row: summarize_row(items, grpo, target, grpo_total) for (g, row), items in runs.items() if g == group}
        initial = [r["initial"] for r in (grpo or []) if r.get("initial")]
        start_train = [curve(r, TRAIN_CURVE_KEY)[1][0] for r in (grpo or []) if curve(r, TRAIN_CURVE_KEY)[0][:1] == [0]]
        out[group] = {"rows": rows, "target": target, "grpo_total_rollouts": grpo_total,
                      "initial_pass@1": t_interval([i["pass@1"] for i in initial]).to_dict() if initial else None,
                      "initial_train_curve": t_interval(start_train).to_dict() if start_train else None,
                      "initial_levels": {name: float(np.mean([i["levels"][name]["pass@1"] for i in initial]))
                                         for name in (initial[0]["levels"] if initial else {})}}
    return out


def _fmt(interval: dict[str, Any] | None, scale: float = 100.0) -> str:
    if not interval or interval.get("mean") is None:
        return "–"
    if interval.get("half_width") is None:
        return f"{interval['mean'] * scale:.1f}"
    return f"{interval['mean'] * scale:.1f} ± {interval['half_width'] * scale:.1f}"


def _ratio(row: dict[str, Any], suffix: str = "") -> str:
    if "ratio_to_grpo" + suffix not in row:
        return "–"
    value = row["ratio_to_grpo" + suffix]
    if isinstance(value, str):
        return value
    return "not reached" if value is None else f"{value:.2f}×"


def table(group: dict[str, Any], rows: list[str], k_high: str | None = None) -> str:
    """Markdown table laid out like the paper's Tables 1–2: methods as rows, levels and the average as columns."""
    present = [r for r in rows if r in group["rows"]]
    if not present:
        return "_no finished runs_\n"
    levels = list(group["rows"][present[0]]["levels"])
    ks = sorted({k for r in present for k in group["rows"][r] if k.startswith("pass@")}, key=lambda k: int(k[5:]))
    k_high = k_high or (ks[-1] if ks else "pass@1")
    head = ["Method", "seeds", *[f"{lv} P@1" for lv in levels], "Avg P@1", f"Avg {k_high.replace('pass', 'P')}",
            "Δ P@1 vs GRPO (paired)", "rollouts to GRPO final", "train-pool P@1", "rollouts to GRPO final (train pool)"]
    has_train = any("train_pass@1" in group["rows"][r] for r in present)
    width = len(head) if has_train else len(head) - 2
    head = head[:width]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    if group.get("initial_pass@1"):
        init = ["warm-start model (before RL)", "–", *[f"{group['initial_levels'].get(lv, float('nan')) * 100:.1f}"
                                                      for lv in levels], _fmt(group["initial_pass@1"]), "", "", "",
                _fmt(group.get("initial_train_curve")) + " (curve, step 0)", ""]
        lines.append("| " + " | ".join(init[:width]) + " |")
    for name in present:
        row = group["rows"][name]
        cells = [label(name), str(row["n"]), *[_fmt(row["levels"][lv]["pass@1"]) for lv in levels], _fmt(row["pass@1"]),
                 _fmt(row.get(k_high)), "–" if name == "grpo" else _fmt(row.get("delta_pass@1")), _ratio(row),
                 _fmt(row.get("train_pass@1")), _ratio(row, "_train")]
        lines.append("| " + " | ".join(cells[:width]) + " |")
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
        lines.append(f"| {label(name)} | " + " | ".join(f"{alloc[lv]:.2f}" for lv in levels) + " |")
    return "\n".join(lines) + "\n"


def markdown(summary: dict[str, Any]) -> str:
    parts = []
    main = summary.get("main")
    if main:
        target = main["target"]
        goals = ", ".join(f"{what} {'not above the warm start (n/a)' if np.isnan(target[k]) else f'{target[k]:.1%}'}"
                          for k, what in ((CURVE_KEY, "held-out"), (TRAIN_CURVE_KEY, "training pool")) if k in target)
        parts += ["## Main task (arith): DynaMO vs baselines (Table 1 layout)\n",
                  f"GRPO's final accuracy on the learning curve (mean of its last {TARGET_POINTS} evaluations, seed "
                  f"mean): {goals}; GRPO budget {main['grpo_total_rollouts']:.0f} rollouts per run.\n"
                  if target else "",
                  table(main, ["grpo", *BASELINE_METHODS, "dynamo", "dynamo_theory"]),
                  "\n## Ablations (Table 2 layout)\n", table(main, ["dynamo", *MAIN_METHODS[3:], "grpo"]),
                  "\n## Mean rollouts per prompt by level over training\n",
                  allocation_table(main, ["grpo", "dynamo", "dynamo_theory", "no_gc_ums", "no_dra"])]
    if "family2" in summary:
        parts += ["\n## Held-back task family (modmath)\n", table(summary["family2"], ["grpo", "dynamo"]),
                  allocation_table(summary["family2"], ["grpo", "dynamo"])]
    if "alpha" in summary:
        rows = sorted(summary["alpha"]["rows"], key=lambda r: float(r.split("=")[1]))
        parts += ["\n## α sensitivity (unified α, τ = 0.9)\n", table(summary["alpha"], rows)]
    return "\n".join(p for p in parts if p)


def write_report(output: Path, plots_dir: Path) -> list[Path]:
    from experiments.study_plots import write_plots
    from experiments.study_runs import finite, write_json_atomic

    runs = load_results(output)
    if not runs:
        print(f"[study] no results in {output / 'results'} yet")
        return []
    summary = summarize(runs)
    shas = {(r["spec"]["family"], r.get("model_sha256")) for items in runs.values() for r in items}
    if len({family for family, _ in shas}) != len(shas):
        print(f"[study] WARNING: runs of one task family started from different model weights: {sorted(shas)}")
    summary["model_sha256"] = sorted({f"{family}: {sha}" for family, sha in shas})
    write_json_atomic(output / "summary.json", finite(summary))
    text = markdown(summary)
    (output / "summary.md").write_text(text, encoding="utf-8")
    plots_dir.mkdir(parents=True, exist_ok=True)
    (plots_dir / "study_tables.md").write_text(
        f"<!-- generated by experiments/study.py from {output}; do not edit -->\n\n{text}", encoding="utf-8")
    return [output / "summary.json", output / "summary.md", plots_dir / "study_tables.md",
            *write_plots(runs, summary, plots_dir)]
