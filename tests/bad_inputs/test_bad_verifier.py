"""Bad inputs to the verifier layer (VerifierPool, verify_batch, verify_in_process, Verdict): exact outcomes.

Each row of docs/bad_inputs.md ("Datasets, verifier, numerics, plots", area "verifier") is one case here.
"""

from __future__ import annotations

import pytest

from dynamo_rl.rewards.base import Verdict
from dynamo_rl.rewards.runner import VerifierPool, verify_batch, verify_in_process


class EchoVerifier:
    def verify(self, completion: str, answer: str) -> Verdict:
        ok = completion == answer
        return Verdict(float(ok), "correct" if ok else "incorrect", completion)


class ReturnsBool:
    def verify(self, completion: str, answer: str) -> bool:
        return completion == answer


class Raises:
    def verify(self, completion: str, answer: str) -> Verdict:
        raise ZeroDivisionError("verifier bug")


def _pool(**kwargs):
    return lambda: VerifierPool(EchoVerifier(), **kwargs)


def _verdict(*args):
    return lambda: Verdict(*args)


def _pool_verify(verifier, completions, answers):
    def run():
        with VerifierPool(verifier, num_workers=1, timeout=30.0) as pool:
            return pool.verify(completions, answers)
    return run


CASES = [
    pytest.param(_pool(timeout=float("inf")), ValueError, "timeout must be a finite number of seconds > 0, got inf",
                 id="pool-timeout-inf"),
    pytest.param(_pool(timeout=float("nan")), ValueError, "timeout must be a finite number of seconds > 0, got nan",
                 id="pool-timeout-nan"),
    pytest.param(_pool(timeout=0), ValueError, "timeout must be a finite number of seconds > 0, got 0",
                 id="pool-timeout-zero"),
    pytest.param(_pool(timeout=-1.0), ValueError, "timeout must be a finite number of seconds > 0, got -1.0",
                 id="pool-timeout-negative"),
    pytest.param(_pool(timeout="5"), ValueError, "timeout must be a finite number of seconds > 0, got '5'",
                 id="pool-timeout-string"),
    pytest.param(_pool(timeout=True), ValueError, "timeout must be a finite number of seconds > 0, got True",
                 id="pool-timeout-bool"),
    pytest.param(_pool(startup_timeout=float("inf")), ValueError,
                 "startup_timeout must be a finite number of seconds > 0, got inf", id="pool-startup-timeout-inf"),
    pytest.param(_pool(num_workers=0), ValueError, "num_workers must be a positive int, got 0",
                 id="pool-num-workers-zero"),
    pytest.param(_pool(num_workers=2.5), ValueError, "num_workers must be a positive int, got 2.5",
                 id="pool-num-workers-float"),
    pytest.param(_pool(memory_limit_mb=10), ValueError, "memory_limit_mb must be an int >= 64 or None, got 10",
                 id="pool-memory-limit-tiny"),
    pytest.param(_pool(max_start_failures=0), ValueError, "max_start_failures must be a positive int or None, got 0",
                 id="pool-max-start-failures-zero"),
    pytest.param(lambda: VerifierPool(object()), ValueError, "verifier must have a verify(completion, answer) method",
                 id="pool-verifier-without-verify"),
    pytest.param(lambda: verify_batch(EchoVerifier(), ["a"], ["a"], timeout=float("inf")), ValueError,
                 "timeout must be a finite number of seconds > 0, got inf", id="verify-batch-timeout-inf"),
    pytest.param(lambda: verify_batch(EchoVerifier(), ["a", "b"], ["a"]), ValueError,
                 "completions and answers must have the same length, got 2 and 1", id="verify-batch-length-mismatch"),
    pytest.param(lambda: verify_batch(EchoVerifier(), ["a", "b"], ["a", 2]), ValueError,
                 "answers[1] must be a str, got int", id="verify-batch-answer-not-str"),
    pytest.param(lambda: verify_in_process(EchoVerifier(), [None], ["a"]), ValueError,
                 "completions[0] must be a str, got NoneType", id="in-process-completion-none"),
    pytest.param(_pool_verify(ReturnsBool(), ["a", "b"], ["a", "x"]), TypeError,
                 "verifier ReturnsBool.verify returned bool for item 0, expected a dynamo_rl.rewards.base.Verdict",
                 id="pool-verifier-returns-bool"),
    pytest.param(lambda: verify_in_process(ReturnsBool(), ["a"], ["a"]), TypeError,
                 "verifier ReturnsBool.verify returned bool for item 0", id="in-process-verifier-returns-bool"),
    pytest.param(_verdict(float("nan"), "correct"), ValueError, "Verdict score must be a finite number, got nan",
                 id="verdict-score-nan"),
    pytest.param(_verdict(True, "correct"), ValueError, "Verdict score must be a finite number, got True",
                 id="verdict-score-bool"),
    pytest.param(_verdict(1.0, "right"), ValueError,
                 "Verdict status must be one of correct, incorrect, unparseable, timeout, got 'right'",
                 id="verdict-status-unknown"),
    pytest.param(_verdict(1.0, "correct", 5), ValueError, "Verdict parsed must be a str or None, got int",
                 id="verdict-parsed-int"),
]


@pytest.mark.parametrize(("call", "error", "message"), CASES)
def test_bad_verifier_input(call, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        call()
    assert type(info.value) is error
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("verifier", "in_pool"),
    [pytest.param(Raises(), True, id="pool-verifier-raises"), pytest.param(Raises(), False, id="in-process-raises")],
)
def test_verifier_exception_is_graded_unparseable(verifier, in_pool: bool) -> None:
    if in_pool:
        verdicts = _pool_verify(verifier, ["a", "b"], ["a", "b"])()
    else:
        verdicts = verify_in_process(verifier, ["a", "b"], ["a", "b"])
    assert verdicts == [Verdict(0.0, "unparseable", None)] * 2
