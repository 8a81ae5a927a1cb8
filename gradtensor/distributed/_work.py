"""Work: a collective in flight, waited for with a timeout."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class Work:
    """A collective in flight (what `async_op=True` returns): `wait()` blocks until it is done,
    and raises if the other ranks do not join within the group's timeout."""

    def __init__(
        self,
        name: str,
        test: Callable[[], bool],
        finish: Callable[[], None] | None,
        what: str,
        group: Any,
    ):
        self.name, self._test, self._finish, self.what, self._group = (
            name,
            test,
            finish,
            what,
            group,
        )
        self._done = False

    def is_completed(self) -> bool:
        """Whether it has finished (checking also moves it on: MPI progresses inside calls)."""
        if not self._done and self._test():
            self._complete()
        return self._done

    def wait(self, timeout: float | None = None) -> bool:
        if self._done:
            return True
        limit = self._group.timeout if timeout is None else float(timeout)
        start = time.monotonic()
        deadline = start + limit
        pause = 0.0
        while not self._test():
            now = time.monotonic()
            if now > deadline:
                g = self._group
                raise RuntimeError(
                    f"{self.name}: rank {g.rank} of {g.size} waited {limit:g} s for the other "
                    f"ranks to join ({self.what}); one of them may have failed, hung, or called "
                    "a different collective or shape. The limit is init_process_group(timeout=...)"
                )
            # Spin at first (a collective usually ends within microseconds), then sleep a
            # little longer each time so that a long wait leaves the cores to the other ranks.
            if now - start > 1e-3:
                pause = min(max(pause * 2, 1e-5), 1e-3)
                time.sleep(pause)
        self._complete()
        return True

    def _complete(self) -> None:
        self._done = True
        if self._finish is not None:
            finish, self._finish = self._finish, None
            finish()
