"""Bad values through the Python API: config dataclasses, ``load_config``, ``build_method_config``, the allocator
state and ``DynaMOConfig``. Each raises one exception (``ValueError``, or ``KeyError`` for an unknown name) whose
message names the field and what would be valid; nothing is accepted that would change the run silently.

Each case is one row of docs/bad_inputs.md ("Command line, config files, resume and checkpoints, Python API").
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import pytest

from dynamo_rl.method_config import AllocationConfig, LossConfig, MethodConfig, ModulationConfig
from dynamo_rl.presets import METHODS, build_method_config
from dynamo_rl.run.allocator import AllocatorStateError, RolloutAllocator
from dynamo_rl.run.config import (
    SECTIONS,
    ConfigError,
    DataConfig,
    OptimConfig,
    RolloutConfig,
    RunConfig,
    TrainConfig,
    config_from_dict,
)
from dynamo_rl.run.config_files import load_config, parse_override

NAN, INF = math.nan, math.inf
METHOD_NAMES = ", ".join(sorted(METHODS))
LOSS_FIELDS = ", ".join(f.name for f in dataclasses.fields(LossConfig))
KEY_HELP = f"expected method, preset or SECTION.FIELD with SECTION in {', '.join(SECTIONS)}"
OVERRIDE_HELP = "(parse_override('optim.lr=1e-5') makes one from text)"


def _message(err: BaseException) -> str:
    return str(err.args[0]) if isinstance(err, KeyError) else str(err)


# ---------------------------------------------------------------------------------------------------------------
# Config dataclasses, load_config, config_from_dict, build_method_config
# ---------------------------------------------------------------------------------------------------------------

CONFIG_CASES = [
    pytest.param(lambda: RolloutConfig(temperature=NAN), ValueError,
                 "invalid rollout.temperature=nan: must be a finite number", id="rollout-temperature-nan"),
    pytest.param(lambda: RolloutConfig(top_p=INF), ValueError, "invalid rollout.top_p=inf: must be a finite number",
                 id="rollout-top-p-inf"),
    pytest.param(lambda: OptimConfig(lr=INF), ValueError, "invalid optim.lr=inf: must be a finite number",
                 id="optim-lr-inf"),
    pytest.param(lambda: OptimConfig(betas=(NAN, 0.9)), ValueError,
                 "invalid optim.betas=(nan, 0.9): must be a finite number", id="optim-betas-nan"),
    pytest.param(lambda: OptimConfig(betas=("a", 0.9)), ValueError,
                 "invalid optim.betas=('a', 0.9): expected a list of numbers", id="optim-betas-word"),
    pytest.param(lambda: RunConfig(steps="3"), ValueError, "invalid run.steps='3': expected an integer, got str",
                 id="run-steps-string"),
    pytest.param(lambda: RunConfig(steps=2.5), ValueError, "invalid run.steps=2.5: expected an integer, got float",
                 id="run-steps-float"),
    pytest.param(lambda: RunConfig(plots="no"), ValueError, "invalid run.plots='no': expected true/false, got str",
                 id="run-plots-string"),
    pytest.param(lambda: RunConfig(threads=1.5), ValueError,
                 "invalid run.threads=1.5: expected an integer or null, got float", id="run-threads-float"),
    pytest.param(lambda: RunConfig(seed=-1), ValueError, "invalid run.seed=-1: must be in [0, 4294967295] (2**32 - 1)",
                 id="run-seed-negative"),
    pytest.param(lambda: DataConfig(model=None), ValueError, "invalid data.model=None: expected a string, got NoneType",
                 id="data-model-none"),
    pytest.param(lambda: TrainConfig(method_name="ppo"), ValueError,
                 f"invalid method='ppo': expected one of {METHOD_NAMES}", id="train-method-unknown"),
    pytest.param(lambda: TrainConfig(method_name=["grpo"]), ValueError,
                 f"invalid method=['grpo']: expected one of {METHOD_NAMES}", id="train-method-list"),
    pytest.param(lambda: TrainConfig(rollout={"temperature": 1.0}), ValueError,
                 "invalid rollout={'temperature': 1.0}: expected a RolloutConfig", id="train-section-dict"),
    pytest.param(lambda: AllocationConfig(n_min="3"), ValueError,
                 "invalid allocation.n_min='3': expected an integer, got str", id="allocation-n-min-string"),
    pytest.param(lambda: AllocationConfig(n_min=2.5), ValueError,
                 "invalid allocation.n_min=2.5: expected an integer, got float", id="allocation-n-min-float"),
    pytest.param(lambda: AllocationConfig(proxy_power=NAN), ValueError,
                 "invalid allocation.proxy_power=nan: must be a finite number", id="allocation-proxy-power-nan"),
    pytest.param(lambda: ModulationConfig(gradient_compensation="no"), ValueError,
                 "invalid modulation.gradient_compensation='no': expected true/false, got str",
                 id="modulation-switch-string"),
    pytest.param(lambda: ModulationConfig(tau=True), ValueError,
                 "invalid modulation.tau=True: expected a number, got bool", id="modulation-tau-bool"),
    pytest.param(lambda: LossConfig(eps_low=NAN), ValueError, "invalid loss.eps_low=nan: must be a finite number",
                 id="loss-eps-low-nan"),
    pytest.param(lambda: MethodConfig(allocation={}), ValueError,
                 "invalid allocation={}: expected a AllocationConfig", id="method-section-dict"),
    pytest.param(lambda: MethodConfig().replace(loss={"nope": 1}), ValueError,
                 f"unknown field loss.nope; valid fields of loss: {LOSS_FIELDS}", id="method-replace-unknown-field"),
    pytest.param(lambda: MethodConfig().replace(foo={}), KeyError,
                 "unknown method config section 'foo'; valid: allocation, modulation, loss",
                 id="method-replace-unknown-section"),
    pytest.param(lambda: build_method_config("ppo"), KeyError, f"unknown method 'ppo'; valid methods: {METHOD_NAMES}",
                 id="build-unknown-method"),
    pytest.param(lambda: build_method_config("dynamo", "fast"), KeyError,
                 "unknown preset 'fast'; valid presets: official, paper, theory", id="build-unknown-preset"),
    pytest.param(lambda: build_method_config("dynamo", "official", {"loss": {"nope": 1}}), ValueError,
                 f"unknown field loss.nope; valid fields of loss: {LOSS_FIELDS}", id="build-unknown-field"),
    pytest.param(lambda: build_method_config("dynamo", "official", {"loss": {"eps_high": NAN}}), ValueError,
                 "invalid loss.eps_high=nan: must be a finite number", id="build-nan-field"),
    pytest.param(lambda: load_config(None, [("loss.nope", 1)]), ConfigError,
                 f"unknown field loss.nope; valid fields of loss: {LOSS_FIELDS}", id="load-unknown-field"),
    pytest.param(lambda: load_config(None, [("a.b.c", 1)]), ConfigError, f"unknown config key 'a.b.c'; {KEY_HELP}",
                 id="load-three-part-key"),
    pytest.param(lambda: load_config(None, [("method", ["grpo"])]), ConfigError,
                 f"invalid method=['grpo']: expected one of {METHOD_NAMES}", id="load-method-list"),
    pytest.param(lambda: load_config(None, [("optim.lr", NAN)]), ConfigError,
                 "invalid optim.lr=nan: must be a finite number", id="load-lr-nan"),
    pytest.param(lambda: load_config(None, [("optim.lr", "abc")]), ConfigError,
                 "invalid optim.lr='abc': expected float, got str", id="load-lr-word"),
    pytest.param(lambda: load_config(None, {"optim.lr": 1e-5}), ConfigError,
                 "invalid overrides={'optim.lr': 1e-05}: expected a list of (KEY, VALUE) pairs, e.g. "
                 f"[('optim.lr', 1e-5)] {OVERRIDE_HELP}", id="load-overrides-dict"),
    pytest.param(lambda: load_config(None, "optim.lr=1e-5"), ConfigError,
                 "invalid overrides='optim.lr=1e-5': expected a list of (KEY, VALUE) pairs, e.g. "
                 f"[('optim.lr', 1e-5)] {OVERRIDE_HELP}", id="load-overrides-string"),
    pytest.param(lambda: load_config(None, [("optim.lr",)]), ConfigError,
                 f"invalid override ('optim.lr',): expected a (KEY, VALUE) pair with KEY like 'optim.lr' "
                 f"{OVERRIDE_HELP}", id="load-override-without-value"),
    pytest.param(lambda: load_config("/nonexistent/dynamo.yaml"), ConfigError,
                 "config file /nonexistent/dynamo.yaml does not exist", id="load-missing-file"),
    pytest.param(lambda: config_from_dict([1]), ConfigError, "invalid config [1]: expected a mapping of sections "
                 f"(method, preset, {', '.join(SECTIONS)})", id="from-dict-not-a-mapping"),
    pytest.param(lambda: config_from_dict({"run": {"steps": 0}}), ValueError, "invalid run.steps=0: must be ≥ 1",
                 id="from-dict-bad-value"),
    pytest.param(lambda: parse_override("optim.lr"), ConfigError,
                 "invalid --set 'optim.lr': expected KEY=VALUE, e.g. --set loss.eps_high=0.2",
                 id="parse-override-without-equals"),
]


@pytest.mark.parametrize(("make", "error", "message"), CONFIG_CASES)
def test_bad_config_value(make, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        make()
    assert _message(info.value) == message


def test_build_method_config_mean_rollouts_word_names_the_field() -> None:
    with pytest.raises(ValueError) as info:
        build_method_config("dynamo", "official", {"allocation": {"mean_rollouts": "x"}})
    assert "allocation.mean_rollouts" in str(info.value)


# ---------------------------------------------------------------------------------------------------------------
# RolloutAllocator.load_state_dict
# ---------------------------------------------------------------------------------------------------------------

HEADER = {"format": "dynamo-rl/allocator", "version": 2}
HISTORY = {"version": 1, "forgetting": None, "num_updates": 0}


@pytest.mark.parametrize(
    ("state", "message"),
    [
        pytest.param(None, "state: expected a JSON object, got NoneType", id="state-none"),
        pytest.param([1, 2], "state: expected a JSON object, got list", id="state-list"),
        pytest.param({}, "state: not a dynamo-rl allocator state (keys [])", id="state-empty-dict"),
        pytest.param({"ids": 5}, "state: not a dynamo-rl allocator state (keys ['ids'])", id="state-foreign-dict"),
        pytest.param({**HEADER, "version": 3}, "state: allocator state version 3; this release reads versions 1-2 "
                     "(upgrade dynamo-rl to read newer files)", id="state-newer-version"),
        pytest.param({**HEADER, "version": True, "history": {}}, "state: allocator state version True; this release "
                     "reads versions 1-2 (upgrade dynamo-rl to read newer files)", id="state-version-bool"),
        pytest.param({**HEADER, "history": "x"}, "state: allocator state has no 'history' object",
                     id="state-history-string"),
        pytest.param({**HEADER, "history": {}, "num_updates": -1}, "state: num_updates=-1 must be a count ≥ 0",
                     id="state-negative-updates"),
        pytest.param({**HEADER, "history": {**HISTORY, "ids": ["a"], "correct": [NAN], "total": [2]}},
                     "state: invalid success history (state['correct'][0]=nan must be a finite count ≥ 0)",
                     id="state-history-nan-count"),
        pytest.param({**HEADER, "history": {**HISTORY, "ids": ["a"], "correct": [3], "total": [2]}},
                     "state: invalid success history (state['correct'][0]=3.0 exceeds state['total'][0]=2.0)",
                     id="state-history-more-correct-than-total"),
        pytest.param({**HEADER, "history": {**HISTORY, "ids": ["a", "b"], "correct": [1], "total": [2]}},
                     "state: invalid success history (state['correct'] has shape (1,), expected (2,) to match "
                     "prompt_ids)", id="state-history-ragged"),
    ],
)
def test_bad_allocator_state(state, message: str) -> None:
    allocator = RolloutAllocator(AllocationConfig())
    before = allocator.state_dict()
    with pytest.raises(AllocatorStateError) as info:
        allocator.load_state_dict(state)
    assert str(info.value) == message
    assert allocator.state_dict() == before  # a refused state leaves the allocator as it was


def test_allocator_state_header_without_history() -> None:
    with pytest.raises(AllocatorStateError, match="history"):
        RolloutAllocator(AllocationConfig()).load_state_dict(dict(HEADER))


# ---------------------------------------------------------------------------------------------------------------
# DynaMOConfig (TRL adapter)
# ---------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dynamo_config():
    pytest.importorskip("trl")
    from dynamo_rl.adapters.trl.config import DynaMOConfig

    def make(tmp_path, **kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return DynaMOConfig(output_dir=str(tmp_path / "trl"), num_generations=4, per_device_train_batch_size=4,
                                report_to="none", use_cpu=True, bf16=False, **kwargs)
    return make


def _trl_refusal(method: str, loss: str) -> str:
    from dynamo_rl.adapters.trl.config import supported_methods

    return (f"invalid dynamo_method='{method}': invalid loss.policy_loss='{loss}' for TRL: TRL's loss is the PPO clip "
            f"surrogate; supported methods with TRL: {', '.join(supported_methods())}")


DYNAMO_CASES = [
    pytest.param({"dynamo_method": "kl_cov"}, lambda: _trl_refusal("kl_cov", "kl_cov"), id="trl-method-kl-cov"),
    pytest.param({"dynamo_method": "clip_cov"}, lambda: _trl_refusal("clip_cov", "clip_cov"), id="trl-method-clip-cov"),
    pytest.param({"dynamo_method": "ppo"}, lambda: f"invalid dynamo_method='ppo': unknown method 'ppo'; valid "
                 f"methods: {METHOD_NAMES}", id="trl-method-unknown"),
    pytest.param({"dynamo_preset": "fast"}, lambda: "invalid dynamo_preset='fast': unknown preset 'fast'; valid "
                 "presets: official, paper, theory", id="trl-preset-unknown"),
    pytest.param({"dynamo_n_min": 1}, lambda: "invalid dynamo_n_min=1: must be ≥ 2 (a group of one has no baseline)",
                 id="trl-n-min-one"),
    pytest.param({"dynamo_n_min": NAN}, lambda: "invalid dynamo_n_min=nan: expected an integer, got float",
                 id="trl-n-min-nan"),
    pytest.param({"dynamo_n_max": INF}, lambda: "invalid dynamo_n_max=inf: expected an integer, got float",
                 id="trl-n-max-inf"),
    pytest.param({"dynamo_proxy_power": NAN}, lambda: "invalid dynamo_proxy_power=nan: must be a finite number",
                 id="trl-proxy-power-nan"),
    pytest.param({"dynamo_k": INF}, lambda: "invalid dynamo_k=inf: must be a finite number", id="trl-k-inf"),
    pytest.param({"dynamo_alpha": "nan"}, lambda: "invalid dynamo_alpha=nan: must be a finite number",
                 id="trl-alpha-nan-string"),
    pytest.param({"dynamo_variance_target_ratio": INF},
                 lambda: "invalid dynamo_variance_target_ratio=inf: must be a finite number", id="trl-rho-inf"),
    pytest.param({"dynamo_mu_max": "abc"}, lambda: "invalid dynamo_mu_max='abc': expected a number or 'none'",
                 id="trl-mu-max-word"),
    pytest.param({"dynamo_success_threshold": NAN},
                 lambda: "invalid dynamo_success_threshold=nan: must be finite", id="trl-success-threshold-nan"),
    pytest.param({"dynamo_tau": True}, lambda: "invalid dynamo_tau=True: expected a number, got bool",
                 id="trl-tau-bool"),
    pytest.param({"dynamo_min_history": 2.5}, lambda: "invalid dynamo_min_history=2.5: expected an integer, got float",
                 id="trl-min-history-float"),
    pytest.param({"dynamo_gradient_compensation": "yes"},
                 lambda: "invalid dynamo_gradient_compensation='yes': expected true/false, got str",
                 id="trl-switch-string"),
    pytest.param({"dynamo_norm_scope": 5}, lambda: "invalid dynamo_norm_scope=5: expected a string, got int",
                 id="trl-norm-scope-number"),
    pytest.param({"dynamo_allocator": "greedy"}, lambda: "invalid dynamo_allocator='greedy': expected one of "
                 "knapsack, official, optimal, uniform, variance_matched, waterfill", id="trl-allocator-unknown"),
    pytest.param({"dynamo_forgetting": 0}, lambda: "invalid dynamo_forgetting=0: must be in (0, 1] or None",
                 id="trl-forgetting-zero"),
    pytest.param({"dynamo_loss": {"nope": 1}}, lambda: f"invalid dynamo_loss: unknown field 'nope'; valid: "
                 f"{LOSS_FIELDS}", id="trl-loss-unknown-field"),
    pytest.param({"dynamo_loss": "{bad json"}, lambda: "invalid dynamo_loss='{bad json': expected a JSON object of "
                 "LossConfig fields", id="trl-loss-bad-json"),
    pytest.param({"dynamo_loss": {"eps_high": NAN}}, lambda: "invalid loss.eps_high=nan: must be a finite number",
                 id="trl-loss-nan"),
]


@pytest.mark.parametrize(("kwargs", "message"), DYNAMO_CASES)
def test_bad_dynamo_config(dynamo_config, tmp_path, kwargs: dict, message) -> None:
    with pytest.raises(ValueError) as info:
        dynamo_config(tmp_path, **kwargs)
    assert str(info.value) == message()


@pytest.mark.parametrize("kwargs", [pytest.param({"dynamo_method": ["dynamo"]}, id="trl-method-list"),
                                    pytest.param({"dynamo_n_min": "3"}, id="trl-n-min-string")])
def test_dynamo_config_wrong_types(dynamo_config, tmp_path, kwargs: dict) -> None:
    with pytest.raises(ValueError):
        dynamo_config(tmp_path, **kwargs)
