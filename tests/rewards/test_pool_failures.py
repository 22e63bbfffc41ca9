"""VerifierPool: worker death at every moment (starting, idle, busy, being replaced), owner death, bad verifiers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dynamo_rl.rewards.base import Verdict
from dynamo_rl.rewards.runner import VerifierPool, VerifierStartError, verify_in_process


class MarkerVerifier:
    """Start-up and items driven by files in ``folder`` (so a behaviour can be armed for the *next* worker)."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def warmup(self) -> None:
        if os.path.exists(os.path.join(self.folder, "always-die")):
            os._exit(7)
        if os.path.exists(os.path.join(self.folder, "always-hang")):
            time.sleep(3600)
        try:
            os.unlink(os.path.join(self.folder, "die-next"))  # exactly one worker wins the unlink and dies
        except FileNotFoundError:
            return
        os._exit(5)

    def verify(self, completion: str, answer: str) -> Verdict:
        if completion == "crash-and-arm":  # the replacement of this worker dies before it is ready
            Path(self.folder, "die-next").touch()
            os._exit(3)
        if completion == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        if completion == "pid":
            return Verdict(0.0, "incorrect", str(os.getpid()))
        ok = completion == answer
        return Verdict(float(ok), "correct" if ok else "incorrect", completion)


class ReturnsWrongType:
    def verify(self, completion: str, answer: str):
        return True if completion == "bool" else Verdict(1.0, "correct", completion)


class RaisesInVerify:
    def verify(self, completion: str, answer: str) -> Verdict:
        raise RuntimeError("bug")


def test_replacement_that_dies_before_ready_is_replaced_again(tmp_path: Path) -> None:
    with VerifierPool(MarkerVerifier(str(tmp_path)), num_workers=1, timeout=30.0) as pool:
        first = pool.verify(["a", "crash-and-arm", "b"], ["a", "x", "b"])
        # the crashed worker's replacement died in warm-up; the pool started another one; nothing was raised
        second = pool.verify(["c", "d"], ["c", "x"])
        assert [v.status for v in first] == ["correct", "unparseable", "correct"]
        assert [v.status for v in second] == ["correct", "incorrect"]
        assert (pool.num_crashes, pool.num_start_failures) == (1, 1)
        assert not (tmp_path / "die-next").exists()


def test_worker_killed_while_busy_or_idle(tmp_path: Path) -> None:
    with VerifierPool(MarkerVerifier(str(tmp_path)), num_workers=1, timeout=30.0) as pool:
        assert [v.status for v in pool.verify(["a", "sigkill", "b"], ["a", "x", "b"])] == [
            "correct", "unparseable", "correct"]
        assert pool.num_crashes == 1
        worker = pool._workers[0]
        os.kill(worker.process.pid, signal.SIGKILL)  # dies while idle, between two calls
        worker.process.join(timeout=30)
        assert worker.process.exitcode == -signal.SIGKILL
        assert [v.status for v in pool.verify(["c", "pid"], ["c", "x"])] == ["correct", "incorrect"]
        assert pool.num_crashes == 1  # the item was sent to the fresh worker, not graded as a crash
        assert pool._workers[0].process.pid != worker.process.pid


def test_workers_that_never_start_raise_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "always-die").touch()
    pool = VerifierPool(MarkerVerifier(str(tmp_path)), num_workers=1, timeout=30.0, max_start_failures=2)
    with pytest.raises(VerifierStartError, match=r"cannot be started: 2 starts in a row failed, the last one died "
                                                 r"\(exit code 7\) before it was ready; check that MarkerVerifier"):
        pool.verify(["a"], ["a"])
    assert pool.num_start_failures == 2
    with pytest.raises(VerifierStartError, match="exit code 7"):
        pool.start(wait_ready=True)
    pool.close()
    (tmp_path / "always-die").unlink()
    with pool:  # the same pool works once the cause is gone
        assert pool.verify(["a"], ["a"])[0].correct


