"""``dynamo-rl train``: train with DynaMO, GRPO, a baseline or an ablation, on the built-in engine or TRL.

This module is the engine switch: it reads the run config (:mod:`dynamo_rl.run.config`), checks what can be checked
before anything expensive, and hands the run to ``dynamo_rl.trainer`` (``run.engine=builtin``) or
``dynamo_rl.adapters.trl`` (``run.engine=trl``). Both write the same run directory (``docs/training.md``).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from dynamo_rl.presets import METHODS, PRESETS
from dynamo_rl.run.config import ENGINES, SECTIONS, TOP_LEVEL, ConfigError, TrainConfig, check_key, config_from_dict
from dynamo_rl.run.config_docs import section_docs
from dynamo_rl.run.config_files import load_config, parse_override, parse_value, read_config_file

DEMO_CONFIG = "demo.yaml"
USAGE = "dynamo-rl train [--config FILE | --resume RUN_DIR] [options] [--SECTION.FIELD VALUE ...]"
DESCRIPTION = """\
Train a policy with DynaMO (or GRPO, a baseline, an ablation). With no arguments: the CPU demo (the shipped tiny
model on graded arithmetic, about 4 minutes on 2 cores).

  dynamo-rl train                                        # the demo
  dynamo-rl train --config my.yaml --method grpo         # a config file, another method
  dynamo-rl train --engine trl --run.steps 4 --output X  # the same run through TRL's GRPOTrainer
  dynamo-rl train --resume X --run.steps 6               # continue X (more steps)

