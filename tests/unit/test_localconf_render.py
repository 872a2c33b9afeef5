"""localconf.render: devstack-gate's setup_localrc lines in order, the matrix, pass-through, origins."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsvm import profile
from dsvm.devstack import localconf, matrix
from dsvm.errors import ProfileError
from tests.fixtures.configure_profiles import SANCO, resolve

# spec/devstack-gate.md §4.2 rows 3, 5, 7, 9, 16: the reference case (master, aio, TEMPEST=0).
REFERENCE = """\
Q_USE_DEBUG_COMMAND=True
NETWORK_GATEWAY=10.1.0.1
USE_SCREEN=False
DEST=/opt/stack/new
DATA_DIR=/opt/stack/data
ACTIVE_TIMEOUT=90
BOOT_TIMEOUT=90
ASSOCIATE_TIMEOUT=60
TERMINATE_TIMEOUT=60
MYSQL_PASSWORD=secretmysql
DATABASE_PASSWORD=secretdatabase
RABBIT_PASSWORD=secretrabbit
ADMIN_PASSWORD=secretadmin
SERVICE_PASSWORD=secretservice
SERVICE_TOKEN=111222333444
SWIFT_HASH=1234123412341234
ROOTSLEEP=0
ERROR_ON_CLONE=True
INSTALL_TEMPEST=False
NOVNC_FROM_PACKAGE=True
ENABLED_SERVICES=c-api,c-bak,c-sch,c-vol,dstat,etcd3,g-api,g-reg,key,mysql,n-api,n-api-meta,n-cond,n-cpu,n-novnc,n-sch,placement-api,q-agt,q-dhcp,q-l3,q-meta,q-metering,q-svc,rabbit,s-account,s-container,s-object,s-proxy
SKIP_EXERCISES=boot_from_volume,bundle,client-env,euca
SYSLOG=False
SCREEN_LOGDIR=/opt/stack/new/screen-logs
LOGFILE=/opt/stack/new/devstacklog.txt
VERBOSE=True
FIXED_RANGE=10.1.0.0/20
IPV4_ADDRS_SAFE_TO_USE=10.1.0.0/20
FLOATING_RANGE=172.24.5.0/24
PUBLIC_NETWORK_GATEWAY=172.24.5.1
FIXED_NETWORK_SIZE=4096
VIRT_DRIVER=libvirt
SWIFT_REPLICAS=1
SWIFT_START_ALL_SERVICES=False
LOG_COLOR=False
UNDO_REQUIREMENTS=False
CINDER_PERIODIC_INTERVAL=10
export OS_NO_CACHE=True
LIBS_FROM_GIT=
EBTABLES_RACE_FIX=True
DEBUG_LIBVIRT_COREDUMPS=True
CINDER_VOLUME_CLEAR=none
LIBVIRT_TYPE=qemu
FORCE_CONFIG_DRIVE=False
"""

BARE = "description: no profile localrc\n"


def gate(tmp_path: Path, **env: str) -> list[str]:
    settings = resolve(tmp_path, BARE, env)
    lines, problems = localconf.gate_lines(settings)
    assert problems == []
    return [line.text for line in lines]


def unsupported(tmp_path: Path, **gate_values: str):
    """Settings with gate values dsvm's environ refuses (multinode, grenade): render stays pure."""
    settings = resolve(tmp_path, BARE, {})
    settings.gate = settings.gate.with_values(**gate_values)
    return settings


def localrc_of(text: str) -> list[str]:
    """The [[local|localrc]] block's lines, as devstack's extract_localrc_section copies them."""
    out, inside = [], False
    for line in text.split("\n"):
        if line.startswith("[[") and "|" in line and "]]" in line[2:]:
            inside = line.split()[0] == "[[local|localrc]]"
            continue
        if inside:
            out.append(line)
    while out and out[-1] == "":
        out.pop()
    return out


def test_reference_case_matches_devstack_gate_line_for_line(tmp_path: Path):
    assert gate(tmp_path, DEVSTACK_GATE_TEMPEST="0") == REFERENCE.splitlines()


