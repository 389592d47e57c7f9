"""Parallel evaluation of independent tasks: local processes (default) or Ray.

``TaskRunner(kind, jobs)`` maps a picklable top-level function over picklable tasks and
returns results in task order, calling ``on_done(index, result)`` as each finishes.

* ``local``: ``concurrent.futures.ProcessPoolExecutor`` (fork start method on Linux,
  so workers inherit the imported modules and start in milliseconds); ``jobs=1`` runs
  inline in this process, which is what the tests use.
* ``ray``: each task is a Ray remote call; connects to a running cluster when
  ``RAY_ADDRESS`` is set, otherwise starts a local Ray instance with ``jobs`` CPUs.
  Ray is an optional extra (``pip install 'servelab[dist]'``).

Results never depend on the runner: tasks carry their own seeds.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, Callable, Sequence

from ..errors import ConfigError

__all__ = ["EXECUTORS", "TaskRunner", "default_jobs"]

EXECUTORS: tuple[str, ...] = ("local", "ray")


def default_jobs() -> int:
    """CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


class TaskRunner:
    """Context manager holding a worker pool for the lifetime of one plan."""

    def __init__(self, kind: str = "local", jobs: int | None = None) -> None:
        if kind not in EXECUTORS:
            raise ConfigError(f"unknown executor {kind!r}; known: {', '.join(EXECUTORS)}")
        self.kind = kind
        self.jobs = max(1, jobs or default_jobs())
        self._pool: ProcessPoolExecutor | None = None
        self._ray: Any = None

    def __enter__(self) -> "TaskRunner":
        if self.kind == "ray":
            try:
                import ray
            except ImportError:
                raise ConfigError("--executor ray needs the 'ray' package; install it with "
                                  "pip install 'servelab[dist]' (or use --executor local)") from None
            if not ray.is_initialized():
                if os.environ.get("RAY_ADDRESS"):
                    ray.init(address=os.environ["RAY_ADDRESS"], ignore_reinit_error=True,
                             log_to_driver=False)
                else:
                    ray.init(num_cpus=self.jobs, include_dashboard=False, ignore_reinit_error=True,
                             log_to_driver=False)
            self._ray = ray
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def map(self, fn: Callable[[Any], Any], tasks: Sequence[Any],
            on_done: Callable[[int, Any], None] | None = None) -> list[Any]:
        """``[fn(t) for t in tasks]``, evaluated in parallel, in task order."""
        results: list[Any] = [None] * len(tasks)
        if not tasks:
            return results
        if self.kind == "ray":
            return self._map_ray(fn, tasks, on_done, results)
        if self.jobs == 1 or len(tasks) == 1:
            for i, t in enumerate(tasks):
                results[i] = fn(t)
                if on_done:
                    on_done(i, results[i])
            return results
        if self._pool is None:
            ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
            self._pool = ProcessPoolExecutor(max_workers=self.jobs, mp_context=ctx)
        pending = {self._pool.submit(fn, t): i for i, t in enumerate(tasks)}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                i = pending.pop(fut)
                results[i] = fut.result()
                if on_done:
                    on_done(i, results[i])
        return results

    def _map_ray(self, fn: Callable[[Any], Any], tasks: Sequence[Any],
                 on_done: Callable[[int, Any], None] | None, results: list[Any]) -> list[Any]:
        ray = self._ray
        remote = ray.remote(num_cpus=1)(fn)
        refs = {remote.remote(t): i for i, t in enumerate(tasks)}
        left = list(refs)
        while left:
            ready, left = ray.wait(left, num_returns=1)
            for ref in ready:
                i = refs[ref]
                results[i] = ray.get(ref)
                if on_done:
                    on_done(i, results[i])
        return results
