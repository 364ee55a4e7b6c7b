"""``SimulatorControl``: the simulator's control plane over HTTP, with the same method names as
``ComputeSimulator``, for other processes (Airflow workers, the local demo, benchmarks)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from .faults import Fault
from .profile import Profile


class SimulatorControlError(RuntimeError):
    pass


class SimulatorControl:
    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _call(self, verb: str, path: str, body: Any = None, timeout: float | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.base_url}/_sim/{path}",
            data=data,
            method=verb,
            headers={"Content-Type": "application/json"} if data is not None else {},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise SimulatorControlError(f"{verb} /_sim/{path} -> {exc.code}: {detail}") from exc

    # lifecycle / profile ---------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "health")
        return result

    def reset(self, profile: Profile | None = None) -> None:
        self._call("POST", "reset", {"profile": profile.to_dict()} if profile else {})

    @property
    def profile(self) -> Profile:
        return Profile.from_dict(self._call("GET", "profile"))

    def set_profile(self, profile: Profile) -> None:
        self._call("PUT", "profile", profile.to_dict())

    # seeding ---------------------------------------------------------------------------------------------
    def add_instance(
        self,
        project: str,
        zone: str,
        name: str,
        *,
        labels: dict[str, str] | None = None,
        disks: list[Any] | None = None,
        status: str = "RUNNING",
        machine_type: str = "e2-medium",
        tags: list[str] | None = None,
        network: str = "default",
        graceful_shutdown_seconds: float | None = None,
        local_ssds: int = 0,
        guest_flush_supported: bool = True,
        provisioning_model: str = "STANDARD",
        reservation_affinity: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        body = {
            "project": project,
            "zone": zone,
            "name": name,
            "labels": labels,
            "disks": disks,
            "status": status,
            "machine_type": machine_type,
            "tags": tags,
            "network": network,
            "graceful_shutdown_seconds": graceful_shutdown_seconds,
            "local_ssds": local_ssds,
            "guest_flush_supported": guest_flush_supported,
            "provisioning_model": provisioning_model,
            "reservation_affinity": reservation_affinity,
        }
        result: dict[str, Any] = self._call("POST", "instances", body)
        return result

    def add_disk(
        self,
        project: str,
        zone: str,
        name: str,
        *,
        size_gb: int = 10,
        disk_type: str = "pd-balanced",
        labels: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        body = {"project": project, "zone": zone, "name": name, "size_gb": size_gb, "disk_type": disk_type}
        body["labels"] = labels
        result: dict[str, Any] = self._call("POST", "disks", body)
        return result

    def add_reservation(
        self,
        project: str,
        zone: str,
        name: str,
        *,
        count: int = 1,
        machine_type: str = "e2-medium",
        specific_reservation_required: bool = False,
    ) -> dict[str, Any]:
        body = {"project": project, "zone": zone, "name": name, "count": count, "machine_type": machine_type}
        body["specific_reservation_required"] = specific_reservation_required
        result: dict[str, Any] = self._call("POST", "reservations", body)
        return result

    def seed_classic(self, project: str = "demo-project") -> None:
        self._call("POST", "seed/classic", {"project": project})

    def set_guest_console(self, project: str, zone: str, disk: str, text: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("PUT", f"guest_console/{project}/{zone}/{disk}", {"text": text})
        return result

    def append_serial(self, project: str, zone: str, instance: str, text: str, port: int = 1) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", f"serial/{project}/{zone}/{instance}", {"text": text, "port": port})
        return result

    # inspection ------------------------------------------------------------------------------------------
    def instance(self, project: str, zone: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"instances/{project}/{zone}/{name}")
        return result

    def disk(self, project: str, zone: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"disks/{project}/{zone}/{name}")
        return result

    def snapshots(self, project: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", f"snapshots/{project}")
        return result

    def instant_snapshots(self, project: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", f"instant_snapshots/{project}")
        return result

    def reservations(self, project: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", f"reservations/{project}")
        return result

    def operations(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "operations")
        return result

    @property
    def calls(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "calls")
        return result

    def clear_calls(self) -> None:
        self._call("DELETE", "calls")

    def call_counts(self) -> dict[str, int]:
        result: dict[str, int] = self._call("GET", "call_counts")
        return result

    @property
    def violations(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "violations")
        return result

    def check_left_stopped(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("POST", "check_left_stopped", {})
        return result

    def wait_idle(self, timeout: float = 10.0) -> bool:
        return bool(self._call("POST", "wait_idle", {"timeout": timeout}, timeout=timeout + 10)["idle"])

    # faults ----------------------------------------------------------------------------------------------
    @property
    def faults(self) -> list[Fault]:
        return [Fault.from_dict(f) for f in self._call("GET", "faults")]

    def inject(self, fault: Fault) -> Fault:
        return Fault.from_dict(self._call("POST", "faults", fault.to_dict()))

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    # stricter behaviours (quotas.py, power.py, presets.py) ------------------------------------------------
    def quota_usage(self) -> dict[str, dict[str, int]]:
        """project -> rate quota group -> the highest number of calls admitted in one window."""
        result: dict[str, dict[str, int]] = self._call("GET", "quota_usage")
        return result

    def set_rate_quota(self, group: str, per_minute: int) -> None:
        self._call("PUT", "rate_quotas", {"group": group, "per_minute": per_minute})

    def stockout(self, zone: str, seconds: float, machine_type: str | None = None) -> float:
        body = {"zone": zone, "seconds": seconds, "machine_type": machine_type}
        return float(self._call("POST", "stockouts", body)["seconds"])

    def preempt(self, project: str, zone: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", f"preempt/{project}/{zone}/{name}", {})
        return result

    def presets(self) -> list[str]:
        result: list[str] = self._call("GET", "presets")
        return result

    def apply_preset(self, name: str, **params: Any) -> None:
        self._call("POST", f"presets/{name}", params)

    def deny_permission(self, project: str, permission: str) -> None:
        self._call("POST", "denied_permissions", {"project": project, "permission": permission})
