"""Registry: register/get, duplicate names raise, unknown names list the valid ones."""

from __future__ import annotations

import pytest

from dynamo_rl.core.registry import Registry


def test_register_and_get():
    reg: Registry = Registry("widget")

    @reg.register("a")
    def a():
        return 1

    reg.add("b", len)
    assert reg.get("a") is a
    assert reg.get("b") is len
    assert reg.names() == ["a", "b"]
    assert list(reg) == ["a", "b"]
    assert "a" in reg and "c" not in reg
    assert len(reg) == 2
    assert "widget" in repr(reg)


def test_duplicate_name_raises():
    reg: Registry = Registry("widget")
    reg.add("a", 1)
    with pytest.raises(KeyError, match="already registered"):
        reg.add("a", 2)
    with pytest.raises(KeyError, match="already registered"):
        reg.register("a")(3)
    assert reg.get("a") == 1


def test_unknown_name_lists_valid_names():
    reg: Registry = Registry("widget")
    reg.add("beta", 1)
    reg.add("alpha", 2)
    with pytest.raises(KeyError, match=r"unknown widget 'gamma'; valid names: alpha, beta"):
        reg.get("gamma")
    with pytest.raises(KeyError, match="none registered"):
        Registry("empty").get("x")


@pytest.mark.parametrize("bad", ["", None, 3])
def test_bad_name_raises(bad):
    with pytest.raises(ValueError, match="non-empty string"):
        Registry("widget").register(bad)


def test_core_registries_hold_the_builtin_names():
    from dynamo_rl.core.advantages import ADVANTAGES
    from dynamo_rl.core.aggregation import AGGREGATIONS
    from dynamo_rl.core.losses import POLICY_LOSSES

    assert ADVANTAGES.names() == ["dr_grpo", "grpo", "rloo", "w_reinforce"]
    assert POLICY_LOSSES.names() == ["clip_cov", "kl_cov", "ppo_clip"]
    assert AGGREGATIONS.names() == ["seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm",
                                    "token-mean"]
