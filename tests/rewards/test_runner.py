"""verify_batch / VerifierPool: order, per-item time limit, worker crashes, adversarial inputs; reward mappings."""

from __future__ import annotations

import os
import time

import pytest

from dynamo_rl.rewards.base import Verdict
from dynamo_rl.rewards.mapping import (
    REWARD_MAPPINGS,
    RewardMapping,
    get_reward_mapping,
    map_rewards,
    status_counts,
    status_fractions,
)
from dynamo_rl.rewards.runner import VerifierPool, verify_batch


class ScriptedVerifier:
    """Verifier whose behaviour is chosen by the completion text (picklable: defined at module level)."""

    def verify(self, completion: str, answer: str) -> Verdict:
        if completion == "hang":
            while True:  # a pure-Python infinite loop: only killing the process stops it
                pass
        if completion == "sleep":
            time.sleep(3600)
        if completion == "crash":
            os._exit(3)  # the worker process dies without a reply
        if completion == "raise":
            raise RuntimeError("verifier bug")
        if completion == "pid":
            return Verdict(0.0, "incorrect", str(os.getpid()))
        ok = completion == answer
        return Verdict(float(ok), "correct" if ok else "incorrect", completion)


def test_results_in_order() -> None:
    completions = [str(i % 3) for i in range(20)]
    answers = ["1"] * 20
    verdicts = verify_batch(ScriptedVerifier(), completions, answers, num_workers=2, timeout=10.0)
    assert [v.status for v in verdicts] == ["correct" if c == "1" else "incorrect" for c in completions]
    assert [v.parsed for v in verdicts] == completions
    with_bar = verify_batch(ScriptedVerifier(), completions[:3], answers[:3], num_workers=1, progress=True)
    assert with_bar == verdicts[:3]


def test_empty_batch() -> None:
    assert verify_batch(ScriptedVerifier(), [], [], num_workers=1) == []


def test_hang_crash_and_exception_are_contained() -> None:
    completions = ["a", "hang", "b", "crash", "sleep", "raise", "c"]
    with VerifierPool(ScriptedVerifier(), num_workers=2, timeout=1.0) as pool:
        start = time.monotonic()
        verdicts = pool.verify(completions, ["a", "x", "b", "x", "x", "x", "c"])
        elapsed = time.monotonic() - start
        assert [v.status for v in verdicts] == ["correct", "timeout", "correct", "unparseable", "timeout",
                                                "unparseable", "correct"]
        assert pool.num_timeouts == 2 and pool.num_crashes == 1
        # two hung items on two workers: bounded by the per-item limit, not by the hang
        assert elapsed < 30.0
        # the pool is still usable afterwards (killed workers were replaced)
        again = pool.verify(["z"] * 4, ["z"] * 4)
        assert all(v.correct for v in again)


def test_pool_reuses_workers() -> None:
    with VerifierPool(ScriptedVerifier(), num_workers=2, timeout=10.0) as pool:
        first = {v.parsed for v in pool.verify(["pid"] * 6, ["x"] * 6)}
        pids = [w.process.pid for w in pool._workers]
        second = {v.parsed for v in pool.verify(["pid"] * 6, ["x"] * 6)}
        # both calls ran in the same two processes: no pool per call
        assert first | second <= {str(pid) for pid in pids}
        assert [w.process.pid for w in pool._workers] == pids
    assert all(not os.path.exists(f"/proc/{pid}") or _is_zombie_or_gone(pid) for pid in pids)


def _is_zombie_or_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] in ("Z", "X")
    except FileNotFoundError:
        return True


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"timeout": 0.0}, "timeout"), ({"num_workers": 0}, "num_workers"), ({"memory_limit_mb": 1}, "memory_limit")],
)
def test_pool_argument_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        VerifierPool(ScriptedVerifier(), **kwargs)


def test_batch_argument_errors() -> None:
    with pytest.raises(ValueError, match="same length"):
        verify_batch(ScriptedVerifier(), ["a", "b"], ["a"], num_workers=1)
    with pytest.raises(ValueError, match=r"answers\[1\]"):
        verify_batch(ScriptedVerifier(), ["a", "b"], ["a", 2], num_workers=1)  # type: ignore[list-item]


