"""Bad config files given to ``dynamo-rl train --config FILE``: each ends in ONE ``error: ...`` line naming the file
and the line, key or field (exit 2, no traceback), before anything is written.

Each case is one row of docs/bad_inputs.md ("Command line, config files, resume and checkpoints, Python API").
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from dynamo_rl.cli import main
from dynamo_rl.method_config import LossConfig
from dynamo_rl.presets import METHODS, PRESETS
from dynamo_rl.run.config import SECTIONS

TINY = ["--run.steps", "1", "--rollout.prompts_per_step", "2", "--allocation.mean_rollouts", "2",
        "--allocation.n_min", "2", "--allocation.n_max", "3", "--data.demo_train_per_level", "2",
        "--data.demo_eval_per_level", "1", "--run.eval_every", "0", "--run.plots", "false", "--run.progress", "false"]
KEYS = ", ".join(("method", "preset", *SECTIONS))
RUN_FIELDS = ", ".join(f.name for f in dataclasses.fields(SECTIONS["run"]))
LOSS_FIELDS = ", ".join(f.name for f in dataclasses.fields(LossConfig))


def run_cli(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str]:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    return code, capsys.readouterr().err


def assert_one_line_error(code: int, err: str, expected: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert code == 2, err
    assert lines == [expected]


CONFIG_CASES = [
    pytest.param(b"run: {steps: 1\n", "error: config file {file} is not valid YAML at line 2, column 1: expected ',' "
                 "or '}', but got '<stream end>'", id="yaml-unclosed-mapping"),
    pytest.param(b"run:\n\tsteps: 1\n", "error: config file {file} is not valid YAML at line 2, column 1: found "
                 "character '\\t' that cannot start any token (YAML does not allow tabs for indentation)",
                 id="yaml-tab-indented"),
    pytest.param(b"- run\n- optim\n", "error: config file {file}: expected a mapping of sections at the top level, "
                 "got list", id="top-level-list"),
    pytest.param(b"just some words\n", "error: config file {file}: expected a mapping of sections at the top level, "
                 "got str", id="top-level-string"),
    pytest.param(b"\xff\xfe run: 1\n", "error: config file {file} is not UTF-8 text (byte 0)", id="not-utf8"),
    pytest.param(b"run: {steps: 1}\nmodel: demo\n", f"error: {{file}}: unknown config key 'model'; valid keys: {KEYS}",
                 id="unknown-section"),
    pytest.param(b"1: {steps: 1}\n", f"error: {{file}}: unknown config key '1'; valid keys: {KEYS}",
                 id="numeric-section-key"),
    pytest.param(b"run: {stepz: 1}\n", f"error: {{file}}: unknown field run.stepz; valid fields of run: {RUN_FIELDS}",
                 id="unknown-field"),
    pytest.param(b"run: 5\n", "error: {file}: invalid run=5: expected a mapping of fields", id="section-not-mapping"),
    pytest.param(b"allocation: [1, 2]\n", "error: {file}: invalid allocation=[1, 2]: expected a mapping of fields",
                 id="method-section-list"),
    pytest.param(b"run: {seed: many}\n", "error: {file}: invalid run.seed='many': expected int, got str",
                 id="field-wrong-type"),
    pytest.param(b"optim: {lr: .inf}\n", "error: {file}: invalid optim.lr=inf: must be a finite number",
                 id="field-infinite"),
    pytest.param(b"loss: {eps_high: .nan}\n", "error: {file}: invalid loss.eps_high=nan: must be a finite number",
                 id="method-field-nan"),
    pytest.param(b"method: [grpo]\n", f"error: {{file}}: invalid method=['grpo']: expected one of "
                 f"{', '.join(sorted(METHODS))}", id="method-list"),
    pytest.param(b"method: ppo\n", f"error: {{file}}: invalid method='ppo': expected one of "
                 f"{', '.join(sorted(METHODS))}", id="method-unknown"),
    pytest.param(b"preset: 5\n", f"error: {{file}}: invalid preset=5: expected one of {', '.join(sorted(PRESETS))}",
                 id="preset-number"),
    pytest.param(b"explicit: loss.eps_high\n", "error: {file}: invalid explicit='loss.eps_high': expected a list of "
                 "SECTION.FIELD names", id="explicit-not-a-list"),
    pytest.param(b"explicit: [loss]\n", "error: {file}: invalid explicit=['loss']: expected a list of SECTION.FIELD "
                 "names", id="explicit-entry-without-dot"),
    pytest.param(b"explicit: [optim.lr]\n", "error: {file}: invalid explicit entry 'optim.lr': SECTION must be one of "
                 "allocation, modulation, loss", id="explicit-entry-not-a-method-section"),
    pytest.param(b"explicit: [loss.nope]\nloss: {eps_high: 0.2}\n", "error: {file}: invalid explicit entry "
                 f"'loss.nope': unknown field; valid fields of loss: {LOSS_FIELDS}", id="explicit-entry-unknown-field"),
    pytest.param(b"run: {steps: 1}\nrun: {steps: 2}\n", "error: config file {file} is not valid YAML at line 2, "
                 "column 1: duplicate key 'run' (first given on line 1; YAML would silently keep only the last one)",
                 id="duplicate-section"),
    pytest.param(b"run: {steps: 1, steps: 2}\n", "error: config file {file} is not valid YAML at line 1, column 17: "
                 "duplicate key 'steps' (first given on line 1; YAML would silently keep only the last one)",
                 id="duplicate-field"),
    pytest.param(b"run: !!python/object:os.system {}\n", "error: config file {file} is not valid YAML at line 1, "
                 "column 6: could not determine a constructor for the tag "
                 "'tag:yaml.org,2002:python/object:os.system'", id="python-tag"),
    pytest.param(b"{a: 1}: 2\n", "error: config file {file} is not valid YAML at line 1, column 1: found unhashable "
                 "key", id="unhashable-key"),
]


@pytest.mark.parametrize(("content", "expected"), CONFIG_CASES)
def test_bad_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, expected: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    code, err = run_cli(capsys, ["train", "--config", path, "--output", tmp_path / "run", *TINY])
    assert_one_line_error(code, err, expected.replace("{file}", str(path)))
    assert not (tmp_path / "run").exists()


def test_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_cli(capsys, ["train", "--config", tmp_path / "nope.yaml", *TINY])
    assert_one_line_error(code, err, f"error: config file {tmp_path / 'nope.yaml'} does not exist")


def test_command_line_error_is_not_blamed_on_a_good_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A valid file and a bad command-line value: the error names the field, not the file."""
    path = tmp_path / "good.yaml"
    path.write_text("run: {steps: 3}\n")
    code, err = run_cli(capsys, ["train", "--config", path, "--output", tmp_path / "run", *TINY, "--optim.lr", "0"])
    assert_one_line_error(code, err, "error: invalid optim.lr=0.0: must be > 0")


def test_file_and_command_line_that_fit_together_are_accepted(tmp_path: Path) -> None:
    """The file alone would be invalid (n_min above the default mean); the command line completes it: not refused."""
    from dynamo_rl.run.config_files import load_config

    path = tmp_path / "partial.yaml"
    path.write_text("allocation: {n_min: 20}\n")
    config = load_config(path, [("allocation.mean_rollouts", 24), ("allocation.n_max", 30)])
    assert config.method.allocation.n_min == 20
    with pytest.raises(ValueError, match=f"^{path}: invalid allocation.mean_rollouts=16"):
        load_config(path)