def test_worker_that_hangs_while_starting(tmp_path: Path) -> None:
    (tmp_path / "always-hang").touch()
    with VerifierPool(MarkerVerifier(str(tmp_path)), num_workers=1, timeout=30.0, startup_timeout=0.5,
                      max_start_failures=1) as pool:
        with pytest.raises(VerifierStartError, match=r"was not ready within startup_timeout=0.5 s \(exit code -9\)"):
            pool.verify(["a"], ["a"])


def test_non_verdict_return_is_a_type_error_and_the_pool_stays_usable() -> None:
    with VerifierPool(ReturnsWrongType(), num_workers=2, timeout=30.0) as pool:
        with pytest.raises(TypeError, match=r"verifier ReturnsWrongType.verify returned bool for item 1, expected a "
                                            r"dynamo_rl.rewards.base.Verdict"):
            pool.verify(["a", "bool", "c"], ["a", "x", "c"])
        assert [v.status for v in pool.verify(["a", "b"], ["a", "b"])] == ["correct", "correct"]
    with pytest.raises(TypeError, match=r"ReturnsWrongType.verify returned bool for item 0"):
        verify_in_process(ReturnsWrongType(), ["bool"], ["x"])


def test_verify_in_process_grades_exceptions_unparseable() -> None:
    assert [v.status for v in verify_in_process(RaisesInVerify(), ["a", "b"], ["a", "b"])] == ["unparseable"] * 2
    assert verify_in_process(ReturnsWrongType(), ["a"], ["a"]) == [Verdict(1.0, "correct", "a")]


# ---------------------------------------------------------------------------------------------------- owner death
SPIN_VERIFIER = '''
import os, time

class SpinVerifier:
    def __init__(self, folder):
        self.folder = folder

    def verify(self, completion, answer):
        open(os.path.join(self.folder, "busy-%d" % os.getpid()), "w").close()
        if completion == "python_loop":
            while True:  # releases the GIL now and then
                pass
        return sum(range(10 ** 15))  # one C call that holds the GIL for hours
'''

OWNER = '''
import os, sys
sys.path.insert(0, sys.argv[1])
from spin_verifier import SpinVerifier
from dynamo_rl.rewards.runner import VerifierPool

if __name__ == "__main__":
    pool = VerifierPool(SpinVerifier(sys.argv[1]), num_workers=2, timeout=3600.0).start(wait_ready=True)
    pids = " ".join(str(w.process.pid) for w in pool._workers)
    with open(os.path.join(sys.argv[1], "pids.tmp"), "w") as f:
        f.write(pids)
    os.replace(os.path.join(sys.argv[1], "pids.tmp"), os.path.join(sys.argv[1], "pids"))
    pool.verify(["python_loop", "c_loop"], ["x", "x"])
'''


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def _wait_for(condition, limit_s: float, what: str) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {limit_s} s")
        time.sleep(0.1)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_busy_workers_exit_when_the_owner_is_sigkilled(tmp_path: Path) -> None:
    (tmp_path / "spin_verifier.py").write_text(SPIN_VERIFIER)
    (tmp_path / "owner.py").write_text(OWNER)
    owner = subprocess.Popen([sys.executable, str(tmp_path / "owner.py"), str(tmp_path)])
    pids: list[int] = []
    try:
        _wait_for(lambda: (tmp_path / "pids").exists() or owner.poll() is not None, 120, "pool start")
        assert owner.poll() is None, f"the owner exited with {owner.returncode}"
        pids = [int(p) for p in (tmp_path / "pids").read_text().split()]
        _wait_for(lambda: all((tmp_path / f"busy-{pid}").exists() for pid in pids), 60, "both workers busy")
        owner.send_signal(signal.SIGKILL)
        owner.wait(timeout=30)
        _wait_for(lambda: all(_gone(pid) for pid in pids), 30, "worker exit after the owner's SIGKILL")
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait(timeout=30)
        for pid in pids:  # only if the test failed: never leave a spinning worker behind
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)
