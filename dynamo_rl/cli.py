"""``dynamo-rl`` command line. Each subcommand lives in the module that owns it and is imported only when used.

The error boundary: a user error (bad config, flag, data, model, path, resume state, environment) ends in ONE line on
stderr, ``error: ...``, naming the file, row, field or value, and exit code 2. A traceback is printed only for an
error that is a bug of ours, with a line asking to report it (exit 1).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

import dynamo_rl

# name -> (module, help). Each module defines ``add_arguments(parser)`` and ``run(args) -> int`` (and may define
# ``normalize_argv(argv) -> argv``, applied before parsing).
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "train": ("dynamo_rl.train_cli", "train with DynaMO, GRPO or a baseline (no arguments: the CPU demo)"),
    "eval": ("dynamo_rl.eval.cli", "pass@k / avg@n on AIME24/25, AMC23, MATH-500, Minerva, OlympiadBench"),
    "plot": ("dynamo_rl.run.plots_cli", "write the training-dynamics plots of a run directory"),
    "pretrain-demo": ("dynamo_rl.demo.pretrain", "rebuild the embedded tiny demo model (supervised warm start)"),
    "prepare-verl": ("dynamo_rl.adapters.verl.prepare_data", "write datasets as verl parquet with math-verify rewards"),
}

USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, ImportError, KeyError)
"""Exceptions raised for what the user gave us. Our code raises them with messages that name the input."""
ENVIRONMENT_ERRORS = frozenset({"VerifierStartError"})
"""Errors of the machine rather than of our code (e.g. verifier worker processes that cannot start): one line too."""
REPORT = "this is a bug in dynamo-rl; please report it with the command and the traceback above"


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dynamo-rl", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"dynamo-rl {dynamo_rl.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def one_line(err: BaseException) -> str:
    """The message of a user error on one line (a KeyError's repr quotes are dropped)."""
    text = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        text = f"{err.strerror}: {err.filename}"
    return " ".join(str(text).split()) or type(err).__name__


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in SUBCOMMANDS:
        parser = build_parser()
        args = parser.parse_args(argv)
        parser.print_help()
        return 0 if args.command is None else 2
    name = argv[0]
    module_name, help_text = SUBCOMMANDS[name]
    module = importlib.import_module(module_name)
    parser = _Parser(prog=f"dynamo-rl {name}", description=help_text)
    module.add_arguments(parser)
    normalize = getattr(module, "normalize_argv", None)
    args = parser.parse_args(normalize(argv[1:]) if normalize else argv[1:])
    warnings.formatwarning = _warning_line
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted; a training run continues from its last checkpoint with --resume RUN_DIR", file=sys.stderr)
        return 130
    except USER_ERRORS as err:
        if _is_our_bug(err):
            raise
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    except Exception as err:
        if type(err).__name__ in ENVIRONMENT_ERRORS:
            print(f"error: {one_line(err)}", file=sys.stderr)
            return 2
        import traceback

        traceback.print_exc()
        print(f"error: {REPORT}", file=sys.stderr)
        return 1


def _is_our_bug(err: BaseException) -> bool:
    """A ValueError/KeyError raised by Python or a library on our behalf, not one of our messages: kept as a
    traceback (e.g. ``KeyError: 'x'`` from a dict lookup)."""
    if isinstance(err, KeyError):
        message = err.args[0] if err.args else ""
        return not (isinstance(message, str) and " " in message)
    return False


def _warning_line(message, category, filename, lineno, line=None) -> str:  # noqa: ANN001
    return f"warning: {' '.join(str(message).split())}\n"


if __name__ == "__main__":
    raise SystemExit(main())
