"""The controller's writes to the Composer bucket: rendered DAGs under dags/, our package under plugins/.

This is the only code that touches dags/ and plugins/. Every write is one single-request upload
(atomic in Cloud Storage: readers see the old object or the new one, never a partial file), guarded
by a generation precondition so two controller replicas cannot interleave, and skipped when the
object already holds the same bytes (compared by the MD5 that Cloud Storage computes), so a restart
of an unchanged controller writes nothing. Calls are blocking (google-cloud-storage); async code
runs them in a thread.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import logging
from pathlib import Path

from google.api_core import exceptions as gcs_errors
from google.cloud import storage

import vmbackup

DAGS_PREFIX = "dags/"
PLUGINS_PREFIX = "plugins/vmbackup/"
HASH_METADATA_KEY = "vmbackup-content-hash"
DAG_CONTENT_TYPE = "text/x-python"

logger = logging.getLogger(__name__)


def content_hash(data: bytes) -> str:
    """The hash recorded in status.dagHash and in the object's metadata."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def gcs_md5(data: bytes) -> str:
    """MD5 in the form Cloud Storage reports it (base64 of the digest)."""
    return base64.b64encode(hashlib.md5(data).digest()).decode("ascii")


def dag_object_name(dag_id: str) -> str:
    return f"{DAGS_PREFIX}{dag_id}.py"


@dataclasses.dataclass(frozen=True)
class UploadResult:
    object_name: str
    content_hash: str
    uploaded: bool  # False: the bucket already held these bytes


@dataclasses.dataclass(frozen=True)
class PluginSyncResult:
    uploaded: tuple[str, ...]
    deleted: tuple[str, ...]
    unchanged: tuple[str, ...]


def package_files(package_dir: Path | None = None) -> dict[str, bytes]:
    """The shipped ``vmbackup`` package: relative path -> bytes, Python sources only (no caches)."""
    root = package_dir or Path(vmbackup.__file__).parent
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*.py"))
        if "__pycache__" not in path.parts
    }


class BucketSync:
    """One Composer bucket, as far as this controller writes to it."""

    def __init__(self, bucket_name: str, client: storage.Client | None = None):
        self.client = client or storage.Client()
        self.bucket = self.client.bucket(bucket_name)

    @property
    def name(self) -> str:
        return str(self.bucket.name)

    def upload_dag(self, dag_id: str, source: str) -> UploadResult:
        """Make dags/<dag_id>.py hold ``source``; no write when it already does."""
        data = source.encode("utf-8")
        name = dag_object_name(dag_id)
        return UploadResult(name, content_hash(data), self._put(name, data, DAG_CONTENT_TYPE))

    def delete_dag(self, dag_id: str) -> bool:
        """Remove the DAG file (the DAG's snapshots are not touched). False when it was already gone."""
        return self._delete(dag_object_name(dag_id))

    def has_dag(self, dag_id: str) -> bool:
        return self.bucket.get_blob(dag_object_name(dag_id)) is not None

    def dag_source(self, dag_id: str) -> str | None:
        blob = self.bucket.get_blob(dag_object_name(dag_id))
        return None if blob is None else blob.download_as_bytes().decode("utf-8")

    def sync_plugins(self, files: dict[str, bytes] | None = None) -> PluginSyncResult:
        """Make plugins/vmbackup/ match the package this controller ships; other plugins are left alone.

        New and changed files go up before stale ones are deleted, so Airflow never sees a package
        missing a module that a still-current file imports.
        """
        wanted = {PLUGINS_PREFIX + rel: data for rel, data in (files or package_files()).items()}
        present = {blob.name: blob for blob in self.client.list_blobs(self.bucket, prefix=PLUGINS_PREFIX)}
        uploaded, unchanged = [], []
        for name, data in sorted(wanted.items()):
            blob = present.get(name)
            if blob is not None and blob.md5_hash == gcs_md5(data):
                unchanged.append(name)
                continue
            self._write(name, data, "text/x-python", None if blob is None else blob.generation)
            uploaded.append(name)
        deleted = [name for name in sorted(present) if name not in wanted and self._delete(name)]
        if uploaded or deleted:
            logger.info("Synced plugins to gs://%s: %d uploaded, %d deleted", self.name, len(uploaded), len(deleted))
        return PluginSyncResult(tuple(uploaded), tuple(deleted), tuple(unchanged))

    def _put(self, name: str, data: bytes, content_type: str) -> bool:
        """Upload unless identical; on a lost race with another writer, look again once."""
        for attempt in (1, 2):
            blob = self.bucket.get_blob(name)
            if blob is not None and blob.md5_hash == gcs_md5(data):
                return False
            try:
                self._write(name, data, content_type, None if blob is None else blob.generation)
                return True
            except gcs_errors.PreconditionFailed:
                if attempt == 2:
                    raise
                logger.info("gs://%s/%s changed while uploading; comparing again", self.name, name)
        raise AssertionError("unreachable")

    def _write(self, name: str, data: bytes, content_type: str, generation: int | None) -> None:
        blob = self.bucket.blob(name)
        blob.metadata = {HASH_METADATA_KEY: content_hash(data)}
        # One request (multipart upload) is atomic; generation 0 means "only if it does not exist yet".
        blob.upload_from_string(data, content_type=content_type, if_generation_match=generation or 0)

    def _delete(self, name: str) -> bool:
        try:
            self.bucket.blob(name).delete()
        except gcs_errors.NotFound:
            return False
        return True
