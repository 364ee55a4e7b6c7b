"""The local stack's world matches what it demonstrates: every shipped example can back up what it names."""

import os
from collections.abc import Iterator

import pytest
from google.cloud import compute_v1

from devstack.cluster import example_policies
from devstack.gce_simulator import ComputeSimulator, compute_client
from devstack.stack import PROJECT, StackPorts, seed_demo_world
from vmbackup.model.policy import parse_policy


@pytest.fixture(scope="module")
def demo_world() -> Iterator[ComputeSimulator]:
    with ComputeSimulator() as compute:
        seed_demo_world(compute)
        yield compute


@pytest.mark.parametrize("doc", example_policies(), ids=lambda d: d["metadata"]["name"])
def test_every_example_policy_is_valid_and_targets_the_demo_project(doc: dict) -> None:
    policy = parse_policy(doc["metadata"].get("namespace", "default"), doc["metadata"]["name"], doc["spec"])
    assert policy.spec.project == PROJECT


@pytest.mark.parametrize("doc", example_policies(), ids=lambda d: d["metadata"]["name"])
def test_every_vm_and_disk_an_example_names_exists_in_the_demo(doc: dict, demo_world: ComputeSimulator) -> None:
    instances = compute_client(compute_v1.InstancesClient, demo_world.base_url)
    selector = doc["spec"].get("selector")
    if selector:
        found = [
            i.name
            for zone in selector["zones"]
            for i in instances.list(
                request=compute_v1.ListInstancesRequest(
                    project=PROJECT,
                    zone=zone,
                    filter=" AND ".join(f"labels.{k} = {v}" for k, v in selector["matchLabels"].items()),
                )
            )
        ]
        assert found, f"no demo VM carries {selector['matchLabels']}"
    for ref in doc["spec"].get("instances") or []:
        vm = instances.get(project=PROJECT, zone=ref["zone"], instance=ref["name"])
        attached = {d.source.rsplit("/", 1)[-1] for d in vm.disks}
        assert set(ref.get("disks") or attached) <= attached


def test_a_port_in_use_is_refused_with_the_flag_to_change() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeError, match=f"port {port} \\(--airflow-port\\) is already in use"):
            StackPorts(airflow=port).check()


def test_a_stopped_stack_puts_back_the_storage_emulator_variable(tmp_path, monkeypatch) -> None:
    """Later clients in the same process (tests, the CLI) must not keep talking to a stopped emulator."""
    from devstack.stack import LocalStack

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:1")
    stack = LocalStack(state_dir=tmp_path, echo=lambda line: None)
    stack._start_bucket()
    assert os.environ["STORAGE_EMULATOR_HOST"] == stack.storage_url
    stack.stop()
    assert os.environ["STORAGE_EMULATOR_HOST"] == "http://127.0.0.1:1"
