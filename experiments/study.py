"""The evidence study: DynaMO vs GRPO, its ablations and eight baselines at the same rollout budget on the built-in
graded-difficulty task, plus a held-back task family and an α sweep. One command, resumable, two worker processes.

    python experiments/study.py --quick                       # smoke test (≤ 5 min): few steps, 1 seed, 4 rows
    python experiments/study.py --output runs/study           # full study (docs/results.md), resumable
    python experiments/study.py --output runs/study --report-only   # tables and plots from what has finished

Each run trains with the built-in trainer (``dynamo_rl.trainer.loop.train``), then samples the held-out problems at
T = 1 for pass@1 (avg@n) and pass@k. Results go to ``OUTPUT/results/<group>/<row>/seed<k>.json`` (skipped when
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

from experiments.study_plan import QUICK_SIZES, RunSpec, Sizes, build_plan  # noqa: E402
from experiments.study_runs import execute_run, model_dir, pretrain_family, result_path, write_json_atomic  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke-test mode: tiny runs, 1 seed, a few methods")
    parser.add_argument("--output", default=None, help="study folder (default runs/study, or runs/study_quick)")
    parser.add_argument("--plots", default=None,
                        help="folder for the PNG plots and tables (default docs/results/<name of OUTPUT>, or "
                             "OUTPUT/plots with --quick)")
    parser.add_argument("--workers", type=int, default=2, help="parallel training processes (1 torch thread each)")
    parser.add_argument("--main-seeds", type=int, default=5, help="seeds of GRPO, DynaMO and the ablations")
    parser.add_argument("--baseline-seeds", type=int, default=3, help="seeds of the other baselines")
    parser.add_argument("--family2-seeds", type=int, default=5, help="seeds on the held-back task family")
    parser.add_argument("--alpha-seeds", type=int, default=3, help="seeds of each α of the sensitivity sweep")
    parser.add_argument("--model", default=None,
                        help="folder of the arith model to start from (default: a copy of the shipped demo model, made "
                             "once into OUTPUT/models/arith)")
    parser.add_argument("--steps", type=int, default=None, help="override the training steps of every run")
    parser.add_argument("--size", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a field of experiments.study_plan.Sizes (repeatable), e.g. --size lr=3e-4")
    parser.add_argument("--only", default=None, help="run only run ids containing one of these comma-separated texts (e.g. main/grpo/,main/dynamo/)")
    parser.add_argument("--report-only", action="store_true", help="no training: tables and plots from the results")
    parser.add_argument("--no-report", action="store_true", help="train only")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    args.output = Path(args.output or ("runs/study_quick" if args.quick else "runs/study"))
    args.plots = Path(args.plots) if args.plots else (
        args.output / "plots" if args.quick else REPO / "docs" / "results" / args.output.name)
    return args


def apply_size_overrides(sizes: Sizes, overrides: list[str]) -> Sizes:
    """``["lr=3e-4", "final_ks=1,4"]`` applied to ``sizes`` (values parsed by the field's type)."""
    types = {f.name: f.type for f in dataclasses.fields(Sizes)}
    changes: dict[str, Any] = {}
    for item in overrides:
        name, _, value = item.partition("=")
        if name not in types or not value:
            raise SystemExit(f"error: invalid --size {item!r}; expected FIELD=VALUE with FIELD in {', '.join(types)}")
        kind = str(types[name])
        if "tuple" in kind:
            changes[name] = tuple(int(v) for v in value.split(","))
        elif "float" in kind:
            changes[name] = float(value)
        else:
            changes[name] = int(value)
    return dataclasses.replace(sizes, **changes)


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _check_plan_file(output: Path, sizes: Sizes, quick: bool, model: str | None) -> None:
    """Refuse to mix results of different run sizes in one study folder."""
    path = output / "plan.json"
    sizes_dict = json.loads(json.dumps(dataclasses.asdict(sizes)))
    if path.exists():
        old = json.loads(path.read_text())
        if old.get("sizes") != sizes_dict:
            raise SystemExit(f"error: {output} holds a study with other sizes ({old.get('sizes')}); "
                             f"use another --output or delete it")
    write_json_atomic(path, {"sizes": sizes_dict, "quick": quick, "model": model, "model_card": _model_card(model),
                             "commit": git_commit(),
                             "command": " ".join([sys.executable, *sys.argv])})


def _model_card(model: str | None) -> dict[str, Any]:
    """SHA-256 of the arith model's weights and its measured warm-start accuracy (demo_card.json)."""
    import hashlib

    from dynamo_rl.demo.model import DEMO_ASSETS

    folder = Path(model) if model else DEMO_ASSETS
    weights = folder / "model.safetensors"
    card_path = folder / "demo_card.json"
    card = json.loads(card_path.read_text()) if card_path.exists() else {}
    return {"folder": str(folder), "sha256": hashlib.sha256(weights.read_bytes()).hexdigest() if weights.exists()
            else None, "accuracy_t1": card.get("accuracy_t1"), "accuracy_greedy": card.get("accuracy_greedy"),
            "command": card.get("command")}


def _snapshot_demo_model(output: Path) -> str:
    """Copy the shipped demo model into OUTPUT/models/arith once, so every run of the study (and a resumed study)
    starts from the same weights even if the package's model is rebuilt meanwhile."""
    import shutil

    from dynamo_rl.demo.model import DEMO_ASSETS

    target = output / "models" / "arith"
    if not (target / "model.safetensors").exists():
        tmp = output / "models" / ".arith.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.copytree(DEMO_ASSETS, tmp)
        tmp.rename(target)
    return str(target.resolve())


def _init_worker() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


def run_all(specs: list[RunSpec], sizes: Sizes, output: Path, workers: int, model: str | None = None) -> list[str]:
    """Train every spec without a result file, ``workers`` at a time; returns the ids of failed runs."""
    todo = [s for s in specs if not result_path(output, s).exists()]
    families = sorted({s.family for s in todo if s.family != "arith" and not (model_dir(output, s.family) /
                                                                               "model.safetensors").exists()})
    total = len(todo) + len(families)
    print(f"[study] {len(specs) - len(todo)} of {len(specs)} runs already done; {len(todo)} runs and "
          f"{len(families)} warm starts to do with {workers} workers", flush=True)
    if not total:
        return []
    sizes_dict = json.loads(json.dumps(dataclasses.asdict(sizes)))
    pending_pretrain = set(families)
    failed: list[str] = []
    done = 0
    start = time.perf_counter()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker) as pool:
        running: dict[Future, str] = {}
        for family in families:
            running[pool.submit(pretrain_family, family, sizes.pretrain_steps, str(output), model)] = f"pretrain/{family}"
        while todo or running:
            ready = [s for s in todo if s.family not in pending_pretrain]
            while ready and len(running) < workers + 1:  # one queued task keeps both workers busy
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
                if name.startswith("pretrain/"):
                    family = name.split("/", 1)[1]
                    pending_pretrain.discard(family)
                    if name in failed:
                        skipped = [s for s in todo if s.family == family]
                        failed.extend(s.run_id for s in skipped)
                        todo = [s for s in todo if s.family != family]
    print(f"[study] finished in {(time.perf_counter() - start) / 60:.1f} min; {len(failed)} failed", flush=True)
    return failed


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sizes = QUICK_SIZES if args.quick else Sizes()
    if args.steps is not None:
        sizes = dataclasses.replace(sizes, steps=args.steps)
    sizes = apply_size_overrides(sizes, args.size)
    specs = build_plan(quick=args.quick, main_seeds=args.main_seeds, baseline_seeds=args.baseline_seeds,
                       family2_seeds=args.family2_seeds, alpha_seeds=args.alpha_seeds)
    if args.only:
        specs = [s for s in specs if any(part in s.run_id for part in args.only.split(","))]
    args.output.mkdir(parents=True, exist_ok=True)
    failed: list[str] = []
    if not args.report_only:
        model = str(Path(args.model).resolve()) if args.model else _snapshot_demo_model(args.output)
        _check_plan_file(args.output, sizes, args.quick, model)
        failed = run_all(specs, sizes, args.output, args.workers, model)
        if failed:
            write_json_atomic(args.output / "failures.json", failed)
    if not args.no_report:
        from experiments.study_report import write_report

        paths = write_report(args.output, args.plots)
        print("[study] wrote " + ", ".join(str(p) for p in paths), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
