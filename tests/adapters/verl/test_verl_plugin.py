"""The verl.plugins entry point registers our names in verl's registries (verl 0.9.x environment only)."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import entry_points

import pytest

pytest.importorskip("verl.trainer.ppo.core_algos")
from verl.trainer.ppo import core_algos  # noqa: E402

from dynamo_rl.adapters.verl import plugin  # noqa: E402
from dynamo_rl.adapters.verl.loss import dynamo_grpo_advantage  # noqa: E402


def test_entry_point_is_installed():
    found = {ep.name: ep.value for ep in entry_points(group="verl.plugins")}
    assert found.get("dynamo") == "dynamo_rl.adapters.verl.plugin", found


def test_names_are_registered_in_verls_registries():
    assert core_algos.get_adv_estimator_fn("dynamo_grpo") is dynamo_grpo_advantage
    assert plugin.register() == {"dynamo_grpo": True, "dynamo_sync": plugin.REGISTERED["dynamo_sync"]}  # idempotent
    pytest.importorskip("transfer_queue")
    from verl.trainer.ppo.v1.trainer_base import TRAINER_REGISTRY

    from dynamo_rl.adapters.verl.trainer import DynamoPPOTrainer

    assert TRAINER_REGISTRY["dynamo_sync"] is DynamoPPOTrainer
    plugin.check_registrations()


def test_check_registrations_names_what_is_missing(monkeypatch):
    monkeypatch.delitem(core_algos.ADV_ESTIMATOR_REGISTRY, "dynamo_grpo")
    monkeypatch.setitem(plugin.ERRORS, "dynamo_grpo", "ImportError: boom")
    with pytest.raises(RuntimeError, match="dynamo_grpo.*boom"):
        plugin.check_registrations()


def test_import_verl_alone_loads_the_plugin_in_a_fresh_process():
    """Only `import verl` (as in a Ray worker): the entry point runs, logs at INFO and registers dynamo_grpo.
    DYNAMO_RL_VERL_TRAINER=0 skips the V1 trainer import; the trainer check then reports why it is missing."""
    code = (
        "import sys, verl\n"
        "from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY\n"
        "assert 'dynamo_rl.adapters.verl.plugin' in sys.modules\n"
        "assert 'dynamo_grpo' in ADV_ESTIMATOR_REGISTRY\n"
        "from dynamo_rl.adapters.verl import plugin\n"
        "assert plugin.REGISTERED == {'dynamo_grpo': True, 'dynamo_sync': False}, plugin.REGISTERED\n"
        "try:\n"
        "    plugin.check_registrations()\n"
        "except RuntimeError as exc:\n"
        "    print('CHECK:', exc)\n"
    )
    env = {**os.environ, "DYNAMO_RL_VERL_TRAINER": "0", "VERL_USE_EXTERNAL_PLUGINS": "auto", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "dynamo-rl verl plugin loaded" in result.stderr and "registered dynamo_grpo" in result.stderr
    assert "CHECK:" in result.stdout and "dynamo_sync" in result.stdout and "DYNAMO_RL_VERL_TRAINER=0" in result.stdout
