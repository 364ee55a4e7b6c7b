"""The CRD reference page (docs/reference/crds.md) is what scripts/crd_reference.py renders from the CRDs."""

from __future__ import annotations

from typing import Any

from controller import crdgen, restore_crd
from scripts import crd_reference


def test_committed_crd_reference_is_what_the_crds_generate() -> None:
    assert crd_reference.PAGE.read_text() == crd_reference.render(), (
        f"{crd_reference.PAGE} drifted from the CRDs: run `python -m scripts.crd_reference`"
    )


def test_check_mode_reports_no_drift(capsys: Any) -> None:
    assert crd_reference.main(["--check"]) == 0, capsys.readouterr().err


def _paths(schema: dict[str, Any], path: str) -> list[str]:
    if schema.get("type") == "array" and "properties" in schema.get("items", {}):
        schema, path = schema["items"], f"{path}[]"
    found = []
    for name, child in schema.get("properties", {}).items():
        found += [f"{path}.{name}", *_paths(child, f"{path}.{name}")]
    return found


def test_every_field_of_both_crds_has_an_entry_with_its_description() -> None:
    page = crd_reference.render()
    for crd in (crdgen.crd(), restore_crd.restore_crd()):
        root = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for part in ("spec", "status"):
            for path in _paths(root["properties"][part], part):
                assert f"#### `{path}` " in page, (crd["spec"]["names"]["kind"], path)


def test_defaults_enums_and_cel_rules_are_shown() -> None:
    page = crd_reference.render()
    assert "**Default:** `@daily`" in page  # spec.schedule
    assert "one of `stop`, `none`, `guestFlush`" in page  # spec.consistency
    assert "CEL `has(self.instances) != has(self.selector)`" in page
    assert "vmbackup\\_\\_&lt;namespace&gt;\\_\\_&lt;name&gt;" in page  # a description shown as written
