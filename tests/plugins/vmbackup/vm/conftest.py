"""The VM layer's fixtures: the simulator through the real client."""

from __future__ import annotations

import pytest

from devstack.gce_simulator import ComputeSimulator
from vmbackup.compute.hook import ComputeEngineHook


@pytest.fixture
def hook(gce_sim: ComputeSimulator) -> ComputeEngineHook:
    return ComputeEngineHook(endpoint=gce_sim.base_url, backoff_base_seconds=0.01)
