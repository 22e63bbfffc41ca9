"""Batch verification in worker processes with a hard per-item time limit.

One pathological completion (a huge exponent, deeply nested LaTeX, a 1 MB string) can neither hang nor crash the
caller: every item runs in a worker process; a worker still busy after ``timeout`` seconds is killed (SIGKILL) and
replaced, and its item gets the status ``timeout``. A worker that dies while verifying (segfault, out-of-memory kill)
is replaced too and its item gets ``unparseable``; an exception raised by the verifier inside a worker also gives
``unparseable``. A worker that dies while idle is replaced and its next item is sent to the fresh worker. A worker
that dies (or hangs past ``startup_timeout``) before it is ready holds no item; it is replaced as well. The caller
therefore gets one :class:`~dynamo_rl.rewards.base.Verdict` per item, in order, within roughly ``timeout`` seconds
per item in the worst case (``timeout * ceil(len / num_workers)`` if every item hangs), plus start-up time.

Two things do raise, each with one line:

- :class:`VerifierStartError` when workers cannot be started at all: ``max_start_failures`` starts in a row failed
  (default 3 per worker) with no worker becoming ready in between. There is no in-process fallback: in-process
  verification has no hard time limit, so a fallback could hang the run on one pathological completion.
- ``TypeError`` (after the whole batch is done, so the pool stays usable) when the verifier returned something other
  than a :class:`~dynamo_rl.rewards.base.Verdict`: a verifier bug must not turn into silent zero rewards.

Workers die with the process that owns the pool, even while busy: each one watches a "lifeline" pipe whose only
writer is the owner (EOF = the owner is gone, at any moment of its life), and on Linux it is also given
``PR_SET_PDEATHSIG=SIGKILL`` (which stops code that holds the GIL too; with ``forkserver`` the parent is the fork
server, which exits with the owner).

Training loops keep one :class:`VerifierPool` open for the whole run (``with VerifierPool(...) as pool``) so no step
pays the process start-up; :func:`verify_batch` is the one-shot form, :func:`verify_in_process` the in-process form
(trusted verifiers and tests only: no time limit).

Workers are started with the ``forkserver`` method where available (``spawn`` otherwise), never ``fork``: a training
process has CUDA and tokenizer threads that must not be duplicated. The fork server preloads
``dynamo_rl.rewards.math_verifier`` (and so SymPy), so replacing a killed worker costs milliseconds, not an import.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

from dynamo_rl.rewards.base import Verdict, Verifier, check_verdict

TIMEOUT_VERDICT = Verdict(0.0, "timeout", None)
ERROR_VERDICT = Verdict(0.0, "unparseable", None)
_PRELOAD = ["math_verify", "latex2sympy2_extended", "dynamo_rl.rewards.math_verifier"]
_READY = "ready"
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class VerifierStartError(RuntimeError):
    """Verifier workers could not be started (the message says how often, the last reason and what to check)."""


# ---------------------------------------------------------------------------------------------------- worker side
def _release_fork_server() -> None:
    """Close this worker's copy of the fork server's "alive" pipe (a worker never starts processes itself).

    The fork server exits when every holder of that pipe is gone; with the workers' copies closed, that is exactly
    when the owner dies, and the workers' ``PR_SET_PDEATHSIG`` then fires."""
    try:
        from multiprocessing import forkserver

        server = forkserver._forkserver
        fd = server._forkserver_alive_fd
    except (ImportError, AttributeError):  # pragma: no cover - other Python versions: the lifeline still works
        return
    if fd is None:
        return
    server._forkserver_alive_fd = None
    try:
        os.close(fd)
    except OSError:  # pragma: no cover
        pass


def _die_with_owner(lifeline: Connection, forkserver: bool) -> None:
    """Exit this worker as soon as the pool's owner is gone, even while the main thread is busy."""
    if forkserver and sys.platform.startswith("linux"):  # spawn: the parent *thread* would trigger the signal
        _release_fork_server()
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - no libc prctl: the lifeline still works
            pass

    def watch() -> None:
        try:
            lifeline.recv_bytes()  # the owner never writes: this returns only by EOF (owner closed it or died)
        except (EOFError, OSError):
            pass
        os._exit(0)

    threading.Thread(target=watch, name="verifier-lifeline", daemon=True).start()


