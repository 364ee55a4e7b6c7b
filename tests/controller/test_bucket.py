"""BucketSync against the Cloud Storage emulator: DAG uploads only when bytes change; plugins mirror our package."""

from google.cloud import storage

from controller.bucket import HASH_METADATA_KEY, BucketSync, content_hash, package_files

DAG_ID = "vmbackup__shop__web"


def test_first_upload_writes_the_dag_with_its_hash(gcs_client: storage.Client, gcs_bucket: storage.Bucket) -> None:
    result = BucketSync(gcs_bucket.name, gcs_client).upload_dag(DAG_ID, "# dag v1\n")

    blob = gcs_bucket.get_blob(f"dags/{DAG_ID}.py")
    assert result.uploaded
    assert blob.download_as_text() == "# dag v1\n"
    assert blob.metadata[HASH_METADATA_KEY] == result.content_hash == content_hash(b"# dag v1\n")


def test_same_content_is_not_written_again(gcs_client: storage.Client, gcs_bucket: storage.Bucket) -> None:
    sync = BucketSync(gcs_bucket.name, gcs_client)
    sync.upload_dag(DAG_ID, "# dag v1\n")
    generation = gcs_bucket.get_blob(f"dags/{DAG_ID}.py").generation

    result = sync.upload_dag(DAG_ID, "# dag v1\n")

    assert not result.uploaded
    assert gcs_bucket.get_blob(f"dags/{DAG_ID}.py").generation == generation


def test_changed_content_replaces_the_dag(gcs_client: storage.Client, gcs_bucket: storage.Bucket) -> None:
    sync = BucketSync(gcs_bucket.name, gcs_client)
    sync.upload_dag(DAG_ID, "# dag v1\n")

    result = sync.upload_dag(DAG_ID, "# dag v2\n")

    assert result.uploaded
    assert sync.dag_source(DAG_ID) == "# dag v2\n"


def test_a_file_overwritten_by_someone_else_is_restored(gcs_client: storage.Client, gcs_bucket: storage.Bucket) -> None:
    sync = BucketSync(gcs_bucket.name, gcs_client)
    sync.upload_dag(DAG_ID, "# dag v1\n")
    gcs_bucket.blob(f"dags/{DAG_ID}.py").upload_from_string("broken(")

    assert sync.upload_dag(DAG_ID, "# dag v1\n").uploaded
    assert sync.dag_source(DAG_ID) == "# dag v1\n"


def test_delete_removes_only_that_dag(gcs_client: storage.Client, gcs_bucket: storage.Bucket) -> None:
    sync = BucketSync(gcs_bucket.name, gcs_client)
    sync.upload_dag(DAG_ID, "# a\n")
    sync.upload_dag("vmbackup__shop__db", "# b\n")

    assert sync.delete_dag(DAG_ID)
    assert not sync.delete_dag(DAG_ID)
    assert [b.name for b in gcs_client.list_blobs(gcs_bucket.name)] == ["dags/vmbackup__shop__db.py"]


def test_plugin_sync_uploads_the_package_and_removes_stale_files_only_of_ours(
    gcs_client: storage.Client, gcs_bucket: storage.Bucket
) -> None:
    gcs_bucket.blob("plugins/vmbackup/removed_module.py").upload_from_string("# gone from the package")
    gcs_bucket.blob("plugins/someone_else/hook.py").upload_from_string("# not ours")

    result = BucketSync(gcs_bucket.name, gcs_client).sync_plugins()

    names = {b.name for b in gcs_client.list_blobs(gcs_bucket.name)}
    shipped = {f"plugins/vmbackup/{rel}" for rel in package_files()}
    assert "plugins/vmbackup/model/policy.py" in shipped
    assert names == shipped | {"plugins/someone_else/hook.py"}
    assert result.deleted == ("plugins/vmbackup/removed_module.py",)
    assert gcs_bucket.blob("plugins/vmbackup/model/policy.py").download_as_bytes() == package_files()["model/policy.py"]


def test_plugin_sync_of_an_up_to_date_bucket_writes_nothing(
    gcs_client: storage.Client, gcs_bucket: storage.Bucket
) -> None:
    sync = BucketSync(gcs_bucket.name, gcs_client)
    sync.sync_plugins()
    generations = {b.name: b.generation for b in gcs_client.list_blobs(gcs_bucket.name)}

    result = sync.sync_plugins()

    assert result.uploaded == ()
    assert result.deleted == ()
    assert {b.name: b.generation for b in gcs_client.list_blobs(gcs_bucket.name)} == generations


def test_plugin_sync_replaces_a_changed_module(gcs_client: storage.Client, gcs_bucket: storage.Bucket) -> None:
    sync = BucketSync(gcs_bucket.name, gcs_client)
    sync.sync_plugins()
    gcs_bucket.blob("plugins/vmbackup/model/labels.py").upload_from_string("# an older release")

    result = sync.sync_plugins()

    assert result.uploaded == ("plugins/vmbackup/model/labels.py",)
    assert gcs_bucket.blob("plugins/vmbackup/model/labels.py").download_as_bytes() == package_files()["model/labels.py"]
