"""The batch layer on other processes: ``Store.recompute(executor=...)`` with a
``dask.distributed.Client`` or any ``concurrent.futures.Executor``.

The writer resolves the snapshot and pins it (``begin_recompute``); each task reads a set of the
snapshot's segments in a worker process (the store's directory must be visible there at the same
path, or at ``root=``) and returns one partial table per view; partial tables are merged in a tree
(with dask, on the workers) down to a few, which the writer merges and publishes as a local
recompute would.
Every state is exact and every merge is exact, so the published batch views are identical, bit for
bit, to a local recompute. With dask, a task that raises is retried twice and the tasks of a lost
worker are rescheduled; a ``concurrent.futures`` executor retries nothing, so a failed task fails
the recompute. Ctrl-C cancels the tasks and publishes nothing.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Sequence
from typing import Any

from lamina import _core
from lamina._progress import Progress
from lamina.errors import InvalidArgumentError

#: Tasks per worker: small enough to balance uneven segments, large enough to amortize a task.
TASKS_PER_WORKER = 1
#: Partial tables merged per merge task.
FAN_IN = 4


#: Test hook: a path; the first task (in any process) to create it kills its own worker process,
#: as a crashed machine would, so tests can check that the answer survives a lost worker.
KILL_ONCE_ENV = "LAMINA_TEST_KILL_TASK_ONCE"


def run_task(spec: str, segments: list[int], threads: int | None = None) -> list[Any]:
    """A worker's task: the partial table of each view of the job over ``segments``."""
    marker = os.environ.get(KILL_ONCE_ENV)
    if marker:
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            pass
        else:
            os.kill(os.getpid(), signal.SIGKILL)
    return _core.run_recompute_task(spec, segments, threads)


def merge_tasks(*results: list[Any]) -> list[Any]:
    """Merge the results of several tasks view by view (one partial table per view each)."""
    if len(results) == 1:
        return results[0]
    return [_core.merge_partial_states([r[v] for r in results]) for v in range(len(results[0]))]


def _is_dask(executor: Any) -> bool:
    return type(executor).__module__.startswith("distributed") and hasattr(executor, "gather")


def _workers(executor: Any) -> int:
    if _is_dask(executor):
        try:
            return max(1, len(executor.scheduler_info().get("workers", {})))
        except Exception:  # noqa: BLE001 - a count for sizing only
            return 1
    return max(1, int(getattr(executor, "_max_workers", 1) or 1))


class _Tasks:
    """Submitted futures, waited on with a timeout so Ctrl-C is honoured, cancelled on error."""

    def __init__(self, executor: Any, progress: Callable[[int, int], None] | None) -> None:
        self.executor = executor
        self.dask = _is_dask(executor)
        self.futures: list[Any] = []
        self.progress = progress

    def submit(self, fn: Callable[..., Any], *args: Any, pure: bool = False) -> Any:
        if self.dask:
            # Retries cover exceptions; a lost worker's tasks are rescheduled by dask itself.
            f = self.executor.submit(fn, *args, pure=pure, retries=2)
        else:
            f = self.executor.submit(fn, *args)
        self.futures.append(f)
        return f

    def wait(self, futures: list[Any], rows: list[int] | None = None) -> list[Any]:
        """The results of ``futures``; ``rows``: each one's rows, to report progress by."""
        total = sum(rows or [])
        while True:
            done = [f.done() for f in futures]
            if self.progress is not None and rows is not None:
                self.progress(sum(r for r, d in zip(rows, done, strict=True) if d), total)
            if all(done):
                return [f.result() for f in futures]
            for f, d in zip(futures, done, strict=True):
                if d and (f.cancelled() or f.exception() is not None):
                    return [f.result() for f in futures]  # raises the task's error
            time.sleep(0.05)

    def cancel(self) -> None:
        if self.dask:
            self.executor.cancel(self.futures)
        else:
            for f in self.futures:
                f.cancel()


def recompute_on(
    core: Any,
    executor: Any,
    views: Sequence[str] | None,
    *,
    root: str | None = None,
    tasks: int | None = None,
    threads: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Run a recompute's tasks on ``executor`` and publish the result (see the module doc)."""
    if not hasattr(executor, "submit"):
        raise InvalidArgumentError(
            f"executor must be a dask.distributed.Client or a concurrent.futures.Executor, "
            f"not {type(executor).__name__}"
        )
    job = core.begin_recompute(list(views) if views is not None else None, root)
    if not job.views:
        return job.snapshot
    spec = job.spec
    if spec is None:  # nothing stored yet: every view is empty
        return job.publish(None, threads)
    n_tasks = tasks if tasks is not None else TASKS_PER_WORKER * _workers(executor)
    split = job.split(max(1, n_tasks))
    run = _Tasks(executor, progress)
    try:
        leaves = [run.submit(run_task, spec, segments, None) for segments, _ in split]
        rows = [r for _, r in split]
        if run.dask:
            # Merges run on the workers (futures passed as arguments never come back here)
            # until FAN_IN results are left; the writer merges those while it decodes them.
            level = leaves
            while len(level) > FAN_IN:
                level = [
                    run.submit(merge_tasks, *level[i : i + FAN_IN]) for i in range(0, len(level), FAN_IN)
                ]
            run.wait(leaves, rows)
            results = run.wait(level)
        else:
            results = run.wait(leaves, rows)
            while len(results) > FAN_IN:
                groups = [results[i : i + FAN_IN] for i in range(0, len(results), FAN_IN)]
                results = run.wait([run.submit(merge_tasks, *g) for g in groups])
    except BaseException:
        run.cancel()
        job.cancel()  # the snapshot pin goes now, not when the traceback is collected
        raise
    if isinstance(progress, Progress):
        progress.close()
    # Per view, the partial tables of every remaining result.
    per_view = [[r[v] for r in results] for v in range(len(job.views))]
    return job.publish(per_view, threads)
