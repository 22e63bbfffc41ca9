"""``dynamo-rl`` command line. Each subcommand lives in the module that owns it and is imported only when used."""

from __future__ import annotations

import argparse
import importlib
import sys

import dynamo_rl

# name -> (module, help). Each module defines ``add_arguments(parser)`` and ``run(args) -> int``.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "train": ("dynamo_rl.trainer.cli", "train with DynaMO, GRPO or a baseline (no arguments: the CPU demo)"),
    "eval": ("dynamo_rl.eval.cli", "pass@k / avg@n on AIME24/25, AMC23, MATH-500, Minerva, OlympiadBench"),
    "plot": ("dynamo_rl.trainer.plots_cli", "write the training-dynamics plots of a run directory"),
    "pretrain-demo": ("dynamo_rl.demo.pretrain", "rebuild the embedded tiny demo model (supervised warm start)"),
    "prepare-verl": ("dynamo_rl.adapters.verl.prepare_data", "write datasets as verl parquet with math-verify rewards"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dynamo-rl", description=__doc__)
    parser.add_argument("--version", action="version", version=f"dynamo-rl {dynamo_rl.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        name = argv[0]
        module_name, help_text = SUBCOMMANDS[name]
        module = importlib.import_module(module_name)
        parser = argparse.ArgumentParser(prog=f"dynamo-rl {name}", description=help_text)
        module.add_arguments(parser)
        args = parser.parse_args(argv[1:])
        return int(module.run(args) or 0)
    parser = build_parser()
    args = parser.parse_args(argv)
    parser.print_help()
    return 0 if args.command is None else 2


if __name__ == "__main__":
    raise SystemExit(main())
