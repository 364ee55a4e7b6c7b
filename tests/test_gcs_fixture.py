"""The bucket fixture is the real client against the emulator, isolated per test."""

from google.cloud import storage


def test_bucket_round_trips_an_object(gcs_bucket: storage.Bucket) -> None:
    gcs_bucket.blob("dags/x.py").upload_from_string("print('hi')")
    assert gcs_bucket.blob("dags/x.py").download_as_text() == "print('hi')"


def test_each_test_starts_with_an_empty_bucket(gcs_client: storage.Client, gcs_bucket: storage.Bucket) -> None:
    assert list(gcs_client.list_blobs(gcs_bucket.name)) == []
