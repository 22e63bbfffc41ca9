"""Batch verification in worker processes with a hard per-item time limit.

One pathological completion (a huge exponent, deeply nested LaTeX, a 1 MB string) can neither hang nor crash the
caller: every item runs in a worker process; a worker still busy after ``timeout`` seconds is killed (SIGKILL) and
replaced, and its item gets the status ``timeout``. A worker that dies (segfault, out-of-memory kill) is replaced too
and its item gets ``unparseable``; an exception raised by the verifier inside a worker also gives ``unparseable``.
The caller therefore gets one :class:`~dynamo_rl.rewards.base.Verdict` per item, in order, within roughly
``timeout`` seconds per item in the worst case (``timeout * ceil(len / num_workers)`` if every item hangs).

Training loops keep one :class:`VerifierPool` open for the whole run (``with VerifierPool(...) as pool``) so no step
pays the process start-up; :func:`verify_batch` is the one-shot form.

Workers are started with the ``forkserver`` method where available (``spawn`` otherwise), never ``fork``: a training
process has CUDA and tokenizer threads that must not be duplicated. The fork server preloads
``dynamo_rl.rewards.math_verifier`` (and so SymPy), so replacing a killed worker costs milliseconds, not an import.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from collections import deque
from collections.abc import Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

from dynamo_rl.rewards.base import Verdict, Verifier

TIMEOUT_VERDICT = Verdict(0.0, "timeout", None)
ERROR_VERDICT = Verdict(0.0, "unparseable", None)
_PRELOAD = ["math_verify", "latex2sympy2_extended", "dynamo_rl.rewards.math_verifier"]
_READY = "ready"


def _worker_main(conn: Connection, verifier: Verifier, memory_limit_mb: int | None) -> None:
    """Worker loop: receive ``(index, completion, answer)``, send back ``(index, Verdict)``; ``None`` stops it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it kills the workers
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
        try:
            conn.send((index, verdict))
        except (EOFError, OSError):
            return


def _default_context() -> Any:
    methods = mp.get_all_start_methods()
    if "forkserver" in methods:
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)  # no effect once the fork server runs; harmless then
        return ctx
    return mp.get_context("spawn")


class _Worker:
    """One worker process and the parent's end of its pipe."""

    def __init__(self, ctx: Any, verifier: Verifier, memory_limit_mb: int | None, startup_timeout: float) -> None:
        self.conn, child_conn = ctx.Pipe(duplex=True)
        self.process = ctx.Process(target=_worker_main, args=(child_conn, verifier, memory_limit_mb), daemon=True)
        self.process.start()
        child_conn.close()
        self.ready = False
        """Set when the worker reports that it finished starting (imports, warm-up); only then does it get items."""
        self.task: int | None = None
        self.deadline = time.monotonic() + startup_timeout

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=5)
        self.conn.close()

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
                 startup_timeout: float = 120.0) -> None:
        if not callable(getattr(verifier, "verify", None)):
            raise ValueError(f"verifier must have a verify(completion, answer) method, got {verifier!r}")
        if not timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
        if num_workers is None:
            num_workers = max(1, min(8, os.cpu_count() or 1))
        if not isinstance(num_workers, int) or num_workers < 1:
            raise ValueError(f"num_workers must be a positive int, got {num_workers!r}")
        if memory_limit_mb is not None and memory_limit_mb < 64:
            raise ValueError(f"memory_limit_mb must be >= 64 or None, got {memory_limit_mb!r}")
        self.verifier = verifier
        self.num_workers = num_workers
        self.timeout = float(timeout)
        self.memory_limit_mb = memory_limit_mb
        self.startup_timeout = float(startup_timeout)
        self._ctx = _default_context() if start_method is None else mp.get_context(start_method)
        self._workers: list[_Worker] = []
        self.num_timeouts = 0
        """Items that ran past ``timeout`` since the pool was opened (their worker was killed)."""
        self.num_crashes = 0
        """Workers that died while verifying an item since the pool was opened."""

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> VerifierPool:
        while len(self._workers) < self.num_workers:
            self._workers.append(self._new_worker())
        return self

    def close(self) -> None:
        """Stop every worker (idempotent)."""
        workers, self._workers = self._workers, []
        for worker in workers:
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

    def _new_worker(self) -> _Worker:
        return _Worker(self._ctx, self.verifier, self.memory_limit_mb, self.startup_timeout)

    def _replace(self, worker: _Worker) -> _Worker:
        worker.kill()
        fresh = self._new_worker()
        self._workers[self._workers.index(worker)] = fresh
        return fresh

    # ------------------------------------------------------------------ verification
    def verify(self, completions: Sequence[str], answers: Sequence[str], *, progress: bool = False,
               desc: str = "verify") -> list[Verdict]:
        """One verdict per ``(completions[i], answers[i])``, in order; see the module docs for the guarantees."""
        completions, answers = _check_inputs(completions, answers)
        results: list[Verdict | None] = [None] * len(completions)
        if not completions:
            return []
        self.start()
        bar = _progress_bar(len(completions), desc) if progress else None
        pending = deque(range(len(completions)))
        try:
            while pending or any(w.task is not None for w in self._workers):
                for worker in list(self._workers):  # hand out work to idle workers
                    if worker.ready and worker.task is None and pending:
                        index = pending.popleft()
                        try:
                            worker.conn.send((index, completions[index], answers[index]))
                        except (OSError, ValueError):  # died while idle: replace it and retry the item
                            self._replace(worker)
                            pending.appendleft(index)
                            continue
                        worker.task, worker.deadline = index, time.monotonic() + self.timeout
                done = self._collect(results)
                if bar is not None and done:
                    bar.update(done)
        finally:
            if bar is not None:
                bar.close()
        return [r if r is not None else ERROR_VERDICT for r in results]

    def _collect(self, results: list[Verdict | None]) -> int:
        """Wait for the first result or deadline; store what arrived; kill late workers. Returns items finished."""
        busy = [w for w in self._workers if w.task is not None or not w.ready]
        if not busy:
            return 0
        now = time.monotonic()
        wait_for = max(0.0, min(w.deadline for w in busy) - now)
        ready = set(wait([w.conn for w in busy], timeout=wait_for))
        done = 0
        for worker in busy:
            if worker.conn in ready:
                try:
                    message = worker.conn.recv()
                except (EOFError, OSError):  # the worker died (segfault, OOM kill)
                    if worker.task is None:
                        raise RuntimeError(f"a verifier worker died while starting (exit code "
                                           f"{worker.process.exitcode})") from None
                    self.num_crashes += 1
                    results[worker.task] = ERROR_VERDICT
                    self._replace(worker)
                    done += 1
                    continue
                if message == _READY:
                    worker.ready = True
                    continue
                index, verdict = message
                results[index] = verdict
                worker.task = None
                done += 1
            elif time.monotonic() >= worker.deadline:
                if worker.task is None:
                    raise RuntimeError(f"a verifier worker did not start within {self.startup_timeout} s")
                self.num_timeouts += 1
                results[worker.task] = TIMEOUT_VERDICT
                self._replace(worker)
                done += 1
        return done


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
    completions, answers = _check_inputs(completions, answers)
    if not completions:
        return []
    if num_workers is None:
        num_workers = max(1, min(len(completions), os.cpu_count() or 1, 8))
    with VerifierPool(verifier, num_workers=num_workers, timeout=timeout) as pool:
        return pool.verify(completions, answers, progress=progress)
