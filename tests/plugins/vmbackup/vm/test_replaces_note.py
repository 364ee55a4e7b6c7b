"""A restored disk's record of the disk it replaces (vm/disks.replaces_note): read back exactly, and a description
without one (or with a damaged one) reads as none, never as a wrong disk."""

from __future__ import annotations

from vmbackup.vm.disks import REPLACES_MARKER, Attachment, replaced_in, replaces_note

ORIGINAL = Attachment(disk="db-1-data", device_name="data", boot=False, auto_delete=True)


def test_the_record_in_a_description_reads_back_as_the_attachment() -> None:
    description = f"restored by vmbackup-operator from snapshot s of db-1-data; {replaces_note(ORIGINAL)}"

    assert replaced_in(description) == ORIGINAL


def test_a_description_without_a_record_has_none() -> None:
    assert replaced_in("restored by vmbackup-operator from snapshot s of db-1-data") is None
    assert replaced_in(None) is None


def test_a_damaged_record_reads_as_none() -> None:
    assert replaced_in(f'{REPLACES_MARKER}{{"disk": "db-1"') is None
    assert replaced_in(f'{REPLACES_MARKER}{{"disk": "db-1"}}') is None