Any config field can be set as --SECTION.FIELD VALUE or --set SECTION.FIELD=VALUE (YAML scalars: null, true, 1e-4).
Precedence: defaults < preset < method < the config file's fields < command-line fields. `dynamo-rl train
--help-all` lists every field; docs/training.md explains them."""

# Fields that --resume may change: they do not alter what the run computes (more steps, logging, resources).
RESUME_MAY_CHANGE = frozenset({
    "run.steps", "run.eval_every", "run.checkpoint_every", "run.keep_checkpoints", "run.progress", "run.plots",
    "run.tensorboard", "run.wandb", "run.wandb_project", "run.num_verifier_workers", "run.threads",
})


def demo_config_path() -> Path:
    """The packaged copy of configs/demo.yaml."""
    return Path(str(resources.files("dynamo_rl").joinpath("configs", DEMO_CONFIG)))


class _HelpAll(argparse.Action):
    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest=dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        print(full_help())
        parser.exit(0)


def full_help() -> str:
    """Every config field, grouped by section, with its default and description (plain text)."""
    lines = [f"usage: {USAGE}", "", "Config fields (set as --SECTION.FIELD VALUE):"]
    docs = section_docs()
    for name, cls in SECTIONS.items():
        lines += ["", f"{name}: {_plain_text(docs[name][0])}"]
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            lines.append(f"  --{name}.{f.name} (default {default!r})")
            lines.append(f"      {_plain_text(docs[name][1].get(f.name, ''))}")
    return "\n".join(lines)


def _plain_text(text: str) -> str:
    """Docstring reST (``code``, :class:`x`) as plain text."""
    import re

    return re.sub(r":\w+:`~?([^`]+)`", r"\1", text).replace("``", "")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.usage = USAGE
    parser.description = DESCRIPTION
    main = parser.add_argument_group("run")
    main.add_argument("--config", metavar="FILE", help="YAML config (default: the CPU demo, configs/demo.yaml)")
    main.add_argument("--resume", metavar="RUN_DIR", help="continue RUN_DIR from its last checkpoint, as it was")
    main.add_argument("--output", metavar="DIR", help="run directory (run.output_dir)")
    main.add_argument("--engine", choices=ENGINES, help="builtin (default) or trl (run.engine)")
    method = parser.add_argument_group("method")
    method.add_argument("--method", choices=sorted(METHODS), metavar="NAME",
                        help=f"method bundle: {', '.join(sorted(METHODS))} (default dynamo)")
    method.add_argument("--preset", choices=sorted(PRESETS), metavar="NAME",
                        help=f"preset applied before the method: {', '.join(sorted(PRESETS))} (default official)")
    data = parser.add_argument_group("data")
    data.add_argument("--model", help="policy: hub id or local folder (data.model); 'demo' = the shipped tiny model")
    data.add_argument("--dataset", help="training problems: hub id or JSONL/Parquet file (data.dataset)")
    more = parser.add_argument_group("other fields")
    more.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                      help="set a config field, e.g. --set loss.eps_high=0.2 (repeatable)")
    more.add_argument("--help-all", action=_HelpAll, help="list every config field and exit")
    for name, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            parser.add_argument(f"--{name}.{f.name}", dest=f"{name}.{f.name}", default=argparse.SUPPRESS,
                                metavar="V", help=argparse.SUPPRESS)


_NEGATIVE_NUMBER = re.compile(r"^-(\.?(inf|Inf|INF)|\.?[0-9][0-9_]*(\.[0-9_]*)?([eE][-+]?[0-9]+)?)$")
"""A YAML number with a minus sign (``-1``, ``-0.5``, ``-1e-5``, ``-.inf``); argparse takes some of them for a flag."""


def normalize_argv(argv: list[str]) -> list[str]:
    """``--SECTION.FIELD -1e-5`` → ``--SECTION.FIELD=-1e-5``: argparse reads ``-1e-5`` or ``-.inf`` after a flag as
    another flag ("expected one argument"); a negative number there is the field's value."""
    out: list[str] = []
    index = 0
    while index < len(argv):
        token = argv[index]
        if (token.startswith("--") and "=" not in token and _field_flag(token[2:]) and index + 1 < len(argv)
                and _NEGATIVE_NUMBER.match(argv[index + 1])):
            out.append(f"{token}={argv[index + 1]}")
            index += 2
            continue
        out.append(token)
        index += 1
    return out


def _field_flag(name: str) -> bool:
    section, _, field = name.partition(".")
    return section in SECTIONS and field in {f.name for f in dataclasses.fields(SECTIONS[section])}


def collect_overrides(args: argparse.Namespace) -> list[tuple[str, Any]]:
    """Named flags first, then ``--SECTION.FIELD`` flags and ``--set`` in command-line order."""
    out: list[tuple[str, Any]] = []
    for flag, key in (("model", "data.model"), ("dataset", "data.dataset"), ("method", "method"),
                      ("preset", "preset"), ("output", "run.output_dir"), ("engine", "run.engine")):
        if getattr(args, flag, None) is not None:
            out.append((key, getattr(args, flag)))
    for key, value in vars(args).items():
        if "." in key:
            out.append((key, parse_value(f"--{key}", value)))
    out.extend(parse_override(text) for text in args.overrides)
    return out


def resume_config(run_dir: str, overrides: list[tuple[str, Any]], args: argparse.Namespace) -> TrainConfig:
    """The saved config of ``run_dir`` with only the changes that keep the run the same run (more steps, logging);
    anything else is refused, naming the flag, its saved value and what to do instead."""
    path = Path(run_dir)
    if path.is_file():
        raise ConfigError(f"--resume {run_dir}: a file, expected a run directory (the folder that holds config.yaml "
                          f"and checkpoints/, e.g. --resume {path.parent})")
    if not path.is_dir():
        raise ConfigError(f"--resume {run_dir}: no such run directory")
    if args.config:
        raise ConfigError(f"--resume {run_dir} uses {path / 'config.yaml'}; --config cannot be combined with it "
                          f"(to start a new run from that config: --config {path / 'config.yaml'} --output NEW_DIR)")
    if not (path / "config.yaml").exists():
        raise ConfigError(f"--resume {run_dir}: no config.yaml there (not a dynamo-rl run directory)")
    raw = read_config_file(path / "config.yaml")
    missing = [key for key in (*TOP_LEVEL, *SECTIONS, "explicit") if key not in raw]
    if missing:  # dynamo-rl writes every key; a file without some is truncated (or not ours): never fill in defaults
        copies = sorted((path / "checkpoints").glob("*/config.yaml"))
        hint = f"; the newest checkpoint keeps a copy: {copies[-1]}" if copies else ""
        raise ConfigError(f"--resume {run_dir}: {path / 'config.yaml'} is incomplete (no {', '.join(missing)}; it may "
                          f"be truncated), so the run it describes is unknown{hint}")
    saved = load_config(path / "config.yaml")
    saved_values = _dotted(saved)
    for key, _ in overrides:
        check_key(key)
    for key, value in overrides:
        if key == "run.output_dir":
            if Path(str(value)).resolve() != path.resolve():
                raise ConfigError(f"--output {value} cannot be combined with --resume {run_dir}: a resumed run "
                                  "stays in its directory")
            continue
        if key in RESUME_MAY_CHANGE:
            continue
        old = saved_values.get(key, saved.method_name if key == "method" else saved.preset if key == "preset" else None)
        if _same(old, value):
            continue
        raise ConfigError(f"--resume {run_dir}: {_flag(key)} {value!r} would change the run (it ran with {old!r}); "
                          f"only {', '.join(sorted(RESUME_MAY_CHANGE))} may change. To train a variant, start a new "
                          f"run: --config {path / 'config.yaml'} {_flag(key)} {value} --output NEW_DIR")
    changes = [(k, v) for k, v in overrides if k in RESUME_MAY_CHANGE] + [("run.output_dir", str(path))]
    return config_from_dict(raw, changes)


def _flag(key: str) -> str:
    return {"run.engine": "--engine", "method": "--method", "preset": "--preset", "data.model": "--model",
            "data.dataset": "--dataset"}.get(key, f"--{key}")


def _same(old: Any, new: Any) -> bool:
    if isinstance(old, (list, tuple)) and isinstance(new, (list, tuple)):
        return list(old) == list(new)
    if isinstance(old, float) and isinstance(new, (int, float)) and not isinstance(new, bool):
        return old == float(new)
    return old == new


def _dotted(config: TrainConfig) -> dict[str, Any]:
    out = {}
    for name in SECTIONS:
        section = getattr(config.method, name) if name in ("allocation", "modulation", "loss") else getattr(config, name)
        for f in dataclasses.fields(section):
            out[f"{name}.{f.name}"] = getattr(section, f.name)
    return out


def _free_demo_dir(base: str) -> str:
    """``runs/demo``, or ``runs/demo-2``, ``-3``, ... when earlier demo runs are there (the demo never refuses)."""
    candidate, index = Path(base), 1
    while (candidate / "checkpoints").exists() or (candidate / "config.yaml").exists():
        index += 1
        candidate = Path(f"{base}-{index}")
    return str(candidate)


def build_config(args: argparse.Namespace) -> TrainConfig:
    overrides = collect_overrides(args)
    if args.resume:
        return resume_config(args.resume, overrides, args)
    path = Path(args.config) if args.config else demo_config_path()
    if not args.config and not any(k == "run.output_dir" for k, _ in overrides):
        overrides.append(("run.output_dir", _free_demo_dir(load_config(path).run.output_dir)))
    return load_config(path, overrides)


def run(args: argparse.Namespace) -> int:
    from dynamo_rl.run.preflight import check_run

    config = build_config(args)
    start_step = check_run(config, resume=bool(args.resume))
    if config.run.engine == "trl":
        from dynamo_rl.adapters.trl.run import run_trl

        records = run_trl(config, resume=bool(args.resume))
    else:
        from dynamo_rl.trainer.loop import train
        from dynamo_rl.trainer.update import NonFiniteError

        try:
            records = train(config, resume=bool(args.resume)).records
            trained = [r["step"] for r in records if isinstance(r.get("step"), int) and r["step"] > 0]
            if trained:  # a resume that fell back to an older checkpoint starts earlier than preflight saw
                start_step = min(trained) - 1
        except NonFiniteError as err:
            print(f"error: {err}; stopped, the last good checkpoint is kept in {config.run.output_dir}/checkpoints",
                  file=sys.stderr)
            return 1
    from dynamo_rl.run.metrics import read_metrics

    all_records = read_metrics(config.run.output_dir) if records is not None else []
    print(summary(all_records, Path(config.run.output_dir), start_step))
    return 0


def summary(records: list[dict[str, Any]], run_dir: Path, start_step: int = 0) -> str:
    """What a run reached: held-out accuracy at its first and last evaluation (all of the run, also after a resume)
    and where its last checkpoint is."""
    from dynamo_rl.run.checkpoint import latest_checkpoint

    lines = [f"run directory: {run_dir}"]
    evals = [r for r in records if r.get("eval/acc") is not None]
    if len(evals) >= 2:
        first, last = evals[0], evals[-1]
        lines.append(f"held-out accuracy: {first['eval/acc']:.3f} (step {first['step']}) -> "
                     f"{last['eval/acc']:.3f} (step {last['step']})")
        for key in sorted(k for k in last if k.startswith("eval/level/")):
            if first.get(key) is not None:
                lines.append(f"  {key.split('/')[2]:>4}: {first[key]:.3f} -> {last[key]:.3f}")
    elif records:
        lines.append(f"trained steps {start_step + 1}..{records[-1].get('step')}; no held-out evaluation in this run "
                     "(run.eval_every=0, no eval data, or --engine trl: use dynamo-rl eval)")
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is not None:
        lines.append(f"last checkpoint: {checkpoint}  (dynamo-rl eval --model {checkpoint} ...)")
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    from dynamo_rl.cli import main

    sys.exit(main(["train", *sys.argv[1:]]))