def _worker_main(conn: Connection, lifeline: Connection, verifier: Verifier, memory_limit_mb: int | None,
                 forkserver: bool) -> None:
    """Worker loop: receive ``(index, completion, answer)``, send back ``(index, verdict, None)`` or
    ``(index, None, type name)`` for a non-Verdict return; ``None`` stops it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it kills the workers
    _die_with_owner(lifeline, forkserver)
    if memory_limit_mb is not None:
        import resource

        limit = memory_limit_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    warmup = getattr(verifier, "warmup", None)
    if callable(warmup):  # first-call costs (parser tables) are paid before the clock of any item starts
        try:
            warmup()
        except Exception:  # noqa: BLE001 - a failing warm-up shows up again, per item, as "unparseable"
            pass
    try:
        conn.send(_READY)
    except (EOFError, OSError):
        return
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        index, completion, answer = task
        try:
            verdict = verifier.verify(completion, answer)
        except BaseException:  # noqa: BLE001 - MemoryError, RecursionError, verifier bugs: never kill the loop
            verdict = ERROR_VERDICT
        message = (index, verdict, None) if isinstance(verdict, Verdict) else (index, None, type(verdict).__name__)
        try:
            conn.send(message)
        except (EOFError, OSError):
            return


# ---------------------------------------------------------------------------------------------------- parent side
def _default_context() -> Any:
    methods = mp.get_all_start_methods()
    if "forkserver" in methods:
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)  # no effect once the fork server runs; harmless then
        return ctx
    return mp.get_context("spawn")


def _check_seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number of seconds > 0, got {value!r}")
    return float(value)


class _Worker:
    """One worker process, the parent's end of its pipe and of its lifeline."""

    def __init__(self, ctx: Any, verifier: Verifier, memory_limit_mb: int | None, startup_timeout: float) -> None:
        self.conn, child_conn = ctx.Pipe(duplex=True)
        lifeline_child, self.lifeline = ctx.Pipe(duplex=False)
        forkserver = ctx.get_start_method() == "forkserver"
        self.process = ctx.Process(target=_worker_main, daemon=True,
                                   args=(child_conn, lifeline_child, verifier, memory_limit_mb, forkserver))
        try:
            self.process.start()
        except BaseException:
            self.conn.close()
            self.lifeline.close()
            raise
        finally:
            child_conn.close()
            lifeline_child.close()
        self.ready = False
        """Set when the worker reports that it finished starting (imports, warm-up); only then does it get items."""
        self.task: int | None = None
        self.deadline = time.monotonic() + startup_timeout

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()
        self.lifeline.close()

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except (OSError, ValueError):
            pass
        self.process.join(timeout=1)
        self.kill()


