"""Bad command lines: flags, values, paths, `dynamo-rl eval`, `pretrain-demo`, `plot` and the top level.

Every case ends in ONE line on stderr, ``error: ...``, naming the flag, field, file or value and what would be valid,
with exit code 2 and no traceback (issue 11). Each case is one row of docs/bad_inputs.md ("Command line, config
files, resume and checkpoints, Python API"). The training cases use the shipped demo model and fail before it loads.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import types
import typing
from pathlib import Path

import pytest
import torch

from dynamo_rl.cli import main
from dynamo_rl.method_config import allocator_names
from dynamo_rl.presets import METHODS, PRESETS
from dynamo_rl.run.config import SECTIONS

TINY = ["--run.steps", "1", "--rollout.prompts_per_step", "2", "--allocation.mean_rollouts", "2",
        "--allocation.n_min", "2", "--allocation.n_max", "3", "--data.demo_train_per_level", "2",
        "--data.demo_eval_per_level", "1", "--run.eval_every", "0", "--run.plots", "false", "--run.progress", "false"]
CPUS = os.cpu_count() or 1
RUN_FIELDS = ", ".join(f.name for f in dataclasses.fields(SECTIONS["run"]))
SECTION_NAMES = ", ".join(SECTIONS)


@pytest.fixture(autouse=True)
def _quiet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """One torch thread, no transformers progress bars, and the temporary folder as working directory."""
    from transformers.utils import logging as hf_logging

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    hf_logging.disable_progress_bar()
    monkeypatch.chdir(tmp_path)
    yield
    hf_logging.enable_progress_bar()
    torch.set_num_threads(threads)


def run_cli(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    """``dynamo-rl ARGV`` in process: (exit code, stdout, stderr); argparse's exits count as exit codes."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, expected: str | tuple[str, ...]) -> str:
    """Exit 2, no traceback, exactly one non-empty stderr line starting ``error: ``; ``expected`` is that whole
    line, or a tuple of (prefix, fragment, ..., suffix) when part of it depends on the Python version."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert code == 2, err
    assert len(lines) == 1, err
    line = lines[0]
    if isinstance(expected, str):
        assert line == expected
    else:
        assert line.startswith(expected[0]) and line.endswith(expected[-1]), line
        for fragment in expected[1:-1]:
            assert fragment in line, (fragment, line)
    return line


def train_argv(tmp_path: Path, *args: str) -> list[str]:
    return ["train", "--output", str(tmp_path / "run"), *TINY, *args]


def fill(expected: str | tuple[str, ...], tmp_path: Path) -> str | tuple[str, ...]:
    """``{tmp}``, ``{cpus}`` and ``{max}`` replaced (plain replacement: messages hold braces of their own)."""
    def one(text: str) -> str:
        return text.replace("{tmp}", str(tmp_path)).replace("{cpus}", str(CPUS)).replace("{max}", str(CPUS * 4))
    return one(expected) if isinstance(expected, str) else tuple(one(part) for part in expected)


def _choice(flag: str, value: str, choices: list[str], prog: str = "dynamo-rl train") -> tuple[str, ...]:
    return (f"error: {prog}: argument {flag}: invalid choice: '{value}' (choose from ", *choices,
            f") (see {prog} --help)")


# ---------------------------------------------------------------------------------------------------------------
# Flags and values of `dynamo-rl train` (refused while the config is built: nothing is written)
# ---------------------------------------------------------------------------------------------------------------

FLAG_CASES = [
    pytest.param(["--bogus"], "error: dynamo-rl train: unrecognized arguments: --bogus (see dynamo-rl train --help)",
                 id="unknown-flag"),
    pytest.param(["--set", "foo"], "error: invalid --set 'foo': expected KEY=VALUE, e.g. --set loss.eps_high=0.2",
                 id="set-without-equals"),
    pytest.param(["--set", "a.b.c=1"], "error: unknown config key 'a.b.c'; expected method, preset or SECTION.FIELD "
                 f"with SECTION in {SECTION_NAMES}", id="set-three-part-key"),
    pytest.param(["--set", "=1"], "error: unknown config key ''; expected method, preset or SECTION.FIELD with SECTION "
                 f"in {SECTION_NAMES}", id="set-empty-key"),
    pytest.param(["--set", "run.stepz=3"], f"error: unknown field run.stepz; valid fields of run: {RUN_FIELDS}",
                 id="set-unknown-field"),
    pytest.param(["--optim.lr", "[1"], ("error: invalid value for --optim.lr: '[1' is not a YAML scalar (", ")"),
                 id="value-not-yaml"),
    pytest.param(["--run.steps", "abc"], "error: invalid run.steps='abc': expected int, got str", id="steps-word"),
    pytest.param(["--run.steps", "1.5"], "error: invalid run.steps=1.5: expected int, got float", id="steps-float"),
    pytest.param(["--run.steps", "true"], "error: invalid run.steps=True: expected int, got bool", id="steps-bool"),
    pytest.param(["--run.steps", "null"], "error: invalid run.steps=None: expected int, got NoneType",
                 id="steps-null"),
    pytest.param(["--run.plots", "maybe"], "error: invalid run.plots='maybe': expected bool, got str",
                 id="bool-field-word"),
    pytest.param(["--optim.betas", "0.9"], "error: invalid optim.betas=0.9: expected a list", id="betas-scalar"),
    pytest.param(["--optim.betas", "[a, b]"], "error: invalid optim.betas[0]='a': expected float, got str",
                 id="betas-words"),
    pytest.param(["--optim.betas", "[0.9]"], "error: invalid optim.betas=(0.9,): must be two numbers in [0, 1)",
                 id="betas-one-number"),
    pytest.param(["--optim.lr", "{a: 1}"], "error: invalid optim.lr={'a': 1}: expected float, got dict",
                 id="float-field-mapping"),
    pytest.param(["--data.model", ""], "error: invalid data.model='': must be a path, a hub id or 'demo'",
                 id="model-empty"),
    pytest.param(["--run.steps", "-1"], "error: invalid run.steps=-1: must be ≥ 1", id="steps-negative"),
    pytest.param(["--rollout.prompts_per_step", "0"], "error: invalid rollout.prompts_per_step=0: must be ≥ 1",
                 id="prompts-per-step-zero"),
    pytest.param(["--rollout.max_new_tokens", "-5"], "error: invalid rollout.max_new_tokens=-5: must be ≥ 1",
                 id="max-new-tokens-negative"),
    pytest.param(["--run.keep_checkpoints", "0"], "error: invalid run.keep_checkpoints=0: must be ≥ 1",
                 id="keep-checkpoints-zero"),
    pytest.param(["--run.eval_every", "-1"], "error: invalid run.eval_every=-1: must be ≥ 0", id="eval-every-negative"),
    pytest.param(["--optim.ppo_epochs", "0"], "error: invalid optim.ppo_epochs=0: must be ≥ 1", id="ppo-epochs-zero"),
    pytest.param(["--optim.warmup_steps", "-3"], "error: invalid optim.warmup_steps=-3: must be ≥ 0",
                 id="warmup-negative"),
    pytest.param(["--data.max_problems", "0"], "error: invalid data.max_problems=0: must be > 0 or None",
                 id="max-problems-zero"),
    pytest.param(["--run.threads", "0"], "error: invalid run.threads=0: must be ≥ 1 or None", id="threads-zero"),
    pytest.param(["--run.num_verifier_workers", "-1"], "error: invalid run.num_verifier_workers=-1: must be ≥ 0",
                 id="verifier-workers-negative"),
    pytest.param(["--allocation.n_min", "1"],
                 "error: invalid allocation.n_min=1: must be ≥ 2 (a group of one has no baseline)", id="n-min-one"),
    pytest.param(["--allocation.mean_rollouts", "9"],
                 "error: invalid allocation.mean_rollouts=9: must lie in [n_min, n_max] = [2, 3]",
                 id="mean-rollouts-outside-bounds"),
    pytest.param(["--optim.lr", "-1e-5"], "error: invalid optim.lr=-1e-05: must be > 0", id="negative-exponent-value"),
    pytest.param(["--loss.eps_low", "-0.5"], "error: invalid loss.eps_low/eps_high=(-0.5, 0.28): must be ≥ 0",
                 id="negative-decimal-value"),
    pytest.param(["--run.seed", "-1"], "error: invalid run.seed=-1: must be in [0, 4294967295] (2**32 - 1)",
                 id="seed-negative"),
    pytest.param(["--run.seed", str(2**64)],
                 f"error: invalid run.seed={2**64}: must be in [0, 4294967295] (2**32 - 1)", id="seed-over-64-bits"),
    pytest.param(["--method", "nope"], _choice("--method", "nope", sorted(METHODS)), id="method-unknown"),
    pytest.param(["--preset", "nope"], _choice("--preset", "nope", sorted(PRESETS)), id="preset-unknown"),
    pytest.param(["--engine", "nope"], _choice("--engine", "nope", ["builtin", "trl"]), id="engine-unknown"),
    pytest.param(["--set", "method=GRPO"], f"error: invalid method='GRPO': expected one of {', '.join(sorted(METHODS))}",
                 id="set-method-wrong-case"),
    pytest.param(["--set", "method=[grpo]"],
                 f"error: invalid method=['grpo']: expected one of {', '.join(sorted(METHODS))}", id="set-method-list"),
    pytest.param(["--set", "preset=5"], f"error: invalid preset=5: expected one of {', '.join(sorted(PRESETS))}",
                 id="set-preset-number"),
    pytest.param(["--run.device", "tpu"], "error: invalid run.device='tpu': expected auto, cpu or cuda",
                 id="device-unknown"),
    pytest.param(["--run.dtype", "float16"], "error: invalid run.dtype='float16': expected float32 or bfloat16",
                 id="dtype-unknown"),
    pytest.param(["--rollout.backend", "sglang"], "error: invalid rollout.backend='sglang': expected hf or vllm",
                 id="backend-unknown"),
    pytest.param(["--allocation.allocator", "greedy"], "error: invalid allocation.allocator='greedy': expected one "
                 f"of {', '.join(allocator_names())}", id="allocator-unknown"),
    pytest.param(["--loss.policy_loss", "dpo"],
                 "error: invalid loss.policy_loss='dpo': expected one of clip_cov, kl_cov, ppo_clip",
                 id="policy-loss-unknown"),
]


@pytest.mark.parametrize(("args", "expected"), FLAG_CASES)
def test_bad_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], expected) -> None:
    code, _, err = run_cli(capsys, train_argv(tmp_path, *args))
    assert_one_line_error(code, err, fill(expected, tmp_path))
    assert not (tmp_path / "run").exists()  # refused before anything was written


def _float_fields() -> list[tuple[str, str, bool]]:
    """(section, field, is a pair) of every float-valued config field, from the dataclasses themselves."""
    out = []
    for section, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            hint = hints[f.name]
            options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
            if float in options:
                out.append((section, f.name, False))
            elif typing.get_origin(hint) is tuple and float in typing.get_args(hint):
                out.append((section, f.name, True))
    return out


NONFINITE = (".nan", ".inf", "-.inf")
FLOAT_FIELDS = _float_fields()


@pytest.mark.parametrize(
    ("section", "name", "pair", "text"),
    [pytest.param(s, n, pair, NONFINITE[i % 3], id=f"nonfinite-{s}.{n}") for i, (s, n, pair) in enumerate(FLOAT_FIELDS)],
)
def test_non_finite_number_in_every_float_field(tmp_path: Path, capsys: pytest.CaptureFixture[str], section: str,
                                                name: str, pair: bool, text: str) -> None:
    value = {".nan": math.nan, ".inf": math.inf, "-.inf": -math.inf}[text]
    shown = repr((0.9, value)) if pair else repr(value)
    code, _, err = run_cli(capsys, train_argv(tmp_path, f"--{section}.{name}", f"[0.9, {text}]" if pair else text))
    line = assert_one_line_error(code, err, f"error: invalid {section}.{name}={shown}: must be a finite number")
    assert "demo.yaml" not in line  # a command-line value is not blamed on the packaged config file


def test_every_float_field_family_is_covered() -> None:
    assert {s for s, _, _ in FLOAT_FIELDS} == {"allocation", "modulation", "loss", "rollout", "optim"}
    assert len(FLOAT_FIELDS) >= 30


# ---------------------------------------------------------------------------------------------------------------
# Checks before loading: machine, packages, config path, model, data, output directory
# ---------------------------------------------------------------------------------------------------------------

def _make_file(tmp: Path) -> Path:
    path = tmp / "afile"
    path.write_text("not a folder\n")
    return path


def _rows(tmp: Path, name: str, rows: list[dict]) -> Path:
    path = tmp / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _setup_model_file(tmp: Path) -> list[str]:
    return ["--model", str(_make_file(tmp))]


def _setup_model_empty_dir(tmp: Path) -> list[str]:
    (tmp / "emptydir").mkdir()
    return ["--model", str(tmp / "emptydir")]


def _setup_config_dir(tmp: Path) -> list[str]:
    (tmp / "cfgdir").mkdir()
    return ["--config", str(tmp / "cfgdir")]


def _setup_config_run_dir(tmp: Path) -> list[str]:
    (tmp / "old").mkdir()
    (tmp / "old" / "config.yaml").write_text("method: dynamo\n")
    return ["--config", str(tmp / "old")]


def _setup_empty_dataset(tmp: Path) -> list[str]:
    (tmp / "empty.jsonl").write_bytes(b"")
    return ["--dataset", str(tmp / "empty.jsonl")]


def _setup_one_row(tmp: Path) -> list[str]:
    path = _rows(tmp, "one.jsonl", [{"id": "only", "problem": "1+1", "answer": "2"}])
    return ["--dataset", str(path), "--rollout.prompts_per_step", "16"]


def _long_prompt(size: int):
    def setup(tmp: Path) -> list[str]:
        rows = [{"id": f"r{i}", "problem": "x" * size if i == 1 else "1+1", "answer": "2"} for i in range(4)]
        return ["--dataset", str(_rows(tmp, "long.jsonl", rows)), "--data.template", "none",
                "--rollout.max_new_tokens", "8"]
    return setup


def _setup_templated_prompts(tmp: Path) -> list[str]:
    """The default qwen_math template alone makes every prompt longer than the demo model's 64 positions."""
    rows = [{"id": f"t{i}", "problem": "1+1", "answer": "2"} for i in range(4)]
    return ["--dataset", str(_rows(tmp, "plain.jsonl", rows)), "--rollout.max_new_tokens", "8"]


