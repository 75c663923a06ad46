"""``Store.schedule``: background recomputes every N seconds and/or N commits. Errors are kept
for ``status()["scheduler_errors"]`` and raised by ``close()``; the thread never dies of one."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from lamina.errors import InvalidArgumentError

if TYPE_CHECKING:
    from lamina.store import Store


class Scheduler:
    """Background recomputes every N seconds and/or N commits."""

    def __init__(self, store: Store, every_seconds: float | None, every_commits: int | None) -> None:
        if every_seconds is not None and every_seconds <= 0:
            raise InvalidArgumentError("every_seconds must be positive")
        if every_commits is not None and every_commits <= 0:
            raise InvalidArgumentError("every_commits must be positive")
        self.store = store
        self.every_seconds = every_seconds
        self.every_commits = every_commits
        self.commits = 0
        self.wake = threading.Event()
        self.stopped = threading.Event()

        self.thread = threading.Thread(target=self.run, name="lamina-scheduler", daemon=True)
        self.thread.start()

    def note_commit(self) -> None:
        self.commits += 1
        if self.every_commits is not None and self.commits >= self.every_commits:
            self.wake.set()

    def run(self) -> None:
        while not self.stopped.is_set():
            self.wake.wait(self.every_seconds)
            if self.stopped.is_set():
                return
            self.wake.clear()
            self.commits = 0
            try:
                self.store._core.recompute(None, threads=None, progress=None)
            except Exception as e:  # keep the scheduler alive: shown in status(), raised on close()
                with self.store._scheduler_lock:
                    self.store._scheduler_errors.append(e)

    def stop(self) -> None:
        self.stopped.set()
        self.wake.set()
        self.thread.join()
