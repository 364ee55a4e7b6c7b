"""The rate budget: calls per project and quota group held under a per-window budget, shared through the bucket.

Two ledgers on one bucket stand for two processes of a Composer environment (the triggerer and a worker); the
bucket is gcp-storage-emulator through the real google-cloud-storage client, the calls go to the simulator.
"""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from google.api_core import exceptions as gexc
from google.cloud import storage

from devstack.gce_simulator import ComputeSimulator
from tests.fixtures.gce import GCE_PROJECT
from vmbackup.compute.hook import ComputeEngineHook
from vmbackup.compute.rate_budget import PREFIX, BucketLedger, ProcessLedger, RateBudget, group_of
from vmbackup.settings import AirflowSettings

GROUP = "read_requests"


def test_the_storage_emulator_ignores_if_generation_match(gcs_bucket: storage.Bucket) -> None:
    """Why the ledger has one writer per object instead of compare-and-swap: the tests' bucket cannot refuse one."""
    gcs_bucket.blob("cas").upload_from_string("1", if_generation_match=0)
    try:
        gcs_bucket.blob("cas").upload_from_string("2", if_generation_match=0)
    except gexc.PreconditionFailed:
        pytest.fail("the emulator honours ifGenerationMatch now: a compare-and-swap ledger could be tested")


def test_two_processes_never_claim_more_than_the_budget(gcs_bucket: storage.Bucket) -> None:
    ledgers = [BucketLedger(gcs_bucket, process_id=f"p{i}") for i in range(2)]
    window = 1

    def claim_all(ledger: BucketLedger) -> int:
        granted = 0
        while got := ledger.grant(GCE_PROJECT, GROUP, window, 3, 25):
            granted += got
        return granted

    with ThreadPoolExecutor(2) as pool:
        granted = list(pool.map(claim_all, ledgers))
    assert sum(granted) <= 25
    assert sum(granted) >= 25 - 2 * 3  # a race may make both take back a block, never more


def test_a_new_window_starts_a_new_budget_and_drops_the_old_claims(gcs_bucket: storage.Bucket) -> None:
    ledger = BucketLedger(gcs_bucket, process_id="p0")
    assert ledger.grant(GCE_PROJECT, GROUP, 1, 5, 5) == 5
    assert ledger.grant(GCE_PROJECT, GROUP, 1, 5, 5) == 0
    assert ledger.grant(GCE_PROJECT, GROUP, 2, 5, 5) == 5
    names = [b.name for b in gcs_bucket.client.list_blobs(gcs_bucket, prefix=f"{PREFIX}/")]
    assert names == [f"{PREFIX}/{GCE_PROJECT}/{GROUP}/2/p0-5"]


def test_budgets_sharing_a_bucket_pace_calls_to_the_window(gcs_bucket: storage.Bucket) -> None:
    window_seconds = 1.0
    budgets = [RateBudget(BucketLedger(gcs_bucket, process_id=f"p{i}"), {GROUP: 6}, window_seconds) for i in range(2)]

    def take(i: int) -> None:
        budgets[i % 2].take(GCE_PROJECT, "instances.get")

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(take, range(14)))
    per_window = sum((b.taken for b in budgets), Counter[tuple[str, str, int]]())
    assert sum(per_window.values()) == 14
    assert max(per_window.values()) <= 6
    assert len(per_window) >= 3


def test_the_hook_asks_the_budget_before_each_call(gce_sim: ComputeSimulator) -> None:
    budget = RateBudget(ProcessLedger(), {GROUP: 3}, 0.5)
    hook = ComputeEngineHook(endpoint=gce_sim.base_url, settings=AirflowSettings(), budget=budget)
    for _ in range(7):
        hook.get_instance(GCE_PROJECT, "us-central1-c", "wordpress-1-vm")
    assert gce_sim.call_counts()["instances.get"] == 7
    assert sum(budget.taken.values()) == 7
    assert max(budget.taken.values()) <= 3  # so the 7 calls spanned at least 3 windows


def test_a_methods_group_comes_from_the_table_or_its_verb() -> None:
    assert group_of("zoneOperations.wait") == "operation_read_requests"
    assert group_of("snapshots.insert") == "global_resource_write_requests"
    assert group_of("instances.resume") == "zonal_write_requests"  # not in the table: by its verb