class VerifierPool:
    """A reusable pool of verifier worker processes with a hard per-item time limit (see module docs).

    >>> with VerifierPool(MathVerifier(), num_workers=2, timeout=5.0) as pool:  # doctest: +SKIP
    ...     verdicts = pool.verify(completions, answers)
    """

    def __init__(self, verifier: Verifier, *, num_workers: int | None = None, timeout: float = 5.0,
                 memory_limit_mb: int | None = 4096, start_method: str | None = None,
                 startup_timeout: float = 120.0, max_start_failures: int | None = None) -> None:
        if not callable(getattr(verifier, "verify", None)):
            raise ValueError(f"verifier must have a verify(completion, answer) method, got {verifier!r}")
        self.timeout = _check_seconds("timeout", timeout)
        self.startup_timeout = _check_seconds("startup_timeout", startup_timeout)
        if num_workers is None:
            num_workers = max(1, min(8, os.cpu_count() or 1))
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 1:
            raise ValueError(f"num_workers must be a positive int, got {num_workers!r}")
        if memory_limit_mb is not None and (isinstance(memory_limit_mb, bool) or not isinstance(memory_limit_mb, int)
                                            or memory_limit_mb < 64):
            raise ValueError(f"memory_limit_mb must be an int >= 64 or None, got {memory_limit_mb!r}")
        if max_start_failures is None:
            max_start_failures = 3 * num_workers
        if isinstance(max_start_failures, bool) or not isinstance(max_start_failures, int) or max_start_failures < 1:
            raise ValueError(f"max_start_failures must be a positive int or None, got {max_start_failures!r}")
        self.verifier = verifier
        self.num_workers = num_workers
        self.memory_limit_mb = memory_limit_mb
        self.max_start_failures = max_start_failures
        self._ctx = _default_context() if start_method is None else mp.get_context(start_method)
        self._workers: list[_Worker | None] = []
        """One slot per worker; None while a replacement is due."""
        self._failed_starts = 0
        """Failed starts in a row (reset whenever a worker reports ready)."""
        self._last_start_failure = ""
        self._invalid: tuple[int, str] | None = None
        self.num_timeouts = 0
        """Items that ran past ``timeout`` since the pool was opened (their worker was killed)."""
        self.num_crashes = 0
        """Workers that died while verifying an item since the pool was opened."""
        self.num_start_failures = 0
        """Worker starts that failed (died or hung before ready, or could not be launched) since the pool opened."""

    # ------------------------------------------------------------------ lifecycle
    def start(self, *, wait_ready: bool = False) -> VerifierPool:
        """Launch the workers (non-blocking); ``wait_ready=True`` also waits until every one is ready, so a
        :class:`VerifierStartError` surfaces here rather than at the first :meth:`verify`."""
        if not self._workers:
            self._workers = [None] * self.num_workers
        self._fill()
        while wait_ready and any(w is None or not w.ready for w in self._workers):
            self._collect([])
            self._fill()
        return self

    def close(self) -> None:
        """Stop every worker (idempotent)."""
        workers, self._workers = self._workers, []
        for worker in workers:
            if worker is not None:
                worker.stop()

    def __enter__(self) -> VerifierPool:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # a forgotten close() must not leave processes behind
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def _fill(self) -> None:
        """Start a worker in every empty slot; a launch that raises counts as a failed start."""
        for slot, worker in enumerate(self._workers):
            if worker is not None:
                continue
            try:
                self._workers[slot] = _Worker(self._ctx, self.verifier, self.memory_limit_mb, self.startup_timeout)
            except Exception as exc:  # noqa: BLE001 - fork/pickling failures: counted, retried, bounded
                self._start_failed(f"could not be launched ({type(exc).__name__}: {exc})")
                time.sleep(min(0.05 * self._failed_starts, 1.0))  # back off a transient EAGAIN / ENOMEM

    def _start_failed(self, reason: str) -> None:
        self.num_start_failures += 1
        self._failed_starts += 1
        self._last_start_failure = reason
        if self._failed_starts >= self.max_start_failures:
            failed, self._failed_starts = self._failed_starts, 0  # a later call gets the full budget again
            raise VerifierStartError(
                f"verifier workers cannot be started: {failed} starts in a row failed, the last one "
                f"{reason}; check that {type(self.verifier).__name__} pickles and imports in a fresh process, that "
                f"memory_limit_mb={self.memory_limit_mb} is enough, and, when called from a script, that the script "
                "guards its code with `if __name__ == \"__main__\":` (worker processes re-import the main module)")

    def _drop(self, worker: _Worker) -> None:
        """Kill ``worker`` and empty its slot (refilled by :meth:`_fill`)."""
        worker.kill()
        self._workers[self._workers.index(worker)] = None

    # ------------------------------------------------------------------ verification
    def verify(self, completions: Sequence[str], answers: Sequence[str], *, progress: bool = False,
               desc: str = "verify") -> list[Verdict]:
        """One verdict per ``(completions[i], answers[i])``, in order; see the module docs for the guarantees."""
        completions, answers = _check_inputs(completions, answers)
        results: list[Verdict | None] = [None] * len(completions)
        if not completions:
            return []
        self.start()
        self._invalid = None
        bar = _progress_bar(len(completions), desc) if progress else None
        pending = deque(range(len(completions)))
        finished = False
        try:
            while pending or any(w is not None and w.task is not None for w in self._workers):
                self._fill()
                for worker in list(self._workers):  # hand out work to idle workers
                    if worker is not None and worker.ready and worker.task is None and pending:
                        index = pending.popleft()
                        try:
                            worker.conn.send((index, completions[index], answers[index]))
                        except (OSError, ValueError):  # died while idle: replace it, the item goes to another
                            self._drop(worker)
                            pending.appendleft(index)
                            continue
                        worker.task, worker.deadline = index, time.monotonic() + self.timeout
                done = self._collect(results)
                if bar is not None and done:
                    bar.update(done)
            finished = True
        finally:
            if bar is not None:
                bar.close()
            if not finished:  # interrupted: a busy worker's late answer must not leak into the next call
                for worker in list(self._workers):
                    if worker is not None and worker.task is not None:
                        self._drop(worker)
        if self._invalid is not None:
            index, type_name = self._invalid
            raise TypeError(f"verifier {type(self.verifier).__name__}.verify returned {type_name} for item {index}, "
                            f"expected a dynamo_rl.rewards.base.Verdict(score, status, parsed)")
        return [r if r is not None else ERROR_VERDICT for r in results]

    def _collect(self, results: list[Verdict | None]) -> int:
        """Wait for the first message or deadline; store what arrived; replace dead and late workers.

        Returns the number of items finished."""
        busy = [w for w in self._workers if w is not None and (w.task is not None or not w.ready)]
        if not busy:
            return 0
        wait_for = max(0.0, min(w.deadline for w in busy) - time.monotonic())
        ready = set(wait([w.conn for w in busy], timeout=wait_for))
        done = 0
        for worker in busy:
            if worker.conn in ready:
                try:
                    message = worker.conn.recv()
                except Exception:  # noqa: BLE001 - EOF: the worker died (segfault, OOM kill); or a garbled message
                    done += self._lost(worker, results, "died")
                    continue
                if message == _READY:
                    worker.ready = True
                    self._failed_starts = 0
                    continue
                index, verdict, bad_type = message
                if index != worker.task:  # cannot happen with this protocol; never trust a mismatched answer
                    done += self._lost(worker, results, "sent an answer for another item")
                    continue
                if verdict is None:
                    self._invalid = self._invalid or (index, bad_type)
                    verdict = ERROR_VERDICT
                results[index] = verdict
                worker.task = None
                done += 1
            elif time.monotonic() >= worker.deadline:
                if worker.task is None:
                    done += self._lost(worker, results, f"was not ready within startup_timeout={self.startup_timeout} s")
                    continue
                self.num_timeouts += 1
                results[worker.task] = TIMEOUT_VERDICT
                self._drop(worker)
                done += 1
        return done

    def _lost(self, worker: _Worker, results: list[Verdict | None], what: str) -> int:
        """A worker died or misbehaved: its item (if any) gets ``unparseable``; it is replaced. Returns items done."""
        task = worker.task
        self._drop(worker)
        if task is None:  # still starting: no item is affected, but the start failed
            code = worker.process.exitcode
            self._start_failed(what + ("" if code is None else f" (exit code {code})") + " before it was ready")
            return 0
        self.num_crashes += 1
        results[task] = ERROR_VERDICT
        return 1


