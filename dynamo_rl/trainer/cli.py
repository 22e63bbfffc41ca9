"""``dynamo-rl train``: train with DynaMO, GRPO, a baseline or an ablation.

With no arguments it runs the embedded CPU demo (configs/demo.yaml: the shipped tiny model on the synthetic
arithmetic task, a few minutes on a laptop). Real use::

    dynamo-rl train --config configs/qwen2.5-math-1.5b-dapo-1gpu.yaml --model Qwen/Qwen2.5-Math-1.5B \\
        --dataset ../shared/data/dapo_math_17k.jsonl --method dynamo --preset official

Any config field can be overridden on the command line, as ``--loss.eps_high 0.2`` or ``--set loss.eps_high=0.2``
(values are YAML scalars: ``null``, ``true``, ``1e-4``). Precedence: defaults < --config file < --model/--dataset/
--method/--preset/--output < dotted overrides. ``--resume RUN_DIR`` continues RUN_DIR from its last checkpoint with
the configuration saved there (dotted overrides still apply, e.g. ``--run.steps 200`` to extend a run).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from dynamo_rl.presets import METHODS, PRESETS
from dynamo_rl.trainer.config import SECTIONS, load_config, parse_override, section_docs

DEMO_CONFIG = "demo.yaml"


def demo_config_path() -> Path:
    """The packaged copy of configs/demo.yaml."""
    return Path(str(resources.files("dynamo_rl").joinpath("configs", DEMO_CONFIG)))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = __doc__
    parser.add_argument("--config", help="YAML config file (default: the embedded CPU demo, configs/demo.yaml)")
    parser.add_argument("--model", help="policy: hub id or local path (data.model); 'demo' = the shipped tiny model")
    parser.add_argument("--dataset", help="training problems: hub id or JSONL/Parquet file (data.dataset)")
    parser.add_argument("--method", choices=sorted(METHODS), help="method bundle (default dynamo)")
    parser.add_argument("--preset", choices=sorted(PRESETS), help="preset applied before the method (default official)")
    parser.add_argument("--engine", choices=("builtin", "trl"), default="builtin",
                        help="builtin (this trainer) or trl (dynamo_rl.adapters.trl; needs trl)")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue RUN_DIR exactly from its last checkpoint")
    parser.add_argument("--output", metavar="DIR", help="run directory (run.output_dir)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="dotted override, e.g. --set loss.eps_high=0.2 (repeatable)")
    docs = section_docs()
    for name, cls in SECTIONS.items():
        group = parser.add_argument_group(f"{name} ({docs[name][0]})")
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            help_text = docs[name][1].get(f.name, "")
            group.add_argument(f"--{name}.{f.name}", dest=f"{name}.{f.name}", default=argparse.SUPPRESS,
                               metavar="V", help=f"{help_text} [default: {default!r}]".replace("%", "%%"))


def collect_overrides(args: argparse.Namespace) -> list[tuple[str, Any]]:
    """Named flags first, then ``--SECTION.FIELD`` flags and ``--set`` in command-line order."""
    import yaml

    out: list[tuple[str, Any]] = []
    for flag, key in (("model", "data.model"), ("dataset", "data.dataset"), ("method", "method"),
                      ("preset", "preset"), ("output", "run.output_dir")):
        if getattr(args, flag, None) is not None:
            out.append((key, getattr(args, flag)))
    for key, value in vars(args).items():
        if "." in key:
            out.append((key, yaml.safe_load(value) if value.strip() else ""))
    out.extend(parse_override(text) for text in args.overrides)
    return out


def run(args: argparse.Namespace) -> int:
    from dynamo_rl.trainer.update import NonFiniteError

    overrides = collect_overrides(args)
    if args.resume:
        config_path = Path(args.resume) / "config.yaml"
        if not config_path.exists():
            print(f"error: --resume {args.resume}: no config.yaml there", file=sys.stderr)
            return 2
        overrides = [(k, v) for k, v in overrides if k != "run.output_dir"] + [("run.output_dir", args.resume)]
    else:
        config_path = Path(args.config) if args.config else demo_config_path()
        if not args.config and not any(k == "run.output_dir" for k, _ in overrides):
            overrides.append(("run.output_dir", _free_demo_dir(load_config(config_path).run.output_dir)))
    try:
        config = load_config(config_path, overrides)
    except (ValueError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.engine == "trl":
        from dynamo_rl.adapters.trl.run import run_trl

        return int(run_trl(config, resume=bool(args.resume)) or 0)
    from dynamo_rl.trainer.loop import train

    try:
        result = train(config, resume=bool(args.resume))
    except (FileExistsError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except NonFiniteError as err:
        print(f"error: {err}; stopped, the last good checkpoint is kept in {config.run.output_dir}/checkpoints",
              file=sys.stderr)
        return 1
    print(_summary(result.records, result.run_dir))
    return 0


def _free_demo_dir(base: str) -> str:
    """``runs/demo``, or ``runs/demo-2``, ``-3``, ... when earlier demo runs are there (the demo never refuses)."""
    candidate, index = Path(base), 1
    while (candidate / "checkpoints").exists():
        index += 1
        candidate = Path(f"{base}-{index}")
    return str(candidate)


def _summary(records: list[dict[str, Any]], run_dir: Path) -> str:
    evals = [r for r in records if r.get("eval/acc") is not None]
    lines = [f"run directory: {run_dir}"]
    if len(evals) >= 2:
        first, last = evals[0], evals[-1]
        lines.append(f"held-out accuracy: {first['eval/acc']:.3f} (step {first['step']}) -> "
                     f"{last['eval/acc']:.3f} (step {last['step']})")
        for key in sorted(k for k in last if k.startswith("eval/level/")):
            if first.get(key) is not None:
                lines.append(f"  {key.split('/')[2]:>4}: {first[key]:.3f} -> {last[key]:.3f}")
    return "\n".join(lines)
