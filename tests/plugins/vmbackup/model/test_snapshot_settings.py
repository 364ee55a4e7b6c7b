"""spec.snapshot: the backup project, the snapshot type and the storage location, and how bad values are explained."""

import pytest

from tests.plugins.vmbackup.model.test_policy import WORDPRESS, errors_of
from vmbackup.model.policy import parse_policy


def test_snapshots_live_in_the_workload_project_unless_a_backup_project_is_named():
    assert parse_policy("default", "wordpress", WORDPRESS).spec.snapshot_project == "my-project-1"
    separate = parse_policy("default", "wordpress", {**WORDPRESS, "snapshot": {"project": "my-backups-1"}})
    assert separate.spec.snapshot_project == "my-backups-1"


def test_a_bad_backup_project_id_is_named():
    message = errors_of({**WORDPRESS, "snapshot": {"project": "My_Backups"}})["spec.snapshot.project"]
    assert "is not a project ID" in message


def test_snapshots_are_standard_unless_archive_is_asked_for():
    assert parse_policy("default", "wordpress", WORDPRESS).spec.snapshot.snapshot_type == "STANDARD"
    archive = parse_policy("default", "wordpress", {**WORDPRESS, "snapshot": {"type": "ARCHIVE"}})
    assert archive.spec.snapshot.snapshot_type == "ARCHIVE"


def test_an_unset_type_keeps_the_policy_json_of_earlier_versions():
    """Rendered DAGs of existing policies stay byte for byte the same (no re-upload on upgrade)."""
    assert '"type"' not in parse_policy("default", "wordpress", WORDPRESS).to_json()


def test_archive_with_the_instant_method_is_refused_naming_the_field_and_the_fix():
    message = errors_of({**WORDPRESS, "snapshot": {"method": "instant", "type": "ARCHIVE"}})["spec.snapshot.type"]
    assert message.startswith("type ARCHIVE cannot be used with method instant")
    assert "Set spec.snapshot.method to standard, or spec.snapshot.type to STANDARD" in message


def test_an_unknown_type_is_named():
    assert "spec.snapshot.type" in errors_of({**WORDPRESS, "snapshot": {"type": "COLDLINE"}})


@pytest.mark.parametrize("location", ["us", "eu", "asia", "us-central1", "europe-west4", "northamerica-northeast2"])
def test_multi_regions_and_regions_are_storage_locations(location):
    spec = {**WORDPRESS, "snapshot": {"storageLocation": location}}
    assert parse_policy("default", "wordpress", spec).spec.snapshot.storage_location == location


@pytest.mark.parametrize("location", ["us-central1-a", "US", "mars", "us-central", "nam4 "])
def test_a_zone_or_unknown_storage_location_is_refused_with_the_fix(location):
    message = errors_of({**WORDPRESS, "snapshot": {"storageLocation": location}})["spec.snapshot.storageLocation"]
    assert "a Cloud Storage multi-region (us, eu or asia) or a region such as us-central1" in message
