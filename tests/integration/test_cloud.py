"""The test cloud itself: real Keystone + Cinder from PyPI with the FlashFleet driver, real
RabbitMQ, driven through their APIs; the array inspected through its inventory; start-up
failures reported as infrastructure failures naming the service and its log."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from tests.fixtures import cloud as cloudfix
from tests.fixtures import devstack as fake
from tests.fixtures.cloud import Cloud, private_tmp, run_minicloud

pytestmark = [pytest.mark.cloud, pytest.mark.slow]
stack_user = fake.stack_user  # the session fixtures
cloud_venvs = cloudfix.cloud_venvs
cloud = cloudfix.cloud


def _objects(cloud: Cloud) -> dict[str, dict]:
    return {o["name"]: o for o in cloud.inventory()["objects"]}


def test_services_up_and_the_driver_reports_its_pools(cloud: Cloud) -> None:
    services = cloud.volume_api("GET", "os-services")["services"]
    up = {(s["binary"], s["host"]) for s in services if s["state"] == "up"}
    assert {("cinder-scheduler", "minicloud"), ("cinder-backup", "minicloud"),
            ("cinder-volume", "minicloud@sanco-flashfleet")} <= up
    pools = cloud.volume_api("GET", "scheduler-stats/get_pools?detail=True")["pools"]
    assert [p["name"] for p in pools] == ["minicloud@sanco-flashfleet#tempest"]
    caps = pools[0]["capabilities"]
    assert caps["vendor_name"] == "SanCo" and caps["storage_protocol"] == "local"
    assert caps["volume_backend_name"] == "sanco-flashfleet"
    assert caps["total_capacity_gb"] == 1000
    types = {t["name"]: t for t in cloud.volume_api("GET", "types")["volume_types"]}
    assert types["sanco-flashfleet"]["extra_specs"] == {
        "volume_backend_name": "sanco-flashfleet"}
    # The service user and endpoints devstack registers.
    conf = cloud.tempest_conf.read_text()
    assert "backend_names = sanco-flashfleet" in conf and "vendor_name = SanCo" in conf
    assert cloud.state["keystone_url"] in conf


def test_volumes_snapshots_and_clones_are_sparse_files_on_the_array(cloud: Cloud) -> None:
    vol = cloud.volume_api("POST", "volumes", {"volume": {"size": 1, "name": "t-vol"}})["volume"]
    assert cloud.wait_volume(vol["id"], "available", "error") == "available"
    snap = cloud.volume_api("POST", "snapshots", {"snapshot": {
        "volume_id": vol["id"], "name": "t-snap"}})["snapshot"]
    clone = None
    try:
        objects = _objects(cloud)
        assert objects[f"volume-{vol['id']}"]["kind"] == "volume"
        assert objects[f"volume-{vol['id']}"]["allocated_bytes"] < 1024 * 1024  # sparse
        for _ in range(60):
            if cloud.volume_api("GET", f"snapshots/{snap['id']}")["snapshot"]["status"] \
                    == "available":
                break
            time.sleep(1)
        assert _objects(cloud)[f"snapshot-{snap['id']}"]["source"] == f"volume-{vol['id']}"
        clone = cloud.volume_api("POST", "volumes", {"volume": {
            "size": 2, "snapshot_id": snap["id"], "name": "t-clone"}})["volume"]
        assert cloud.wait_volume(clone["id"], "available", "error") == "available"
        made = _objects(cloud)[f"volume-{clone['id']}"]
        assert (made["kind"], made["size_gb"]) == ("clone", 2)
    finally:
        if clone:
            cloud.volume_api("DELETE", f"volumes/{clone['id']}")
            cloud.wait_volume(clone["id"], "deleted")
        cloud.volume_api("DELETE", f"snapshots/{snap['id']}")
        for _ in range(60):
            if f"snapshot-{snap['id']}" not in _objects(cloud):
                break
            time.sleep(1)
        cloud.volume_api("DELETE", f"volumes/{vol['id']}")
        cloud.wait_volume(vol["id"], "deleted")
    assert not {n for n in _objects(cloud) if vol["id"] in n or snap["id"] in n}


def test_backup_and_restore_through_cinder_backup(cloud: Cloud) -> None:
    """The posix backup driver reads the volume through the driver's local connector
    (os-brick's privileged calls go through minicloud's unprivileged privsep helper)."""
    vol = cloud.volume_api("POST", "volumes", {"volume": {"size": 1}})["volume"]
    assert cloud.wait_volume(vol["id"], "available", "error") == "available"
    backup = cloud.volume_api("POST", "backups", {"backup": {"volume_id": vol["id"]}})["backup"]
    status = {}
    for _ in range(120):
        status = cloud.volume_api("GET", f"backups/{backup['id']}")["backup"]
        if status["status"] in ("available", "error"):
            break
        time.sleep(1)
    assert (status["status"], status.get("fail_reason")) == ("available", None)
    assert any((cloud.dir / "data" / "backup").rglob("*"))  # on the posix backup path
    cloud.volume_api("DELETE", f"backups/{backup['id']}")
    cloud.wait_volume(vol["id"], "available")
    cloud.volume_api("DELETE", f"volumes/{vol['id']}")
    cloud.wait_volume(vol["id"], "deleted")


def test_switches_fail_a_create_then_leak_on_delete(cloud: Cloud) -> None:
    cloud.switches(fail_create=1)
    try:
        first = cloud.volume_api("POST", "volumes", {"volume": {"size": 1}})["volume"]
        assert cloud.wait_volume(first["id"], "available", "error") == "error"
        second = cloud.volume_api("POST", "volumes", {"volume": {"size": 1}})["volume"]
        assert cloud.wait_volume(second["id"], "available", "error") == "available"
        cloud.switches(leak_on_delete=True)
        for vol in (first, second):
            cloud.volume_api("DELETE", f"volumes/{vol['id']}")
            cloud.wait_volume(vol["id"], "deleted")
        # Cinder forgot the volume; the array still has it: a leak the inventory shows.
        assert f"volume-{second['id']}" in _objects(cloud)
        assert f"volume-{first['id']}" not in _objects(cloud)  # never created
    finally:
        cloud.switches()
    leaked = cloud.array / "pools" / "tempest" / f"volume-{second['id']}.img"
    leaked.unlink()
    leaked.with_suffix(".json").unlink()


def test_inventory_of_a_directory_that_is_no_array_exits_2(tmp_path: Path,
                                                           cloud_venvs: dict) -> None:
    done = run_minicloud("inventory", str(tmp_path), check=False)
    assert done.returncode == 2 and "array.json missing" in done.stderr


def test_a_port_in_use_is_an_infrastructure_failure_naming_it(tmp_path: Path,
                                                              cloud_venvs: dict) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = run_minicloud("configure", "--dir", str(tmp_path / "c"), "--keystone-port",
                             str(port), check=False)
    assert done.returncode == 3
    assert f"port {port} for keystone is already in use" in done.stderr


def test_a_service_failing_at_start_names_it_and_its_log(stack_user: str,
                                                         cloud_venvs: dict) -> None:
    with private_tmp(stack_user) as root:
        _service_failing_at_start(root / "c", stack_user)


def _service_failing_at_start(d: Path, stack_user: str) -> None:
    run_minicloud("configure", "--dir", str(d), user=stack_user)
    conf = d / "etc" / "keystone" / "keystone.conf"
    conf.write_text(conf.read_text().replace("connection = sqlite:", "connection = nosuchdb:"))
    done = run_minicloud("start", "--dir", str(d), user=stack_user, check=False)
    assert done.returncode == 3, done.stderr
    assert "keystone-manage" in done.stderr
    assert f"log: {d}/logs/keystone-manage.log" in done.stderr
    state = json.loads((d / "cloud.json").read_text())
    assert state["pids"] == {} and not state["started"]  # what had started was stopped


def test_status_names_every_service_alive(stack_user: str, cloud: Cloud) -> None:
    done = run_minicloud("status", "--dir", str(cloud.dir), user=stack_user, check=False)
    assert done.returncode == 0
    alive = json.loads(done.stdout)["alive"]
    assert alive == dict.fromkeys(("rabbitmq", "key", "c-api", "c-sch", "c-vol", "c-bak"), True)
