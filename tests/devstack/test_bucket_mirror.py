"""The local stack's stand-in for Composer's bucket sync, against the storage emulator."""

from pathlib import Path

import pytest
from google.cloud import storage

from devstack.bucket_mirror import BucketMirror


@pytest.fixture
def mirror(gcs_bucket: storage.Bucket, tmp_path: Path) -> BucketMirror:
    return BucketMirror(gcs_bucket, tmp_path)


def test_new_objects_appear_as_files(gcs_bucket: storage.Bucket, mirror: BucketMirror, tmp_path: Path) -> None:
    gcs_bucket.blob("dags/vmbackup__default__wp.py").upload_from_string("dag = 1\n")
    gcs_bucket.blob("plugins/vmbackup/policy.py").upload_from_string("x = 1\n")
    result = mirror.sync_once()
    assert sorted(result.downloaded) == ["dags/vmbackup__default__wp.py", "plugins/vmbackup/policy.py"]
    assert (tmp_path / "dags/vmbackup__default__wp.py").read_text() == "dag = 1\n"
    assert (tmp_path / "plugins/vmbackup/policy.py").read_text() == "x = 1\n"


def test_unchanged_objects_are_not_downloaded_again(gcs_bucket: storage.Bucket, mirror: BucketMirror) -> None:
    gcs_bucket.blob("dags/a.py").upload_from_string("a = 1\n")
    mirror.sync_once()
    assert not mirror.sync_once().changed


def test_changed_object_replaces_the_file(gcs_bucket: storage.Bucket, mirror: BucketMirror, tmp_path: Path) -> None:
    gcs_bucket.blob("dags/a.py").upload_from_string("a = 1\n")
    mirror.sync_once()
    gcs_bucket.blob("dags/a.py").upload_from_string("a = 2\n")
    assert mirror.sync_once().downloaded == ["dags/a.py"]
    assert (tmp_path / "dags/a.py").read_text() == "a = 2\n"


def test_deleted_object_removes_the_file(gcs_bucket: storage.Bucket, mirror: BucketMirror, tmp_path: Path) -> None:
    gcs_bucket.blob("dags/a.py").upload_from_string("a = 1\n")
    mirror.sync_once()
    gcs_bucket.blob("dags/a.py").delete()
    assert mirror.sync_once().removed == ["dags/a.py"]
    assert not (tmp_path / "dags/a.py").exists()


def test_other_prefixes_are_not_mirrored(gcs_bucket: storage.Bucket, mirror: BucketMirror, tmp_path: Path) -> None:
    gcs_bucket.blob("data/vmbackup/runs/x.json").upload_from_string("{}")
    assert not mirror.sync_once().changed
    assert not (tmp_path / "data").exists()
