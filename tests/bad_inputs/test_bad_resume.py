"""Bad resumes and damaged run directories: refused in ONE ``error: ...`` line (exit 2, no traceback), or, for a
damaged newest checkpoint, a fall back to the previous one with a warning that names the file, and training goes on.

Each case is one row of docs/bad_inputs.md ("Command line, config files, resume and checkpoints, Python API"). The
run is the shipped demo model at tiny sizes: 2 steps with a checkpoint after each, copied for every case.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from dynamo_rl.cli import main
from dynamo_rl.run.metrics import read_metrics
from dynamo_rl.train_cli import RESUME_MAY_CHANGE

TINY = ["--rollout.prompts_per_step", "2", "--allocation.mean_rollouts", "2", "--allocation.n_min", "2",
        "--allocation.n_max", "3", "--data.demo_train_per_level", "2", "--data.demo_eval_per_level", "1",
        "--run.eval_every", "0", "--run.plots", "false", "--run.progress", "false"]
MAY_CHANGE = ", ".join(sorted(RESUME_MAY_CHANGE))


@pytest.fixture(autouse=True)
def _quiet():
    from transformers.utils import logging as hf_logging

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    hf_logging.disable_progress_bar()
    yield
    hf_logging.enable_progress_bar()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def base_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 2-step run with checkpoints step_000001 and step_000002."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    run_dir = tmp_path_factory.mktemp("base") / "run"
    torch.set_num_threads(1)
    assert main(["train", "--output", str(run_dir), "--run.steps", "2", "--run.checkpoint_every", "1", *TINY]) == 0
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["latest", "step_000001", "step_000002"]
    return run_dir


@pytest.fixture
def run_dir(base_run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(base_run, copy)
    return copy


def run_cli(capsys: pytest.CaptureFixture[str], argv: list) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code: int, err: str, expected: str | tuple[str, str]) -> None:
    """Exit 2, no traceback, one stderr line: ``expected``, or (prefix, suffix) of it."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert code == 2, err
    assert len(lines) == 1, err
    if isinstance(expected, str):
        assert lines[0] == expected
    else:
        assert lines[0].startswith(expected[0]) and lines[0].endswith(expected[1]), lines[0]


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


# ---------------------------------------------------------------------------------------------------------------
# Refused resumes
# ---------------------------------------------------------------------------------------------------------------

def _change(flag: str, value: str, shown: str, old: str, again: str | None = None) -> tuple[list[str], str]:
    """The flag, and the refusal that quotes the parsed value (``shown``), the saved one and a command to use."""
    return [flag, value], (f"error: --resume {{run}}: {flag} {shown} would change the run (it ran with {old}); only "
                           f"{MAY_CHANGE} may change. To train a variant, start a new run: --config {{run}}/config.yaml "
                           f"{flag} {again or value} --output NEW_DIR")


def _torn_config_mid_line(run: Path) -> None:
    text = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(text[: text.index("rollout:") + 4])


def _torn_config_at_line(run: Path) -> None:
    text = (run / "config.yaml").read_text()
    (run / "config.yaml").write_text(text[: text.index("rollout:")])


def _empty_config(run: Path) -> None:
    (run / "config.yaml").write_text("")


def _no_checkpoints(run: Path) -> None:
    shutil.rmtree(run / "checkpoints")


def _all_checkpoints_torn(run: Path) -> None:
    for step in ("step_000001", "step_000002"):
        _truncate(run / "checkpoints" / step / "optimizer.pt")


def _nothing(run: Path) -> None:
    pass