def test_adversarial_math_inputs_return_within_limit() -> None:
    """Huge exponent, deep nesting, 1 MB string, unterminated box: each gets a status; good items still grade."""
    pytest.importorskip("math_verify")
    from dynamo_rl.rewards.math_verifier import MathVerifier

    deep = "\\boxed{" + "{" * 2000 + "1" + "}" * 2000 + "}"
    completions = [
        "\\boxed{9^{9^{9^{9}}}}",
        "the answer is $\\boxed{12}$",
        deep,
        "x" * 1_000_000 + " so \\boxed{12}",
        "y" * 1_000_000,
        "\\boxed{",
        "\\boxed{13}",
    ]
    # max_answer_chars raised so the deep nesting really reaches the parser
    verifier = MathVerifier(max_answer_chars=10**7)
    timeout = 3.0
    with VerifierPool(verifier, num_workers=2, timeout=timeout) as pool:
        pool.verify(["\\boxed{1}"] * 2, ["1"] * 2)  # workers started before the clock
        start = time.monotonic()
        verdicts = pool.verify(completions, ["12"] * len(completions))
        elapsed = time.monotonic() - start
    statuses = [v.status for v in verdicts]
    assert statuses[1] == "correct" and statuses[3] == "correct"
    assert statuses[6] == "incorrect"
    assert statuses[5] == "unparseable" and statuses[4] == "unparseable"
    assert statuses[0] in ("timeout", "incorrect", "unparseable")
    assert statuses[2] in ("timeout", "incorrect", "unparseable")
    # worst case every item runs to the limit on 2 workers; generous slack for a loaded machine
    assert elapsed < timeout * len(completions) / 2 + 30.0


# ---------------------------------------------------------------------------------------------------- mapping
VERDICTS = [Verdict(1.0, "correct", "1"), Verdict(0.0, "incorrect", "2"), Verdict(0.0, "unparseable"),
            Verdict(0.0, "timeout"), Verdict(1.0, "correct", "1")]


def test_mappings() -> None:
    assert map_rewards(VERDICTS) == [1.0, 0.0, 0.0, 0.0, 1.0]
    assert map_rewards(VERDICTS, "plus_minus") == [1.0, -1.0, -1.0, -1.0, 1.0]
    assert map_rewards(VERDICTS, "w_reinforce") == [0.1, -1.0, -1.0, -1.0, 0.1]
    assert map_rewards(VERDICTS, "w_reinforce", lam=0.5) == [0.5, -1.0, -1.0, -1.0, 0.5]
    assert map_rewards(VERDICTS, RewardMapping(2.0, -0.5)) == [2.0, -0.5, -0.5, -0.5, 2.0]
    assert set(REWARD_MAPPINGS.names()) == {"binary", "plus_minus", "w_reinforce"}


def test_mapping_errors() -> None:
    with pytest.raises(KeyError, match="binary"):
        get_reward_mapping("nope")
    with pytest.raises(ValueError, match="lam"):
        get_reward_mapping("binary", lam=0.3)
    with pytest.raises(ValueError, match="correct reward"):
        RewardMapping(0.0, 0.0)
    with pytest.raises(ValueError, match="correct reward"):
        get_reward_mapping("w_reinforce", lam=-2.0)
    with pytest.raises(ValueError, match="by name"):
        map_rewards(VERDICTS, RewardMapping(), lam=0.1)


def test_status_counts() -> None:
    assert status_counts(VERDICTS) == {"correct": 2, "incorrect": 1, "unparseable": 1, "timeout": 1}
    assert status_counts([]) == {"correct": 0, "incorrect": 0, "unparseable": 0, "timeout": 0}
    assert status_fractions(VERDICTS)["unparseable"] == pytest.approx(0.2)
    with pytest.raises(ValueError, match="status"):
        status_counts([Verdict(0.0, "weird")])  # type: ignore[arg-type]