def _setup_output_under_file(tmp: Path) -> list[str]:
    return ["--output", str(_make_file(tmp) / "run")]


def _setup_output_is_file(tmp: Path) -> list[str]:
    return ["--output", str(_make_file(tmp))]


def _args(*args: str):
    return lambda tmp: list(args)


def _needs_missing(package: str) -> list:
    import importlib.util

    installed = importlib.util.find_spec(package) is not None
    return [pytest.mark.skipif(installed, reason=f"{package} is installed here")]


PREFLIGHT_CASES = [
    pytest.param(_args("--run.device", "cuda"),
                 "error: invalid run.device='cuda': CUDA is not available on this machine (use cpu or auto)",
                 id="device-cuda-without-gpu",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is available")),
    pytest.param(_args("--run.threads", "100000"),
                 "error: invalid run.threads=100000: this machine has {cpus} CPUs (at most {max})", id="threads-huge"),
    pytest.param(_args("--run.num_verifier_workers", "100000"),
                 "error: invalid run.num_verifier_workers=100000: this machine has {cpus} CPUs (at most {max})",
                 id="verifier-workers-huge"),
    pytest.param(_args("--rollout.backend", "vllm"),
                 "error: invalid rollout.backend='vllm': the vllm package is not installed (pip install "
                 "'dynamo-rl[vllm]' (needs a CUDA GPU), or rollout.backend=hf)", id="vllm-not-installed",
                 marks=_needs_missing("vllm")),
    pytest.param(_args("--run.tensorboard", "true"),
                 "error: invalid run.tensorboard=True: the tensorboard package is not installed (pip install "
                 "tensorboard, or run.tensorboard=false)", id="tensorboard-not-installed",
                 marks=_needs_missing("tensorboard")),
    pytest.param(_args("--run.wandb", "true"),
                 "error: invalid run.wandb=True: the wandb package is not installed (pip install wandb, or "
                 "run.wandb=false)", id="wandb-not-installed", marks=_needs_missing("wandb")),
    pytest.param(_setup_config_dir, "error: config {tmp}/cfgdir is a directory, expected a YAML file",
                 id="config-is-a-directory"),
    pytest.param(_setup_config_run_dir, "error: config {tmp}/old is a directory, expected a YAML file (a run "
                 "directory? resume it with --resume DIR, or pass DIR/config.yaml)", id="config-is-a-run-directory"),
    pytest.param(_args("--config", "nope.yaml"), "error: config file nope.yaml does not exist", id="config-missing"),
    pytest.param(_args("--model", "./nope"), "error: invalid data.model='./nope': no such folder",
                 id="model-missing-folder"),
    pytest.param(_setup_model_file, "error: invalid data.model='{tmp}/afile': a file, expected a model folder (with "
                 "config.json), a hub id or 'demo'", id="model-is-a-file"),
    pytest.param(_setup_model_empty_dir, "error: invalid data.model='{tmp}/emptydir': the folder has no config.json "
                 "(not a from_pretrained model folder)", id="model-folder-without-config"),
    pytest.param(_args("--model", "bad..id"), "error: invalid data.model='bad..id': neither a local folder nor a "
                 "valid hub id", id="model-invalid-hub-id"),
    pytest.param(_args("--dataset", "missing.jsonl"), "error: no such file: missing.jsonl", id="dataset-missing"),
    pytest.param(_setup_empty_dataset, "error: {tmp}/empty.jsonl: no rows (the file is empty); a data source needs at "
                 "least one row with 'problem' and 'answer'", id="dataset-empty"),
    pytest.param(_setup_one_row, "error: invalid rollout.prompts_per_step=16: data.dataset has only 1 problem(s); a "
                 "step needs 16 distinct prompts (lower prompts_per_step)", id="dataset-one-row-for-16-prompts"),
    pytest.param(_long_prompt(5_000), "error: data.dataset row 'r1': the prompt has at least 1000 tokens (5000 "
                 "characters), but the model's context of 64 leaves 56 after rollout.max_new_tokens=8; remove or "
                 "shorten the row, lower rollout.max_new_tokens, or set data.skip_long_prompts=true",
                 id="prompt-5KB-over-context"),
    pytest.param(_long_prompt(200_000), "error: data.dataset row 'r1': the prompt has at least 40000 tokens (200000 "
                 "characters), but the model's context of 64 leaves 56 after rollout.max_new_tokens=8; remove or "
                 "shorten the row, lower rollout.max_new_tokens, or set data.skip_long_prompts=true",
                 id="prompt-200KB-over-context"),
    pytest.param(_setup_templated_prompts, ("error: data.dataset row 't0': the prompt has ", " tokens (",
                 "characters), but the model's context of 64 leaves 56 after rollout.max_new_tokens=8; remove or "
                 "shorten the row, lower rollout.max_new_tokens, or set data.skip_long_prompts=true"),
                 id="template-makes-prompt-over-context"),
    pytest.param(_setup_output_under_file, "error: invalid run.output_dir='{tmp}/afile/run': cannot write there (Not "
                 "a directory)", id="output-under-a-file"),
    pytest.param(_setup_output_is_file, "error: invalid run.output_dir='{tmp}/afile': a file is there, expected a "
                 "directory", id="output-is-a-file"),
]


@pytest.mark.parametrize(("setup", "expected"), PREFLIGHT_CASES)
def test_refused_before_loading(tmp_path: Path, capsys: pytest.CaptureFixture[str], setup, expected) -> None:
    code, _, err = run_cli(capsys, train_argv(tmp_path, *setup(tmp_path)))
    assert_one_line_error(code, err, fill(expected, tmp_path))
    run_dir = tmp_path / "run"
    assert not (run_dir / "checkpoints").exists() and not (run_dir / "metrics.jsonl").exists()  # nothing generated


def test_read_only_output_parent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--output`` inside a folder of mode 0o555 (where the user cannot write; root can, so the case is skipped
    there and ``output-under-a-file`` covers the same refusal)."""
    parent = tmp_path / "read-only"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        if os.access(parent, os.W_OK):
            pytest.skip("this user can write into a 0o555 folder (root)")
        code, _, err = run_cli(capsys, ["train", "--output", str(parent / "run"), *TINY])
        assert_one_line_error(code, err, f"error: invalid run.output_dir='{parent / 'run'}': cannot write there "
                              "(Permission denied)")
    finally:
        parent.chmod(0o755)


def test_hub_id_with_hf_hub_offline_fails_fast(tmp_path: Path) -> None:
    """A hub id that is not cached, with HF_HUB_OFFLINE=1: one line, no network wait (subprocess: the hub client reads
    the variable at import). The subprocess timeout bounds the case; the message says no hub was asked."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-home")}
    proc = subprocess.run([sys.executable, "-m", "dynamo_rl.cli", *train_argv(tmp_path, "--model",
                                                                              "someorg/never-cached-model")],
                          capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert_one_line_error(proc.returncode, proc.stderr, "error: invalid data.model='someorg/never-cached-model': not "
                          "a local folder and not in the hub cache (HF_HUB_OFFLINE is set)")


# ---------------------------------------------------------------------------------------------------------------
# dynamo-rl eval (all refused before the model loads)
# ---------------------------------------------------------------------------------------------------------------

@pytest.fixture
def demo_model_dir() -> str:
    from dynamo_rl.demo.model import DEMO_ASSETS

    return str(DEMO_ASSETS)


def _eval_argv(tmp: Path, model: str, *args: str) -> list[str]:
    bench = _rows(tmp, "bench.jsonl", [{"problem": "1+1", "answer": "2"}])
    return ["eval", "--model", model, "--benchmarks", str(bench), "--n", "2", "--max-new-tokens", "4",
            "--no-progress", *args]


EVAL_CASES = [
    pytest.param(["--benchmarks", "gsm9k"], "error: --benchmarks: unknown benchmark 'gsm9k'; valid names: aime24, "
                 "aime25, amc23, math500, minerva, olympiad, dapo17k, or a .jsonl/.json/.parquet file",
                 id="eval-benchmark-unknown"),
    pytest.param(["--benchmarks", "missing.jsonl"], "error: --benchmarks: no such file 'missing.jsonl'",
                 id="eval-benchmark-file-missing"),
    pytest.param(["--benchmarks", ","], "error: --benchmarks is empty: choose from aime24, aime25, amc23, math500, "
                 "minerva, olympiad", id="eval-benchmarks-empty"),
    pytest.param(["--n", "0"], "error: --n must be >= 1 (samples per problem), got 0", id="eval-n-zero"),
    pytest.param(["--k", "0"], "error: --k 0: k must be a positive integer, got 0", id="eval-k-zero"),
    pytest.param(["--k", "5"], "error: --k 5: k=5 exceeds n=2 samples per problem: unbiased pass@k needs n >= k "
                 "(raise --n to at least 5; n >= 32 is recommended for pass@32)", id="eval-k-over-n"),
    pytest.param(["--k", "1,x"], "error: --k must be comma-separated integers, got '1,x'", id="eval-k-word"),
    pytest.param(["--temperature", "-1"], "error: temperature must be >= 0, got -1.0", id="eval-temperature-negative"),
    pytest.param(["--temperature", "nan"], "error: --temperature must be a finite number, got nan",
                 id="eval-temperature-nan"),
    pytest.param(["--temperature", "inf"], "error: --temperature must be a finite number, got inf",
                 id="eval-temperature-inf"),
    pytest.param(["--top-p", "inf"], "error: --top-p must be a finite number, got inf", id="eval-top-p-inf"),
    pytest.param(["--top-p", "0"], "error: top_p must be in (0, 1], got 0.0", id="eval-top-p-zero"),
    pytest.param(["--max-new-tokens", "0"], "error: max_new_tokens must be >= 1, got 0", id="eval-max-new-tokens-zero"),
    pytest.param(["--timeout", "nan"], "error: --timeout must be a finite number of seconds > 0, got nan",
                 id="eval-timeout-nan"),
    pytest.param(["--batch-size", "0"], "error: --batch-size must be >= 1, got 0", id="eval-batch-size-zero"),
    pytest.param(["--workers", "0"], "error: --workers must be >= 1 (or left out: one per CPU, at most 8), got 0",
                 id="eval-workers-zero"),
    pytest.param(["--device", "cuda"], "error: --device cuda: CUDA is not available on this machine (use cpu, or "
                 "leave --device out)", id="eval-device-cuda-without-gpu",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is available")),
    pytest.param(["--device", "gpu0"], "error: --device 'gpu0' is not a device; use cpu, cuda or cuda:N",
                 id="eval-device-unknown"),
    pytest.param(["--template", "chatml"], "error: unknown prompt template 'chatml'; valid names: none, qwen_math, "
                 "qwen_math_user", id="eval-template-unknown"),
    pytest.param(["--output", "{tmp}/bench.jsonl"], "error: --output {tmp}/bench.jsonl: a file is there, expected a "
                 "directory", id="eval-output-is-a-file"),
    pytest.param(["--model", "./nope"], "error: invalid data.model='./nope': no such folder", id="eval-model-missing"),
    pytest.param(["--n", "x"], "error: dynamo-rl eval: argument --n: invalid int value: 'x' (see dynamo-rl eval "
                 "--help)", id="eval-n-word"),
    pytest.param(["--compare", "{tmp}/nothing"], "error: {tmp}/nothing/results.json not found: is {tmp}/nothing an "
                 "evaluation output directory?", id="eval-compare-missing"),
]


@pytest.mark.parametrize(("args", "expected"), EVAL_CASES)
def test_bad_eval(tmp_path: Path, capsys: pytest.CaptureFixture[str], demo_model_dir: str, args: list[str],
                  expected: str) -> None:
    argv = _eval_argv(tmp_path, demo_model_dir, *(a.replace("{tmp}", str(tmp_path)) for a in args))
    code, _, err = run_cli(capsys, argv)
    assert_one_line_error(code, err, fill(expected, tmp_path))
    assert not (tmp_path / "eval_runs").exists()


def test_eval_without_model(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, ["eval", "--n", "2"])
    assert_one_line_error(code, err, "error: --model is required (or use --compare RUN_DIR ...)")


# ---------------------------------------------------------------------------------------------------------------
# dynamo-rl pretrain-demo (refused before the tiny model is built or trained)
# ---------------------------------------------------------------------------------------------------------------

PRETRAIN_CASES = [
    pytest.param(["--steps", "0"], "error: --steps must be at least 1, got 0", id="pretrain-steps-zero"),
    pytest.param(["--lr", "nan"], "error: --lr must be a finite number > 0, got nan", id="pretrain-lr-nan"),
    pytest.param(["--lr", "inf"], "error: --lr must be a finite number > 0, got inf", id="pretrain-lr-inf"),
    pytest.param(["--lr", "-1"], "error: --lr must be a finite number > 0, got -1.0", id="pretrain-lr-negative"),
    pytest.param(["--batch-size", "0"], "error: --batch-size must be at least 1, got 0", id="pretrain-batch-zero"),
    pytest.param(["--layers", "0"], "error: --layers must be at least 1, got 0", id="pretrain-layers-zero"),
    pytest.param(["--threads", "0"], "error: --threads must be at least 1, got 0", id="pretrain-threads-zero"),
    pytest.param(["--eval-samples", "0"], "error: --eval-samples must be at least 1, got 0",
                 id="pretrain-eval-samples-zero"),
    pytest.param(["--eval-every", "-1"], "error: --eval-every must be >= 0 (0: only at the end), got -1",
                 id="pretrain-eval-every-negative"),
    pytest.param(["--hidden-size", "0"], "error: --hidden-size must be a positive multiple of 8 (4 attention heads "
                 "of even width), got 0", id="pretrain-hidden-zero"),
    pytest.param(["--hidden-size", "12"], "error: --hidden-size must be a positive multiple of 8 (4 attention heads "
                 "of even width), got 12", id="pretrain-hidden-odd-head-width"),
    pytest.param(["--carry-noise", "nan"], "error: --carry-noise must be in [0, 1), got nan",
                 id="pretrain-carry-noise-nan"),
    pytest.param(["--level-weights", "1", "1"], "error: --level-weights needs 5 values for family 'arith', got [1.0, "
                 "1.0]", id="pretrain-level-weights-count"),
    pytest.param(["--level-weights", "-1", "1", "1", "1", "1"], "error: --level-weights must be finite numbers >= 0 "
                 "with a positive sum, got [-1.0, 1.0, 1.0, 1.0, 1.0]", id="pretrain-level-weight-negative"),
    pytest.param(["--level-weights", "0", "0", "0", "0", "0"], "error: --level-weights must be finite numbers >= 0 "
                 "with a positive sum, got [0.0, 0.0, 0.0, 0.0, 0.0]", id="pretrain-level-weights-zero"),
    pytest.param(["--level-weights", "nan", "1", "1", "1", "1"], "error: --level-weights must be finite numbers >= 0 "
                 "with a positive sum, got [nan, 1.0, 1.0, 1.0, 1.0]", id="pretrain-level-weight-nan"),
    pytest.param(["--output", "{tmp}/afile"], "error: --output {tmp}/afile: a file is there, expected a directory",
                 id="pretrain-output-is-a-file"),
    pytest.param(["--family", "geometry"], _choice("--family", "geometry", ["arith", "modmath"],
                                                   "dynamo-rl pretrain-demo"), id="pretrain-family-unknown"),
]


@pytest.mark.parametrize(("args", "expected"), PRETRAIN_CASES)
def test_bad_pretrain_demo(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], expected) -> None:
    _make_file(tmp_path)
    argv = ["pretrain-demo", "--steps", "1", "--eval-samples", "1", "--output", str(tmp_path / "model"),
            *(a.replace("{tmp}", str(tmp_path)) for a in args)]
    code, _, err = run_cli(capsys, argv)
    assert_one_line_error(code, err, fill(expected, tmp_path))
    assert not (tmp_path / "model").exists()  # refused before anything was built


# ---------------------------------------------------------------------------------------------------------------
# Top level, dynamo-rl plot, dynamo-rl prepare-verl
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        pytest.param(["nope"], _choice("COMMAND", "nope", ["train", "eval", "plot", "pretrain-demo", "prepare-verl"],
                                       "dynamo-rl"), id="top-unknown-command"),
        pytest.param(["--nope"], "error: dynamo-rl: unrecognized arguments: --nope (see dynamo-rl --help)",
                     id="top-unknown-flag"),
        pytest.param(["plot", "{tmp}/no-run"], "error: run directory not found: {tmp}/no-run", id="plot-missing-dir"),
        pytest.param(["plot", "{tmp}"], "error: no metrics.jsonl in {tmp} (is it a run directory?)",
                     id="plot-dir-without-metrics"),
    ],
)
def test_bad_top_level_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], expected) -> None:
    code, _, err = run_cli(capsys, [a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert_one_line_error(code, err, fill(expected, tmp_path))


def test_prepare_verl_offline_without_data_dir(tmp_path: Path) -> None:
    """HF_HUB_OFFLINE=1, no --data-dir, an empty hub cache: one line naming the dataset and the variable, fast."""
    pytest.importorskip("datasets")
    env = {k: v for k, v in os.environ.items() if k != "DYNAMO_RL_DATA_DIR"}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(tmp_path / "hf-home"))
    proc = subprocess.run([sys.executable, "-m", "dynamo_rl.cli", "prepare-verl", "--output-dir",
                           str(tmp_path / "verl"), "--no-train", "--benchmarks", "aime24", "--limit", "1"],
                          capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)
    line = assert_one_line_error(proc.returncode, proc.stderr, ("error: hub dataset ", "aime", "HF_HUB_OFFLINE=1 is "
                                                                "set, so only a cached copy can load"))
    assert "Traceback" not in line
    assert not (tmp_path / "verl" / "aime24.parquet").exists()