def test_tempest_adds_the_service_and_row_12_only(tmp_path: Path):
    lines = gate(tmp_path, DEVSTACK_GATE_TEMPEST="1")
    ref = REFERENCE.splitlines()
    services = next(x for x in lines if x.startswith("ENABLED_SERVICES="))
    assert services.endswith(",s-proxy,tempest")
    rest = [x for x in lines if not x.startswith("ENABLED_SERVICES=")]
    extra = [x for x in rest if x not in ref]
    assert extra == ["VOLUME_BACKING_FILE_SIZE=24G",
                     "TEMPEST_HTTP_IMAGE=http://git.openstack.org/static/openstack.png"]
    # row 12 sits between row 9 (LIBVIRT_TYPE) and row 16 (FORCE_CONFIG_DRIVE)
    assert rest.index("LIBVIRT_TYPE=qemu") < rest.index(extra[0]) < rest.index(
        "FORCE_CONFIG_DRIVE=False")


@pytest.mark.parametrize(("configs", "branch", "no_services", "expected"), [
    (["neutron"], "master", False, "c-api,c-bak,c-sch,c-vol,dstat,etcd3,g-api,g-reg,key,mysql,"
     "n-api,n-api-meta,n-cond,n-cpu,n-novnc,n-sch,placement-api,q-agt,q-dhcp,q-l3,q-meta,"
     "q-metering,q-svc,rabbit,s-account,s-container,s-object,s-proxy"),
    (["tempest"], "master", True, "dstat,etcd3,mysql,rabbit,tempest"),
    (["tempest"], "queens", False, "c-api,c-bak,c-sch,c-vol,ceilometer-acentral,"
     "ceilometer-acompute,ceilometer-alarm-evaluator,ceilometer-alarm-notifier,"
     "ceilometer-anotification,ceilometer-api,ceilometer-collector,dstat,etcd3,g-api,g-reg,key,"
     "mysql,n-api,n-api-meta,n-cauth,n-cond,n-cpu,n-net,n-novnc,n-sch,placement-api,rabbit,"
     "s-account,s-container,s-object,s-proxy,tempest"),
    (["ironic", "neutron", "tempest"], "master", False, "dstat,etcd3,g-api,g-reg,ir-api,ir-cond,"
     "key,mysql,n-api,n-api-meta,n-cond,n-cpu,n-novnc,n-sch,placement-api,q-agt,q-dhcp,q-l3,"
     "q-meta,q-metering,q-svc,rabbit,s-account,s-container,s-object,s-proxy,tempest"),
])
def test_feature_matrix_worked_results(configs, branch, no_services, expected):
    assert ",".join(matrix.enabled_services(configs, branch, no_services)) == expected


def test_grenade_drops_c_bak_and_etcd3_and_postgres_replaces_mysql():
    grenade = matrix.enabled_services(["neutron", "tempest", "grenade"], "master")
    assert "c-bak" not in grenade and "etcd3" not in grenade and "tempest" in grenade
    pg = matrix.enabled_services(["neutron", "postgres"], "master")
    assert "postgresql" in pg and "mysql" not in pg


@pytest.mark.parametrize(("branch", "expected"), [
    ("stable/queens", "queens"), ("feature/foo", "master"), ("bug/1", "master"),
    ("proposed/rocky-rc1", "rocky"), ("proposed/zzz", "master"), ("master", "master"),
    ("stable/2024.1", "master"), ("", "master"),
])
def test_branch_normalisation(branch, expected):
    assert matrix.normalize_branch(branch)[0] == expected


def test_old_branch_defaults_neutron_off_and_no_q_services(tmp_path: Path):
    lines = gate(tmp_path, OVERRIDE_ZUUL_BRANCH="stable/mitaka", DEVSTACK_GATE_TEMPEST="0")
    assert "Q_USE_DEBUG_COMMAND=True" not in lines
    services = next(x for x in lines if x.startswith("ENABLED_SERVICES=")).split("=")[1]
    assert "q-svc" not in services and "ceilometer-api" in services


def test_override_and_extra_enabled_services(tmp_path: Path):
    lines = gate(tmp_path, OVERRIDE_ENABLED_SERVICES="key,mysql")
    assert "ENABLED_SERVICES=key,mysql" in lines
    lines = gate(tmp_path, ENABLED_SERVICES="horizon", DEVSTACK_GATE_TEMPEST="0")
    assert next(x for x in lines if x.startswith("ENABLED_SERVICES=")).endswith(",s-proxy,horizon")


def test_large_ops_writes_a_second_virt_driver_after_the_first(tmp_path: Path):
    lines = gate(tmp_path, DEVSTACK_GATE_TEMPEST_LARGE_OPS="1")
    drivers = [x for x in lines if x.startswith("VIRT_DRIVER=")]
    assert drivers == ["VIRT_DRIVER=libvirt", "VIRT_DRIVER=fake"]
    assert "TEMPEST_LARGE_OPS_NUMBER=50" in lines
    assert "TEMPEST_LARGE_OPS_NUMBER=7" in gate(tmp_path, DEVSTACK_GATE_TEMPEST_LARGE_OPS="7")


