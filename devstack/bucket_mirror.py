"""Composer's bucket-to-Airflow sync, for the local stack.

Cloud Composer keeps its Airflow components' `dags/` and `plugins/` folders in step with the
environment bucket's `dags/` and `plugins/` prefixes. The local stack has a real Airflow reading
local folders, so this mirror plays that part: it copies new and changed objects down and removes
files whose objects are gone. Files are replaced atomically (write, then rename), so Airflow never
parses half a DAG, just as it never sees half an object in the bucket.

Composer's copy is not instant (devstack/composer_timing.py cites the 3-5 minutes its docs give): with
``sync_delay_seconds`` the mirror applies each change (a new or rewritten object, a removed one) only that long
after a pass first saw it, so a change is late by the delay plus at most one pass interval. A change that is
overtaken while held back (the object rewritten again) waits the delay from the newer version's first sight.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from google.cloud import storage

log = logging.getLogger(__name__)

DEFAULT_PREFIXES = ("dags/", "plugins/")


@dataclass
class MirrorPass:
    """What one pass changed on disk: the local stack prints it, tests await it."""

    downloaded: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.downloaded or self.removed)


class BucketMirror:
    """Mirrors `<prefix>...` objects of a bucket into `<root>/<prefix>...` files."""

    def __init__(
        self,
        bucket: storage.Bucket,
        root: Path,
        prefixes: tuple[str, ...] = DEFAULT_PREFIXES,
        *,
        sync_delay_seconds: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bucket = bucket
        self.root = root
        self.prefixes = prefixes
        self.sync_delay_seconds = sync_delay_seconds
        self._clock = clock
        self._generations: dict[str, int] = {}  # object name -> generation last written locally
        self._paths: dict[str, Path] = {}  # object name -> its local path, checked to be under root
        # object name -> (generation seen, or None for "gone from the bucket"; when the change may be applied)
        self._held: dict[str, tuple[int | None, float]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def local_path(self, object_name: str) -> Path:
        """Where an object lands; resolved once per name (every pass asks again for every object)."""
        path = self._paths.get(object_name)
        if path is None:
            path = (self.root / object_name).resolve()
            if self.root.resolve() not in path.parents:
                raise ValueError(f"object {object_name!r} would land outside {self.root}")
            self._paths[object_name] = path
        return path

    def sync_once(self) -> MirrorPass:
        """One pass: download what is new or changed (by generation), remove what the bucket no longer has,
        each once its sync delay has passed."""
        result = MirrorPass()
        seen: set[str] = set()
        now = self._clock()
        for prefix in self.prefixes:
            (self.root / prefix).mkdir(parents=True, exist_ok=True)
            for blob in self.bucket.client.list_blobs(self.bucket, prefix=prefix):
                name = str(blob.name)
                if name.endswith("/"):
                    continue
                seen.add(name)
                generation = int(blob.generation or 0)  # read before downloading: a download resets it
                if self._generations.get(name) == generation and self.local_path(name).exists():
                    self._held.pop(name, None)  # a rewrite undone while held back: nothing to apply
                    continue
                if not self._due(name, generation, now):
                    continue
                self._write_atomically(self.local_path(name), blob.download_as_bytes())
                self._generations[name] = generation
                result.downloaded.append(name)
        for name in sorted(set(self._generations) - seen):
            if not self._due(name, None, now):
                continue
            self.local_path(name).unlink(missing_ok=True)
            del self._generations[name]
            result.removed.append(name)
        for name in set(self._held) - seen - set(self._generations):
            del self._held[name]  # an object written and deleted again before its copy was due: never seen
        for name in result.downloaded:
            log.info("bucket -> local: %s", name)
        for name in result.removed:
            log.info("removed locally: %s", name)
        return result

    def _due(self, name: str, generation: int | None, now: float) -> bool:
        """True when this change of ``name`` may be applied now: the sync delay has passed since its first sight."""
        held = self._held.get(name)
        if held is None or held[0] != generation:
            held = (generation, now + self.sync_delay_seconds)
            self._held[name] = held
        if now < held[1]:
            return False
        del self._held[name]
        return True

    def start(self, interval_seconds: float = 1.0) -> None:
        """Keep syncing in a background thread (Composer syncs continuously, too)."""

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.sync_once()
                except Exception:  # keep mirroring through a passing bucket error, as Composer does
                    log.exception("bucket mirror pass failed; retrying")
                self._stop.wait(interval_seconds)

        self._thread = threading.Thread(target=loop, name="bucket-mirror", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    @staticmethod
    def _write_atomically(path: Path, content: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".mirror-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(content)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