def _check_inputs(completions: Sequence[str], answers: Sequence[str]) -> tuple[list[str], list[str]]:
    completions, answers = list(completions), list(answers)
    if len(completions) != len(answers):
        raise ValueError(f"completions and answers must have the same length, got {len(completions)} "
                         f"and {len(answers)}")
    for name, items in (("completions", completions), ("answers", answers)):
        bad = next((i for i, x in enumerate(items) if not isinstance(x, str)), None)
        if bad is not None:
            raise ValueError(f"{name}[{bad}] must be a str, got {type(items[bad]).__name__}")
    return completions, answers


def _progress_bar(total: int, desc: str) -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError as exc:  # pragma: no cover
        raise ImportError("progress=True needs tqdm: pip install tqdm") from exc
    return tqdm(total=total, desc=desc, unit="item")


def verify_batch(verifier: Verifier, completions: Sequence[str], answers: Sequence[str], *, timeout: float = 5.0,
                 num_workers: int | None = None, progress: bool = False) -> list[Verdict]:
    """Verify ``completions[i]`` against ``answers[i]`` in a fresh :class:`VerifierPool`; one verdict per item.

    ``num_workers=None`` uses ``min(len(completions), cpu_count, 8)`` workers. For repeated calls (training), keep
    a :class:`VerifierPool` open instead: starting workers costs about a second.
    """
    _check_seconds("timeout", timeout)
    completions, answers = _check_inputs(completions, answers)
    if not completions:
        return []
    if num_workers is None:
        num_workers = max(1, min(len(completions), os.cpu_count() or 1, 8))
    with VerifierPool(verifier, num_workers=num_workers, timeout=timeout) as pool:
        return pool.verify(completions, answers, progress=progress)


def verify_in_process(verifier: Verifier, completions: Sequence[str], answers: Sequence[str]) -> list[Verdict]:
    """Verify in this process (no time limit: trusted verifiers and tests only), with the pool's other rules: an
    exception in ``verify`` gives ``unparseable``; a non-Verdict return raises ``TypeError`` naming the verifier."""
    completions, answers = _check_inputs(completions, answers)
    out = []
    for index, (completion, answer) in enumerate(zip(completions, answers)):
        try:
            value = verifier.verify(completion, answer)
        except Exception:  # noqa: BLE001 - as in a worker: a verifier bug grades the item, not the run
            value = ERROR_VERDICT
        out.append(check_verdict(value, verifier, index))
    return out


def verify_all(verifier: Any, completions: Sequence[str], answers: Sequence[str]) -> list[Verdict]:
    """The one verification path of every caller (training and evaluation): a started :class:`VerifierPool` (worker
    processes, per-item time limit) or any verifier in this process (:func:`verify_in_process`), with the same rules
    for exceptions and wrong return types."""
    if isinstance(verifier, VerifierPool):
        return verifier.verify(list(completions), list(answers))
    return verify_in_process(verifier, completions, answers)
