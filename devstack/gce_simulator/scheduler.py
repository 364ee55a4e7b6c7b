"""The simulator's clock: one ``threading.Condition`` guards all state, and a scheduler thread applies timed
transitions (instance STOPPING -> TERMINATED, snapshot CREATING -> UPLOADING -> READY, operation RUNNING -> DONE
...) under it and notifies it, which is what ``operations.wait`` long-polls on. Durations are simulated time,
scaled by ``Profile.time_scale`` (profile.py).

A test that must see a short-lived state (STOPPING, PENDING_STOP ...) holds the clock and steps it: while held,
no timer fires on its own, so what the API answers between two steps cannot depend on how loaded the machine is.
The wall clock that rate quota windows read (``wall_clock``, quotas.py) stands still too, so calls made while held
fall in one window however slow they are; ``advance`` moves it, to cross a window's boundary where a test chooses.
A hold that lasts for more calls than a group's limit (quotas.py) gets them refused until it ends or advances."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable

from .profile import Profile


class Scheduler:
    """Timers run under ``cond``; ``reset`` drops those of an older epoch."""

    def __init__(self, profile: Profile | None = None) -> None:
        self.profile = profile or Profile.fast()
        self.cond = threading.Condition()
        self._events: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._epoch = 0  # bumped by reset(): timers of an older epoch are dropped
        self._running = False
        self._held_at: float | None = None  # held: timers fire only through step(); wall_clock() stands here
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with self.cond:
            if self._running:
                return
            self._running = True
        self._thread = threading.Thread(target=self._run_scheduler, name="gce-sim-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self.cond:
            self._running = False
            self.cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._running

    def hold(self) -> None:
        """No timer fires on its own until ``release``; ``step`` fires them one at a time. ``wall_clock`` stands
        still meanwhile."""
        with self.cond:
            if self._held_at is None:
                self._held_at = time.time()

    def release(self) -> None:
        """Timers fire on their own again; those already due fire at once. ``wall_clock`` is ``time.time()`` again."""
        with self.cond:
            self._held_at = None
            self.cond.notify_all()

    def step(self) -> bool:
        """Fire the earliest pending timer now, whatever its due time; False if none is pending."""
        with self.cond:
            if not self._events:
                return False
            _, _, callback = heapq.heappop(self._events)
            callback()
            self.cond.notify_all()
            return True

    def wall_clock(self) -> float:
        """Epoch seconds as the rate quota windows see them: ``time.time()``, or where ``hold`` stopped it."""
        held_at = self._held_at
        return time.time() if held_at is None else held_at

    def advance(self, seconds: float) -> float:
        """Move the held ``wall_clock`` on by ``seconds`` and return it: a test crosses a rate quota window's boundary
        where it chooses, not where a loaded machine happens to be. No timer fires (``step`` does that)."""
        with self.cond:
            if self._held_at is None:
                raise RuntimeError("the clock is not held: advance() moves only a held clock")
            self._held_at += seconds
            return self._held_at

    def _run_scheduler(self) -> None:
        with self.cond:
            while self._running:
                if self._held_at is not None:
                    self.cond.wait()
                    continue
                now = time.monotonic()
                fired = False
                while self._events and self._events[0][0] <= now:
                    _, _, callback = heapq.heappop(self._events)
                    callback()
                    fired = True
                if fired:
                    self.cond.notify_all()
                timeout = (self._events[0][0] - time.monotonic()) if self._events else None
                if timeout is None or timeout > 0:
                    self.cond.wait(timeout)

    def _after(self, seconds: float, callback: Callable[[], None]) -> None:
        """Run ``callback`` (under the lock) after ``seconds`` of simulated time (scaled)."""
        epoch = self._epoch

        def guarded() -> None:
            if epoch == self._epoch:
                callback()

        due = time.monotonic() + self.profile.scaled(seconds)
        heapq.heappush(self._events, (due, next(self._seq), guarded))
        self.cond.notify_all()

    def _new_epoch(self) -> None:
        """Forget every pending timer and any hold (lock held)."""
        self._epoch += 1
        self._events.clear()
        self._held_at = None
