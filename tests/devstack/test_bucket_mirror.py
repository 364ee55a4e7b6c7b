"""The local stack's stand-in for Composer's bucket sync, against the storage emulator."""

import time
from pathlib import Path

import pytest
from google.cloud import storage

from devstack.bucket_mirror import BucketMirror
from tests.fixtures.waits import wait_until


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


class FakeClock:
    """The mirror's clock, moved by the test: the delay is shown by the model's own time, not by sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


SYNC_DELAY = 240.0  # Composer's modelled delay (devstack/composer_timing.py)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def late_mirror(gcs_bucket: storage.Bucket, tmp_path: Path, clock: FakeClock) -> BucketMirror:
    return BucketMirror(gcs_bucket, tmp_path, sync_delay_seconds=SYNC_DELAY, clock=clock)


def test_a_new_dag_is_not_in_the_folder_before_the_sync_delay(
    gcs_bucket: storage.Bucket, late_mirror: BucketMirror, clock: FakeClock, tmp_path: Path
) -> None:
    gcs_bucket.blob("dags/vmrestore__default__r1.py").upload_from_string("dag = 1\n")
    late_mirror.sync_once()  # first sight
    clock.now += SYNC_DELAY - 1

    assert not late_mirror.sync_once().changed
    assert not (tmp_path / "dags/vmrestore__default__r1.py").exists()


def test_a_new_dag_is_in_the_folder_once_the_sync_delay_has_passed(
    gcs_bucket: storage.Bucket, late_mirror: BucketMirror, clock: FakeClock, tmp_path: Path
) -> None:
    gcs_bucket.blob("dags/vmrestore__default__r1.py").upload_from_string("dag = 1\n")
    late_mirror.sync_once()
    clock.now += SYNC_DELAY

    assert late_mirror.sync_once().downloaded == ["dags/vmrestore__default__r1.py"]
    assert (tmp_path / "dags/vmrestore__default__r1.py").read_text() == "dag = 1\n"


def test_plugins_wait_for_the_sync_delay_too(
    gcs_bucket: storage.Bucket, late_mirror: BucketMirror, clock: FakeClock, tmp_path: Path
) -> None:
    gcs_bucket.blob("plugins/vmbackup/x.py").upload_from_string("x = 1\n")
    late_mirror.sync_once()
    assert not (tmp_path / "plugins/vmbackup/x.py").exists()
    clock.now += SYNC_DELAY
    assert late_mirror.sync_once().downloaded == ["plugins/vmbackup/x.py"]


def test_a_removed_object_stays_until_the_sync_delay_has_passed(
    gcs_bucket: storage.Bucket, late_mirror: BucketMirror, clock: FakeClock, tmp_path: Path
) -> None:
    gcs_bucket.blob("dags/a.py").upload_from_string("a = 1\n")
    late_mirror.sync_once()
    clock.now += SYNC_DELAY
    late_mirror.sync_once()
    gcs_bucket.blob("dags/a.py").delete()
    late_mirror.sync_once()
    assert (tmp_path / "dags/a.py").exists()
    clock.now += SYNC_DELAY
    assert late_mirror.sync_once().removed == ["dags/a.py"]
    assert not (tmp_path / "dags/a.py").exists()


def test_a_rewrite_during_the_delay_waits_the_delay_from_its_own_sight(
    gcs_bucket: storage.Bucket, late_mirror: BucketMirror, clock: FakeClock, tmp_path: Path
) -> None:
    gcs_bucket.blob("dags/a.py").upload_from_string("a = 1\n")
    late_mirror.sync_once()
    clock.now += SYNC_DELAY / 2
    gcs_bucket.blob("dags/a.py").upload_from_string("a = 2\n")
    late_mirror.sync_once()
    clock.now += SYNC_DELAY / 2
    assert not late_mirror.sync_once().changed
    clock.now += SYNC_DELAY / 2
    assert late_mirror.sync_once().downloaded == ["dags/a.py"]
    assert (tmp_path / "dags/a.py").read_text() == "a = 2\n"


def test_the_running_mirror_shows_a_dag_no_sooner_than_its_delay(gcs_bucket: storage.Bucket, tmp_path: Path) -> None:
    delay = 1.5  # short, real: the mirror's own thread and clock
    mirror = BucketMirror(gcs_bucket, tmp_path, sync_delay_seconds=delay)
    # Written before the mirror starts: its first sight is then surely after `written`. Written while it ran, a
    # pass that read its clock just before the upload and listed just after would see it "earlier" than written.
    written = time.monotonic()
    gcs_bucket.blob("dags/late.py").upload_from_string("late = 1\n")
    mirror.start(interval_seconds=0.1)
    try:
        wait_until(lambda: (tmp_path / "dags/late.py").exists(), what="dags/late.py in the mirrored folder")
        assert time.monotonic() - written >= delay
    finally:
        mirror.stop()