COPY = ("the newest checkpoint keeps a copy: {run}/checkpoints/step_000002/config.yaml")
REFUSED = [
    pytest.param(_nothing, ["--run.steps", "2"], "error: --resume {run}: the run is at step 2 already and run.steps=2; "
                 "pass --run.steps N with N > 2 to train further", id="resume-steps-equal-last"),
    pytest.param(_nothing, ["--run.steps", "1"], "error: --resume {run}: the run is at step 2 already and run.steps=1; "
                 "pass --run.steps N with N > 2 to train further", id="resume-steps-below-last"),
    pytest.param(_nothing, ["--run.steps", "3", "--config", "{run}/config.yaml"], "error: --resume {run} uses "
                 "{run}/config.yaml; --config cannot be combined with it (to start a new run from that config: --config "
                 "{run}/config.yaml --output NEW_DIR)", id="resume-with-config"),
    pytest.param(_nothing, ["--run.steps", "3", "--output", "{run}-other"], "error: --output {run}-other cannot be "
                 "combined with --resume {run}: a resumed run stays in its directory", id="resume-with-other-output"),
    pytest.param(_nothing, ["--run.steps", "3", *_change("--run.seed", "7", "7", "0")[0]],
                 _change("--run.seed", "7", "7", "0")[1], id="resume-with-other-seed"),
    pytest.param(_nothing, ["--run.steps", "3", *_change("--method", "grpo", "'grpo'", "'dynamo'")[0]],
                 _change("--method", "grpo", "'grpo'", "'dynamo'")[1], id="resume-with-other-method"),
    pytest.param(_nothing, ["--run.steps", "3", *_change("--preset", "paper", "'paper'", "'official'")[0]],
                 _change("--preset", "paper", "'paper'", "'official'")[1], id="resume-with-other-preset"),
    pytest.param(_nothing, ["--run.steps", "3", *_change("--engine", "trl", "'trl'", "'builtin'")[0]],
                 _change("--engine", "trl", "'trl'", "'builtin'")[1], id="resume-with-other-engine"),
    pytest.param(_nothing, ["--run.steps", "3", *_change("--rollout.temperature", ".inf", "inf", "1.0")[0]],
                 _change("--rollout.temperature", ".inf", "inf", "1.0", "inf")[1], id="resume-with-infinite-temperature"),
    pytest.param(_nothing, ["--run.steps", "3", "--set", "a=1"], "error: unknown config key 'a'; expected method, "
                 "preset or SECTION.FIELD with SECTION in allocation, modulation, loss, data, rollout, optim, run",
                 id="resume-with-unknown-key"),
    pytest.param(_nothing, ["--run.steps", "0"], "error: invalid run.steps=0: must be ≥ 1", id="resume-steps-zero"),
    pytest.param(_torn_config_mid_line, ["--run.steps", "3"], ("error: config file {run}/config.yaml is not valid YAML "
                 "at line ", ": could not find expected ':'"), id="resume-config-yaml-torn-mid-line"),
    pytest.param(_torn_config_at_line, ["--run.steps", "3"], "error: --resume {run}: {run}/config.yaml is incomplete "
                 "(no rollout, optim, run, explicit; it may be truncated), so the run it describes is unknown; " + COPY,
                 id="resume-config-yaml-torn-at-line"),
    pytest.param(_empty_config, ["--run.steps", "3"], "error: --resume {run}: {run}/config.yaml is incomplete (no "
                 "method, preset, allocation, modulation, loss, data, rollout, optim, run, explicit; it may be "
                 "truncated), so the run it describes is unknown; " + COPY, id="resume-config-yaml-empty"),
    pytest.param(_no_checkpoints, ["--run.steps", "3"], "error: --resume {run}: no complete checkpoint in "
                 "{run}/checkpoints", id="resume-without-checkpoints"),
    pytest.param(_all_checkpoints_torn, ["--run.steps", "3"], ("error: no readable checkpoint in {run}/checkpoints (2 "
                 "tried): checkpoint {run}/checkpoints/step_000002: optimizer.pt cannot be read (",
                 "); checkpoint {run}/checkpoints/step_000001: optimizer.pt cannot be read (RuntimeError)"),
                 id="resume-all-checkpoints-corrupt"),
]


@pytest.mark.parametrize(("damage", "args", "expected"), REFUSED)
def test_refused_resume(run_dir: Path, capsys: pytest.CaptureFixture[str], damage, args: list[str], expected) -> None:
    damage(run_dir)
    before = (run_dir / "metrics.jsonl").read_bytes()

    def fill(text: str) -> str:
        return text.replace("{run}", str(run_dir))

    code, _, err = run_cli(capsys, ["train", "--resume", run_dir, *(fill(a) for a in args)])
    assert_one_line_error(code, err, fill(expected) if isinstance(expected, str) else tuple(map(fill, expected)))
    assert (run_dir / "metrics.jsonl").read_bytes() == before  # nothing was trained or rewritten
    assert not (run_dir / "checkpoints" / "step_000003").exists()


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        pytest.param(lambda tmp: tmp / "missing", "error: --resume {arg}: no such run directory", id="resume-missing-dir"),
        pytest.param(lambda tmp: (tmp / "empty").mkdir() or tmp / "empty",
                     "error: --resume {arg}: no config.yaml there (not a dynamo-rl run directory)",
                     id="resume-dir-without-config"),
        pytest.param(lambda tmp: tmp / "run" / "config.yaml", "error: --resume {arg}: a file, expected a run directory "
                     "(the folder that holds config.yaml and checkpoints/, e.g. --resume {tmp}/run)",
                     id="resume-config-file-instead-of-dir"),
    ],
)
def test_resume_of_no_run(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], make, expected) -> None:
    arg = make(tmp_path)
    code, _, err = run_cli(capsys, ["train", "--resume", arg, "--run.steps", "3"])
    assert_one_line_error(code, err, expected.replace("{arg}", str(arg)).replace("{tmp}", str(tmp_path)))


def test_fresh_run_into_a_run_directory(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, ["train", "--output", run_dir, "--run.steps", "3", *TINY])
    assert_one_line_error(code, err, f"error: {run_dir} already holds a run (checkpoint step_000002); continue it with "
                          f"--resume {run_dir} or choose another --output")


# ---------------------------------------------------------------------------------------------------------------
# A damaged newest checkpoint: fall back to the previous one, warn, train on
# ---------------------------------------------------------------------------------------------------------------

def _torn(name: str):
    return lambda step_dir: _truncate(step_dir / name)


def _allocator_header_only(step_dir: Path) -> None:
    (step_dir / "allocator_state.json").write_text(json.dumps({"format": "dynamo-rl/allocator", "version": 2}))


