"""The Compute Engine library stand-in: nothing imported until a task reads from it, then the real module."""

from __future__ import annotations

import pytest

from vmbackup.compute.compute_library import ImportedOnFirstUse


def test_the_module_is_imported_on_the_first_attribute_read() -> None:
    standin = ImportedOnFirstUse("json")
    assert "imported on first use" in repr(standin)

    assert standin.dumps({"a": 1}) == '{"a": 1}'
    assert "imported on first use" not in repr(standin)


def test_a_dunder_probe_does_not_import_it() -> None:
    standin = ImportedOnFirstUse("a_module_that_does_not_exist")
    with pytest.raises(AttributeError):
        standin.__wrapped__  # noqa: B018

    with pytest.raises(ModuleNotFoundError):
        standin.anything  # noqa: B018
