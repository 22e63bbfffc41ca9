"""``dynamo-rl plot RUN_DIR``: write the training-dynamics PNGs of a run (see :mod:`dynamo_rl.run.plots`)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="run directory holding metrics.jsonl")
    parser.add_argument("--output", default=None, help="folder for the PNGs (default RUN_DIR/plots)")


def run(args: argparse.Namespace) -> int:
    from dynamo_rl.run.plots import write_plots

    for path in write_plots(args.run_dir, args.output):
        print(path)
    return 0
