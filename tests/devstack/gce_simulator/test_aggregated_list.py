"""instances.aggregatedList pages across zones, as the compute v1 reference says, through the real client."""

from __future__ import annotations

import pytest
from google.api_core import exceptions
from google.cloud import compute_v1

from devstack.gce_simulator import ComputeSimulator
from tests.fixtures.gce import GCE_PROJECT, GceClients


def _calls(gce_sim: ComputeSimulator) -> int:
    return sum(1 for c in gce_sim.calls if c["method"] == "instances.aggregatedList")


def test_max_results_pages_instances_across_zones(gce_sim: ComputeSimulator, gce_clients: GceClients) -> None:
    request = compute_v1.AggregatedListInstancesRequest(project=GCE_PROJECT, max_results=2)
    first = gce_clients.instances.aggregated_list(request=request)
    on_first = [i.name for scoped in first.items.values() for i in scoped.instances]
    assert len(on_first) == 2
    assert first.next_page_token
    everything = [
        i.name for _, scoped in gce_clients.instances.aggregated_list(request=request) for i in scoped.instances
    ]
    assert sorted(everything) == ["app-1", "db-1", "web-1", "web-2", "wordpress-1-vm"]  # each once
    assert _calls(gce_sim) == 1 + 3  # the first page alone, then 5 instances in pages of 2


def test_a_zone_without_results_on_the_page_carries_the_warning(gce_clients: GceClients) -> None:
    request = compute_v1.AggregatedListInstancesRequest(project=GCE_PROJECT, max_results=1)
    page = gce_clients.instances.aggregated_list(request=request)
    empty = [scoped for scoped in page.items.values() if not scoped.instances]
    assert empty
    assert all(scoped.warning.code == "NO_RESULTS_ON_PAGE" for scoped in empty)


def test_max_results_over_500_is_refused(gce_clients: GceClients) -> None:
    request = compute_v1.AggregatedListInstancesRequest(project=GCE_PROJECT, max_results=501)
    with pytest.raises(exceptions.BadRequest, match="maxResults"):
        list(gce_clients.instances.aggregated_list(request=request))
