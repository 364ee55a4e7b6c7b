"""``google.cloud.compute_v1``, imported when a task first uses it, never when Airflow parses a DAG file.

Airflow's DAG processor imports each DAG file again in a fresh process every ``min_file_process_interval``
(and Composer times each import out after ``dagbag_import_timeout``). Importing compute_v1 (thousands of
proto-plus message classes) costs several times what the rest of a vmbackup DAG file costs; the operators need
it only when they run. So every module of ours that calls Compute Engine takes ``compute_v1`` from here: the
real module for type checkers, a proxy that imports it on first attribute access at run time. The parse cost
with and without it is in docs/benchmarks.md ("DAG file parse").
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any

COMPUTE_LIBRARY = "google.cloud.compute_v1"


class ImportedOnFirstUse:
    """Stands for a module until an attribute is read, then imports it (once) and answers from it."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__"):  # copy, pickle and friends probe dunders: not a reason to import
            raise AttributeError(attribute)
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attribute)

    def __repr__(self) -> str:
        return f"<{self._name}, {'imported' if self._module is not None else 'imported on first use'}>"


if TYPE_CHECKING:
    from google.cloud import compute_v1 as compute_v1
else:
    compute_v1 = ImportedOnFirstUse(COMPUTE_LIBRARY)