def test_knobs_from_the_environment(tmp_path: Path):
    lines = gate(tmp_path, BASE="/srv/ci", DEVSTACK_GATE_USE_PYTHON3="True",
                 DEVSTACK_GATE_CEPH="1", DEVSTACK_GATE_CONFIGDRIVE="1",
                 DEVSTACK_GATE_NEUTRON_DVR="1", DEVSTACK_PROJECT_FROM_GIT="os-brick",
                 DEVSTACK_GATE_FIXED_RANGE="10.9.0.0/20", DEVSTACK_GATE_INSTALL_TESTONLY="1",
                 DEVSTACK_GATE_TEMPEST_DISABLE_TENANT_ISOLATION="1")
    assert lines[:4] == ["USE_PYTHON3=True", "CINDER_ENABLED_BACKENDS=ceph:ceph",
                         "TEMPEST_STORAGE_PROTOCOL=ceph", "Q_USE_DEBUG_COMMAND=True"]
    assert "Q_DVR_MODE=dvr_snat" in lines
    for expected in ("DEST=/srv/ci/new", "DATA_DIR=/srv/ci/data", "LIBS_FROM_GIT=os-brick",
                     "FIXED_RANGE=10.9.0.0/20", "IPV4_ADDRS_SAFE_TO_USE=10.9.0.0/20",
                     "FORCE_CONFIG_DRIVE=True", "INSTALL_TESTONLY_PACKAGES=True",
                     "TEMPEST_ALLOW_TENANT_ISOLATION=False"):
        assert expected in lines
    assert "ceph" in next(x for x in lines if x.startswith("ENABLED_SERVICES=")).split(",")


def test_ironic_agent_block(tmp_path: Path):
    lines = gate(tmp_path, DEVSTACK_GATE_VIRT_DRIVER="ironic",
                 DEVSTACK_GATE_IRONIC_DRIVER="agent_ipmitool")
    assert "LIBVIRT_TYPE=qemu" not in lines
    i = lines.index("IRONIC_DEPLOY_DRIVER=agent_ipmitool")
    assert lines[i + 1:i + 3] == ["IRONIC_BAREMETAL_BASIC_OPS=True",
                                  "IRONIC_VM_LOG_DIR=/opt/stack/new/ironic-bm-logs"]
    assert "IRONIC_ENABLED_DRIVERS=fake,agent_ipmitool" in lines


def test_multinode_primary_block_uses_the_primary_ip(tmp_path: Path):
    settings = unsupported(tmp_path, DEVSTACK_GATE_TOPOLOGY="multinode")
    lines = [x.text for x in localconf.gate_lines(settings, "10.0.0.7")[0]]
    assert lines[-2:] == ["SERVICE_HOST=10.0.0.7", "HOST_IP=10.0.0.7"]


@pytest.mark.parametrize(("env", "message"), [
    ({"DEVSTACK_GATE_VIRT_DRIVER": "xenapi"}, "xenapi needs DEVSTACK_GATE_XENAPI_DOM0_IP"),
    ({"DEVSTACK_GATE_GRENADE": "sideward"}, "unsupported upgrade mode: sideward"),
])
def test_bad_gate_environment_is_a_problem(tmp_path: Path, env, message):
    settings = unsupported(tmp_path, **env)
    with pytest.raises(ProfileError) as err:
        localconf.render(settings)
    assert any(message in p.message for p in err.value.problems)
    assert err.value.exit_code == 2


def test_grenade_pullup_uses_the_old_branch_for_the_matrix(tmp_path: Path):
    assert localconf.grenade_old_branch("pullup", "stable/queens") == "stable/pike"
    assert localconf.grenade_old_branch("pullup", "master") == "stable/wallaby"
    assert localconf.grenade_old_branch("forward", "master") == ""
    settings = unsupported(tmp_path, DEVSTACK_GATE_GRENADE="pullup",
                           OVERRIDE_ZUUL_BRANCH="stable/ocata")
    lines = [x.text for x in localconf.gate_lines(settings)[0]]
    assert "GRENADE_PHASE=target" in lines and "TEMPEST_HTTP_IMAGE=" \
        "http://git.openstack.org/static/openstack.png" in lines
    services = next(x for x in lines if x.startswith("ENABLED_SERVICES=")).split("=")[1]
    # newton's matrix (no placement), neutron on as decided from stable/ocata
    assert "placement-api" not in services and "q-svc" in services and "c-bak" not in services