FALLBACK = [
    pytest.param(_torn("optimizer.pt"), "checkpoint {ckpt}: optimizer.pt cannot be read (", id="torn-optimizer-pt"),
    pytest.param(_torn("model.safetensors"), "checkpoint {ckpt}: model.safetensors cannot be read (",
                 id="torn-model-safetensors"),
    pytest.param(_torn("allocator_state.json"), "{ckpt}/allocator_state.json: not a readable allocator state file "
                 "(JSONDecodeError: ", id="torn-allocator-state"),
    pytest.param(_allocator_header_only, "{ckpt}/allocator_state.json: allocator state has no 'history' object",
                 id="allocator-state-without-history"),
    pytest.param(_torn("rng.pt"), "checkpoint {ckpt}: rng.pt cannot be read (", id="torn-rng-pt"),
    pytest.param(_torn("scheduler.pt"), "checkpoint {ckpt}: scheduler.pt cannot be read (", id="torn-scheduler-pt"),
]


@pytest.mark.parametrize(("damage", "warning_start"), FALLBACK)
def test_damaged_latest_checkpoint_falls_back(run_dir: Path, capsys: pytest.CaptureFixture[str], damage,
                                              warning_start: str) -> None:
    ckpt = run_dir / "checkpoints" / "step_000002"
    damage(ckpt)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, out, err = run_cli(capsys, ["train", "--resume", run_dir, "--run.steps", "3"])
    assert code == 0 and "Traceback" not in err, err
    messages = [str(w.message) for w in caught if "step_000002" in str(w.message)]
    assert len(messages) == 1, messages
    assert messages[0].startswith(warning_start.replace("{ckpt}", str(ckpt)))
    assert messages[0].endswith("; resuming from the older checkpoint step_000001 instead")
    assert "trained steps 2..3" in out  # the summary counts from where training really resumed
    assert [r["step"] for r in read_metrics(run_dir)] == [1, 2, 3]
    assert (run_dir / "checkpoints" / "step_000003" / "state.json").is_file()


def test_torn_state_marker_is_named_not_silently_skipped(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = run_dir / "checkpoints" / "step_000002"
    _truncate(ckpt / "state.json")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, out, err = run_cli(capsys, ["train", "--resume", run_dir, "--run.steps", "3"])
    assert code == 0, err
    assert [str(w.message) for w in caught if "step_000002" in str(w.message)] == [
        f"ignoring checkpoint {ckpt}: its state marker (state.json / dynamo_state.json) is missing or unreadable; "
        "resuming from step_000001"]
    assert "trained steps 2..3" in out
    assert [r["step"] for r in read_metrics(run_dir)] == [1, 2, 3]


def test_fallback_warning_is_one_stderr_line(run_dir: Path) -> None:
    """Outside pytest's warning capture (a subprocess): the fallback is one ``warning:`` line on stderr, then the run
    goes on."""
    _truncate(run_dir / "checkpoints" / "step_000002" / "optimizer.pt")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
    proc = subprocess.run([sys.executable, "-m", "dynamo_rl.cli", "train", "--resume", str(run_dir), "--run.steps",
                           "3", "--run.threads", "1"], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith(("warning:", "error:", "Traceback"))]
    assert len(lines) == 1 and lines[0].startswith(
        f"warning: checkpoint {run_dir}/checkpoints/step_000002: optimizer.pt cannot be read ("), proc.stderr
    assert lines[0].endswith("; resuming from the older checkpoint step_000001 instead")


# ---------------------------------------------------------------------------------------------------------------
# A torn last line of metrics.jsonl (a kill during a write)
# ---------------------------------------------------------------------------------------------------------------

def test_torn_metrics_line_is_dropped_on_resume(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with open(run_dir / "metrics.jsonl", "a") as handle:
        handle.write('{"step": 3, "reward/me')
    with pytest.warns(UserWarning, match=r"metrics.jsonl: dropping a torn last line \(3\)"):
        code, _, err = run_cli(capsys, ["train", "--resume", run_dir, "--run.steps", "3"])
    assert code == 0, err
    assert [r["step"] for r in read_metrics(run_dir)] == [1, 2, 3]


def test_torn_metrics_line_is_dropped_by_plot(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with open(run_dir / "metrics.jsonl", "a") as handle:
        handle.write('{"step": 3, "reward/me')
    with pytest.warns(UserWarning, match=r"metrics.jsonl: dropping a torn last line \(3\)"):
        code, out, err = run_cli(capsys, ["plot", run_dir])
    assert code == 0 and "Traceback" not in err, err
    assert len(out.split()) == 3 and all(Path(p).is_file() for p in out.split())


def test_metrics_line_with_a_non_integer_step(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = run_dir / "metrics.jsonl"
    lines = path.read_text().splitlines()
    lines[0] = json.dumps({"step": "one"})
    path.write_text("\n".join(lines) + "\n")
    code, _, err = run_cli(capsys, ["train", "--resume", run_dir, "--run.steps", "3"])
    assert_one_line_error(code, err, f"error: {path}: line 1 is not a metrics record (its 'step' is 'one', expected an "
                          "integer); fix or remove the line to resume")
