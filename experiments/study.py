"""The evidence study in the paper's regime (several off-policy updates per rollout batch): GRPO, DynaMO (official and
theory presets), its ablations, Clip-Higher and the allocators of the core library at the same rollout budget on the
built-in graded-difficulty task; a budget sweep; and the gradient-estimator variance measured directly at fixed
checkpoints. One command, resumable, two worker processes.

    python experiments/study.py --quick --output /tmp/q       # smoke test (< 5 min): tiny runs, 1 seed
    python experiments/study.py --output runs/study3          # full study (docs/results.md), resumable
    python experiments/study.py --output runs/study3 --report-only   # tables and plots from what has finished
    python experiments/study.py --output runs/study3 --only main/grpo/,main/dynamo/ --core-seeds 8   # a subset
    python experiments/study.py --row dapo=dapo --rows grpo,dynamo,dapo ...   # a new row by name, no code change

Each training run uses the built-in trainer (``dynamo_rl.trainer.loop.train``), then samples the held-out problems
at T = 1 for pass@1 (avg@n) and pass@k. Results go to ``OUTPUT/results/<group>/<row>/seed<k>.json`` (skipped when
present, so an interrupted study continues where it stopped), tables to ``OUTPUT/summary.{json,md}`` and plots to
``--plots`` (default ``docs/results/<name of OUTPUT>`` for the full study, ``OUTPUT/plots`` for ``--quick``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from experiments.study_plan import (  # noqa: E402
    ALLOCATORS,
    BUDGET_ROWS,
    BUDGETS,
    MAIN_ROWS,
    QUICK_OPTIONS,
    QUICK_SIZES,
    PlanOptions,
    RunSpec,
    Sizes,
    build_plan,
    define_row,
    resolve_row,
)
from experiments.study_runs import execute_run, result_path, write_json_atomic  # noqa: E402


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke-test mode: tiny runs, 1 seed, a few rows")
    parser.add_argument("--output", default=None, help="study folder (default runs/study3, or runs/study_quick)")
    parser.add_argument("--plots", default=None,
                        help="folder for the PNG plots and tables (default docs/results/<name of OUTPUT>, or "
                             "OUTPUT/plots with --quick)")
    parser.add_argument("--workers", type=int, default=2, help="parallel worker processes (1 torch thread each)")
    parser.add_argument("--core-seeds", type=int, default=None, help="seeds of GRPO and DynaMO (default 16)")
    parser.add_argument("--main-seeds", type=int, default=None,
                        help="seeds of the other rows of the main group (default 8)")
    parser.add_argument("--budget-seeds", type=int, default=None, help="seeds of the budget sweep (default 8)")
    parser.add_argument("--rows", type=_names, default=None,
                        help=f"main-group rows, comma-separated (default {','.join(MAIN_ROWS)}); names from "
                             "experiments.study_plan.ROWS, dynamo_rl.presets.METHODS or --row")
    parser.add_argument("--row", action="append", default=[], metavar="NAME=METHOD[:PRESET][,SECTION.FIELD=VALUE...]",
                        help="define a row and add it to the main group (repeatable), e.g. "
                             "--row eps_high_0.3=grpo,loss.eps_high=0.3")
    parser.add_argument("--allocators", type=_names, default=None,
                        help=f"allocator rows inside DynaMO (default {','.join(ALLOCATORS)}; names missing from "
                             "dynamo_rl.core.allocation.ALLOCATOR_NAMES are skipped with a note)")
    parser.add_argument("--budgets", type=lambda t: tuple(int(v) for v in _names(t)), default=None,
                        help=f"mean rollouts per prompt of the budget sweep (default {','.join(map(str, BUDGETS))})")
    parser.add_argument("--budget-rows", type=_names, default=None,
                        help=f"rows of the budget sweep (default {','.join(BUDGET_ROWS)})")
    parser.add_argument("--no-variance", action="store_true", help="skip the gradient-variance measurement")
    parser.add_argument("--model", default=None,
                        help="folder of the model to start from (default: a copy of experiments/models/study3_arith, "
                             "the weights study 3 started from, made once into OUTPUT/models/arith)")
    parser.add_argument("--steps", type=int, default=None, help="override the training steps of every run")
    parser.add_argument("--size", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a field of experiments.study_plan.Sizes (repeatable), e.g. --size lr=3e-4")
    parser.add_argument("--only", default=None,
                        help="run only unit ids containing one of these comma-separated texts (e.g. main/grpo/,"
                             "main/dynamo/,variance/)")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="submit no new unit after this many minutes (finished runs are kept; rerun to continue)")
    parser.add_argument("--report-only", action="store_true", help="no training: tables and plots from the results")
    parser.add_argument("--no-report", action="store_true", help="train only")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    args.output = Path(args.output or ("runs/study_quick" if args.quick else "runs/study3"))
    args.plots = Path(args.plots) if args.plots else (
        args.output / "plots" if args.quick else REPO / "docs" / "results" / args.output.name)
    return args


def plan_options(args: argparse.Namespace) -> PlanOptions:
    base = QUICK_OPTIONS if args.quick else PlanOptions()
    extra = dict(define_row(text) for text in args.row)
    for name in extra:
        resolve_row(name, extra)
    changes: dict[str, Any] = {"extra_rows": extra, "variance": not args.no_variance}
    for field, value in (("core_seeds", args.core_seeds), ("main_seeds", args.main_seeds),
                         ("budget_seeds", args.budget_seeds), ("rows", args.rows), ("allocators", args.allocators),
                         ("budgets", args.budgets), ("budget_rows", args.budget_rows)):
        if value is not None:
            changes[field] = value
    options = dataclasses.replace(base, **changes)
    for name in options.rows:
        resolve_row(name, extra)  # unknown names fail before anything runs
    if args.allocators is not None:  # names the user typed must exist; the default list may run ahead of the library
        from dynamo_rl.core.allocation import ALLOCATOR_NAMES

        unknown = [name for name in args.allocators if name not in ALLOCATOR_NAMES]
        if unknown:
            raise ValueError(f"unknown allocator(s) {', '.join(unknown)} in --allocators; known: "
                             f"{', '.join(ALLOCATOR_NAMES)}")
    return options


def apply_size_overrides(sizes: Sizes, overrides: list[str]) -> Sizes:
    """``["lr=3e-4", "final_ks=1,4"]`` applied to ``sizes`` (values parsed by the field's type)."""
    types = {f.name: f.type for f in dataclasses.fields(Sizes)}
    changes: dict[str, Any] = {}
    for item in overrides:
        name, _, value = item.partition("=")
        if name not in types or not value:
            raise SystemExit(f"error: invalid --size {item!r}; expected FIELD=VALUE with FIELD in {', '.join(types)}")
        kind = str(types[name])
        try:
            if "tuple" in kind:
                changes[name] = tuple(int(v) for v in value.split(","))
            elif "float" in kind:
                changes[name] = float(value)
            else:
                changes[name] = int(value)
        except ValueError:
            expected = ("comma-separated integers" if "tuple" in kind else "a number" if "float" in kind
                        else "an integer")
            raise SystemExit(f"error: invalid --size {item!r}: {name} must be {expected}") from None
    return dataclasses.replace(sizes, **changes)


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _check_plan_file(output: Path, sizes: Sizes, quick: bool, model: str | None) -> None:
    """Refuse to mix results of different run sizes, or of different starting weights, in one study folder."""
    path = output / "plan.json"
    sizes_dict = json.loads(json.dumps(dataclasses.asdict(sizes)))
    card = _model_card(model)
    commands: list[str] = []
    if path.exists():
        old = json.loads(path.read_text())
        if old.get("sizes") != sizes_dict:
            raise SystemExit(f"error: {output} holds a study with other sizes ({old.get('sizes')}); "
                             f"use another --output or delete it")
        old_sha = (old.get("model_card") or {}).get("sha256")
        if old_sha and card["sha256"] and old_sha != card["sha256"]:
            raise SystemExit(f"error: {output} holds a study that started from other weights (sha256 {old_sha[:12]}…, "
                             f"now {card['sha256'][:12]}… from {card['folder']}); use another --output or delete it")
        commands = old.get("commands", [old["command"]] if "command" in old else [])
    command = " ".join([Path(sys.executable).name, *sys.argv])
    write_json_atomic(path, {"sizes": sizes_dict, "quick": quick, "model": model, "model_card": card,
                             "commit": git_commit(), "command": command, "commands": [*commands, command]})


def _model_card(model: str | None) -> dict[str, Any]:
    """SHA-256 of the model's weights and its measured warm-start accuracy (demo_card.json)."""
    import hashlib

    from dynamo_rl.demo.model import DEMO_ASSETS

    folder = Path(model) if model else DEMO_ASSETS
    weights = folder / "model.safetensors"
    card_path = folder / "demo_card.json"
    card = json.loads(card_path.read_text()) if card_path.exists() else {}
    return {"folder": str(folder), "sha256": hashlib.sha256(weights.read_bytes()).hexdigest() if weights.exists()
            else None, "accuracy_t1": card.get("accuracy_t1"), "accuracy_greedy": card.get("accuracy_greedy"),
            "command": card.get("command")}


STUDY_MODEL = REPO / "experiments" / "models" / "study3_arith"
"""The warm-start weights every run of study 3 started from (sha256 ``3898e150…``: the demo model as of the study,
saved as the equivalent Llama), kept in the repository so that a study started on a fresh clone reproduces
docs/results.md. ``--model dynamo_rl/demo/assets`` starts from the currently shipped demo model instead."""


def _snapshot_demo_model(output: Path) -> str:
    """Copy the study's warm-start model into OUTPUT/models/arith once, so every run of the study (and a resumed
    study) starts from the same weights."""
    import shutil

    target = output / "models" / "arith"
    if not (target / "model.safetensors").exists():
        tmp = output / "models" / ".arith.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(STUDY_MODEL, tmp)
        tmp.rename(target)
    return str(target.resolve())


def _init_worker() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


def run_all(specs: list[RunSpec], sizes: Sizes, output: Path, workers: int, model: str | None = None,
            max_minutes: float | None = None) -> list[str]:
    """Run every unit without a result file, ``workers`` at a time, each after the unit it needs; returns the ids
    of failed (or, past ``max_minutes``, unstarted) units."""
    todo = [s for s in specs if not result_path(output, s).exists()]
    print(f"[study] {len(specs) - len(todo)} of {len(specs)} units already done; {len(todo)} to do with {workers} "
          f"workers", flush=True)
    if not todo:
        return []
    sizes_dict = json.loads(json.dumps(dataclasses.asdict(sizes)))
    total = len(todo)
    failed: list[str] = []
    done = 0
    start = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker) as pool:
        running: dict[Future, str] = {}
        while todo or running:
            in_time = max_minutes is None or time.perf_counter() - start < max_minutes * 60
            pending = {s.run_id for s in todo} | set(running.values())
            ready = [s for s in todo if s.after is None or (s.after not in pending and s.after not in failed)]
            blocked = [s for s in todo if s.after is not None and s.after in failed]
            for spec in blocked:
                todo.remove(spec)
                failed.append(spec.run_id)
                print(f"[study] SKIPPED {spec.run_id}: {spec.after} failed", flush=True)
            while in_time and ready and len(running) < workers + 1:  # one queued task keeps both workers busy
                spec = ready.pop(0)
                todo.remove(spec)
                running[pool.submit(execute_run, spec.to_dict(), sizes_dict, str(output), model)] = spec.run_id
            if not running:
                break
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in finished:
                name = running.pop(future)
                done += 1
                elapsed = time.perf_counter() - start
                eta = elapsed / done * (total - done)
                try:
                    summary = future.result()
                    extra = f"pass@1={summary['pass@1']:.3f}" if "pass@1" in summary else ""
                    print(f"[study {done}/{total} {elapsed / 60:5.1f} min, eta {eta / 60:5.1f} min] {name} "
                          f"{summary['seconds']:.0f}s {extra}", flush=True)
                except Exception as err:  # noqa: BLE001 - one failed run must not stop the study
                    failed.append(name)
                    print(f"[study {done}/{total}] FAILED {name}: {type(err).__name__}: {err}", flush=True)
    if todo:
        print(f"[study] stopped after --max-minutes {max_minutes}: {len(todo)} units not started; rerun the same "
              f"command to continue", flush=True)
    print(f"[study] finished in {(time.perf_counter() - start) / 60:.1f} min; {len(failed)} failed", flush=True)
    return failed


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sizes = QUICK_SIZES if args.quick else Sizes()
    if args.steps is not None:
        sizes = dataclasses.replace(sizes, steps=args.steps)
    sizes = apply_size_overrides(sizes, args.size)
    try:
        options = plan_options(args)
    except (KeyError, ValueError) as err:
        raise SystemExit(f"error: {err}") from None
    specs = build_plan(options, quiet=args.report_only)
    if args.only:
        specs = [s for s in specs if any(part in s.run_id for part in args.only.split(","))]
    if not args.report_only and args.model and not (Path(args.model) / "model.safetensors").is_file():
        raise SystemExit(f"error: --model {args.model}: no model.safetensors there (a folder written by "
                         f"`dynamo-rl pretrain-demo --output FOLDER`, or experiments/models/study3_arith)")
    args.output.mkdir(parents=True, exist_ok=True)
    failed: list[str] = []
    if not args.report_only:
        model = str(Path(args.model).resolve()) if args.model else _snapshot_demo_model(args.output)
        _check_plan_file(args.output, sizes, args.quick, model)
        print(f"[study] {sizes.steps} rollout batches × {sizes.prompts_per_step} prompts × {sizes.mean_rollouts} "
              f"rollouts = {sizes.total_rollouts} rollouts per run; {sizes.updates_per_batch} optimiser steps per "
              f"batch (mini-batches of {sizes.mini_batch_prompts} prompts)", flush=True)
        failed = run_all(specs, sizes, args.output, args.workers, model, args.max_minutes)
        if failed:
            write_json_atomic(args.output / "failures.json", failed)
    if not args.no_report:
        from experiments.study_report import write_report

        paths = write_report(args.output, args.plots)
        print("[study] wrote " + ", ".join(str(p) for p in paths), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
