"""cinder: profile backends → CINDER_ENABLED_BACKENDS, cinder.conf and tempest.conf blocks; bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsvm.devstack import cinder, localconf
from dsvm.errors import ProfileError
from tests.fixtures.configure_profiles import SANCO, resolve

# spec/vectors/localconf.jsonl, case vendor/pure-iscsi-backend-into-devstack-cinder-conf:
# the cinder.conf devstack generated, and the file after devstack merged the Pure backend.
DEVSTACK_CINDER_CONF = (
    "[DEFAULT]\ndebug = True\nenabled_backends = lvmdriver-1\ndefault_volume_type = lvmdriver-1\n"
    "my_ip = 10.0.0.5\n\n[lvmdriver-1]\nimage_volume_cache_enabled = True\nvolume_clear = zero\n"
    "lvm_type = auto\ntarget_helper = lioadm\nvolume_group = stack-volumes-lvmdriver-1\n"
    "volume_driver = cinder.volume.drivers.lvm.LVMVolumeDriver\n"
    "volume_backend_name = lvmdriver-1\n\n[key_manager]\n"
    "backend = cinder.keymgr.conf_key_mgr.ConfKeyManager\n")
AFTER_PURE = (
    DEVSTACK_CINDER_CONF.replace("enabled_backends = lvmdriver-1\n",
                                 "enabled_backends = lvmdriver-1,puredriver-1\n")
    .replace("default_volume_type = lvmdriver-1", "default_volume_type = puredriver-1")
    + "\n[puredriver-1]\nvolume_backend_name = puredriver-1\n"
    "volume_driver = cinder.volume.drivers.pure.PureISCSIDriver\nsan_ip = 192.0.2.50\n"
    "pure_api_token = 902fdca3-7e3f-d2e4-d6a6-24c2285fe1d9\nuse_multipath_for_image_xfer = True\n")

PURE = """\
    cinder:
      default_volume_type: puredriver-1
      backends:
        - name: lvmdriver-1
          volume_driver: cinder.volume.drivers.lvm.LVMVolumeDriver
        - name: puredriver-1
          volume_driver: cinder.volume.drivers.pure.PureISCSIDriver
          storage_protocol: iSCSI
          vendor_name: Pure Storage
          options:
            san_ip: 192.0.2.50
            pure_api_token: 902fdca3-7e3f-d2e4-d6a6-24c2285fe1d9
            use_multipath_for_image_xfer: true
    """


@pytest.mark.parametrize(("driver", "expected"), [
    ("cinder.volume.drivers.lvm.LVMVolumeDriver", "lvm"),
    ("cinder.volume.drivers.pure.PureISCSIDriver", "pure"),
    ("cinder.volume.drivers.dell_emc.powerstore.driver.PowerStoreDriver", "dell_emc"),
    ("cinder.volume.drivers.hpe.hpe_3par_iscsi.HPE3PARISCSIDriver", "hpe"),
    ("sanco_cinder.driver.SanCoDriver", "sanco_cinder"),
    ("weird-pkg.Driver", "vendor"),
])
def test_driver_type(driver: str, expected: str):
    assert cinder.driver_type(driver) == expected


def test_sanco_backend_renders_localrc_post_config_and_test_config(tmp_path: Path):
    rendered = localconf.render(resolve(tmp_path, SANCO, {}))
    text = rendered.text()
    assert "\nCINDER_ENABLED_BACKENDS=sanco:sanco-iscsi\n" in text
    assert rendered.backends == ("sanco-iscsi",)
    assert ("\n[[post-config|$CINDER_CONF]]\n[DEFAULT]\nenabled_backends = sanco-iscsi\n"
            "default_volume_type = sanco-iscsi\n[sanco-iscsi]\nvolume_backend_name = sanco-iscsi\n"
            "volume_driver = cinder.volume.drivers.sanco.iscsi.SanCoISCSIDriver\n"
            "san_ip = 192.0.2.20\nsan_login = ci\nsan_password = Fleet2024\n"
            "sanco_api_key = k3y-for-sanco\nsanco_pool = tempest\n") in text
    assert text.endswith("\n[[test-config|$TEMPEST_CONFIG]]\n[volume]\n"
                         "backend_names = sanco-iscsi\nstorage_protocol = iSCSI\n"
                         "vendor_name = SanCo\n[volume-feature-enabled]\nmulti_backend = False\n"
                         "manage_snapshot = True\nvolume_revert = False\n")
    masked = rendered.masked()
    assert "san_password = ****" in masked and "sanco_api_key = ****" in masked
    assert "Fleet2024" not in masked and "k3y-for-sanco" not in masked
    origins = {line.text: line.origin for line in rendered.lines}
    assert origins["san_ip = 192.0.2.20"] == f"{tmp_path / 'job.yaml'}:13"


def test_two_backends_enable_multi_backend_and_keep_order(tmp_path: Path):
    found, problems = cinder.backends(resolve(tmp_path, PURE, {}))
    assert problems == []
    assert [b.entry for b in found] == ["lvm:lvmdriver-1", "pure:puredriver-1"]
    settings = resolve(tmp_path, PURE, {})
    edits = {(e.section, e.option): e.value for e in cinder.tempest_edits(settings, found)}
    assert edits[("volume", "backend_names")] == "lvmdriver-1,puredriver-1"
    assert edits[("volume-feature-enabled", "multi_backend")] == "True"
    assert edits[("volume", "vendor_name")] == "Pure Storage"
    secret = [e.option for e in cinder.cinder_edits(settings, found) if e.secret]
    assert secret == ["pure_api_token"]


def test_apply_text_gives_devstacks_merge_result_on_a_devstack_cinder_conf(tmp_path: Path):
    settings = resolve(tmp_path, PURE, {})
    found, _ = cinder.backends(settings)
    assert cinder.apply_text(DEVSTACK_CINDER_CONF, cinder.cinder_edits(settings, found)) \
        == AFTER_PURE


def test_apply_text_is_idempotent(tmp_path: Path):
    settings = resolve(tmp_path, PURE, {})
    edits = cinder.cinder_edits(settings, cinder.backends(settings)[0])
    once = cinder.apply_text(DEVSTACK_CINDER_CONF, edits)
    assert cinder.apply_text(once, edits) == once


def test_no_backends_means_no_cinder_lines(tmp_path: Path):
    text = localconf.render(resolve(tmp_path, "description: x\n", {})).text()
    assert "CINDER_ENABLED_BACKENDS" not in text and "$CINDER_CONF" not in text


BACKEND = "cinder:\n  backends:\n"


@pytest.mark.parametrize(("body", "line", "message"), [
    ("    - name: a\n", 3, "has no volume_driver"),
    ("    - name: a\n      volume_driver: x.A\n    - name: a\n      volume_driver: x.B\n", 5,
     "duplicate backend name 'a'"),
    ("    - name: 'a]b'\n      volume_driver: x.A\n", 3, "cannot be a cinder.conf section"),
    ("    - name: 'a,b'\n      volume_driver: x.A\n", 3, "cannot be a cinder.conf section"),
    ("    - name: a\n      volume_driver: x.A\n      options:\n        note: \"x\\ny\"\n", 6,
     "contains a newline"),
    ("    - name: a\n      volume_driver: x.A\n      options:\n        san_password: \"p$$w\"\n",
     6, "'$'"),
    ("    - name: a\n      volume_driver: x.A\n      options:\n        cmd: \"$$(id)\"\n", 6,
     "command substitution"),
    ("    - name: a\n      volume_driver: x.A\n      volume_typ: a\n", 5,
     "unknown backend key 'volume_typ'"),
    ("    - name: a\n      volume_driver: x.A\n      volume_type: gold\n", 5,
     "differs from the backend name"),
    ("    - name: a\n      volume_driver: x.A\n      options:\n        'bad opt': 1\n", 6,
     "cannot be a section or option name"),
    ("    - name: a\n      volume_driver: x.A\n      type: 'a-b'\n", 5, "backend type"),
])
def test_bad_backend_exits_2_naming_the_profile_line(tmp_path: Path, body: str, line: int,
                                                     message: str):
    settings = resolve(tmp_path, BACKEND + body, {})
    with pytest.raises(ProfileError) as err:
        localconf.render(settings)
    assert err.value.exit_code == 2
    hits = [p for p in err.value.problems if message in p.message]
    assert hits, [p.message for p in err.value.problems]
    assert hits[0].where == f"{tmp_path / 'job.yaml'}:{line}"
    assert "p$w" not in "".join(p.render() for p in err.value.problems)


def test_default_volume_type_must_be_a_backend(tmp_path: Path):
    text = BACKEND + "    - name: a\n      volume_driver: x.A\n  default_volume_type: b\n"
    with pytest.raises(ProfileError) as err:
        localconf.render(resolve(tmp_path, text, {}))
    assert "is not a backend" in err.value.problems[0].message
    assert err.value.problems[0].where.endswith("job.yaml:5")


def test_shipped_profiles_use_the_backends_section(tmp_path: Path):
    from dsvm import profile

    lvm = localconf.render(profile.resolve("cinder-lvm", env={}))
    assert "CINDER_ENABLED_BACKENDS=lvm:lvmdriver-1" in lvm.text()
    vendor = localconf.render(profile.resolve("vendor-template",
                                              env={"ACME_SAN_PASSWORD": "Hidden42"}))
    assert "san_password = Hidden42" in vendor.text()
    assert "Hidden42" not in vendor.masked()
