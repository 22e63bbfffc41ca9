"""Checkpoints: a SIGKILLed run resumes exactly; an interrupted write never corrupts the last good checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dynamo_rl.core.history import SuccessHistory
from dynamo_rl.method_config import AllocationConfig
from dynamo_rl.run.allocator import RolloutAllocator
from dynamo_rl.run.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from dynamo_rl.run.metric_names import TIME_KEYS
from dynamo_rl.run.metrics import read_metrics

SCRIPT = Path(__file__).resolve().parent / "tiny_run.py"
REPO = Path(__file__).resolve().parents[2]
STEPS = 6


def _run(run_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, str(SCRIPT), str(run_dir), str(STEPS), *args], env=env,
                          capture_output=True, text=True, timeout=300)


def _comparable(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIME_KEYS} for r in read_metrics(run_dir)]


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(latest_checkpoint(run_dir) / "model.safetensors"))


def _reference_run(run_dir: Path) -> None:
    """The uninterrupted run, in this process (one thread, as the subprocesses, so results are bit-identical)."""
    from tests.trainer.tiny_run import run_tiny, tiny_config

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_tiny(tiny_config(run_dir, steps=STEPS, **{"run.checkpoint_every": 2}))
    finally:
        torch.set_num_threads(threads)


def test_sigkill_during_checkpoint_write_then_resume_matches_uninterrupted_run(tmp_path):
    # SIGKILL while writing checkpoint 4 (its model file is written, the optimizer not yet): the run dies after
    # checkpoint 2 was completed, and the half-written checkpoint 4 must not be picked up.
    killed = _run(tmp_path / "killed", "--kill-during-write", "4")
    assert killed.returncode == -9, killed.stderr[-2000:]
    run_dir = tmp_path / "killed"
    assert latest_checkpoint(run_dir).name == "step_000002"
    assert json.loads((latest_checkpoint(run_dir) / "state.json").read_text())["step"] == 2
    assert any(p.name.startswith(".tmp-step_000004") for p in (run_dir / "checkpoints").iterdir())
    assert max(r["step"] for r in read_metrics(run_dir)) == 4  # steps 3-4 were logged, then lost with the kill

    resumed = _run(run_dir, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    reference_run = tmp_path / "reference"
    _reference_run(reference_run)
    got, want = _comparable(run_dir), _comparable(reference_run)
    assert [r["step"] for r in got] == list(range(1, STEPS + 1))
    assert [r["alloc/num_rollouts"] for r in got] == [r["alloc/num_rollouts"] for r in want]
    assert got == want
    ours, theirs = _weights(run_dir), _weights(reference_run)
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)


class _Linear(torch.nn.Linear):
    """A Linear with the save_pretrained of a Hugging Face model (enough for a checkpoint)."""

    config = None

    def save_pretrained(self, directory, safe_serialization=True):
        from safetensors.torch import save_model

        save_model(self, str(Path(directory) / "model.safetensors"))


def _allocator(updates: int) -> RolloutAllocator:
    allocator = RolloutAllocator(AllocationConfig())
    for step in range(updates):
        allocator.update(["a", "b"], [step, 1], [4, 4])
    return allocator


def test_failed_write_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    model = _Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    kwargs = dict(model=model, optimizer=optimizer, scheduler=scheduler)
    save_checkpoint(tmp_path, 1, tokenizer=None, allocator=_allocator(1), config_yaml="x: 1\n", **kwargs)
    good = model.weight.detach().clone()

    with torch.no_grad():
        model.weight.add_(1.0)
    import dynamo_rl.run.checkpoint as ckpt

    def broken_save(obj, path, *args, **kw):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path, 2, tokenizer=None, allocator=_allocator(2), config_yaml="x: 1\n", **kwargs)
    monkeypatch.undo()

    path = latest_checkpoint(tmp_path)
    assert path.name == "step_000001"
    restored = RolloutAllocator(AllocationConfig())
    loaded = load_checkpoint(path, allocator=restored, **kwargs)
    assert loaded.step == 1 and restored.num_updates == 1
    assert restored.history.counts(["a"])[1].tolist() == [4.0]
    assert torch.equal(model.weight, good)

    # The next successful write cleans up and the pruning keeps only `keep` checkpoints.
    for step in (2, 3, 4):
        save_checkpoint(tmp_path, step, tokenizer=None, allocator=_allocator(step), config_yaml="x\n", keep=2,
                        **kwargs)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["latest", "step_000003", "step_000004"]


def test_corrupt_latest_checkpoint_falls_back_to_the_previous_one(tmp_path):
    from dynamo_rl.run.checkpoint import restore_latest

    model = _Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    kwargs = dict(model=model, optimizer=optimizer, scheduler=scheduler)
    for step in (1, 2):
        save_checkpoint(tmp_path, step, tokenizer=None, allocator=_allocator(step), config_yaml="x\n", **kwargs)
    (tmp_path / "checkpoints" / "step_000002" / "optimizer.pt").write_bytes(b"torn")
    restored = RolloutAllocator(AllocationConfig())
    with pytest.warns(UserWarning, match="optimizer.pt cannot be read"):
        loaded = restore_latest(tmp_path, lambda p: load_checkpoint(p, allocator=restored, **kwargs))
    assert loaded.step == 1 and restored.num_updates == 1


def test_legacy_history_json_checkpoint_loads(tmp_path):
    """A checkpoint of the previous release (bare history.json, no allocator_state.json) still resumes."""
    model = _Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    path = save_checkpoint(tmp_path, 3, tokenizer=None, allocator=_allocator(3), config_yaml="x\n",
                           model=model, optimizer=optimizer, scheduler=scheduler)
    history = SuccessHistory()
    history.update(["old"], [2], [5])
    (path / "allocator_state.json").unlink()
    (path / "history.json").write_text(json.dumps(history.state_dict()))
    restored = RolloutAllocator(AllocationConfig())
    load_checkpoint(path, model=model, optimizer=optimizer, scheduler=scheduler, allocator=restored)
    assert restored.history.counts(["old"])[0].tolist() == [2.0]