def test_profile_and_pass_through_order_and_origins(tmp_path: Path):
    text = """\
        devstack:
          localrc:
            VIRT_DRIVER: fake
            TEMPEST_VOLUME_VENDOR: SanCo Storage
          enable_services: [c-bak]
          disable_services: [s-proxy]
          local_config: |
            # from the profile
            enable_plugin sanco https://example.org/sanco
        """
    env = {"DEVSTACK_LOCAL_CONFIG": "RECLONE=yes\nSERVICE_TOKEN=abc123"}
    rendered = localconf.render(resolve(tmp_path, text, env))
    texts = [x.text for x in rendered.lines]
    localrc = localrc_of(rendered.text())
    assert texts[0] == "[[local|localrc]]"
    assert localrc[-8:] == ["VIRT_DRIVER=fake", 'TEMPEST_VOLUME_VENDOR="SanCo Storage"',
                            "enable_service c-bak", "disable_service s-proxy",
                            "# from the profile",
                            "enable_plugin sanco https://example.org/sanco",
                            "RECLONE=yes", "SERVICE_TOKEN=abc123"]
    origins = {x.text: x.origin for x in rendered.lines}
    assert origins["VIRT_DRIVER=fake"] == f"{tmp_path / 'job.yaml'}:3"
    assert origins["disable_service s-proxy"] == f"{tmp_path / 'job.yaml'}:6"
    assert origins["RECLONE=yes"] == "env DEVSTACK_LOCAL_CONFIG"
    assert origins["LIBVIRT_TYPE=qemu"] == "default DEVSTACK_GATE_LIBVIRT_TYPE"
    assert "SERVICE_TOKEN=****" in rendered.masked() and "abc123" not in rendered.masked()


def test_profile_post_and_test_config_blocks(tmp_path: Path):
    text = """\
        devstack:
          post_config:
            $NOVA_CONF:
              DEFAULT:
                debug: true
              libvirt:
                cpu_mode: none
          test_config:
            $TEMPEST_CONFIG:
              compute:
                min_compute_nodes: 1
                flavor_ref: [42, 84]
        """
    text_out = localconf.render(resolve(tmp_path, text, {})).text()
    assert "\n[[post-config|$NOVA_CONF]]\n[DEFAULT]\ndebug = True\n[libvirt]\ncpu_mode = none\n" \
        in text_out
    assert text_out.endswith("[[test-config|$TEMPEST_CONFIG]]\n[compute]\n"
                             "min_compute_nodes = 1\nflavor_ref = 42\nflavor_ref = 84\n")


def test_devstack_localconf_is_merged_last_key_by_key(tmp_path: Path):
    text = """\
        devstack:
          post_config:
            $NOVA_CONF:
              DEFAULT:
                debug: "True"
                my_ip: 10.0.0.1
        """
    late = ("[[local|localrc]]\nLATE_VAR=1\n[[post-config|$NOVA_CONF]]\n[DEFAULT]\n"
            "debug = False\n[new]\nx = y\n[[post-config|$CINDER_CONF]]\n[DEFAULT]\na = b\n")
    rendered = localconf.render(resolve(tmp_path, text, {"DEVSTACK_LOCALCONF": late}))
    out = rendered.text()
    assert localrc_of(out)[-1] == "LATE_VAR=1"
    assert "[[post-config|$NOVA_CONF]]\n[DEFAULT]\ndebug = False\nmy_ip = 10.0.0.1\n[new]\n" \
        "x = y\n" in out
    assert out.endswith("[[post-config|$CINDER_CONF]]\n[DEFAULT]\na = b\n")


def test_keep_localrc_puts_existing_lines_first(tmp_path: Path):
    existing = "[[local|localrc]]\nMY_OWN=1\n\n[[post-config|$NOVA_CONF]]\n[DEFAULT]\nz = 1\n"
    rendered = localconf.render(resolve(tmp_path, BARE, {}), existing=existing)
    assert localrc_of(rendered.text())[0] == "MY_OWN=1"
    assert "[[post-config|$NOVA_CONF]]\n[DEFAULT]\nz = 1\n" in rendered.text()
    assert rendered.lines[1].origin == localconf.KEPT


@pytest.mark.parametrize("password", ["pa$word", "with space", "quote'd", "ab&c", "x!"])
def test_non_alphanumeric_password_is_refused_with_its_name(tmp_path: Path, password: str):
    text = f"devstack:\n  localrc:\n    RABBIT_PASSWORD: \"{password}\"\n"
    with pytest.raises(ProfileError) as err:
        localconf.render(resolve(tmp_path, text.replace("$", "$$"), {}))
    (problem,) = err.value.problems
    assert problem.message.startswith("RABBIT_PASSWORD:")
    assert problem.where == f"{tmp_path / 'job.yaml'}:3"
    assert password not in problem.render()


def test_password_in_pass_through_is_checked_but_var_references_are_fine(tmp_path: Path):
    settings = resolve(tmp_path, BARE, {"DEVSTACK_LOCAL_CONFIG":
                                        "SERVICE_PASSWORD=$ADMIN_PASSWORD\nX=1"})
    localconf.render(settings)
    settings = resolve(tmp_path, BARE, {"DEVSTACK_LOCAL_CONFIG": 'ADMIN_PASSWORD="a;b"'})
    with pytest.raises(ProfileError) as err:
        localconf.render(settings)
    assert err.value.problems[0].where == "env DEVSTACK_LOCAL_CONFIG"


@pytest.mark.parametrize(("snippet", "message"), [
    ("devstack:\n  localrc:\n    BAD-NAME: x\n", "is not a shell variable name"),
    ("devstack:\n  localrc:\n    X: \"$$(id)\"\n", "command substitution"),
    ("devstack:\n  post_config:\n    $NOVA_CONF:\n      'a]b':\n        x: 1\n",
     "cannot be a section or option name"),
    ("devstack:\n  post_config:\n    $NOVA_CONF:\n      DEFAULT:\n        'my opt': 1\n",
     "cannot be a section or option name"),
    ("devstack:\n  post_config:\n    $NOVA_CONF:\n      DEFAULT:\n        x: \"a\\nb\"\n",
     "newline"),
    ("devstack:\n  post_config:\n    '[bad]':\n      DEFAULT:\n        x: 1\n",
     "cannot be a config file spec"),
])
def test_bad_profile_values_name_their_line(tmp_path: Path, snippet: str, message: str):
    with pytest.raises(ProfileError) as err:
        localconf.render(resolve(tmp_path, snippet, {}))
    assert any(message in p.message for p in err.value.problems), err.value.problems
    assert all(p.where.startswith(str(tmp_path / "job.yaml:")) for p in err.value.problems)


def test_secrets_never_reach_the_masked_form(tmp_path: Path):
    settings = resolve(tmp_path, SANCO, {"SANCO_PASSWORD": "Sup3rSecret",
                                         "DEVSTACK_LOCAL_CONFIG": "MY_TOKEN=tok3nvalue"})
    rendered = localconf.render(settings)
    masked = rendered.masked()
    for secret in ("Sup3rSecret", "k3y-for-sanco", "tok3nvalue", "secretadmin", "secretmysql"):
        assert secret in rendered.text()
        assert secret not in masked
    assert rendered.has_secrets


def test_every_shipped_profile_renders(repo_root: Path):
    for name in ("base", "tempest-full", "tempest-smoke", "cinder-lvm", "vendor-template"):
        rendered = localconf.render(profile.resolve(name, env={}))
        assert rendered.lines[0].text == "[[local|localrc]]"
        assert rendered.text().endswith("\n") and "\r" not in rendered.text()


def test_environment_values_cannot_inject_shell_but_plain_ones_stay_bare(tmp_path: Path):
    lines = gate(tmp_path, DEVSTACK_GATE_FIXED_RANGE="10.1.0.0/20; touch /tmp/pwned",
                 DEVSTACK_PROJECT_FROM_GIT="os-brick,oslo.config")
    assert 'FIXED_RANGE="10.1.0.0/20; touch /tmp/pwned"' in lines
    assert "LIBS_FROM_GIT=os-brick,oslo.config" in lines
    xen = gate(tmp_path, DEVSTACK_GATE_VIRT_DRIVER="xenapi", DEVSTACK_GATE_XENAPI_DOM0_IP="1.2.3.4",
               DEVSTACK_GATE_XENAPI_DOMU_IP="1.2.3.5", DEVSTACK_GATE_XENAPI_PASSWORD="xen4pw")
    assert 'EXTRA_OPTS=("xenapi_disable_agent=True")' in xen
    assert "XENAPI_CONNECTION_URL=http://1.2.3.4" in xen
